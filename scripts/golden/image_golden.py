#!/usr/bin/python3
"""Golden data for src/vision: Pillow's resize as torchvision applies it to PIL images.

Run with Debian's interpreter (python3-pil, python3-torch, python3-numpy):
    /usr/bin/python3 scripts/golden/image_golden.py
Writes test/fixtures/image/: synthetic source PNGs, their Resize(224, BICUBIC|BILINEAR) +
CenterCrop(224) uint8 outputs as PNG, the ToTensor+Normalize table for every uint8 value, and
golden.json describing the cases.

torchvision is not packaged by Debian, so its two PIL-path steps are written out below exactly as
torchvision 0.14 performs them (F.resize -> _compute_resized_output_size -> Image.resize;
F.center_crop -> pad if smaller, then crop at int(round((h - s) / 2.0))).
"""
import json
import os

import numpy as np
import torch
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'image')
SIZE = 224


def tv_resize(img, size, resample):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize((new_w, new_h), resample)


def tv_center_crop(img, size):
    w, h = img.size
    if size > w or size > h:
        pad = [(size - w) // 2 if size > w else 0, (size - h) // 2 if size > h else 0,
               (size - w + 1) // 2 if size > w else 0, (size - h + 1) // 2 if size > h else 0]
        arr = np.asarray(img)
        arr = np.pad(arr, ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)))
        img = Image.fromarray(arr)
        w, h = img.size
        if w == size and h == size:
            return img
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def synthetic(w, h, seed, noise):
    """Smooth gradients, hard edges (bicubic overshoot -> clipping), saturated pixels, optional
    noise (kept to the small sources so that the committed PNGs stay small)."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / (3.0 + seed) + y / 7.0)
    g = np.where(((x // 9) + (y // 13)) % 2 == 0, 250.0, 5.0)
    b = 255.0 * x / max(w - 1, 1) * (y / max(h - 1, 1))
    img = np.stack([r, g, b], -1) + (rs.normal(0, 6, (h, w, 3)) if noise else 0.0)
    # a few saturated single pixels
    for _ in range(20):
        img[rs.randint(h), rs.randint(w)] = rs.choice([0.0, 255.0], 3)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), 'RGB')


CASES = [
    # name, width, height, noise: portrait upscale, landscape upscale with half-even crop
    # (56.5 -> 56), identity resize with crop 2.5 -> 2, strong antialiased downscale, tiny source
    # Bilinear (the frame extractor's Resize) only where it adds a case, to keep the data small.
    ('port_97x131', 97, 131, False, ('bicubic', 'bilinear')),
    ('half_301x200', 301, 200, False, ('bicubic',)),
    ('ident_229x224', 229, 224, False, ('bicubic',)),
    ('down_640x400', 640, 400, False, ('bicubic', 'bilinear')),
    ('tiny_23x17', 23, 17, False, ('bicubic', 'bilinear')),
]
FILTERS = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR}


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {'generator': 'scripts/golden/image_golden.py', 'pillow': Image.__version__, 'cases': []}
    for seed, (name, w, h, noise, filters) in enumerate(CASES):
        src = synthetic(w, h, seed, noise)
        src.save(os.path.join(OUT, f'{name}.png'), optimize=True)
        case = {'name': name, 'width': w, 'height': h}
        for filt in filters:
            resized = tv_resize(src, SIZE, FILTERS[filt])
            out = tv_center_crop(resized, SIZE)
            out.save(os.path.join(OUT, f'{name}.{filt}224.png'), optimize=True)
            case[f'{filt}_resized'] = list(resized.size)
        meta['cases'].append(case)

    # Decoding: encoded files and Pillow's decode of each, as Image.open(f).convert('RGB').
    base = synthetic(64, 48, 7, True)
    arr = np.asarray(base)
    alpha = Image.fromarray((np.arange(64 * 48).reshape(48, 64) % 251).astype(np.uint8), 'L')
    rgba = base.copy()
    rgba.putalpha(alpha)
    encoded = [
        ('dec_q90.jpg', base, dict(format='JPEG', quality=90)),
        ('dec_q75_444.jpg', base, dict(format='JPEG', quality=75, subsampling=0)),
        ('dec_progressive.jpg', base, dict(format='JPEG', quality=80, progressive=True)),
        ('dec_gray.jpg', base.convert('L'), dict(format='JPEG', quality=85)),
        ('dec_gray.png', base.convert('L'), dict(format='PNG')),
        ('dec_rgba.png', rgba, dict(format='PNG')),
        ('dec_palette.png', base.convert('P', palette=Image.ADAPTIVE, colors=32), dict(format='PNG')),
        ('dec_lossless.webp', base, dict(format='WEBP', lossless=True)),
        ('dec_lossy.webp', base, dict(format='WEBP', quality=80)),
    ]
    meta['decode'] = []
    for fname, img, kw in encoded:
        path = os.path.join(OUT, fname)
        img.save(path, **kw)
        with Image.open(path) as im:
            mode = im.mode
            im.convert('RGB').save(path + '.pil.png')
        meta['decode'].append({'file': fname, 'mode': mode})
    del arr

    # Frame positions, evaluated with the reference extractors' own expressions.
    # CAV-MAE extract_video_frame.py: total = min(int(CAP_PROP_FRAME_COUNT), int(fps * 10));
    # frame_idx = int(i * (total / 10)); seek to frame_idx - 1, so OpenCV returns frame
    # max(frame_idx - 1, 0). Sync extract_video_frame_parallel.py:
    # np.linspace(0, CAP_PROP_FRAME_COUNT - 1, 16, dtype=int), read at that index.
    meta['positions'] = []
    for frame_count, fps in [(125, 12.5), (300, 30000 / 1001), (301, 30.0), (250, 25.0), (240, 24.0),
                             (1000, 30000 / 1001), (7, 25.0), (12, 12.5), (151, 15.0), (97, 9.7)]:
        total = min(int(frame_count), int(fps * 10))
        frame_idx = [int(i * (total / 10)) for i in range(10)]
        sync = np.linspace(0, frame_count - 1, 16, dtype=int).tolist()
        meta['positions'].append({'frame_count': frame_count, 'fps': fps, 'cavmae_frame_idx': frame_idx,
                                  'cavmae_decoded': [max(k - 1, 0) for k in frame_idx], 'sync': sync})

    # ToTensor + Normalize for every uint8 value: torchvision does x.float().div(255), then
    # tensor.sub_(mean).div_(std) with float32 mean/std.
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)
    v = torch.arange(256, dtype=torch.uint8).float().div(255)
    table = (v[None, :] - mean[:, None]) / std[:, None]  # [3, 256]
    table.numpy().astype('<f4').tofile(os.path.join(OUT, 'normalize_table_f32.bin'))
    meta['normalize_table'] = 'normalize_table_f32.bin: float32 [3,256], channel c value u'
    with open(os.path.join(OUT, 'golden.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
