/**
 * Training-time augmentation of the reference dataset (spec 1.3, 1.4), on time-major fbanks
 * `[T, F]` (T = target_length rows, F = 128 mel bins), row-major Float32Array.
 *
 * Contract (the reference's `__getitem__`, in this order):
 *   1. mixup of waveforms (`mixWaveforms`, λ ~ Beta(10, 10)) and of normalised images;
 *   2. SpecAugment: one frequency mask then one time mask (`specAugment`), value 0 before
 *      normalisation, sampled exactly as torchaudio's `mask_along_axis` (iid_masks False);
 *   3. normalisation (audio module);
 *   4. noise `U[0,1)^{T×F}·u/10` then a circular roll of the time axis (`addNoiseAndRoll`).
 * Labels: `labelVector` (no mixup: fill ε/K, then ASSIGN 1−ε to positives) and `mixLabelVector`
 * (fill ε/K, then ADD λ(1−ε) per label of sample 1 and (1−λ)(1−ε) per label of sample 2).
 * All randomness comes from the given Rng, so a sample is a pure function of its seed.
 */
import type { Rng } from './rng.js';

export const MIXUP_BETA = 10;

export interface MaskSpan {
  start: number;
  end: number;
}

/**
 * One mask along the frequency or time axis, as torchaudio `mask_along_axis`:
 * value = U·param, minValue = U'·(size − value), masked = [floor(minValue), floor(minValue) + floor(value)).
 * A param below 1 does nothing and draws no random numbers. Returns the masked span.
 */
export function maskAlongAxis(
  fbank: Float32Array, // [T, F]
  T: number,
  F: number,
  axis: 'freq' | 'time',
  maskParam: number,
  rng: Rng,
  maskValue = 0,
): MaskSpan {
  const size = axis === 'freq' ? F : T;
  if (maskParam < 1) return { start: 0, end: 0 };
  const value = rng.uniform() * maskParam;
  const minValue = rng.uniform() * (size - value);
  const start = Math.floor(minValue);
  const end = Math.min(size, start + Math.floor(value));
  if (axis === 'freq') {
    for (let t = 0; t < T; t++) fbank.fill(maskValue, t * F + start, t * F + end);
  } else {
    fbank.fill(maskValue, start * F, end * F);
  }
  return { start, end };
}

/** FrequencyMasking(freqm) then TimeMasking(timem), in place; each skipped when its param is 0. */
export function specAugment(
  fbank: Float32Array,
  T: number,
  F: number,
  freqm: number,
  timem: number,
  rng: Rng,
): { freq: MaskSpan; time: MaskSpan } {
  const freq = maskAlongAxis(fbank, T, F, 'freq', freqm, rng);
  const time = maskAlongAxis(fbank, T, F, 'time', timem, rng);
  return { freq, time };
}

/** torch.roll along time: out[(t + shift) mod T] = in[t]. Returns a new array. */
export function rollTime(fbank: Float32Array, T: number, F: number, shift: number): Float32Array {
  const out = new Float32Array(T * F);
  const s = ((shift % T) + T) % T;
  // rows [0, T-s) move to [s, T); rows [T-s, T) move to [0, s)
  out.set(fbank.subarray(0, (T - s) * F), s * F);
  out.set(fbank.subarray((T - s) * F, T * F), 0);
  return out;
}

/**
 * Noise and circular time shift (after normalisation): fbank + U[0,1)^{T×F}·u/10 with one scalar
 * u ~ U[0,1) per sample, then roll the time axis by an integer in [−T, T). Returns the new array.
 */
export function addNoiseAndRoll(
  fbank: Float32Array,
  T: number,
  F: number,
  rng: Rng,
): { fbank: Float32Array; scale: number; shift: number } {
  const scale = rng.uniform() / 10;
  for (let i = 0; i < T * F; i++) fbank[i] += rng.uniform24() * scale;
  const shift = rng.intRange(-T, T);
  return { fbank: rollTime(fbank, T, F, shift), scale, shift };
}

function removeMean(w: Float32Array): void {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i];
  const m = s / Math.max(1, w.length);
  for (let i = 0; i < w.length; i++) w[i] -= m;
}

/**
 * Waveform mixup (spec 1.4): both waveforms mean-removed; the second zero-padded or truncated
 * to the first's length; mix = λ·w1 + (1−λ)·w2; the mix mean-removed again. Inputs are not changed.
 */
export function mixWaveforms(w1: Float32Array, w2: Float32Array, lambda: number): Float32Array {
  const a = Float32Array.from(w1);
  const b = new Float32Array(a.length);
  b.set(w2.subarray(0, Math.min(w2.length, a.length)));
  // The reference removes w2's mean BEFORE padding/truncating it.
  let s2 = 0;
  for (let i = 0; i < w2.length; i++) s2 += w2[i];
  const m2 = s2 / Math.max(1, w2.length);
  for (let i = 0; i < Math.min(w2.length, a.length); i++) b[i] -= m2;
  removeMean(a);
  const mix = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) mix[i] = lambda * a[i] + (1 - lambda) * b[i];
  removeMean(mix);
  return mix;
}

/** image1 ← λ·image1 + (1−λ)·image2 (both already normalised), in place. */
export function mixImages(image1: Float32Array, image2: Float32Array, lambda: number): Float32Array {
  if (image1.length !== image2.length)
    throw new RangeError(`mixImages: sizes differ (${image1.length} vs ${image2.length})`);
  for (let i = 0; i < image1.length; i++) image1[i] = lambda * image1[i] + (1 - lambda) * image2[i];
  return image1;
}

/** Without mixup: ε/K everywhere, then every positive SET to 1−ε (not added). */
export function labelVector(labels: ArrayLike<number>, numLabels: number, labelSmooth: number): Float32Array {
  const out = new Float32Array(numLabels).fill(labelSmooth / numLabels);
  for (let j = 0; j < labels.length; j++) out[labels[j]] = 1 - labelSmooth;
  return out;
}

/** With mixup: ε/K everywhere, then ADD λ(1−ε) per label of sample 1 and (1−λ)(1−ε) per label of sample 2. */
export function mixLabelVector(
  labels1: ArrayLike<number>,
  labels2: ArrayLike<number>,
  lambda: number,
  numLabels: number,
  labelSmooth: number,
): Float32Array {
  // Accumulate in float64 like numpy, then round once.
  const acc = new Float64Array(numLabels).fill(labelSmooth / numLabels);
  for (let j = 0; j < labels1.length; j++) acc[labels1[j]] += lambda * (1 - labelSmooth);
  for (let j = 0; j < labels2.length; j++) acc[labels2[j]] += (1 - lambda) * (1 - labelSmooth);
  return Float32Array.from(acc);
}

/**
 * Random level change of a log-mel fbank (natural-log power, before normalisation): a gain of
 * g dB adds g·ln(10)/10 to every row that holds audio (rows [0, frames)); padding rows stay.
 */
export function applyGainDb(fbank: Float32Array, frames: number, F: number, gainDb: number): void {
  const add = (gainDb * Math.LN10) / 10;
  for (let i = 0; i < frames * F; i++) fbank[i] += add;
}

/**
 * Time shift without wrap-around: out[t + shift] = in[t], rows shifted in are `fill` (the
 * padding value, 0 before normalisation). Returns a new array.
 */
export function shiftTime(fbank: Float32Array, T: number, F: number, shift: number, fill = 0): Float32Array {
  const out = new Float32Array(T * F).fill(fill);
  if (Math.abs(shift) >= T) return out;
  if (shift >= 0) out.set(fbank.subarray(0, (T - shift) * F), shift * F);
  else out.set(fbank.subarray(-shift * F, T * F), 0);
  return out;
}
