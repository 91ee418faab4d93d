/**
 * Kaldi fbank, pad/crop and normalisation against torchaudio 0.13.1 (the reference):
 * - the two official fixture clips (test/fixtures/official/audio, made with the official code);
 * - our own golden clips (test/fixtures/audio/golden.safetensors, scripts/golden/audio_fbank.py).
 * Tolerances (fixtures README): <= 2e-3 absolute in log-mel, <= 5e-4 after normalisation; frame
 * counts and pad/crop exact. Independent float64 cross-check: a direct DFT and mel bank written
 * from the formulas of docs/reference.md#fbank (no shared code with src/audio/fbank.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeFbank,
  fbankFrameCount,
  padOrCrop,
  normalizeFbank,
  AUDIO_NORM,
  NUM_MEL_BINS,
  LOG_FLOOR,
} from '../../src/audio/index.js';
import { decodeWav } from '../../src/audio/wav.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, fixture, hasOfficialFixtures, maxAbsDiff, randomArray, repoRoot } from '../helpers.js';

const LOGMEL_TOL = 2e-3;
const NORM_TOL = 5e-4;

const shared = hasOfficialFixtures();
const clips = [
  { id: '00W1lcxW-WU_40.000', samples: 160125, frames: 999 },
  { id: 'espeak_en_sentence', samples: 199700, frames: 1246 },
];

test('frame counts follow snip_edges: 1 + floor((N - 400) / 160)', () => {
  assert.equal(fbankFrameCount(160000), 998); // docs/reference.md#numeric-checks: 10.00 s -> 998 frames
  assert.equal(fbankFrameCount(399), 0);
  assert.equal(fbankFrameCount(400), 1);
  assert.equal(fbankFrameCount(559), 1);
  assert.equal(fbankFrameCount(560), 2);
  assert.equal(fbankFrameCount(160125), 999);
  assert.equal(fbankFrameCount(199700), 1246);
});

for (const clip of clips) {
  test(
    `official fixture ${clip.id}: log-mel <= ${LOGMEL_TOL}, normalised <= ${NORM_TOL}, frames exact`,
    { skip: !shared && 'official fixtures missing' },
    () => {
      const ref = readSafetensorsF32(fixture('audio', 'fbank.safetensors'));
      const { samples, sampleRate } = decodeWav(readFileSync(fixture('audio', `${clip.id}.wav`)));
      assert.equal(sampleRate, 16000);
      assert.equal(samples.length, clip.samples);
      const { data, frames } = computeFbank(samples);
      assert.equal(frames, clip.frames);
      const raw = ref.get(`${clip.id}.fbank_raw`)!;
      assert.deepEqual(raw.shape, [clip.frames, NUM_MEL_BINS]);
      assertClose(data, raw.data, { atol: LOGMEL_TOL, what: `${clip.id} log-mel` });
      const model = normalizeFbank(padOrCrop(data, frames, 1024));
      const norm = ref.get(`${clip.id}.fbank`)!;
      assert.deepEqual(norm.shape, [1024, NUM_MEL_BINS]);
      assertClose(model, norm.data, { atol: NORM_TOL, what: `${clip.id} normalised` });
    },
  );
}

test('pad/crop: zero rows appended at the end, crop keeps the first rows, bit-exact', () => {
  const frames = 5;
  const data = randomArray(frames * NUM_MEL_BINS, 7, 10);
  const padded = padOrCrop(data, frames, 8);
  assert.equal(padded.length, 8 * NUM_MEL_BINS);
  assert.deepEqual(padded.subarray(0, frames * NUM_MEL_BINS), data);
  assert.ok(padded.subarray(frames * NUM_MEL_BINS).every((v) => v === 0));
  const cropped = padOrCrop(data, frames, 3);
  assert.deepEqual(cropped, data.subarray(0, 3 * NUM_MEL_BINS));
  assert.deepEqual(padOrCrop(data, frames, frames), data);
  assert.throws(() => padOrCrop(data, frames, 0), UserError);
});

test('normalisation: padded zero rows become (0 + 5.081) / 4.4849 = 1.1329 in float32', () => {
  const x = normalizeFbank(new Float32Array([0, -5.081, LOG_FLOOR]));
  assert.equal(x[0], Math.fround(Math.fround(5.081) / Math.fround(4.4849)));
  assert.ok(Math.abs(x[0] - 1.1329) < 1e-4, `padded value ${x[0]}`);
  assert.equal(x[1], 0);
  assert.deepEqual(AUDIO_NORM, { mean: -5.081, std: 4.4849 });
  const y = normalizeFbank(new Float32Array([1, 3]), 1, 2); // configurable mean/std
  assert.deepEqual([...y], [0, 1]);
  assert.throws(() => normalizeFbank(new Float32Array(1), 0, 0), UserError);
});

test('audio shorter than one window is a clear error (torchaudio raises too)', () => {
  assert.throws(
    () => computeFbank(new Float32Array(399), 16000, 'clip.wav'),
    (e: Error) => e instanceof UserError && /clip\.wav.*too short.*399 samples/.test(e.message),
  );
  assert.throws(() => computeFbank(new Float32Array(0)), UserError);
  assert.equal(computeFbank(new Float32Array(400)).frames, 1);
});

test('digital silence gives the log floor ln(1.1920929e-07) everywhere', () => {
  const { data } = computeFbank(new Float32Array(16000).fill(0.25)); // constant: DC removal leaves 0
  const floor = Math.fround(Math.log(LOG_FLOOR));
  assert.ok(
    data.every((v) => v === floor),
    'every value at the floor',
  );
});

// ---- golden clips made with torchaudio by scripts/golden/audio_fbank.py ----

const goldenDir = join(repoRoot(), 'test', 'fixtures', 'audio');
const nativeClips: [string, string][] = [
  ['pcm_u8', 'pcm_u8.wav'],
  ['pcm_s16', 'pcm_s16.wav'],
  ['pcm_s24_ext', 'pcm_s24_ext.wav'],
  ['pcm_s32', 'pcm_s32.wav'],
  ['float32_clip', 'float32_clip.wav'],
  ['float64', 'float64.wav'],
  ['stereo_s16', 'stereo_s16.wav'],
];

test(`native WAV variants (8/16/24/32-bit, float32/64, stereo) vs torchaudio: <= ${LOGMEL_TOL}`, () => {
  const golden = readSafetensorsF32(join(goldenDir, 'golden.safetensors'));
  for (const [name, file] of nativeClips) {
    const { samples, sampleRate } = decodeWav(readFileSync(join(goldenDir, file)), { what: file });
    assert.equal(sampleRate, 16000);
    const { data, frames } = computeFbank(samples);
    const ref = golden.get(`${name}.fbank_raw`)!;
    assert.equal(frames, ref.shape[0], `${name} frames`);
    assertClose(data, ref.data, { atol: LOGMEL_TOL, what: `${name} log-mel` });
  }
});

test('stereo: channel 0 is the one the reference uses; channel 1 matches its own reference and differs', () => {
  const golden = readSafetensorsF32(join(goldenDir, 'golden.safetensors'));
  const bytes = readFileSync(join(goldenDir, 'stereo_s16.wav'));
  const ch0 = computeFbank(decodeWav(bytes).samples).data;
  const ch1 = computeFbank(decodeWav(bytes, { channel: 1 }).samples).data;
  assertClose(ch0, golden.get('stereo_s16.fbank_raw')!.data, { atol: LOGMEL_TOL, what: 'channel 0' });
  assertClose(ch1, golden.get('stereo_s16.fbank_raw_ch1')!.data, { atol: LOGMEL_TOL, what: 'channel 1' });
  assert.ok(maxAbsDiff(ch0, ch1) > 1, 'the two channels must give different fbanks');
});

test(`pad to 32 / crop to 20 rows + normalisation vs the reference dataloader: <= ${NORM_TOL}`, () => {
  const golden = readSafetensorsF32(join(goldenDir, 'golden.safetensors'));
  const { data, frames } = computeFbank(decodeWav(readFileSync(join(goldenDir, 'pcm_s16.wav'))).samples);
  assert.equal(frames, 30);
  for (const T of [32, 20]) {
    const ref = golden.get(`pcm_s16.fbank_${T}`)!;
    assert.deepEqual(ref.shape, [T, NUM_MEL_BINS]);
    assertClose(normalizeFbank(padOrCrop(data, frames, T)), ref.data, {
      atol: NORM_TOL,
      what: `target ${T}`,
    });
  }
});

// ---- independent float64 reference written from the formulas of docs/reference.md#fbank (direct DFT) ----

function referenceFbank64(x: Float32Array, sr: number): Float64Array {
  const win = Math.trunc(sr * 25 * 0.001);
  const shift = Math.trunc(sr * 10 * 0.001);
  let nfft = 1;
  while (nfft < win) nfft *= 2;
  const frames = 1 + Math.floor((x.length - win) / shift);
  const mel = (f: number) => 1127 * Math.log(1 + f / 700);
  const lo = mel(20),
    hi = mel(sr / 2),
    d = (hi - lo) / 129;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  const out = new Float64Array(frames * 128);
  for (let t = 0; t < frames; t++) {
    const f = new Float64Array(win);
    let fm = 0;
    for (let j = 0; j < win; j++) fm += f[j] = x[t * shift + j] - mean;
    fm /= win;
    for (let j = 0; j < win; j++) f[j] -= fm;
    const y = new Float64Array(win);
    for (let j = 0; j < win; j++)
      y[j] = (f[j] - 0.97 * f[Math.max(j - 1, 0)]) * (0.5 - 0.5 * Math.cos((2 * Math.PI * j) / (win - 1)));
    const power = new Float64Array(nfft / 2);
    for (let k = 0; k < nfft / 2; k++) {
      let re = 0,
        im = 0;
      for (let j = 0; j < win; j++) {
        re += y[j] * Math.cos((2 * Math.PI * j * k) / nfft);
        im -= y[j] * Math.sin((2 * Math.PI * j * k) / nfft);
      }
      power[k] = re * re + im * im;
    }
    for (let m = 0; m < 128; m++) {
      let e = 0;
      for (let k = 0; k < nfft / 2; k++) {
        const mk = mel((k * sr) / nfft);
        const w = Math.max(0, Math.min((mk - (lo + m * d)) / d, (lo + (m + 2) * d - mk) / d));
        e += w * power[k];
      }
      out[t * 128 + m] = Math.log(Math.max(e, LOG_FLOOR));
    }
  }
  return out;
}

test('float64 direct-DFT cross-check at 16 kHz and at other rates (odd window at 22.05 kHz)', () => {
  for (const [sr, n] of [
    [16000, 1200],
    [22050, 1400],
    [8000, 900],
  ] as const) {
    const x = randomArray(n, sr, 0.5);
    for (let i = 0; i < n; i++) x[i] += 0.3 * Math.sin((2 * Math.PI * 440 * i) / sr);
    const ours = computeFbank(x, sr);
    const ref = referenceFbank64(x, sr);
    assert.equal(ours.frames, ref.length / 128, `frames at ${sr} Hz`);
    // float32 rounding of the inputs to the FFT and of the mel matrix; values here are far from the floor
    assertClose(ours.data, ref, { atol: 1e-4, what: `fbank at ${sr} Hz` });
  }
});
