/**
 * Synthetic speech of single words from the system's text-to-speech engines, for the AV-digits
 * data (src/data/avdigits.ts): espeak-ng (formant synthesis: 8 English accents x ~100 voice
 * variants) and flite (CMU voices built from recordings of real speakers: awb, kal, kal16, rms,
 * slt). Output: 16 kHz mono float samples, leading/trailing silence trimmed, through one sox
 * pass that can also shift the pitch and add room reverberation (src/audio/recording.ts).
 *
 * Contract: the samples are a pure function of (word, voice, speed, pitch, sox effects) for a
 * given installation: every tool runs without randomness (sox -R, no dither).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { runTool } from '../util/ffmpeg.js';

export const TTS_ENGINES = ['espeak-ng', 'flite'] as const;
export type TtsEngine = (typeof TTS_ENGINES)[number];

/** One speaking voice: espeak-ng `<language>+<variant>` or a flite voice name. */
export interface Voice {
  engine: TtsEngine;
  /** espeak-ng: the voice variant (`voices/!v` file); flite: the voice. */
  name: string;
  /** espeak-ng language/accent (e.g. en-us); absent for flite. */
  lang?: string;
}

export interface Utterance {
  voice: Voice;
  /** Speaking rate in words per minute (espeak-ng -s; flite: duration stretch 175 / wpm). */
  speed: number;
  /** espeak-ng pitch 0-99 (50 = the voice's own); flite: a sox pitch shift of (pitch - 50) * 8 cents. */
  pitch: number;
}

const SR = 16000;
/** flite's own speaking rate, in espeak-ng's words per minute (both default to about 175). */
const NORMAL_WPM = 175;

export const toolPackage: Record<TtsEngine | 'sox', string> = {
  'espeak-ng': 'espeak-ng',
  flite: 'flite',
  sox: 'sox',
};

/** Runs a tool of this module; stdout as bytes. */
export async function runSpeechTool(
  tool: TtsEngine | 'sox',
  args: string[],
  input?: Uint8Array,
): Promise<Buffer> {
  const r = await runTool(tool, args, { input, what: tool, apt: toolPackage[tool], maxBytes: 64 << 20 });
  return r.stdout;
}

/** espeak-ng's data folder and its voice variants (`voices/!v`), sorted. */
export async function espeakVariants(): Promise<string[]> {
  const ver = (await runSpeechTool('espeak-ng', ['--version'])).toString();
  const m = /Data at:\s*(.+)\s*$/m.exec(ver);
  if (!m) throw new UserError(`cannot find espeak-ng's data folder in "${ver.trim()}"`);
  const dir = join(m[1].trim(), 'voices', '!v');
  try {
    return readdirSync(dir).sort();
  } catch {
    throw new UserError(`espeak-ng voice variants not found at ${dir}`);
  }
}

/** flite's built-in voices (`flite -lv`), sorted; `awb_time` (a talking clock) is left out. */
export async function fliteVoices(): Promise<string[]> {
  const text = (await runSpeechTool('flite', ['-lv'])).toString();
  const m = /Voices available:\s*(.*)$/m.exec(text);
  if (!m) throw new UserError(`cannot read flite's voice list from "${text.trim()}"`);
  return m[1]
    .split(/\s+/)
    .filter((v) => v && v !== 'awb_time')
    .sort();
}

/** The engine's WAV bytes for one word. */
async function ttsWav(word: string, u: Utterance): Promise<Buffer> {
  if (u.voice.engine === 'espeak-ng') {
    const v = u.voice.lang ? `${u.voice.lang}+${u.voice.name}` : u.voice.name;
    return runSpeechTool('espeak-ng', [
      '-v',
      v,
      '-s',
      String(u.speed),
      '-p',
      String(u.pitch),
      '--stdout',
      word,
    ]);
  }
  const stretch = (NORMAL_WPM / u.speed).toFixed(4);
  // flite writes files only (it cannot open a socket as /dev/stdout, which is what Node's pipes are)
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-flite-'));
  try {
    const file = join(dir, 'speech.wav');
    await runSpeechTool('flite', [
      '-voice',
      u.voice.name,
      '--setf',
      `duration_stretch=${stretch}`,
      '-t',
      word,
      '-o',
      file,
    ]);
    return readFileSync(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Float32 little-endian raw bytes -> samples. */
export function rawFloatToSamples(raw: Buffer): Float32Array {
  const out = new Float32Array(raw.byteLength >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = raw.readFloatLE(4 * i);
  return out;
}

/** Samples -> float32 little-endian raw bytes. */
export function samplesToRawFloat(x: Float32Array): Buffer {
  const b = Buffer.alloc(4 * x.length);
  for (let i = 0; i < x.length; i++) b.writeFloatLE(x[i], 4 * i);
  return b;
}

/** sox arguments that write 16 kHz mono float32 raw to stdout, and (repeatable, no dither) read the same from stdin. */
// prettier-ignore
export const SOX_RAW_OUT = ['-t', 'raw', '-e', 'floating-point', '-b', '32', '-c', '1', '-r', String(SR), '-L', '-'];
export const SOX_RAW_IN = ['-R', '-D', ...SOX_RAW_OUT];

/** Runs a sox effect chain over 16 kHz mono samples (no randomness, no dither). */
export async function soxEffects(samples: Float32Array, effects: string[]): Promise<Float32Array> {
  if (effects.length === 0) return samples;
  return rawFloatToSamples(
    await runSpeechTool('sox', [...SOX_RAW_IN, ...SOX_RAW_OUT, ...effects], samplesToRawFloat(samples)),
  );
}

/**
 * One word, 16 kHz mono float, leading/trailing silence trimmed, then `effects` (sox effect
 * arguments, e.g. reverberation) applied in the same sox process.
 */
export async function synthesize(word: string, u: Utterance, effects: string[] = []): Promise<Float32Array> {
  const wav = await ttsWav(word, u);
  const shift = u.voice.engine === 'flite' && u.pitch !== 50 ? ['pitch', String((u.pitch - 50) * 8)] : [];
  // -R: repeatable; -D: no dither; float output so nothing is quantised before our own PCM16 step.
  // gain -6 leaves headroom for the resampler's overshoot; the level is set again later.
  // prettier-ignore
  const raw = await runSpeechTool('sox', [
    '-R', '-D', '-t', 'wav', '-', ...SOX_RAW_OUT,
    'gain', '-6', 'rate', '-h', String(SR), ...shift,
    'silence', '1', '0.01', '0.5%', 'reverse', 'silence', '1', '0.01', '0.5%', 'reverse',
    ...effects,
  ], wav);
  const speech = rawFloatToSamples(raw);
  if (speech.length < SR / 50) {
    const v = u.voice.lang ? `${u.voice.lang}+${u.voice.name}` : u.voice.name;
    throw new UserError(`${u.voice.engine} produced no speech for "${word}" with voice ${v}`);
  }
  return speech;
}
