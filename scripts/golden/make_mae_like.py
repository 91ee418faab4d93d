"""Makes a tiny ImageNet-MAE-format checkpoint and its CAV-MAE adaptation (docs/reference.md#imagenet-initialisation).

Run with Debian's interpreter: /usr/bin/python3 scripts/golden/make_mae_like.py
Writes:
  test/fixtures/mae_tiny.pth                   torch.save({'model': state_dict, 'epoch', 'args'})
                                               with MAE's key names and ViT-B layout rules
                                               (12 blocks, patch 16, 14x14+cls positions) at
                                               embed dim 8 / decoder dim 4 to stay small
  test/fixtures/mae_tiny_adapted.safetensors   the CAV-MAE keys the adaptation produces,
                                               computed here in torch from the rules of docs/reference.md#imagenet-initialisation
"""
import argparse
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_minimal  # noqa: E402

E, DEC, DEPTH, DEC_DEPTH, P = 8, 4, 12, 2, 16
MODALITY_SPECIFIC_DEPTH = 11


def block(prefix, d, g, sd):
    for name, shape in [
        ('norm1.weight', [d]), ('norm1.bias', [d]),
        ('attn.qkv.weight', [3 * d, d]), ('attn.qkv.bias', [3 * d]),
        ('attn.proj.weight', [d, d]), ('attn.proj.bias', [d]),
        ('norm2.weight', [d]), ('norm2.bias', [d]),
        ('mlp.fc1.weight', [4 * d, d]), ('mlp.fc1.bias', [4 * d]),
        ('mlp.fc2.weight', [d, 4 * d]), ('mlp.fc2.bias', [d]),
    ]:
        sd[f'{prefix}.{name}'] = torch.randn(shape, generator=g)


def mae_state_dict():
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict()
    # Parameters registered directly on MaskedAutoencoderViT come first in its state_dict.
    sd['cls_token'] = torch.randn(1, 1, E, generator=g)
    sd['pos_embed'] = torch.randn(1, 197, E, generator=g)
    sd['mask_token'] = torch.randn(1, 1, DEC, generator=g)
    sd['decoder_pos_embed'] = torch.randn(1, 197, DEC, generator=g)
    sd['patch_embed.proj.weight'] = torch.randn(E, 3, P, P, generator=g)
    sd['patch_embed.proj.bias'] = torch.randn(E, generator=g)
    for i in range(DEPTH):
        block(f'blocks.{i}', E, g, sd)
    sd['norm.weight'] = torch.randn(E, generator=g)
    sd['norm.bias'] = torch.randn(E, generator=g)
    sd['decoder_embed.weight'] = torch.randn(DEC, E, generator=g)
    sd['decoder_embed.bias'] = torch.randn(DEC, generator=g)
    for i in range(DEC_DEPTH):
        block(f'decoder_blocks.{i}', DEC, g, sd)
    sd['decoder_norm.weight'] = torch.randn(DEC, generator=g)
    sd['decoder_norm.bias'] = torch.randn(DEC, generator=g)
    sd['decoder_pred.weight'] = torch.randn(P * P * 3, DEC, generator=g)
    sd['decoder_pred.bias'] = torch.randn(P * P * 3, generator=g)
    return sd


def adapt(mae, depth):
    """docs/reference.md#imagenet-initialisation, written independently of the TypeScript port."""
    out = OrderedDict()
    for k, v in mae.items():
        parts = k.split('.')
        if parts[0] == 'blocks':
            i, rest = int(parts[1]), '.'.join(parts[2:])
            if i < depth:
                out[f'blocks_a.{i}.{rest}'] = v.clone()
                out[f'blocks_v.{i}.{rest}'] = v.clone()
            else:
                j = i - depth
                out[f'blocks_u.{j}.{rest}'] = v.clone()
                if parts[2] in ('norm1', 'norm2'):
                    out[f'blocks_u.{j}.{parts[2]}_a.{parts[3]}'] = v.clone()
                    out[f'blocks_u.{j}.{parts[2]}_v.{parts[3]}'] = v.clone()
        elif parts[0] == 'norm':
            for n in ('norm', 'norm_a', 'norm_v'):
                out[f'{n}.{parts[1]}'] = v.clone()
        elif k == 'pos_embed':
            out['pos_embed_v'] = v[:, 1:, :].clone()
        elif k == 'decoder_pos_embed':
            out['decoder_pos_embed_v'] = v[:, 1:, :].clone()
        elif k == 'patch_embed.proj.weight':
            out['patch_embed_v.proj.weight'] = v.clone()
            out['patch_embed_a.proj.weight'] = v.sum(dim=1, keepdim=True)
        elif k == 'patch_embed.proj.bias':
            out['patch_embed_v.proj.bias'] = v.clone()
            out['patch_embed_a.proj.bias'] = v.clone()
        elif k.startswith('decoder_pred.'):
            out[k.replace('decoder_pred', 'decoder_pred_v')] = v.clone()
            out[k.replace('decoder_pred', 'decoder_pred_a')] = v[:256].clone()
        elif k == 'cls_token':
            continue
        else:  # decoder_embed, mask_token, decoder_blocks, decoder_norm: same names
            out[k] = v.clone()
    return out


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'fixtures')
    mae = mae_state_dict()
    args = argparse.Namespace(model='mae_vit_base_patch16', mask_ratio=0.75, norm_pix_loss=True, blr=1.5e-4)
    torch.save({'model': mae, 'epoch': 799, 'args': args}, os.path.join(root, 'mae_tiny.pth'))
    st_minimal.save(os.path.join(root, 'mae_tiny_adapted.safetensors'), adapt(mae, MODALITY_SPECIFIC_DEPTH),
                    {'generator': 'scripts/golden/make_mae_like.py', 'torch': torch.__version__})


if __name__ == '__main__':
    main()
