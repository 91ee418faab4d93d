#!/usr/bin/python3
"""Golden audio data for test/audio: small WAV/FLAC/OGG/MP3/M4A files and torchaudio's fbank of each.

Run with Debian's interpreter (python3-torch, python3-torchaudio 0.13.1, ffmpeg, sox):
    /usr/bin/python3 scripts/golden/audio_fbank.py test/fixtures/audio

For every clip the reference front end of CAV-MAE is applied exactly as the official dataloader does:
    waveform, sr = torchaudio.load(path); waveform -= waveform.mean()
    torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, sample_frequency=sr, use_energy=False,
                                      window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)
Files that are not 16 kHz WAV go first through the official extraction (ffmpeg -vn -ar 16000 to a WAV,
then sox remix 1), as src/preprocess/extract_audio.py does, and the fbank is taken of that result.

Outputs <out>/golden.safetensors with, per clip <name>:
    <name>.fbank_raw  [frames, 128]  fbank before pad/crop
and, for pcm_s16 only, the dataloader's pad/crop + normalisation:
    pcm_s16.fbank_32  [32, 128]      zero-padded to 32 rows, then (x + 5.081) / 4.4849
    pcm_s16.fbank_20  [20, 128]      cropped to 20 rows, then normalised
and, for the stereo clip, stereo_s16.fbank_raw_ch1 (channel=1). Metadata: frame and sample counts.

Two float32 kernels of the reference, on data both sides generate from an integer hash (hashed_f32):
    rfft.re, rfft.im   [6, 257]  torch.fft.rfft of six 512-sample frames (zero beyond sample 400)
    torch_sum.values   [S]       torch.sum of rows of the sizes in metadata "torch_sum.sizes"
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchaudio

DURATION = 0.32  # seconds: 5120 samples -> 30 frames at 16 kHz
NORM_MEAN, NORM_STD = -5.081, 4.4849


def signal(sr, n, seed, kind):
    """Deterministic test signal with a chirp, a tone, noise, a DC offset and a silent stretch."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if kind == 0:
        x = 0.3 * np.sin(2 * np.pi * (200 * t + 1500 * t * t)) + 0.1 * np.sin(2 * np.pi * 3000 * t)
        x += 0.02 * rng.standard_normal(n) + 0.05
        a, b = int(0.12 * sr), int(0.17 * sr)
        x[a:b] = 0.05  # DC only: exercises the log floor
    else:
        x = 0.25 * np.sin(2 * np.pi * 600 * t) + 0.03 * rng.standard_normal(n) - 0.02
    return x


def chunk(cid, body):
    pad = b'\0' if len(body) % 2 else b''
    return cid + struct.pack('<I', len(body)) + body + pad


def write_wav(path, frames, tag, bits, sr, extensible=False, extra_chunks=()):
    """frames: [n, channels] array already in the on-disk dtype."""
    n, ch = frames.shape
    block = ch * bits // 8
    if extensible:
        guid_tail = bytes.fromhex('000000001000800000aa00389b71')
        fmt = struct.pack('<HHIIHHHHI', 0xFFFE, ch, sr, sr * block, block, bits, 22, bits, 4 if ch == 1 else 3)
        fmt += struct.pack('<H', tag) + guid_tail
    else:
        fmt = struct.pack('<HHIIHH', tag, ch, sr, sr * block, block, bits)
    if bits == 24:
        i32 = frames.astype('<i4').reshape(-1)
        raw = b''.join(int(v & 0xFFFFFF).to_bytes(3, 'little') for v in i32)
    else:
        raw = np.ascontiguousarray(frames).tobytes()
    body = b'WAVE' + chunk(b'fmt ', fmt) + b''.join(chunk(c, b) for c, b in extra_chunks) + chunk(b'data', raw)
    with open(path, 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', len(body)) + body)


def quantize(x, bits):
    scale = 2 ** (bits - 1)
    return np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int64)


def official_extract(src, dst):
    """src/preprocess/extract_audio.py: ffmpeg -> 16 kHz WAV, sox keeps channel 1."""
    with tempfile.TemporaryDirectory() as d:
        mid = os.path.join(d, 'intermediate.wav')
        subprocess.run(['ffmpeg', '-hide_banner', '-loglevel', 'error', '-y', '-i', src, '-vn', '-ar', '16000', mid], check=True)
        subprocess.run(['sox', mid, dst, 'remix', '1'], check=True)


def fbank_of(path, channel=-1):
    waveform, sr = torchaudio.load(path)
    waveform = waveform - waveform.mean()
    fb = torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, sample_frequency=sr, use_energy=False,
                                           window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10,
                                           channel=channel)
    return fb, sr, waveform.shape[1]


def pad_norm(fb, target):
    p = target - fb.shape[0]
    if p > 0:
        fb = torch.nn.ZeroPad2d((0, 0, 0, p))(fb)
    elif p < 0:
        fb = fb[0:target, :]
    return (fb - NORM_MEAN) / NORM_STD


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.numpy().astype('<f4'))
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def hashed_f32(n, seed, scale):
    """float32 values from a 32-bit multiplicative hash; tests rebuild them bit for bit."""
    u = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(seed * 97)) % np.uint64(2 ** 32)
    x = u.astype(np.float32) * np.float32(2.0 ** -32)
    return (x - np.float32(0.5)) * np.float32(scale)


SUM_SIZES = [1, 7, 8, 9, 33, 127, 400, 551, 1102, 5000, 70001]
RFFT_SCALES = [1.0, 1e-3, 1e-6, 30.0, 0.5, 2e-5]


def kernel_golden(tensors, meta):
    frames = np.zeros((len(RFFT_SCALES), 512), dtype=np.float32)
    for i, sc in enumerate(RFFT_SCALES):
        frames[i, :400] = hashed_f32(400, 10 + i, sc)
    spec = torch.fft.rfft(torch.from_numpy(frames))
    tensors['rfft.re'] = spec.real.contiguous()
    tensors['rfft.im'] = spec.imag.contiguous()
    sums = [torch.from_numpy(hashed_f32(n, n, 7.0)).sum() for n in SUM_SIZES]
    tensors['torch_sum.values'] = torch.stack(sums)
    meta['torch_sum.sizes'] = json.dumps(SUM_SIZES)
    meta['rfft.scales'] = json.dumps(RFFT_SCALES)
    meta['torch_threads'] = torch.get_num_threads()


def main(out):
    os.makedirs(out, exist_ok=True)
    sr = 16000
    n = int(DURATION * sr)
    mono = signal(sr, n, 1, 0)
    clips = {}

    def add(name, filename):
        clips[name] = filename

    write_wav(f'{out}/pcm_u8.wav', (quantize(mono, 8) + 128).astype('u1')[:, None], 1, 8, sr)
    add('pcm_u8', 'pcm_u8.wav')
    # an odd-sized LIST chunk (padding byte) and an unknown chunk before the data
    write_wav(f'{out}/pcm_s16.wav', quantize(mono, 16).astype('<i2')[:, None], 1, 16, sr,
              extra_chunks=[(b'LIST', b'INFOx'), (b'junk', b'\1\2\3\4')])
    add('pcm_s16', 'pcm_s16.wav')
    write_wav(f'{out}/pcm_s24_ext.wav', quantize(mono, 24)[:, None], 1, 24, sr, extensible=True)
    add('pcm_s24_ext', 'pcm_s24_ext.wav')
    write_wav(f'{out}/pcm_s32.wav', quantize(mono, 32).astype('<i4')[:, None], 1, 32, sr)
    add('pcm_s32', 'pcm_s32.wav')
    write_wav(f'{out}/float32_clip.wav', (3.5 * mono).astype('<f4')[:, None], 3, 32, sr)  # peaks > 1: sox clips
    add('float32_clip', 'float32_clip.wav')
    write_wav(f'{out}/float64.wav', mono.astype('<f8')[:, None], 3, 64, sr)
    add('float64', 'float64.wav')
    stereo = np.stack([mono, signal(sr, n, 2, 1)], axis=1)
    write_wav(f'{out}/stereo_s16.wav', quantize(stereo, 16).astype('<i2'), 1, 16, sr)
    add('stereo_s16', 'stereo_s16.wav')
    # other rates: resampled by the official ffmpeg + sox extraction
    for rate, ch, name in [(8000, 1, 'rate8k_s16'), (44100, 2, 'rate44k_stereo_s16')]:
        m = int(DURATION * rate)
        x = signal(rate, m, 3, 0)
        if ch == 2:
            x = np.stack([x, signal(rate, m, 4, 1)], axis=1)
        else:
            x = x[:, None]
        write_wav(f'{out}/{name}.wav', quantize(x, 16).astype('<i2'), 1, 16, rate)
        add(name, f'{name}.wav')
    # compressed formats, encoded once here and committed (encoders are not bit-stable across versions)
    src = f'{out}/pcm_s16.wav'
    enc = [('flac', 'flac.flac', ['-c:a', 'flac']),
           ('vorbis', 'vorbis.ogg', ['-c:a', 'libvorbis', '-q:a', '2']),
           ('mp3', 'mp3.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k']),
           ('aac', 'aac.m4a', ['-c:a', 'aac', '-b:a', '48k'])]
    for name, filename, args in enc:
        subprocess.run(['ffmpeg', '-hide_banner', '-loglevel', 'error', '-y', '-i', src, *args,
                        '-map_metadata', '-1', '-fflags', '+bitexact', '-flags:a', '+bitexact', f'{out}/{filename}'], check=True)
        add(name, filename)

    tensors, meta = {}, {'generator': 'scripts/golden/audio_fbank.py', 'torch': torch.__version__,
                         'torchaudio': torchaudio.__version__}
    with tempfile.TemporaryDirectory() as d:
        for name, filename in clips.items():
            path = f'{out}/{filename}'
            info = torchaudio.info(path) if filename.endswith('.wav') else None
            if info is None or info.sample_rate != 16000:
                ref = os.path.join(d, f'{name}.wav')
                official_extract(path, ref)
                path = ref
            fb, rate, samples = fbank_of(path)
            assert rate == 16000
            tensors[f'{name}.fbank_raw'] = fb
            if name == 'pcm_s16':
                tensors[f'{name}.fbank_32'] = pad_norm(fb, 32)
                tensors[f'{name}.fbank_20'] = pad_norm(fb, 20)
            meta[f'{name}.frames'] = fb.shape[0]
            meta[f'{name}.samples'] = samples
            if name == 'stereo_s16':
                tensors[f'{name}.fbank_raw_ch1'] = fbank_of(path, channel=1)[0]
            print(f'{name}: {filename} {samples} samples -> {fb.shape[0]} frames')
    kernel_golden(tensors, meta)
    save_safetensors(f'{out}/golden.safetensors', tensors, meta)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'test/fixtures/audio')
