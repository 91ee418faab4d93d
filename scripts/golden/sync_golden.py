"""Golden data for CAV-MAE Sync (test/fixtures/sync/), from scripts/golden/sync_reference.py.

What it writes (all deterministic: fixed seeds, one thread):
- sync_<case>.safetensors: the state dict (released names; metadata "cavmae.config" = our config
  JSON, plus "class"/"config" as the Python exports carry) and sync_<case>.json (the config with
  the official constructor-argument names, forward arguments, seeds, tensor list, float64 spread).
  Cases: cls_heads (CLS + registers + contrastive heads), global_local (CLS + registers, global +
  local losses, no heads), no_cls (no CLS, no registers: CAV-MAE on a segment grid).
- sync_<case>_io.safetensors: inputs, masking noise (replayable), outputs, gradients, forward_feat,
  and a batch-size-1 run (b1.*), which the released code cannot do.
- sync_retrieval.safetensors: clip-to-clip similarities (4 clips x 16 pairs) for the four
  strategies, computed with plain loops as the released retrieval script does.
- segments.json: spec 8.2 segment bounds and frame indices.
- sync_base_keys.json: ordered state-dict keys/shapes of the released-size model (L = 416, R = 8).

Before writing, it checks the reference against ground truth it can reach: with no CLS, no
registers and no heads it must reproduce the official CAV-MAE fixture (test/fixtures/official/
model_small, made by the official code) and the PyTorch peer bit for bit.

Run: /usr/bin/python3 scripts/golden/sync_golden.py   (Debian python3-torch 1.13)
"""
import copy
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sync_reference import (CAVMAESync, clip_similarity, frame_indices,  # noqa: E402
                            segment_bounds)
import torch_cavmae as peer  # noqa: E402  (sync_reference put ../shared/peer on sys.path)

ROOT = os.path.dirname(os.path.dirname(HERE))
OFFICIAL = os.path.join(ROOT, 'test', 'fixtures', 'official')  # the official fixtures (copy of ../shared/fixtures)
OUT = os.path.join(ROOT, 'test', 'fixtures', 'sync')

B = 3
FORWARD = dict(mask_ratio_a=0.75, mask_ratio_v=0.75, mae_loss_weight=1.0, contrast_loss_weight=0.1,
               mask_mode='unstructured')
# Small sizes (all fixtures together stay under 2 MB): 48 x 48 images (3 x 3 grid, deliberately not
# 14 x 14), 48-row segments (8 x 3 audio grid), width 12 / 3 heads, 2 modality-specific layers + 1
# shared, decoder 16 wide x 2 layers / 2 heads, R = 2 registers per modality.
SMALL = dict(img_size=48, audio_length=48, patch_size=16, in_chans=3, embed_dim=12, modality_specific_depth=2,
             num_heads=3, decoder_embed_dim=16, decoder_depth=2, decoder_num_heads=2, mlp_ratio=4.0,
             norm_pix_loss=True, tr_pos=False, total_frame=16, multi_ratio_masking=False, keep_register_tokens=False)
EXTRAS = dict(shared_depth=1)
CASES = {
    'cls_heads': dict(num_register_tokens=2, cls_token=True, global_local_losses=False, contrastive_heads=True),
    'global_local': dict(num_register_tokens=2, cls_token=True, global_local_losses=True, contrastive_heads=False),
    'no_cls': dict(num_register_tokens=0, cls_token=False, global_local_losses=False, contrastive_heads=False),
}
GRADS_COMMON = ['blocks_u.0.norm1_a.weight', 'blocks_u.0.norm2_v.bias', 'blocks_a.0.attn.qkv.weight',
                'norm_a.weight', 'mask_token', 'patch_embed_v.proj.bias']
GRADS_CASE = {
    'cls_heads': ['register_tokens', 'cls_token_a', 'cls_token_v', 'constrative_head_audio.1.mlp.fc2.weight',
                  'constrative_head_visual.0.norm1.weight'],
    'global_local': ['register_tokens', 'cls_token_a', 'cls_token_v', 'norm_v.bias'],
    'no_cls': ['modality_a', 'norm_v.bias'],
}
SEEDS = {'cls_heads': 10, 'global_local': 20, 'no_cls': 30}


# ---- safetensors (no binding for Debian's python3-torch) -----------------------------------

DT = {torch.float32: ('F32', '<f4'), torch.float64: ('F64', '<f8'), torch.int64: ('I64', '<i8')}


def save_st(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    # Wider dtypes first (stable otherwise) so every tensor's data is aligned to its item size.
    for name, t in sorted(tensors.items(), key=lambda kv: -kv[1].element_size()):
        t = t.detach().contiguous().cpu()
        code, np_dt = DT[t.dtype]
        b = t.numpy().astype(np_dt).tobytes()
        header[name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    print(f'{os.path.relpath(path, ROOT)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes')


def load_st(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    np_dt = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8'}
    out = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        arr = np.frombuffer(data[8 + n + b:8 + n + e], dtype=np_dt[info['dtype']]).reshape(info['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def write_json(path, obj, indent=1):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=indent)
        f.write('\n')
    print(f'{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes')


# ---- helpers --------------------------------------------------------------------------------

def perturb(model, gen):
    """Every LayerNorm weight/bias and Linear/Conv bias moved away from 1/0 (as the shared
    fixtures), so a port that uses the wrong LayerNorm or drops a bias fails."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('.bias') or ('norm' in name and name.endswith('.weight')):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def scalar(x):
    return x.detach().reshape(1).float()


def rel_err(x, ref):
    x, ref = x.detach().double(), ref.detach().double()
    return float((x - ref).abs().max() / max(ref.abs().max().item(), 1e-30))


def keep_ids(noise, ratio):
    L = noise.shape[1]
    return torch.argsort(noise, dim=1)[:, :int(L * (1 - ratio))]


def official_config(cfg):
    """Constructor arguments with the released names (norm_layer is always nn.LayerNorm)."""
    return {k: cfg[k] for k in ['img_size', 'audio_length', 'patch_size', 'in_chans', 'embed_dim',
                                'modality_specific_depth', 'num_heads', 'decoder_embed_dim', 'decoder_depth',
                                'decoder_num_heads', 'num_register_tokens', 'mlp_ratio', 'norm_pix_loss', 'tr_pos',
                                'cls_token', 'global_local_losses', 'total_frame', 'contrastive_heads',
                                'multi_ratio_masking', 'keep_register_tokens']}


# ---- checks against ground truth ----------------------------------------------------------

def check_against_official_cavmae_fixture():
    """With R = 0, no CLS and no heads the Sync model is CAV-MAE: it must reproduce the fixture the
    official CAV-MAE code wrote (same weights, replayed masking noise)."""
    d = os.path.join(OFFICIAL, 'model_small')
    sd, meta = load_st(os.path.join(d, 'cavmae_small.safetensors'))
    io, _ = load_st(os.path.join(d, 'cavmae_small_io.safetensors'))
    cfg = json.loads(meta['config'])
    m = CAVMAESync(**cfg, num_register_tokens=0, cls_token=False, contrastive_heads=False)
    m.load_state_dict(sd, strict=True)
    o = m.forward_outputs(io['input.audio'], io['input.image'], 0.75, 0.75, 1.0, 0.01,
                          noise_a=io['mask_a.noise'], noise_v=io['mask_v.noise'])
    o['loss'].backward()
    errs = {k: rel_err(o[k].reshape(-1), io['out.' + k].reshape(-1))
            for k in ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'c_acc', 'pred_a', 'pred_v']}
    errs['masks'] = max(rel_err(o['mask_a'], io['out.mask_a']), rel_err(o['mask_v'], io['out.mask_v']))
    for name in ['blocks_u.0.norm1_a.weight', 'mask_token', 'patch_embed_a.proj.weight']:
        errs['grad.' + name] = rel_err(dict(m.named_parameters())[name].grad, io['grad.' + name])
    with torch.no_grad():
        fa, fv = m.forward_feat(io['input.audio'], io['input.image'])
    errs['feat'] = max(rel_err(fa, io['feat.audio_tokens']), rel_err(fv, io['feat.video_tokens']))
    worst = max(errs.values())
    print(f'official CAV-MAE fixture: max relative error {worst:.3g}')
    assert worst <= 1e-5, errs
    return worst


def check_against_peer(model, audio, image, noise_a, noise_v, out):
    """no_cls case against the peer CAV-MAE (same weights, its single shared layer)."""
    p = peer.CAVMAE(img_size=SMALL['img_size'], audio_length=SMALL['audio_length'], embed_dim=SMALL['embed_dim'],
                    depth=SMALL['modality_specific_depth'], heads=SMALL['num_heads'], dec_dim=SMALL['decoder_embed_dim'],
                    dec_depth=SMALL['decoder_depth'], dec_heads=SMALL['decoder_num_heads'], norm_pix_loss=True)
    p.blocks_u = p.blocks_u[:EXTRAS['shared_depth']]
    p.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        r = p(audio, image, noise_a, noise_v, 0.75, FORWARD['contrast_loss_weight'])
    worst = max(rel_err(out[k], r[i]) for i, k in enumerate(['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c']))
    worst = max(worst, rel_err(out['pred_a'], r[8]), rel_err(out['pred_v'], r[9]))
    print(f'no_cls vs peer CAV-MAE: max relative error {worst:.3g}')
    assert worst == 0.0, worst
    return worst


# ---- cases ----------------------------------------------------------------------------------

def make_case(name, flags):
    cfg = dict(SMALL, **flags)
    seed = SEEDS[name]
    torch.manual_seed(seed)
    model = CAVMAESync(**cfg, **EXTRAS)
    perturb(model, torch.Generator().manual_seed(seed + 1))
    # Inputs and noise: the first input seed for which the contrastive accuracy of the two
    # directions differs, so c_acc also tells whether a port took the softmax over the right axis.
    for input_seed in range(seed * 100, seed * 100 + 100):
        gen = torch.Generator().manual_seed(input_seed)
        audio = torch.randn(B, cfg['audio_length'], 128, generator=gen)
        image = torch.randn(B, 3, cfg['img_size'], cfg['img_size'], generator=gen)
        noise_a = torch.rand(B, model.num_patches_a, generator=gen)
        noise_v = torch.rand(B, model.num_patches_v, generator=gen)
        with torch.no_grad():
            logits = model.forward_outputs(audio, image, **FORWARD, noise_a=noise_a, noise_v=noise_v)['logits']
        target = torch.arange(B)
        if not torch.equal((logits.argmax(0) == target).sum(), (logits.argmax(1) == target).sum()):
            break
    else:
        raise RuntimeError(f'{name}: no input seed separates the two contrastive directions')

    o = model.forward_outputs(audio, image, **FORWARD, noise_a=noise_a, noise_v=noise_v)
    o['loss'].backward()
    params = dict(model.named_parameters())
    with torch.no_grad():
        feat = model.forward_feat(audio, image)

    io = {'input.audio': audio, 'input.image': image, 'mask_a.noise': noise_a, 'mask_v.noise': noise_v,
          'mask_a.ids_keep': keep_ids(noise_a, FORWARD['mask_ratio_a']), 'mask_a.ids_restore': o['ids_restore_a'],
          'mask_v.ids_keep': keep_ids(noise_v, FORWARD['mask_ratio_v']), 'mask_v.ids_restore': o['ids_restore_v']}
    for k in ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'c_acc']:
        io['out.' + k] = scalar(o[k])
    if cfg['global_local_losses']:
        io['out.loss_c_global'] = scalar(o['loss_c_global'])
        io['out.loss_c_local'] = scalar(o['loss_c_local'])
    io.update({'out.mask_a': o['mask_a'], 'out.mask_v': o['mask_v'], 'out.pred_a': o['pred_a'], 'out.pred_v': o['pred_v'],
               'out.cls_a': o['rep_a'], 'out.cls_v': o['rep_v']})
    if cfg['global_local_losses']:
        io['out.local_a'], io['out.local_v'] = o['mean_a'], o['mean_v']
    if name == 'cls_heads':  # one recon_v: unpatchify on a 3 x 3 grid (the release hard-codes 14 x 14)
        io['out.recon_v'] = o['recon_v']
    io.update({'enc.latent': o['latent'], 'enc.latent_c_a': o['latent_c_a'], 'enc.latent_c_v': o['latent_c_v'],
               'contrast.logits': o['logits']})
    grads = GRADS_COMMON + GRADS_CASE[name]
    for g in grads:
        io['grad.' + g] = params[g].grad
    io['feat.audio_tokens'], io['feat.video_tokens'] = feat[0], feat[1]
    if cfg['cls_token']:
        io['feat.cls_a'], io['feat.cls_v'] = feat[2], feat[3]

    # Batch size 1 (breaks the released .squeeze()): sample 0 with its noise rows.
    with torch.no_grad():
        o1 = model.forward_outputs(audio[:1], image[:1], **FORWARD, noise_a=noise_a[:1], noise_v=noise_v[:1])
        f1 = model.forward_feat(audio[:1], image[:1])
    for k in ['loss', 'loss_mae', 'loss_c', 'c_acc']:
        io['b1.out.' + k] = scalar(o1[k])
    io['b1.out.cls_a'], io['b1.out.cls_v'] = o1['rep_a'], o1['rep_v']
    b1_vs_b3 = max(rel_err(f1[i], feat[i][:1]) for i in range(len(f1)))
    assert b1_vs_b3 < 1e-5, b1_vs_b3
    if cfg['cls_token']:
        io['b1.feat.cls_a'], io['b1.feat.cls_v'] = f1[2], f1[3]

    # Float64 spread of the same computation, to size a port's tolerances.
    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    o64 = m64.forward_outputs(audio.double(), image.double(), **FORWARD, noise_a=noise_a, noise_v=noise_v)
    o64['loss'].backward()
    p64 = dict(m64.named_parameters())
    with torch.no_grad():
        feat64 = m64.forward_feat(audio.double(), image.double())
    spread = {k: rel_err(o[k], o64[k]) for k in ['loss', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'pred_a', 'pred_v', 'rep_a', 'rep_v']}
    spread['grads'] = max(rel_err(params[g].grad, p64[g].grad) for g in grads)
    spread['feat'] = max(rel_err(feat[i], feat64[i]) for i in range(len(feat)))
    spread['b1_feat_vs_b3_rows'] = b1_vs_b3
    assert torch.equal(o['mask_a'], o64['mask_a'].float()) and torch.equal(o['mask_v'], o64['mask_v'].float())

    if name == 'no_cls':
        check_against_peer(model, audio, image, noise_a, noise_v, o)

    state = {k: v for k, v in model.state_dict().items()}
    ours = dict(model='cavmae-sync', **cfg, **EXTRAS, **FORWARD)
    meta = {'cavmae.config': json.dumps(ours), 'class': 'CAVMAESync', 'config': json.dumps(official_config(cfg)),
            'extras': json.dumps(EXTRAS), 'torch_version': torch.__version__, 'generator': 'scripts/golden/sync_golden.py'}
    save_st(os.path.join(OUT, f'sync_{name}.safetensors'), state, meta)
    save_st(os.path.join(OUT, f'sync_{name}_io.safetensors'), io,
            {'case': name, 'torch_version': torch.__version__, 'forward': json.dumps(FORWARD)})
    write_json(os.path.join(OUT, f'sync_{name}.json'), {
        'class': 'CAVMAESync',
        'config': official_config(cfg),
        'extras': EXTRAS,
        'forward': FORWARD,
        'batch': B,
        'seeds': {'torch_manual_seed_init': seed, 'generator_perturb': seed + 1,
                  'generator_inputs_then_noise': input_seed},
        'torch_version': torch.__version__,
        'derived': {'num_patches_a': model.num_patches_a, 'audio_grid': [8, model.t_cols], 'num_patches_v': model.num_patches_v,
                    'visual_grid': [model.v_grid, model.v_grid],
                    'len_keep_a': int(model.num_patches_a * (1 - FORWARD['mask_ratio_a'])),
                    'len_keep_v': int(model.num_patches_v * (1 - FORWARD['mask_ratio_v'])),
                    'encoder_tokens_a': (1 if cfg['cls_token'] else 0) + int(model.num_patches_a * 0.25) + cfg['num_register_tokens'],
                    'encoder_tokens_v': (1 if cfg['cls_token'] else 0) + int(model.num_patches_v * 0.25) + cfg['num_register_tokens']},
        'outputs': {k: float(io['out.' + k]) for k in ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'c_acc']
                    + (['loss_c_global', 'loss_c_local'] if cfg['global_local_losses'] else [])},
        'float32_vs_float64_relative': spread,
        'state_dict': [[k, list(v.shape)] for k, v in state.items()],
        'params_without_grad': [k for k, p in params.items() if p.grad is None],
        'io_tensors': {k: [str(v.dtype).replace('torch.', ''), list(v.shape)] for k, v in io.items()},
    })


def make_retrieval():
    """4 clips x 16 (segment, frame) pair features; clip similarities the loop way."""
    gen = torch.Generator().manual_seed(40)
    D = SMALL['embed_dim']
    audio = torch.randn(4, 16, D, generator=gen)
    video = 0.6 * audio + torch.randn(4, 16, D, generator=gen)       # pairs correlate, clips do not
    video[2] = video[2] * 3.0                                        # scale must not matter (cosine)
    t = {'retrieval.audio': audio, 'retrieval.video': video}
    for s in ['diagonal_mean', 'diagonal_max', 'mean', 'max']:
        t['retrieval.' + s] = torch.from_numpy(clip_similarity(audio.numpy(), video.numpy(), s))
    save_st(os.path.join(OUT, 'sync_retrieval.safetensors'), t,
            {'note': 'retrieval.<strategy>[i, j] = similarity of audio clip i (query) and video clip j '
                     '(candidate), float64, A->V; V->A is the transpose. Features are not normalised; '
                     'the cosine normalises each pair vector.', 'torch_version': torch.__version__})


def make_segments():
    lengths = [96, 192, 304, 416, 512, 1024]
    ns = [1, 10, 16, 17, 30, 100, 125, 250, 251, 300, 301, 1000]
    write_json(os.path.join(OUT, 'segments.json'), {
        'rule': 'spec 8.2 / released dataloader_sync.map_frame_to_spectrogram: centre = int(round(i * 1024 / 16)); '
                'start = max(0, centre - L // 2); end = start + L; if end > 1024: end = 1024, start = max(0, 1024 - L)',
        'spectrogram_length': 1024,
        'num_frames': 16,
        'segments': {str(L): [list(segment_bounds(i, L)) for i in range(16)] for L in lengths},
        'frame_indices_rule': 'np.linspace(0, n - 1, 16).astype(int)',
        'frame_indices': {str(n): frame_indices(n) for n in ns},
    })


def param_summary(model):
    sd = model.state_dict()
    per_top = {}
    for k, p in model.named_parameters():
        top = k.split('.')[0]
        e = per_top.setdefault(top, {'params': 0, 'trainable': 0})
        e['params'] += p.numel()
        e['trainable'] += p.numel() if p.requires_grad else 0
    return {
        'per_top_level': per_top,
        'total_params': sum(p.numel() for p in model.parameters()),
        'total_trainable': sum(p.numel() for p in model.parameters() if p.requires_grad),
        'num_state_dict_keys': len(sd),
        'state_dict': [[k, list(v.shape)] for k, v in sd.items()],
    }


def make_base_keys():
    """Released-size model (L = 416, R = 8, CLS): keys and shapes only. Built once with the
    contrastive heads (constructor default) and once without (how the released retrieval
    script builds it); a checkpoint trained with heads has the extra constrative_head_* keys."""
    out = {}
    for label, heads in [('CAVMAESync_released_retrieval', False), ('CAVMAESync_pretrain_default', True)]:
        kwargs = dict(audio_length=416, modality_specific_depth=11, num_register_tokens=8, cls_token=True,
                      total_frame=16, contrastive_heads=heads, norm_pix_loss=True)
        with torch.no_grad():
            m = CAVMAESync(**kwargs)
        out[label] = dict(constructor_kwargs=kwargs, **param_summary(m))
        del m
    # consistency with the official CAV-MAE base table: same keys except the Sync additions
    base = json.load(open(os.path.join(OFFICIAL, 'model_base', 'cavmae_base_params.json')))['CAVMAE']
    cav = dict((k, s) for k, s in base['state_dict'])
    ours = dict((k, s) for k, s in out['CAVMAESync_released_retrieval']['state_dict'])
    added = sorted(set(ours) - set(cav))
    assert added == ['cls_token_a', 'cls_token_v', 'register_tokens'] and not set(cav) - set(ours), added
    changed = sorted(k for k in cav if cav[k] != ours[k])
    assert changed == ['decoder_pos_embed_a', 'pos_embed_a'], changed
    assert [k for k in ours if k in cav] == [k for k, _ in base['state_dict']], 'key order differs from CAV-MAE'
    out['note'] = ('Keys as in a released checkpoint after stripping "module.". Versus CAV-MAE base: '
                   'adds register_tokens [16,768], cls_token_a/cls_token_v [1,1,768]; pos_embed_a [1,208,768] and '
                   'decoder_pos_embed_a [1,208,512] shrink to the 8 x 26 segment grid; with contrastive heads, '
                   'constrative_head_audio.{0,1}.* and constrative_head_visual.{0,1}.* (Block(768)) are added.')
    write_json(os.path.join(OUT, 'sync_base_keys.json'), out, indent=None)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    check_against_official_cavmae_fixture()
    for name, flags in CASES.items():
        make_case(name, flags)
    make_retrieval()
    make_segments()
    make_base_keys()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f'test/fixtures/sync: {total} bytes')


if __name__ == '__main__':
    main()
