"""Makes .pth files that exercise what a state-dict reader must honour, plus the expected tensors.

Run with any PyTorch; the output names carry the major version:
  /usr/bin/python3 scripts/golden/make_pth_variants.py          (Debian torch 1.13)
  <venv with torch 2.x>/bin/python scripts/golden/make_pth_variants.py
Writes test/fixtures/pth_views_torch<major>.pth (torch.save of an OrderedDict) and
test/fixtures/pth_views_torch<major>.safetensors (contiguous copies of the same tensors; written
by the `safetensors` package when it is installed, else by st_minimal). Covered: float32/16,
bfloat16, float64, int64/32, uint8, bool; 0-d and empty tensors; transposed, sliced (storage
offset), stride-0 (expanded) views; several tensors sharing one storage; an nn.Parameter;
DataParallel-style "module." keys.
"""
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_minimal  # noqa: E402


def main():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 5, generator=g)
    sd = OrderedDict()
    sd['plain'] = torch.randn(3, 4, generator=g)
    sd['transposed'] = base.t()                          # non-contiguous, shares `base`'s storage
    sd['rows'] = base[2:5]                               # contiguous slice with a storage offset
    sd['cols'] = base[1:4, 1:3]                          # strided slice with an offset
    sd['base'] = base
    sd['expanded'] = torch.randn(1, 4, generator=g).expand(3, 4)   # stride 0
    sd['scalar'] = torch.tensor(3.25)
    sd['empty'] = torch.zeros(0, 3)
    sd['half'] = torch.randn(2, 3, generator=g).half()
    sd['bf16'] = torch.randn(2, 3, generator=g).bfloat16()
    sd['double'] = torch.randn(4, generator=g).double() * 1e3
    sd['long'] = torch.tensor([-3, 0, 2 ** 40, 7])
    sd['int'] = torch.tensor([[1, -2], [3, -4]], dtype=torch.int32)
    sd['byte'] = torch.tensor([0, 1, 255], dtype=torch.uint8)
    sd['bool'] = torch.tensor([True, False, True])
    sd['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    sd['nchw_permuted'] = torch.randn(2, 3, 4, 5, generator=g).permute(0, 2, 3, 1)
    sd = OrderedDict((f'module.{k}', v) for k, v in sd.items())

    major = torch.__version__.split('.')[0]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'fixtures')
    name = f'pth_views_torch{major}'
    torch.save(sd, os.path.join(root, name + '.pth'))
    expected = {k[len('module.'):]: v.detach().contiguous().clone() for k, v in sd.items()}
    meta = {'generator': 'scripts/golden/make_pth_variants.py', 'torch': torch.__version__}
    try:
        from safetensors.torch import save_file
        save_file(expected, os.path.join(root, name + '.safetensors'), metadata={**meta, 'writer': 'safetensors'})
    except ImportError:
        st_minimal.save(os.path.join(root, name + '.safetensors'), expected, {**meta, 'writer': 'st_minimal'})


if __name__ == '__main__':
    main()
