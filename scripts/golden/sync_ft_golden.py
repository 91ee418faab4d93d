"""Golden data for the CAV-MAE Sync fine-tuning model (test/fixtures/sync/sync_ft_<case>.*).

A PyTorch CAVMAESyncFT written from the
reference notes (docs/reference.md#sync-fine-tuning) and a reading of the research branch's CAVMAEFT (edsonroteia/cav-mae, branch CAVMAEv2,
src/models/cav_mae_sync.py, class CAVMAEFT with aggregate='self_attention_cls'); no code is copied.
The building blocks (Block with the released sub-module order, PatchEmbed, sin-cos tables) come from
scripts/golden/sync_reference.py and the PyTorch peer.

Behaviour (docs/sync.md, "Fine-tuning"):
- Input: B clips x F pairs flattened to [B*F, L, 128] / [B*F, 3, S, S]; pair k of clip b is row b*F + k.
- multimodal: [global, patches, registers] -> blocks_a / blocks_v -> registers dropped ->
  concat(audio global token, visual global token), or concat(mean tokens) without global tokens
  (modality-specific outputs, no final norm; the release's joint-layer pass is discarded).
- audioonly / videoonly: tokens -> blocks -> registers dropped (kept with keep_register_tokens)
  -> blocks_u with the joint LayerNorms -> norm -> mean over all tokens.
- Aggregator: [B, F, W] -> prepend cls_cls_token -> 2 x Block(W) -> classifier_norm ->
  classifier_head on token 0.

Writes per case: sync_ft_<case>.safetensors (state dict, released names; metadata cavmae.config)
and sync_ft_<case>_io.safetensors (inputs, labels, logits, BCE loss, gradients), and a JSON summary.

Run: /usr/bin/python3 scripts/golden/sync_ft_golden.py   (Debian python3-torch 1.13, ~5 s)
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sync_reference import FREQ_ROWS, PATCH, Block  # noqa: E402
from sync_golden import perturb, save_st, write_json, rel_err  # noqa: E402
from torch_cavmae import PatchEmbed, sincos_2d  # noqa: E402  (sync_reference put ../shared/peer on sys.path)

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'sync')


class CAVMAESyncFT(nn.Module):
    def __init__(self, label_dim, img_size=224, audio_length=1024, embed_dim=768, modality_specific_depth=11,
                 num_heads=12, mlp_ratio=4., tr_pos=True, num_register_tokens=0, cls_token=False, total_frame=16,
                 keep_register_tokens=False, mode='multimodal', *, shared_depth=None):
        super().__init__()
        self.t_cols, self.v_grid = audio_length // PATCH, img_size // PATCH
        self.R, self.cls, self.F, self.keep, self.mode = num_register_tokens, cls_token, total_frame, keep_register_tokens, mode
        shared_depth = 12 - modality_specific_depth if shared_depth is None else shared_depth
        # Registration order = the research branch's (state dict: own parameters first, then modules).
        self.patch_embed_a = PatchEmbed(1, embed_dim)
        self.patch_embed_v = PatchEmbed(3, embed_dim)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed_a = nn.Parameter(sincos_2d(embed_dim, FREQ_ROWS, self.t_cols).clone(), requires_grad=tr_pos)
        self.pos_embed_v = nn.Parameter(sincos_2d(embed_dim, self.v_grid, self.v_grid).clone(), requires_grad=tr_pos)
        self.blocks_a = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(modality_specific_depth)])
        self.blocks_v = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(modality_specific_depth)])
        self.blocks_u = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(shared_depth)])
        if self.R > 0:
            self.register_tokens = nn.Parameter(torch.randn(2 * self.R, embed_dim))
        self.norm_a, self.norm_v, self.norm = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)
        if self.cls:
            self.cls_token_a = nn.Parameter(0.02 * torch.randn(1, 1, embed_dim))
            self.cls_token_v = nn.Parameter(0.02 * torch.randn(1, 1, embed_dim))
        width = 2 * embed_dim if mode == 'multimodal' else embed_dim
        self.cls_cls_token = nn.Parameter(0.02 * torch.randn(1, 1, width))
        self.classifier_layers = nn.ModuleList([Block(width, num_heads, mlp_ratio) for _ in range(2)])
        self.classifier_norm = nn.LayerNorm(width)
        self.classifier_head = nn.Linear(width, label_dim)
        with torch.no_grad():
            for p in (self.modality_a, self.modality_v):
                p.normal_(std=0.02)

    def tokens(self, x, which):
        B = x.shape[0]
        if self.cls:
            x = torch.cat([getattr(self, 'cls_token_' + which).expand(B, -1, -1), x], 1)
        if self.R > 0:
            regs = self.register_tokens[:self.R] if which == 'a' else self.register_tokens[self.R:]
            x = torch.cat([x, regs.unsqueeze(0).expand(B, -1, -1)], 1)
        for blk in (self.blocks_a if which == 'a' else self.blocks_v):
            x = blk(x)
        return x

    def drop(self, x):
        return x[:, :-self.R] if self.R > 0 else x

    def pair_features(self, a, v):
        if self.mode in ('multimodal', 'audioonly'):
            a = self.patch_embed_a(a.unsqueeze(1).transpose(2, 3)) + self.pos_embed_a + self.modality_a
        if self.mode in ('multimodal', 'videoonly'):
            v = self.patch_embed_v(v) + self.pos_embed_v + self.modality_v
        if self.mode == 'multimodal':
            a, v = self.drop(self.tokens(a, 'a')), self.drop(self.tokens(v, 'v'))
            if self.cls:
                return torch.cat([a[:, 0], v[:, 0]], 1)                        # [B*F, 2D]
            return torch.cat([a.mean(1), v.mean(1)], 1)
        x = self.tokens(a, 'a') if self.mode == 'audioonly' else self.tokens(v, 'v')
        if not self.keep:
            x = self.drop(x)
        for blk in self.blocks_u:
            x = blk(x)                                                         # joint LayerNorms
        return self.norm(x).mean(1)                                            # [B*F, D]

    def forward(self, a, v):
        f = self.pair_features(a, v)
        B = f.shape[0] // self.F
        x = torch.cat([self.cls_cls_token.expand(B, -1, -1), f.view(B, self.F, -1)], 1)   # [B, 1+F, W]
        for blk in self.classifier_layers:
            x = blk(x)
        return self.classifier_head(self.classifier_norm(x)[:, 0])


SMALL = dict(img_size=32, audio_length=32, embed_dim=12, modality_specific_depth=1, num_heads=3, mlp_ratio=4.0,
             tr_pos=True, total_frame=3, label_dim=5)
EXTRAS = dict(shared_depth=1)
CASES = {
    'mm_cls': dict(num_register_tokens=2, cls_token=True, keep_register_tokens=False, mode='multimodal'),
    'mm_mean': dict(num_register_tokens=0, cls_token=False, keep_register_tokens=False, mode='multimodal'),
    'audioonly': dict(num_register_tokens=2, cls_token=True, keep_register_tokens=True, mode='audioonly'),
    'videoonly': dict(num_register_tokens=1, cls_token=False, keep_register_tokens=False, mode='videoonly'),
}
SEEDS = {'mm_cls': 50, 'mm_mean': 60, 'audioonly': 70, 'videoonly': 80}
CLIPS = 2


def make_case(name, flags):
    cfg = dict(SMALL, **flags)
    seed = SEEDS[name]
    torch.manual_seed(seed)
    model = CAVMAESyncFT(**cfg, **EXTRAS)
    perturb(model, torch.Generator().manual_seed(seed + 1))
    gen = torch.Generator().manual_seed(seed + 2)
    n = CLIPS * cfg['total_frame']
    audio = torch.randn(n, cfg['audio_length'], 128, generator=gen)
    image = torch.randn(n, 3, cfg['img_size'], cfg['img_size'], generator=gen)
    labels = (torch.rand(CLIPS, cfg['label_dim'], generator=gen) < 0.4).float()
    logits = model(audio, image)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    loss.backward()
    params = dict(model.named_parameters())
    used = [k for k, p in params.items() if p.grad is not None]
    io = {'input.audio': audio, 'input.image': image, 'input.labels': labels,
          'out.logits': logits.detach(), 'out.loss': loss.detach().reshape(1)}
    for k in used:
        io['grad.' + k] = params[k].grad
    # Float64 spread of the same computation (sizes the port's tolerances).
    m64 = CAVMAESyncFT(**cfg, **EXTRAS).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    l64 = m64(audio.double(), image.double())
    F.binary_cross_entropy_with_logits(l64, labels.double()).backward()
    p64 = dict(m64.named_parameters())
    spread = {'logits': rel_err(logits, l64), 'grads': max(rel_err(params[k].grad, p64[k].grad) for k in used)}
    state = model.state_dict()
    ours = dict(model='cavmae-sync-ft', aggregate='self_attention_cls', **cfg, **EXTRAS)
    save_st(os.path.join(OUT, f'sync_ft_{name}.safetensors'), state,
            {'cavmae.config': json.dumps(ours), 'class': 'CAVMAESyncFT', 'torch_version': torch.__version__,
             'generator': 'scripts/golden/sync_ft_golden.py'})
    save_st(os.path.join(OUT, f'sync_ft_{name}_io.safetensors'), io, {'case': name})
    write_json(os.path.join(OUT, f'sync_ft_{name}.json'), {
        'config': ours, 'clips': CLIPS, 'seed': seed, 'torch_version': torch.__version__,
        'outputs': {'loss': float(loss)}, 'float32_vs_float64_relative': spread,
        'state_dict': [[k, list(v.shape)] for k, v in state.items()],
        'params_without_grad': [k for k, p in params.items() if p.grad is None],
    })


def main():
    torch.set_num_threads(1)
    for name, flags in CASES.items():
        make_case(name, flags)


if __name__ == '__main__':
    main()
