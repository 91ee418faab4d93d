"""Loads a safetensors file with Python and prints what it holds, for the cross-check test.

Usage: python check_safetensors.py FILE
Uses `safetensors.torch.load_file` when the package is installed, else st_minimal.load
(struct + json + torch.frombuffer). Prints one JSON object:
  {"loader": ..., "metadata": {...}, "tensors": {name: {"dtype", "shape", "values"}}}
with values as float64 (exact for every dtype written by the tests).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_minimal  # noqa: E402


def main():
    path = sys.argv[1]
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file
        tensors = load_file(path)
        with safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
        loader = 'safetensors'
    except ImportError:
        tensors, meta = st_minimal.load(path)
        loader = 'st_minimal'
    out = {}
    for name, t in tensors.items():
        out[name] = {
            'dtype': st_minimal.DTYPES[t.dtype],
            'shape': list(t.shape),
            'values': t.double().flatten().tolist(),
        }
    json.dump({'loader': loader, 'torch': torch.__version__, 'metadata': meta, 'tensors': out}, sys.stdout)


if __name__ == '__main__':
    main()
