"""Minimal safetensors writer/reader (struct + json) for golden-data scripts.

Used when the `safetensors` package is not installed (Debian's python3-torch has no binding).
The writer follows the format's rules: u64 header length, JSON header padded with spaces to a
multiple of 8, tensors laid out by name within decreasing item size.
"""
import json
import struct

import torch

DTYPES = {
    torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
    torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL',
}
NAMES = {v: k for k, v in DTYPES.items()}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    # Reinterpret as bytes without numpy (bf16 has no numpy dtype).
    return bytes(t.view(-1).view(torch.uint8).tolist()) if t.numel() else b''


def save(path, tensors, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header = {}
    if metadata:
        header['__metadata__'] = metadata
    blobs = []
    offset = 0
    for name, t in items:
        b = tensor_bytes(t)
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        dtype = NAMES[info['dtype']]
        raw = bytearray(data[base + b:base + e])
        if len(raw):
            t = torch.frombuffer(raw, dtype=dtype)
        else:
            t = torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info['shape'])
    return out, meta
