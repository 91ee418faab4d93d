"""Golden data for the model layer (test/fixtures/model/), from the PyTorch peer.

The peer (../shared/peer/torch_cavmae.py) reproduces the official CAV-MAE bit for bit on the
shared fixtures; this script drives it on configurations the shared fixtures do not cover:

- nn.safetensors: one Block (dim 8, 2 heads) in its three LayerNorm modes with all gradients,
  patch embeddings (conv) of a spectrogram and an image, MAE targets (patchify), sin-cos tables.
- quirk2.safetensors: a CAVMAE with TWO shared layers (modality_specific_depth 10), so the
  reference's joint-layer quirk (docs/reference.md#shared-layer-loop) shows; mask noise, every output and the
  gradient of the loss for EVERY parameter; norm_pix_loss False losses; forward_feat.
- ft.safetensors: the fine-tuning model of the same sizes (trainable position tables), multimodal
  logits and the gradient of BCEWithLogits for every parameter.
- masking.safetensors: structured masking (time / freq / tf) as docs/reference.md#masking describes, with the
  chosen rows and columns, so the TypeScript port replays them.

Run: /usr/bin/python3 scripts/golden/model_golden.py   (Debian python3-torch 1.13)
"""
import json
import os
import random
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get('CAVMAE_SHARED', os.path.join(os.path.dirname(ROOT), 'shared'))
sys.path.insert(0, os.path.join(SHARED, 'peer'))
import torch_cavmae as peer  # noqa: E402

OUT = os.path.join(ROOT, 'test', 'fixtures', 'model')


def save(path, tensors, metadata=None):
    """Minimal safetensors writer (F32 / I64)."""
    names = sorted(tensors)
    header, blobs, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    for n in names:
        t = tensors[n].detach().contiguous()
        if t.dtype == torch.int64:
            arr, dt = t.numpy().astype('<i8'), 'I64'
        else:
            arr, dt = t.float().numpy().astype('<f4'), 'F32'
        b = arr.tobytes()
        header[n] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    print(f'{path}: {len(names)} tensors, {offset} bytes')


def perturb(model, gen):
    """Every LayerNorm weight/bias and Linear/Conv bias moved away from 1/0 (as the shared fixtures)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('.bias') or ('norm' in name and name.endswith('.weight')):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def nn_golden():
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(11)
    out = {}
    block = peer.Block(8, 2)
    perturb(block, gen)
    for k, v in block.state_dict().items():
        out[f'block.{k}'] = v
    x = torch.randn(2, 5, 8, generator=gen)
    r = torch.randn(2, 5, 8, generator=gen)
    out['block.input'] = x
    out['block.cotangent'] = r
    for mode in (None, 'a', 'v'):
        tag = 'none' if mode is None else mode
        xi = x.clone().requires_grad_(True)
        block.zero_grad()
        y = block(xi, mode)
        (y * r).sum().backward()
        out[f'block.out.{tag}'] = y
        out[f'block.grad.{tag}.input'] = xi.grad.clone()
        for k, p in block.named_parameters():
            if p.grad is not None:
                out[f'block.grad.{tag}.{k}'] = p.grad.clone()
    # Patch embeddings: the conv itself, audio read as [B,1,F,T].
    pa, pv = peer.PatchEmbed(1, 8), peer.PatchEmbed(3, 8)
    audio = torch.randn(2, 48, 32, generator=gen)  # [B, T, F]
    img = torch.randn(2, 3, 32, 48, generator=gen)  # non-square on purpose
    out['patch_a.weight'], out['patch_a.bias'] = pa.proj.weight, pa.proj.bias
    out['patch_v.weight'], out['patch_v.bias'] = pv.proj.weight, pv.proj.bias
    out['patch_a.input'], out['patch_v.input'] = audio, img
    out['patch_a.out'] = pa(audio.unsqueeze(1).transpose(2, 3))
    out['patch_v.out'] = pv(img)
    m = peer.CAVMAE.__new__(peer.CAVMAE)
    out['patchify_a'] = peer.CAVMAE.patchify(m, audio.unsqueeze(1).transpose(2, 3), 1, 2, 3)
    out['patchify_v'] = peer.CAVMAE.patchify(m, img, 3, 2, 3)
    # Sin-cos tables: small ones whole, the base audio table on every 37th row.
    out['pos.16x2x3'] = peer.sincos_2d(16, 2, 3)
    out['pos.8x4x4'] = peer.sincos_2d(8, 4, 4)
    out['pos.base_a_rows37'] = peer.sincos_2d(768, 8, 64)[:, ::37]
    out['pos.base_dec_v_rows13'] = peer.sincos_2d(512, 14, 14)[:, ::13]
    save(os.path.join(OUT, 'nn.safetensors'), {k: v.detach() for k, v in out.items()})


QUIRK_CFG = dict(img_size=48, audio_length=64, embed_dim=16, modality_specific_depth=10, num_heads=2,
                 decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
                 norm_pix_loss=True, tr_pos=False)


def make_model(cfg, label_dim=None, norm_pix=True):
    return peer.CAVMAE(img_size=cfg['img_size'], audio_length=cfg['audio_length'], embed_dim=cfg['embed_dim'],
                       depth=cfg['modality_specific_depth'], heads=cfg['num_heads'],
                       dec_dim=cfg.get('decoder_embed_dim', 512), dec_depth=cfg.get('decoder_depth', 8),
                       dec_heads=cfg.get('decoder_num_heads', 16), norm_pix_loss=norm_pix, label_dim=label_dim)


def init_like_official(model, gen):
    """docs/reference.md#initialisation distributions (the exact torch stream does not matter: the state dict is the truth)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'pos_embed' in name:
                continue
            if p.dim() == 1 and name.endswith('.weight'):  # every LayerNorm
                p.fill_(1.0)
            elif p.dim() >= 2 and 'modality' not in name and 'mask_token' not in name:
                fan_out, fan_in = p.shape[0], p[0].numel()
                b = (6.0 / (fan_in + fan_out)) ** 0.5
                p.uniform_(-b, b, generator=gen)
            elif 'modality' in name or 'mask_token' in name:
                p.normal_(0, 0.02, generator=gen)
            else:
                p.zero_()
    perturb(model, gen)


def quirk_golden():
    gen = torch.Generator().manual_seed(21)
    torch.manual_seed(2)
    cfg = QUIRK_CFG
    model = make_model(cfg)
    init_like_official(model, gen)
    B = 4
    audio = torch.randn(B, cfg['audio_length'], 128, generator=gen)
    img = torch.randn(B, 3, cfg['img_size'], cfg['img_size'], generator=gen)
    na, nv = cfg['audio_length'] * 128 // 256, (cfg['img_size'] // 16) ** 2
    noise_a = torch.rand(B, na, generator=gen)
    noise_v = torch.rand(B, nv, generator=gen)
    out = {f'param.{k}': v for k, v in model.state_dict().items()}
    out.update({'input.audio': audio, 'input.image': img, 'input.noise_a': noise_a, 'input.noise_v': noise_v})
    model.zero_grad()
    res = model(audio, img, noise_a, noise_v, 0.75, 0.01)
    res[0].backward()
    names = ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'mask_a', 'mask_v', 'c_acc', 'pred_a', 'pred_v']
    for n, v in zip(names, res):
        out[f'out.{n}'] = v.detach().reshape(-1) if v.dim() == 0 else v.detach()
    for k, p in model.named_parameters():
        if p.grad is not None:
            out[f'grad.{k}'] = p.grad.clone()
    # The same model without per-patch target normalisation.
    model.norm_pix_loss = False
    with torch.no_grad():
        res = model(audio, img, noise_a, noise_v, 0.75, 0.01)
    out['nonorm.loss_mae_a'] = res[2].reshape(1)
    out['nonorm.loss_mae_v'] = res[3].reshape(1)
    # contrast weight 0.1 (checks the weighting), per-patch normalisation back on
    model.norm_pix_loss = True
    with torch.no_grad():
        res = model(audio, img, noise_a, noise_v, 0.75, 0.1)
    out['w01.loss_c'] = res[4].reshape(1)
    out['w01.loss'] = res[0].reshape(1)
    with torch.no_grad():
        a, v = model.forward_feat(audio, img)
    out['feat.audio_tokens'], out['feat.video_tokens'] = a, v
    save(os.path.join(OUT, 'quirk2.safetensors'), out, {'config': json.dumps(cfg), 'class': 'CAVMAE', 'batch': B})


def ft_golden():
    gen = torch.Generator().manual_seed(31)
    torch.manual_seed(3)
    cfg = {k: QUIRK_CFG[k] for k in ('img_size', 'audio_length', 'embed_dim', 'modality_specific_depth', 'num_heads', 'mlp_ratio')}
    cfg.update(label_dim=5, tr_pos=True)
    model = make_model(QUIRK_CFG, label_dim=5)
    init_like_official(model, gen)
    model.pos_embed_a.requires_grad_(True)
    model.pos_embed_v.requires_grad_(True)
    B = 3
    audio = torch.randn(B, cfg['audio_length'], 128, generator=gen)
    img = torch.randn(B, 3, cfg['img_size'], cfg['img_size'], generator=gen)
    labels = (torch.rand(B, 5, generator=gen) < 0.4).float()
    out = {f'param.{k}': v for k, v in model.state_dict().items()}
    out.update({'input.audio': audio, 'input.image': img, 'input.labels': labels})
    logits = model.forward_ft(audio, img)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    loss.backward()
    out['out.logits'] = logits.detach()
    out['out.loss'] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        if p.grad is not None:
            out[f'grad.{k}'] = p.grad.clone()
    save(os.path.join(OUT, 'ft.safetensors'), out, {'config': json.dumps(cfg), 'class': 'CAVMAEFT', 'batch': B})


def structured_masking_golden():
    """docs/reference.md#masking: noise [N, f*t] viewed as [N, f, t]; chosen columns / rows set to 1.1; argsort."""
    gen = torch.Generator().manual_seed(41)
    random.seed(5)
    N, f, t, r = 3, 8, 64, 0.75
    L = f * t
    len_keep = int(L * (1 - r))
    out = {}
    for mode in ('time', 'freq', 'tf'):
        noise = torch.rand(N, L, generator=gen)
        out[f'{mode}.noise'] = noise.clone()
        noise = noise.reshape(N, f, t)
        cols = torch.full((N, t), -1, dtype=torch.int64)
        rows = torch.full((N, f), -1, dtype=torch.int64)
        for i in range(N):
            if mode in ('time', 'tf'):
                nc = int(t * r) if mode == 'time' else int(t * r * 0.7)
                c = random.sample(range(t), nc)
                noise[i, :, c] = 1.1
                cols[i, :nc] = torch.tensor(c)
            if mode in ('freq', 'tf'):
                nr = int(f * r) if mode == 'freq' else int(f * r * 0.7)
                rr = random.sample(range(f), nr)
                noise[i, rr, :] = 1.1
                rows[i, :nr] = torch.tensor(rr)
        noise = noise.reshape(N, L)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(N, L)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        out[f'{mode}.cols'] = cols
        out[f'{mode}.rows'] = rows
        out[f'{mode}.ids_keep'] = ids_shuffle[:, :len_keep]
        out[f'{mode}.ids_shuffle'] = ids_shuffle
        out[f'{mode}.mask'] = mask
    save(os.path.join(OUT, 'masking.safetensors'), out)


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    nn_golden()
    quirk_golden()
    ft_golden()
    structured_masking_golden()
