/**
 * Augmentation semantics against the reference (golden data from torchaudio / torch / numpy in
 * test/fixtures/data, made by scripts/golden/data_golden.py) and the seeded samplers' statistics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertClose, fixture, hasOfficialFixtures, repoRoot } from '../helpers.js';
import {
  addNoiseAndRoll,
  labelVector,
  maskAlongAxis,
  mixImages,
  mixLabelVector,
  mixWaveforms,
  rollTime,
  specAugment,
} from '../../src/data/augment.js';
import { Rng, hashWords } from '../../src/data/rng.js';
import { computeFbank, decodeAudio, normalizeFbank, padOrCrop } from '../../src/audio/index.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';

const FIX = join(repoRoot(), 'test', 'fixtures', 'data');
const golden = JSON.parse(readFileSync(join(FIX, 'augment.json'), 'utf8')) as {
  masks: {
    axis: 'freq' | 'time';
    size: number;
    param: number;
    u: [number, number];
    start: number;
    end: number;
  }[];
  rolls: { T: number; F: number; shift: number; out: number[] }[];
  labels: {
    labels1: number[];
    labels2: number[];
    lambda: number;
    K: number;
    eps: number;
    plain: number[];
    mix: number[];
  }[];
  mixup: Record<string, { lambda: number; target: number } | { file: string; start: number; length: number }>;
};

/** An Rng stand-in that replays given uniforms (as the golden script fed torch.rand). */
function replay(values: number[]): Rng {
  const q = [...values];
  return {
    uniform: () => {
      const v = q.shift();
      if (v === undefined) throw new Error('replay: out of draws');
      return v;
    },
  } as unknown as Rng;
}

test('SpecAugment masks the same span as torchaudio FrequencyMasking/TimeMasking for the same draws', () => {
  for (const c of golden.masks) {
    const [T, F] = c.axis === 'freq' ? [7, c.size] : [c.size, 5];
    const fb = new Float32Array(T * F).fill(1); // [T, F]
    const span = maskAlongAxis(fb, T, F, c.axis, c.param, replay(c.u));
    const masked: number[] = [];
    const line = c.axis === 'freq' ? F : T;
    for (let k = 0; k < line; k++) {
      const v = c.axis === 'freq' ? fb[k] : fb[k * F];
      if (v === 0) masked.push(k);
    }
    const expected = Array.from({ length: c.end - c.start }, (_, j) => c.start + j);
    assert.deepEqual(masked, expected, `${c.axis} size ${c.size} param ${c.param} u ${c.u}`);
    assert.equal(span.end - span.start, expected.length);
    // The whole band is masked (every row for freq, every column for time); nothing else is.
    let zeros = 0;
    for (const v of fb) if (v === 0) zeros++;
    assert.equal(zeros, expected.length * (c.axis === 'freq' ? T : F));
  }
});

test('SpecAugment with freqm = timem = 0 draws nothing and changes nothing', () => {
  const fb = new Float32Array(10 * 128).fill(3);
  specAugment(fb, 10, 128, 0, 0, replay([]));
  assert.ok(fb.every((v) => v === 3));
});

test('time roll matches torch.roll(x, shift, 0)', () => {
  for (const c of golden.rolls) {
    const x = Float32Array.from({ length: c.T * c.F }, (_, i) => i);
    assert.deepEqual(Array.from(rollTime(x, c.T, c.F, c.shift)), c.out, `shift ${c.shift}`);
  }
});

test('noise is U[0,1)·u/10 per element and the roll shift lies in [-T, T)', () => {
  const T = 16;
  const F = 4;
  const shifts = new Set<number>();
  for (let s = 0; s < 400; s++) {
    const x = new Float32Array(T * F); // zeros: the output is the rolled noise itself
    const { fbank, scale, shift } = addNoiseAndRoll(x, T, F, new Rng(s));
    assert.ok(scale >= 0 && scale < 0.1);
    assert.ok(Number.isInteger(shift) && shift >= -T && shift < T);
    shifts.add(shift);
    for (const v of fbank) assert.ok(v >= 0 && v < scale + 1e-7, `noise ${v} outside [0, ${scale})`);
    // Un-rolling recovers the pre-roll noise: rolling back by -shift is the identity pairing.
    const back = rollTime(fbank, T, F, -shift);
    assertClose(back, x, { atol: 0, what: 'roll inverse' });
  }
  assert.equal(shifts.size, 2 * T, 'every shift in [-T, T) occurs');
});

test('label vectors follow the reference: assignment without mixup, addition with mixup', () => {
  for (const c of golden.labels) {
    assertClose(labelVector(c.labels1, c.K, c.eps), c.plain, { atol: 0, what: 'plain labels' });
    assertClose(mixLabelVector(c.labels1, c.labels2, c.lambda, c.K, c.eps), c.mix, {
      atol: 0,
      what: 'mixed labels',
    });
  }
  // The rule spelled out: positives are exactly 1-eps (not 1-eps+eps/K), others eps/K.
  const v = labelVector([2], 4, 0.1);
  assert.equal(v[2], Math.fround(0.9));
  assert.equal(v[0], Math.fround(0.025));
});

test('image mixup is λ·img1 + (1-λ)·img2', () => {
  const a = Float32Array.from([1, 2, 3]);
  const b = Float32Array.from([-1, 0, 5]);
  mixImages(a, b, 0.25);
  assertClose(a, [-0.5, 0.5, 4.5], { atol: 1e-7, what: 'mixed image' });
});

test(
  'waveform mixup -> fbank matches the reference pipeline on real clips (pad and truncate cases)',
  { skip: !hasOfficialFixtures() && 'official fixtures missing' },
  async () => {
    const ref = readSafetensorsF32(join(FIX, 'mixup.safetensors'));
    const a = (await decodeAudio(fixture('audio', '00W1lcxW-WU_40.000.wav'))).samples.slice(
      16000,
      16000 + 8000,
    );
    const b = (await decodeAudio(fixture('audio', 'espeak_en_sentence.wav'))).samples.slice(
      32000,
      32000 + 6400,
    );
    const cases: [string, Float32Array, Float32Array, number, number][] = [
      ['mix_ab', a, b, 0.3, 64],
      ['mix_ba', b, a, 0.62, 40],
    ];
    for (const [name, w1, w2, lambda, target] of cases) {
      const mix = mixWaveforms(w1, w2, lambda);
      assert.equal(mix.length, w1.length);
      const fb = computeFbank(mix, 16000);
      const out = normalizeFbank(padOrCrop(fb.data, fb.frames, target));
      const r = ref.get(`${name}.fbank`)!;
      assert.deepEqual(r.shape, [target, 128]);
      // Fixture tolerance for fbank: 2e-3 absolute in log-mel = 5e-4 after normalisation.
      assertClose(out, r.data, { atol: 5e-4, what: name });
    }
  },
);

test('mixWaveforms removes both means, pads or truncates the second and removes the mix mean', () => {
  const w1 = Float32Array.from([1, 2, 3, 4]); // mean 2.5
  const w2 = Float32Array.from([10, 12]); // mean 11 -> [-1, 1] then padded [-1, 1, 0, 0]
  const mix = mixWaveforms(w1, w2, 0.5);
  // 0.5*[-1.5,-0.5,0.5,1.5] + 0.5*[-1,1,0,0] = [-1.25, 0.25, 0.25, 0.75]; mean 0 already
  assertClose(mix, [-1.25, 0.25, 0.25, 0.75], { atol: 1e-6, what: 'mix' });
  const long = Float32Array.from([0, 2, 4, 6, 8, 10]); // mean 5 -> [-5,-3,-1,1,3,5], truncated to 4
  const mix2 = mixWaveforms(Float32Array.from([0, 0, 0, 0]), long, 0);
  // [-5,-3,-1,1] then mean (-2) removed
  assertClose(mix2, [-3, -1, 1, 3], { atol: 1e-6, what: 'truncated mix' });
});

test('Beta(10,10) from two Marsaglia-Tsang Gamma draws has the right mean and variance', () => {
  const rng = new Rng(12345);
  const n = 20000;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const x = rng.beta(10, 10);
    assert.ok(x > 0 && x < 1);
    s += x;
    s2 += x * x;
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  const trueVar = (10 * 10) / (20 * 20 * 21); // 0.0119
  // Standard errors at n = 20000: mean 7.7e-4, variance ~1.2e-4; tolerances are 5 standard errors.
  assert.ok(Math.abs(mean - 0.5) < 0.004, `mean ${mean}`);
  assert.ok(Math.abs(variance - trueVar) < 6e-4, `variance ${variance} vs ${trueVar}`);
});

test('Gamma sampler: mean = variance = shape, also below shape 1', () => {
  for (const shape of [0.5, 2.5]) {
    const rng = new Rng(7, shape * 10);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.gamma(shape);
      s += x;
      s2 += x * x;
    }
    const mean = s / n;
    const variance = s2 / n - mean * mean;
    // Standard error of the mean sqrt(shape/n) <= 0.0112; tolerance 5 of them. Variance: 10 %.
    assert.ok(Math.abs(mean - shape) < 5 * Math.sqrt(shape / n), `shape ${shape}: mean ${mean}`);
    assert.ok(Math.abs(variance - shape) < 0.1 * shape, `shape ${shape}: variance ${variance}`);
  }
});

test('Rng: deterministic per seed words, distinct streams, unbiased ints', () => {
  const a = new Rng(1, 2, 3);
  const b = Rng.derive(1, 2, 3);
  for (let i = 0; i < 100; i++) assert.equal(a.nextU32(), b.nextU32());
  assert.notEqual(new Rng(1, 2, 3).nextU32(), new Rng(1, 2, 4).nextU32());
  assert.notEqual(hashWords(0, 1), hashWords(1, 0));
  const rng = new Rng(99);
  const counts = new Array(6).fill(0);
  const n = 60000;
  for (let i = 0; i < n; i++) counts[rng.int(6)]++;
  // Each count ~ Binomial(n, 1/6): sd 91; tolerance 5 sd.
  for (const c of counts) assert.ok(Math.abs(c - n / 6) < 460, `count ${c}`);
  let u = 0;
  for (let i = 0; i < n; i++) u += rng.uniform();
  assert.ok(Math.abs(u / n - 0.5) < 0.006, 'uniform mean (sd 0.0012, tolerance 5 sd)');
});

test('level change adds g·ln(10)/10 to the audio rows only; time shift moves rows without wrap-around', async () => {
  const { applyGainDb, shiftTime } = await import('../../src/data/augment.js');
  const T = 6;
  const F = 3;
  const x = Float32Array.from({ length: T * F }, (_, i) => i);
  const g = Float32Array.from(x);
  applyGainDb(g, 4, F, 10); // 10 dB on 4 of 6 rows
  for (let i = 0; i < T * F; i++)
    assert.ok(Math.abs(g[i] - x[i] - (i < 4 * F ? Math.LN10 : 0)) < 1e-5, `row ${Math.floor(i / F)}`);
  const right = shiftTime(x, T, F, 2);
  assert.deepEqual(
    Array.from(right.subarray(0, 2 * F)),
    new Array(2 * F).fill(0),
    'rows shifted in are the fill',
  );
  assert.deepEqual(Array.from(right.subarray(2 * F)), Array.from(x.subarray(0, (T - 2) * F)));
  const left = shiftTime(x, T, F, -1, -5);
  assert.deepEqual(Array.from(left.subarray(0, (T - 1) * F)), Array.from(x.subarray(F)));
  assert.deepEqual(Array.from(left.subarray((T - 1) * F)), [-5, -5, -5]);
  assert.deepEqual(Array.from(shiftTime(x, T, F, T)), new Array(T * F).fill(0));
});
