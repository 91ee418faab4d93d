/**
 * The two float32 kernels through which our fbank reproduces torch's rounding, checked bit for bit
 * against torch 1.13 (test/fixtures/audio/golden.safetensors, scripts/golden/audio_fbank.py):
 * the real FFT (torch.fft.rfft, pocketfft order) and the cascade sum behind torch.mean.
 * Tolerance: 0 (exact float32 equality), since emulating the reference's order is their purpose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RealFftF32 } from '../../src/audio/rfft.js';
import { torchSumF32 } from '../../src/audio/torch-sum.js';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { repoRoot } from '../helpers.js';

const golden = join(repoRoot(), 'test', 'fixtures', 'audio', 'golden.safetensors');

/** Same values as hashed_f32 in the generator: a 32-bit multiplicative hash mapped to float32. */
function hashedF32(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  const s = Math.fround(scale);
  for (let i = 0; i < n; i++) {
    const u = (Math.imul(i, 2654435761 | 0) + seed * 97) >>> 0;
    const x = Math.fround(Math.fround(u) * 2 ** -32);
    out[i] = Math.fround(Math.fround(x - 0.5) * s);
  }
  return out;
}

test('real FFT equals torch.fft.rfft (float32) bit for bit', () => {
  const ref = readSafetensorsF32(golden);
  const { metadata } = readSafetensors(golden);
  const scales = JSON.parse(metadata['rfft.scales']) as number[];
  const re = ref.get('rfft.re')!,
    im = ref.get('rfft.im')!;
  assert.deepEqual(re.shape, [scales.length, 257]);
  const fft = new RealFftF32(512);
  const frame = new Float32Array(512);
  const out = new Float32Array(512);
  let mismatches = 0;
  scales.forEach((scale, f) => {
    frame.fill(0);
    frame.set(hashedF32(400, 10 + f, scale));
    fft.forward(frame, out);
    for (let k = 0; k <= 256; k++) {
      const r = k === 0 ? out[0] : k === 256 ? out[511] : out[2 * k - 1];
      const i = k === 0 || k === 256 ? 0 : out[2 * k];
      if (r !== re.data[f * 257 + k] || i !== im.data[f * 257 + k]) mismatches++;
    }
  });
  assert.equal(mismatches, 0, `${mismatches} of ${scales.length * 257} bins differ from torch`);
});

test('cascade sum equals torch.sum (float32, one thread) bit for bit, short rows and the multi-level cascade', () => {
  const ref = readSafetensorsF32(golden).get('torch_sum.values')!;
  const sizes = JSON.parse(readSafetensors(golden).metadata['torch_sum.sizes']) as number[];
  sizes.forEach((n, i) => {
    const x = hashedF32(n, n, 7);
    assert.equal(torchSumF32(x, 0, n), ref.data[i], `sum of ${n} values`);
  });
  // the offset form reads the same values
  const x = hashedF32(551, 551, 7);
  const padded = new Float32Array(600);
  padded.set(x, 30);
  assert.equal(torchSumF32(padded, 30, 551), torchSumF32(x, 0, 551));
});

test('RealFftF32 refuses lengths that are not powers of two', () => {
  assert.throws(() => new RealFftF32(400));
  assert.throws(() => new RealFftF32(2));
  for (const n of [4, 8, 16, 32, 64, 128, 256, 1024, 2048]) {
    // Parseval: sum x^2 = (|X0|^2 + 2 sum |Xk|^2 + |X(n/2)|^2) / n, checked in float64 to 1e-5 relative
    const x = hashedF32(n, n + 1, 1);
    const out = new Float32Array(n);
    new RealFftF32(n).forward(x, out);
    let e = 0;
    for (const v of x) e += v * v;
    let p = out[0] ** 2 + out[n - 1] ** 2;
    for (let k = 1; k < n / 2; k++) p += 2 * (out[2 * k - 1] ** 2 + out[2 * k] ** 2);
    assert.ok(Math.abs(p / n - e) <= 1e-5 * e, `Parseval at n=${n}: ${p / n} vs ${e}`);
  }
});
