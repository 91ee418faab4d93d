"""Golden data for the data layer (test/data/*.test.ts), from torch 1.13 / torchaudio 0.13.

Writes test/fixtures/data/augment.json and test/fixtures/data/mixup.safetensors:
- SpecAugment spans: torchaudio.transforms.FrequencyMasking / TimeMasking (iid_masks False) run
  on a [1, F, T] tensor of ones with torch.rand replaced by given uniforms, so the TypeScript
  port can replay the same draws and must zero exactly the same rows/columns.
- torch.roll along time for a few shifts.
- Label vectors built by the reference rules (numpy float64, then torch.FloatTensor).
- Waveform mixup -> kaldi fbank -> pad/crop -> normalise on two real clips (fixtures/audio),
  one case where the second clip is zero-padded and one where it is truncated.
Run: /usr/bin/python3 scripts/golden/data_golden.py  (from the repository root)
"""
import json
import os
import sys

import numpy as np
import torch
import torchaudio

sys.path.insert(0, os.path.dirname(__file__))
import st_minimal  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OFFICIAL = os.path.join(ROOT, 'test', 'fixtures', 'official')  # the official fixtures (copy of ../shared/fixtures)
OUT = os.path.join(ROOT, 'test', 'fixtures', 'data')
os.makedirs(OUT, exist_ok=True)


def masked_span(transform, F, T, axis, draws):
    """Runs a torchaudio masking transform with torch.rand returning `draws`; returns [start, end)."""
    queue = list(draws)
    real_rand = torch.rand

    def fake_rand(*size, **kw):
        return torch.tensor([queue.pop(0)], dtype=torch.float32)

    torch.rand = fake_rand
    try:
        x = transform(torch.ones(1, F, T))
    finally:
        torch.rand = real_rand
    assert not queue, 'not every draw was used'
    zero = (x[0] == 0)
    line = zero[:, 0] if axis == 'freq' else zero[0, :]
    # the rest of the tensor must agree with the mask line
    idx = torch.nonzero(line).flatten().tolist()
    if not idx:
        return [0, 0]
    return [idx[0], idx[-1] + 1]


mask_cases = []
for axis, size, param, u1, u2 in [
    ('freq', 128, 48, 0.5, 0.5),
    ('freq', 128, 48, 0.999, 0.0),
    ('freq', 128, 48, 0.999, 0.9999),
    ('freq', 128, 48, 0.01, 0.7),
    ('freq', 128, 24, 0.73, 0.31),
    ('time', 1024, 192, 0.25, 0.8),
    ('time', 1024, 192, 0.9999, 0.9999),
    ('time', 112, 20, 0.61, 0.44),
    ('time', 112, 20, 0.049, 0.95),
    ('time', 30, 9, 0.37, 0.999),
]:
    F, T = (size, 7) if axis == 'freq' else (5, size)
    tr = torchaudio.transforms.FrequencyMasking(param) if axis == 'freq' else torchaudio.transforms.TimeMasking(param)
    start, end = masked_span(tr, F, T, axis, [u1, u2])
    mask_cases.append({'axis': axis, 'size': size, 'param': param, 'u': [u1, u2], 'start': start, 'end': end})

roll_cases = []
base = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)
for s in [-5, -3, -1, 0, 2, 4]:
    roll_cases.append({'T': 5, 'F': 3, 'shift': s, 'out': torch.roll(base, s, 0).flatten().tolist()})


def label_plain(labels, K, eps):
    v = np.zeros(K) + (eps / K)
    for c in labels:
        v[c] = 1.0 - eps
    return torch.FloatTensor(v).tolist()


def label_mix(l1, l2, lam, K, eps):
    v = np.zeros(K) + (eps / K)
    for c in l1:
        v[c] += lam * (1.0 - eps)
    for c in l2:
        v[c] += (1.0 - lam) * (1.0 - eps)
    return torch.FloatTensor(v).tolist()


label_cases = []
for l1, l2, lam, K, eps in [([1, 3], [3, 5], 0.37, 7, 0.1), ([0], [6], 0.5, 7, 0.0), ([2], [2], 0.81, 5, 0.1), ([4, 1], [0, 1, 2], 0.123, 6, 0.25)]:
    label_cases.append({'labels1': l1, 'labels2': l2, 'lambda': lam, 'K': K, 'eps': eps,
                        'plain': label_plain(l1, K, eps), 'mix': label_mix(l1, l2, lam, K, eps)})


def fbank_of(w):
    return torchaudio.compliance.kaldi.fbank(w, htk_compat=True, sample_frequency=16000, use_energy=False,
                                             window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)


def mix_fbank(w1, w2, lam, target):
    w1 = w1 - w1.mean()
    w2 = w2 - w2.mean()
    if w1.shape[1] != w2.shape[1]:
        if w1.shape[1] > w2.shape[1]:
            pad = torch.zeros(1, w1.shape[1])
            pad[0, 0:w2.shape[1]] = w2
            w2 = pad
        else:
            w2 = w2[:, 0:w1.shape[1]]
    mix = lam * w1 + (1 - lam) * w2
    mix = mix - mix.mean()
    fb = fbank_of(mix)
    n = fb.shape[0]
    if n < target:
        fb = torch.nn.ZeroPad2d((0, 0, 0, target - n))(fb)
    else:
        fb = fb[0:target, :]
    return (fb - (-5.081)) / 4.4849


wa, sra = torchaudio.load(os.path.join(OFFICIAL, 'audio', '00W1lcxW-WU_40.000.wav'))
wb, srb = torchaudio.load(os.path.join(OFFICIAL, 'audio', 'espeak_en_sentence.wav'))
assert sra == srb == 16000
A = wa[:1, 16000:16000 + 8000]
Bw = wb[:1, 32000:32000 + 6400]
tensors = {
    'mix_ab.fbank': mix_fbank(A, Bw, 0.3, 64),   # second shorter: zero-padded
    'mix_ba.fbank': mix_fbank(Bw, A, 0.62, 40),  # second longer: truncated; output cropped
}
st_minimal.save(os.path.join(OUT, 'mixup.safetensors'), tensors)
meta = {
    'source': 'scripts/golden/data_golden.py (torch %s, torchaudio %s)' % (torch.__version__, torchaudio.__version__),
    'mixup': {'a': {'file': 'audio/00W1lcxW-WU_40.000.wav', 'start': 16000, 'length': 8000},
              'b': {'file': 'audio/espeak_en_sentence.wav', 'start': 32000, 'length': 6400},
              'mix_ab': {'lambda': 0.3, 'target': 64}, 'mix_ba': {'lambda': 0.62, 'target': 40}},
    'masks': mask_cases, 'rolls': roll_cases, 'labels': label_cases,
}
with open(os.path.join(OUT, 'augment.json'), 'w') as f:
    json.dump(meta, f, indent=1)
print('wrote', OUT)
