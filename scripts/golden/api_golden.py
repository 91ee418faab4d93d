"""Golden data for the inference API's localisation and reconstruction (test/api, test/eval).

Reads the official small model's fixture (test/fixtures/official/model_small/cavmae_small_io.*),
whose forward_feat tokens and forward outputs came from the official PyTorch code, and computes
with PyTorch what the reference scripts compute from them:
- localisation maps as the fork's localization.py / localization2.py do (spec 6.2): audio query
  (mean over tokens, or the centre time column after reshaping [B, 8, T/16, D] and averaging over
  frequency, or the visual-patch mean), F.normalize, dot products, F.interpolate (nearest as
  localization.py, bilinear as localization2.py), min-max normalisation;
- F.interpolate on a random non-square map (both modes) for the upsampler;
- forward_inpaint's per-sample masked MSE (spec 3.10 / 6.1) of sample 0 from the official
  predictions, masks and inputs (norm_pix_loss targets, unbiased variance, eps 1e-6).

Run: /usr/bin/python3 scripts/golden/api_golden.py  (writes test/fixtures/api/golden.safetensors)
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st_minimal  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FIX = os.path.join(ROOT, 'test', 'fixtures', 'official', 'model_small')  # copy of ../shared/fixtures
OUT = os.path.join(ROOT, 'test', 'fixtures', 'api', 'golden.safetensors')

io, _ = st_minimal.load(os.path.join(FIX, 'cavmae_small_io.safetensors'))
cfg = json.load(open(os.path.join(FIX, 'cavmae_small_io.json')))['config']
P = cfg['patch_size']
T = cfg['audio_length']
S = cfg['img_size']
D = cfg['embed_dim']

a_tok = io['feat.audio_tokens'][0:1].double()  # [1, 64, 48]
v_tok = io['feat.video_tokens'][0:1].double()  # [1, 16, 48]
fr, tc = 128 // P, T // P
g = S // P


def query(kind, column=None):
    if kind == 'mean':
        return a_tok.mean(dim=1)  # [1, D]
    if kind == 'column':
        cols = a_tok.reshape(1, fr, tc, D).mean(dim=1)  # [1, tc, D]
        return cols[:, tc // 2 if column is None else column]
    return v_tok.mean(dim=1)  # patchesmean


def loc_map(kind, size, mode, column=None):
    q = F.normalize(query(kind, column), dim=-1)
    v = F.normalize(v_tok, dim=-1)
    sim = torch.einsum('bd,bld->bl', q, v)  # [1, Lv]
    m = sim.reshape(1, 1, g, g).float()
    up = F.interpolate(m, size=(size, size), mode=mode) if mode == 'nearest' else F.interpolate(m, size=(size, size), mode=mode, align_corners=False)
    up = up[0, 0]
    up = (up - up.min()) / (up.max() - up.min())
    return sim[0].float(), up


out = {}
cases = [('column', 224, 'bilinear', None), ('mean', 64, 'nearest', None), ('patchesmean', 64, 'bilinear', None), ('column', 64, 'bilinear', 2)]
for kind, size, mode, column in cases:
    name = f'loc.{kind}{"" if column is None else column}.{mode}.{size}'
    sim, heat = loc_map(kind, size, mode, column)
    out[name + '.map'] = sim.contiguous()
    out[name + '.heat'] = heat.contiguous()

gen = torch.Generator().manual_seed(5)
small = torch.randn(1, 1, 5, 7, generator=gen)
out['interp.input'] = small[0, 0].contiguous()
out['interp.bilinear'] = F.interpolate(small, size=(23, 31), mode='bilinear', align_corners=False)[0, 0].contiguous()
out['interp.nearest'] = F.interpolate(small, size=(23, 31), mode='nearest')[0, 0].contiguous()
out['interp.bilinear_down'] = F.interpolate(small, size=(3, 4), mode='bilinear', align_corners=False)[0, 0].contiguous()


def patchify(imgs, c, h, w, p):
    x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
    x = torch.einsum('nchpwq->nhwpqc', x)
    return x.reshape(imgs.shape[0], h * w, p * p * c)


def mae_loss(target, pred, mask):
    if cfg['norm_pix_loss']:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.e-6) ** .5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum()


audio = io['input.audio'][0:1]  # [1, T, 128]
image = io['input.image'][0:1]  # [1, 3, S, S]
a_img = audio.unsqueeze(1).transpose(2, 3)  # [1, 1, 128, T]
out['inpaint.mse_a0'] = mae_loss(patchify(a_img, 1, 128 // P, T // P, P), io['out.pred_a'][0:1], io['out.mask_a'][0:1]).reshape(1).float()
out['inpaint.mse_v0'] = mae_loss(patchify(image, 3, S // P, S // P, P), io['out.pred_v'][0:1], io['out.mask_v'][0:1]).reshape(1).float()

os.makedirs(os.path.dirname(OUT), exist_ok=True)
st_minimal.save(OUT, out, {'generator': 'scripts/golden/api_golden.py', 'torch': torch.__version__})
print('wrote', OUT, {k: list(v.shape) for k, v in out.items()})
