/**
 * Recording conditions for synthetic speech: what happens to a voice between the mouth and the
 * file, so that a model trained on synthetic speech meets real recordings prepared. Drawn per
 * clip from ranges (`RecordingRanges`, stored in the dataset's parameters) and recorded per clip
 * (`Recording`, stored in each manifest item), so a set can be rebuilt exactly.
 *
 * The chain, in this order (src/data/avdigits.ts runs it):
 *   1. room: sox `reverb` (reverberance, HF damping, room scale, pre-delay) on each word;
 *   2. background noise added at a signal-to-noise ratio over the speech samples: white, pink,
 *      brown, mains hum (50/60 Hz and harmonics over a faint hiss), or none (digital silence);
 *   3. microphone / channel (sox): `full` (studio, nothing), `laptop` (high-pass 80-400 Hz,
 *      low-pass 3.5-7.5 kHz, one resonance of +-8 dB at 0.8-4 kHz), `phone` (band 300-3400 Hz,
 *      8 kHz sampling, optionally a telephone codec: G.711 u-law or GSM 06.10), `8k` (an 8 kHz
 *      recording played back at 16 kHz);
 *   4. level: the clip's peak set to a drawn dBFS; with a drawn probability the clip is driven
 *      into hard clipping by a few dB.
 */
import type { Rng } from '../data/rng.js';
import { UserError } from '../util/errors.js';
import {
  rawFloatToSamples,
  runSpeechTool,
  samplesToRawFloat,
  SOX_RAW_IN,
  SOX_RAW_OUT,
  soxEffects,
} from './speech.js';

export const NOISE_KINDS = ['none', 'white', 'pink', 'brown', 'hum'] as const;
export type NoiseKind = (typeof NOISE_KINDS)[number];
export const MIC_KINDS = ['full', 'laptop', 'phone', '8k'] as const;
export type MicKind = (typeof MIC_KINDS)[number];
export const CODECS = ['none', 'ulaw', 'gsm'] as const;
export type Codec = (typeof CODECS)[number];

/** The ranges conditions are drawn from (part of a dataset's parameters). */
export interface RecordingRanges {
  /** Probability that the voice is in a reverberant room. */
  reverbProb: number;
  /** sox reverb reverberance, % */
  reverberance: [number, number];
  /** sox reverb room scale, % */
  roomScale: [number, number];
  /** sox reverb pre-delay, ms */
  preDelayMs: [number, number];
  /** Relative weights of the background noise kinds. */
  noise: Partial<Record<NoiseKind, number>>;
  /** Speech-to-noise ratio range, dB. */
  snrDb: [number, number];
  /** Relative weights of the microphone / channel kinds. */
  mic: Partial<Record<MicKind, number>>;
  /** With the phone channel: relative weights of the telephone codecs. */
  codec: Partial<Record<Codec, number>>;
  /** Peak level of the finished clip, dBFS. */
  peakDb: [number, number];
  /** Probability of hard clipping, and by how many dB the clip is driven past full scale. */
  clipProb: number;
  clipDb: [number, number];
}

/** The conditions of one clip (stored in its manifest item). */
export interface Recording {
  room: { reverberance: number; damping: number; room_scale: number; pre_delay_ms: number } | null;
  noise: NoiseKind;
  snr_db: number;
  mic: MicKind;
  /** laptop: pass band and resonance; phone: 300-3400 */
  band_hz?: [number, number];
  resonance?: { hz: number; db: number };
  codec: Codec;
  peak_dbfs: number;
  /** 0: no clipping */
  clip_db: number;
}

/** Clean speech: no room, broadband noise at 30-50 dB, full-band microphone (the former demo data). */
export const CLEAN_RECORDING: RecordingRanges = {
  reverbProb: 0,
  reverberance: [0, 0],
  roomScale: [0, 0],
  preDelayMs: [0, 0],
  noise: { white: 1, pink: 1, brown: 1 },
  snrDb: [30, 50],
  mic: { full: 1 },
  codec: { none: 1 },
  peakDb: [-12, -1],
  clipProb: 0,
  clipDb: [0, 0],
};

/**
 * Rooms, microphones, telephone channels, noise and levels as real recordings have them, with a
 * good share of clean studio-like clips (the demo's data; docs/demo.md measured wider ranges:
 * they transfer about as well but need more steps to start aligning).
 */
export const VARIED_RECORDING: RecordingRanges = {
  reverbProb: 0.3,
  reverberance: [10, 50],
  roomScale: [10, 60],
  preDelayMs: [0, 20],
  noise: { none: 3, white: 1, pink: 2, brown: 1, hum: 1 },
  snrDb: [25, 50],
  mic: { full: 4, laptop: 2, phone: 2, '8k': 2 },
  codec: { none: 1, ulaw: 1, gsm: 1 },
  peakDb: [-20, -1],
  clipProb: 0.05,
  clipDb: [1, 6],
};

function checkRange(name: string, r: unknown, lo: number, hi: number): void {
  if (
    !Array.isArray(r) ||
    r.length !== 2 ||
    !r.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
    r[0] > r[1] ||
    r[0] < lo ||
    r[1] > hi
  )
    throw new UserError(
      `recording.${name} must be [min, max] within [${lo}, ${hi}], got ${JSON.stringify(r)}`,
    );
}

function checkWeights(name: string, w: unknown, kinds: readonly string[]): void {
  const ok =
    typeof w === 'object' &&
    w !== null &&
    Object.entries(w).every(
      ([k, v]) => kinds.includes(k) && typeof v === 'number' && v >= 0 && Number.isFinite(v),
    ) &&
    Object.values(w).some((v) => (v as number) > 0);
  if (!ok)
    throw new UserError(
      `recording.${name} must map some of ${kinds.join(', ')} to weights >= 0 (not all 0), got ${JSON.stringify(w)}`,
    );
}

/** Throws a UserError naming the first bad field. */
export function checkRecordingRanges(r: RecordingRanges): void {
  const prob = (name: string, p: unknown) => {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1))
      throw new UserError(`recording.${name} must be a probability in [0, 1], got ${JSON.stringify(p)}`);
  };
  prob('reverbProb', r.reverbProb);
  prob('clipProb', r.clipProb);
  checkRange('reverberance', r.reverberance, 0, 100);
  checkRange('roomScale', r.roomScale, 0, 100);
  checkRange('preDelayMs', r.preDelayMs, 0, 500);
  checkRange('snrDb', r.snrDb, -30, 120);
  checkRange('peakDb', r.peakDb, -60, 0);
  checkRange('clipDb', r.clipDb, 0, 40);
  checkWeights('noise', r.noise, NOISE_KINDS);
  checkWeights('mic', r.mic, MIC_KINDS);
  checkWeights('codec', r.codec, CODECS);
}

function pick<K extends string>(rng: Rng, kinds: readonly K[], w: Partial<Record<K, number>>): K {
  const total = kinds.reduce((s, k) => s + (w[k] ?? 0), 0);
  let u = rng.uniform() * total;
  for (const k of kinds) {
    u -= w[k] ?? 0;
    if (u < 0) return k;
  }
  return kinds.filter((k) => (w[k] ?? 0) > 0).pop()!;
}

const between = (rng: Rng, [lo, hi]: [number, number]): number => lo + (hi - lo) * rng.uniform();
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Draws one clip's conditions; a fixed number of draws per field, so fields never shift each other. */
export function drawRecording(rng: Rng, r: RecordingRanges): Recording {
  const roomOn = rng.uniform() < r.reverbProb;
  const room = {
    reverberance: round(between(rng, r.reverberance), 1),
    damping: round(20 + 60 * rng.uniform(), 1),
    room_scale: round(between(rng, r.roomScale), 1),
    pre_delay_ms: round(between(rng, r.preDelayMs), 1),
  };
  const noise = pick(rng, NOISE_KINDS, r.noise);
  const snr = round(between(rng, r.snrDb));
  const mic = pick(rng, MIC_KINDS, r.mic);
  const lowHz = Math.round(80 + 320 * rng.uniform());
  const highHz = Math.round(3500 + 4000 * rng.uniform());
  const resonance = { hz: Math.round(800 + 3200 * rng.uniform()), db: round(-8 + 16 * rng.uniform(), 1) };
  const codec = pick(rng, CODECS, r.codec);
  const peak = round(between(rng, r.peakDb));
  const clipOn = rng.uniform() < r.clipProb;
  const clipDb = round(between(rng, r.clipDb));
  const out: Recording = {
    room: roomOn && room.reverberance > 0 ? room : null,
    noise,
    snr_db: snr,
    mic,
    codec: mic === 'phone' ? codec : 'none',
    peak_dbfs: peak,
    clip_db: clipOn ? clipDb : 0,
  };
  if (mic === 'laptop') Object.assign(out, { band_hz: [lowHz, highHz], resonance });
  if (mic === 'phone') out.band_hz = [300, 3400];
  return out;
}

/** sox effects of the room (applied to each word as it is synthesised). */
export function roomEffects(c: Recording): string[] {
  if (!c.room) return [];
  const r = c.room;
  // 0.25 s of silence first, so the room's tail is heard (sox reverb keeps the input length);
  // reverb [-w] reverberance HF-damping room-scale stereo-depth pre-delay wet-gain
  return [
    'pad',
    '0',
    '0.25',
    'reverb',
    String(r.reverberance),
    String(r.damping),
    String(r.room_scale),
    '100',
    String(r.pre_delay_ms),
    '0',
  ];
}

/** Unit-RMS noise of a kind ('none': zeros). */
export function makeNoise(rng: Rng, kind: NoiseKind, n: number, sampleRate = 16000): Float32Array {
  const w = new Float64Array(n);
  if (kind === 'none') return new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal();
  if (kind === 'pink') {
    // Paul Kellet's economy filter
    let b0 = 0;
    let b1 = 0;
    let b2 = 0;
    for (let i = 0; i < n; i++) {
      const x = w[i];
      b0 = 0.99765 * b0 + x * 0.099046;
      b1 = 0.963 * b1 + x * 0.2965164;
      b2 = 0.57 * b2 + x * 1.0526913;
      w[i] = b0 + b1 + b2 + x * 0.1848;
    }
  } else if (kind === 'brown') {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc = 0.98 * acc + w[i];
      w[i] = acc;
    }
  } else if (kind === 'hum') {
    // mains hum: 50 or 60 Hz with decaying odd and even harmonics, over a faint hiss
    const f0 = rng.uniform() < 0.5 ? 50 : 60;
    const phase = 2 * Math.PI * rng.uniform();
    for (let i = 0; i < n; i++) {
      let h = 0;
      for (let k = 1; k <= 6; k++) h += Math.sin(2 * Math.PI * f0 * k * (i / sampleRate) + k * phase) / k;
      w[i] = h + 0.05 * w[i];
    }
  }
  let ss = 0;
  for (let i = 0; i < n; i++) ss += w[i] * w[i];
  const r = Math.sqrt(ss / Math.max(1, n)) || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = w[i] / r;
  return out;
}

/** The microphone / channel and codec (sox), then level and clipping. Returns a new array. */
export async function recordThrough(clip: Float32Array, c: Recording): Promise<Float32Array> {
  let x = clip;
  if (c.mic === 'laptop') {
    const [lo, hi] = c.band_hz!;
    const res = c.resonance!;
    x = await soxEffects(x, [
      'highpass',
      String(lo),
      'lowpass',
      String(hi),
      'equalizer',
      String(res.hz),
      '1q',
      String(res.db),
    ]);
  } else if (c.mic === '8k') {
    x = await soxEffects(x, ['rate', '-h', '8000', 'rate', '-h', '16000']);
  } else if (c.mic === 'phone') {
    if (c.codec === 'none')
      x = await soxEffects(x, ['sinc', '300-3400', 'rate', '-h', '8000', 'rate', '-h', '16000']);
    else {
      // Encode at 8 kHz with the codec, then decode back to 16 kHz float: two sox processes.
      const fmt =
        c.codec === 'ulaw' ? ['-t', 'ul', '-r', '8000', '-c', '1'] : ['-t', 'gsm', '-r', '8000', '-c', '1'];
      const coded = await runSpeechTool(
        'sox',
        [...SOX_RAW_IN, ...fmt, '-', 'gain', '-n', '-3', 'sinc', '300-3400', 'rate', '-h', '8000'],
        samplesToRawFloat(x),
      );
      x = rawFloatToSamples(
        await runSpeechTool('sox', ['-R', '-D', ...fmt, '-', ...SOX_RAW_OUT, 'rate', '-h', '16000'], coded),
      );
      if (x.length > clip.length) x = x.subarray(0, clip.length);
      else if (x.length < clip.length) {
        const padded = new Float32Array(clip.length);
        padded.set(x);
        x = padded;
      }
    }
  }
  return x;
}

/** Scales the clip so that its peak lands at the drawn level, then drives it into clipping when drawn. */
export function setLevel(clip: Float32Array, c: Recording): Float32Array {
  let peak = 0;
  for (let i = 0; i < clip.length; i++) peak = Math.max(peak, Math.abs(clip[i]));
  const g = Math.pow(10, (c.peak_dbfs + c.clip_db) / 20) / (peak || 1);
  const out = new Float32Array(clip.length);
  for (let i = 0; i < clip.length; i++) out[i] = Math.max(-1, Math.min(1, clip[i] * g));
  return out;
}
