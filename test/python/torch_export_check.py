"""Loads a `cavmae export` .pth into PyTorch model classes with the official parameter names and
checks it: torch.load, load_state_dict(strict=True), key order, and a forward pass whose outputs
the TypeScript test compares with ours.

The classes here (CAVMAE, CAVMAEFT) are written by us from the reference specification with the
official constructor arguments, parameter names and registration order (state-dict order); they
were checked by hand against YuanGongND/cav-mae src/models/cav_mae.py (commit 68fe8c2): same
modules, same order, same forward_feat and fine-tuning forward. Nothing is copied from it. The
Sync classes are the repository's own references (scripts/golden/sync_reference.py and
sync_ft_golden.py), given these building blocks in place of the ../shared peer they import.

Usage (Debian python3-torch):
  /usr/bin/python3 torch_export_check.py SPEC.json
SPEC: {"pth": path, "class": "CAVMAE"|"CAVMAEFT"|"CAVMAESync"|"CAVMAESyncFT", "args": {constructor
arguments}, "inputs": safetensors with input.audio / input.image, "out": safetensors to write,
"data_parallel": bool, "ft_modes": [...]}. Prints one JSON line (keys, order_ok, ...).
"""
import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PATCH = 16
MEL_BINS = 128


# ---- building blocks (official names: PatchEmbed.proj, Attention.qkv/.proj, Mlp.fc1/.fc2) ----

def sincos_2d(dim, rows, cols):
    """[1, rows*cols, dim]: first half encodes the column (time for audio), second half the row."""
    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum('m,d->md', pos.reshape(-1).astype(np.float64), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing='ij')
    return torch.from_numpy(np.concatenate([one_d(dim // 2, c), one_d(dim // 2, r)], axis=1)).float().unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, PATCH, PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm block with three LayerNorm pairs (joint, audio, visual), official order."""

    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1, self.norm1_a, self.norm1_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2, self.norm2_a, self.norm2_v = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, modality=None):
        s = '' if modality is None else '_' + modality
        x = x + self.attn(getattr(self, 'norm1' + s)(x))
        return x + self.mlp(getattr(self, 'norm2' + s)(x))


class Encoder(nn.Module):
    """Shared by CAVMAE and CAVMAEFT: registers the encoder in the official order."""

    def _encoder(self, img_size, audio_length, in_chans, embed_dim, depth, heads, mlp_ratio, tr_pos):
        self.t_cols, self.v_grid = audio_length // PATCH, img_size // PATCH
        self.patch_embed_a = PatchEmbed(1, embed_dim)
        self.patch_embed_v = PatchEmbed(in_chans, embed_dim)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed_a = nn.Parameter(sincos_2d(embed_dim, MEL_BINS // PATCH, self.t_cols), requires_grad=tr_pos)
        self.pos_embed_v = nn.Parameter(sincos_2d(embed_dim, self.v_grid, self.v_grid), requires_grad=tr_pos)
        self.blocks_a = nn.ModuleList([Block(embed_dim, heads, mlp_ratio) for _ in range(depth)])
        self.blocks_v = nn.ModuleList([Block(embed_dim, heads, mlp_ratio) for _ in range(depth)])
        self.blocks_u = nn.ModuleList([Block(embed_dim, heads, mlp_ratio) for _ in range(12 - depth)])
        self.norm_a, self.norm_v, self.norm = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)

    def embed_a(self, a):  # a: [B, T, 128] -> [B, 8*T/16, D]
        return self.patch_embed_a(a.unsqueeze(1).transpose(2, 3)) + self.pos_embed_a + self.modality_a

    def embed_v(self, v):  # v: [B, 3, H, W] -> [B, (H/16)^2, D]
        return self.patch_embed_v(v) + self.pos_embed_v + self.modality_v

    def forward_feat(self, a, v):
        a, v = self.embed_a(a), self.embed_v(v)
        for b in self.blocks_a:
            a = b(a)
        for b in self.blocks_v:
            v = b(v)
        for b in self.blocks_u:
            a = b(a, 'a')
        a = self.norm_a(a)
        for b in self.blocks_u:
            v = b(v, 'v')
        return a, self.norm_v(v)


class CAVMAE(Encoder):
    def __init__(self, img_size=224, audio_length=1024, patch_size=16, in_chans=3, embed_dim=768,
                 modality_specific_depth=11, num_heads=12, decoder_embed_dim=512, decoder_depth=8,
                 decoder_num_heads=16, mlp_ratio=4., norm_layer=nn.LayerNorm, norm_pix_loss=False, tr_pos=False):
        super().__init__()
        assert patch_size == PATCH
        self._encoder(img_size, audio_length, in_chans, embed_dim, modality_specific_depth, num_heads, mlp_ratio, tr_pos)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_modality_a = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_modality_v = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed_a = nn.Parameter(sincos_2d(decoder_embed_dim, MEL_BINS // PATCH, self.t_cols), requires_grad=tr_pos)
        self.decoder_pos_embed_v = nn.Parameter(sincos_2d(decoder_embed_dim, self.v_grid, self.v_grid), requires_grad=tr_pos)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred_a = nn.Linear(decoder_embed_dim, PATCH * PATCH)
        self.decoder_pred_v = nn.Linear(decoder_embed_dim, PATCH * PATCH * in_chans)


class CAVMAEFT(Encoder):
    def __init__(self, label_dim, img_size=224, audio_length=1024, patch_size=16, in_chans=3, embed_dim=768,
                 modality_specific_depth=11, num_heads=12, mlp_ratio=4., norm_layer=nn.LayerNorm, norm_pix_loss=False,
                 tr_pos=True):
        super().__init__()
        assert patch_size == PATCH
        self._encoder(img_size, audio_length, in_chans, embed_dim, modality_specific_depth, num_heads, mlp_ratio, tr_pos)
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, label_dim))

    def forward(self, a, v, mode):
        if mode == 'multimodal':
            a, v = self.embed_a(a), self.embed_v(v)
            for b in self.blocks_a:
                a = b(a)
            for b in self.blocks_v:
                v = b(v)
            x = torch.cat((a, v), dim=1)
            for b in self.blocks_u:
                x = b(x)
            return self.mlp_head(self.norm(x).mean(dim=1))
        if mode == 'audioonly':
            a, _ = self.forward_feat_one(self.embed_a(a), self.blocks_a, 'a', self.norm_a)
            return self.mlp_head(a.mean(dim=1))
        if mode == 'videoonly':
            v, _ = self.forward_feat_one(self.embed_v(v), self.blocks_v, 'v', self.norm_v)
            return self.mlp_head(v.mean(dim=1))
        raise ValueError(mode)

    def forward_feat_one(self, x, blocks, m, norm):
        for b in blocks:
            x = b(x)
        for b in self.blocks_u:
            x = b(x, m)
        return norm(x), None


def sync_classes():
    """The repository's Sync references, with this file standing in for the ../shared peer."""
    sys.modules['torch_cavmae'] = sys.modules[__name__]
    sys.path.insert(0, os.path.join(ROOT, 'scripts', 'golden'))
    import sync_reference  # noqa: E402
    import sync_ft_golden  # noqa: E402
    return sync_reference.CAVMAESync, sync_ft_golden.CAVMAESyncFT


# ---- minimal safetensors I/O (F32 only) ----

def read_st(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        if v['dtype'] != 'F32':
            continue  # only float inputs are read
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype='<f4').copy().reshape(v['shape']))
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        a = t.detach().contiguous().float().numpy().astype('<f4').tobytes()
        header[k] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(a)]}
        off += len(a)
        blobs.append(a)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main():
    spec = json.load(open(sys.argv[1]))
    torch.manual_seed(0)
    cls = spec['class']
    if cls == 'CAVMAE':
        model = CAVMAE(**spec['args'])
    elif cls == 'CAVMAEFT':
        model = CAVMAEFT(**spec['args'])
    else:
        Sync, SyncFT = sync_classes()
        model = (Sync if cls == 'CAVMAESync' else SyncFT)(**spec['args'])
    model.eval()
    sd = torch.load(spec['pth'], map_location='cpu')
    report = {'type': type(sd).__name__, 'keys': len(sd)}
    target = nn.DataParallel(model) if spec.get('data_parallel') else model
    expected = list(target.state_dict().keys())
    report['order_ok'] = list(sd.keys()) == expected
    report['first_mismatch'] = next(([a, b] for a, b in zip(sd.keys(), expected) if a != b), None)
    result = target.load_state_dict(sd, strict=True)  # raises on any missing or unexpected key
    report['missing'], report['unexpected'] = list(result.missing_keys), list(result.unexpected_keys)
    inp = read_st(spec['inputs'])
    a, v = inp['input.audio'], inp['input.image']
    out = OrderedDict()
    with torch.no_grad():
        if cls == 'CAVMAE':
            ta, tv = model.forward_feat(a, v)
            out['feat.audio_tokens'], out['feat.video_tokens'] = ta, tv
        elif cls == 'CAVMAEFT':
            for mode in spec.get('ft_modes', ['multimodal']):
                out['logits.' + mode] = model.forward(a, v, mode)
        elif cls == 'CAVMAESync':
            r = model.forward_feat(a, v)
            out['feat.audio_tokens'], out['feat.video_tokens'] = r[0], r[1]
            if len(r) == 4:
                out['feat.cls_a'], out['feat.cls_v'] = r[2], r[3]
        else:
            out['logits'] = model(a, v)
    write_st(spec['out'], out)
    report['outputs'] = list(out.keys())
    print(json.dumps(report))


if __name__ == '__main__':
    main()
