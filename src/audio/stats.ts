/**
 * Normalisation statistics of the fbank over a dataset, for data far from AudioSet (docs/reference.md#normalisation-statistics).
 *
 * Definition (the AST repository's get_norm_stats.py, which the CAV-MAE author points to): walk
 * the dataset in order in batches of `batchSize` (AST: 1000) clips, each clip's fbank zero-padded
 * or cropped to `targetLength` rows and NOT normalised; per batch take the mean and the unbiased
 * standard deviation of every value in the batch; report the mean of the batch means and the
 * mean of the batch stds (the last, smaller batch counts as much as the others, as in AST).
 * Differences from AST, on purpose: no SpecAugment or mixup (AST ran its training-mode loader,
 * so its numbers are randomised), and clips that fail to load are reported and skipped instead of
 * being replaced by the 0.01 fallback. `pooledMean`/`pooledStd` over all values are reported too.
 * Accumulation is in float64 (per-clip mean and sum of squared deviations, merged exactly).
 */
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { UserError, fileError } from '../util/errors.js';
import { VIDEO_EXTENSIONS } from '../vision/prepare.js';
import { decodeAudio } from './decode.js';
import { computeFbank, padOrCrop } from './fbank.js';

export interface AudioStatsOptions {
  targetLength?: number;
  batchSize?: number;
  /** Clips decoded at the same time (ffmpeg processes for non-WAV inputs). */
  concurrency?: number;
  timeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface AudioStats {
  mean: number;
  std: number;
  pooledMean: number;
  pooledStd: number;
  clips: number;
  batches: number;
  batchSize: number;
  targetLength: number;
  failed: { path: string; reason: string }[];
}

/** Running count / mean / sum of squared deviations (Chan et al. merge). */
interface Moments {
  n: number;
  mean: number;
  m2: number;
}

function momentsOf(x: Float32Array): Moments {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  const mean = s / x.length;
  let m2 = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i] - mean;
    m2 += d * d;
  }
  return { n: x.length, mean, m2 };
}

function merge(a: Moments, b: Moments): Moments {
  if (a.n === 0) return { ...b };
  const n = a.n + b.n;
  const delta = b.mean - a.mean;
  return { n, mean: a.mean + (delta * b.n) / n, m2: a.m2 + b.m2 + (delta * delta * a.n * b.n) / n };
}

const unbiasedStd = (m: Moments): number => (m.n > 1 ? Math.sqrt(m.m2 / (m.n - 1)) : 0);

/** Extensions taken when a folder is given: audio files and the video containers `cavmae prepare` takes (ffmpeg reads all). */
export const MEDIA_EXTENSIONS = new Set([
  ...['.wav', '.flac', '.mp3', '.ogg', '.oga', '.opus', '.m4a', '.aac', '.wma', '.aif', '.aiff'],
  ...VIDEO_EXTENSIONS,
]);

const MAX_DIR_FILES = 10_000_000;

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && MEDIA_EXTENSIONS.has(extname(e.name).toLowerCase())) {
      if (out.length >= MAX_DIR_FILES) throw fileError(dir, `more than ${MAX_DIR_FILES} media files`);
      out.push(p);
    }
  }
}

/**
 * The audio inputs of `--data`: an official datafile or a manifest (JSON, read by src/data), or
 * a folder searched recursively for audio/video files (sorted by path).
 */
export async function listAudioInputs(dataPath: string): Promise<string[]> {
  let st;
  try {
    st = await stat(dataPath);
  } catch {
    throw fileError(dataPath, 'no such file or folder');
  }
  if (st.isDirectory()) {
    const files: string[] = [];
    await walk(resolve(dataPath), files);
    if (files.length === 0) throw fileError(dataPath, 'folder contains no audio or video files');
    return files;
  }
  const { loadDataset } = await import('../data/datafile.js');
  const items = loadDataset(dataPath).items;
  if (items.length === 0) throw fileError(dataPath, 'lists no items');
  return items.map((it) => it.audioPath);
}

export async function computeAudioStats(paths: string[], opts: AudioStatsOptions = {}): Promise<AudioStats> {
  const { targetLength = 1024, batchSize = 1000, timeoutMs } = opts;
  const concurrency = Math.max(1, opts.concurrency ?? Math.min(4, availableParallelism()));
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(targetLength) || targetLength < 1)
    throw new UserError(`target length must be a positive integer, got ${targetLength}`);

  // Moments of each clip, in dataset order (null for a failure); computed with a small pool.
  const perClip: (Moments | null)[] = new Array(paths.length).fill(null);
  const failed: { path: string; reason: string }[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= paths.length) return;
      try {
        const { samples } = await decodeAudio(paths[i], { timeoutMs });
        const { data, frames } = computeFbank(samples, 16000, paths[i]);
        perClip[i] = momentsOf(padOrCrop(data, frames, targetLength));
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        failed.push({ path: paths[i], reason: e.message });
      }
      opts.onProgress?.(++done, paths.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));

  const ok = perClip.filter((m): m is Moments => m !== null);
  if (ok.length === 0)
    throw new UserError(
      `no clip could be read (${failed.length} failed; first: ${failed[0]?.reason ?? 'none'})`,
    );
  let pooled: Moments = { n: 0, mean: 0, m2: 0 };
  let sumMeans = 0;
  let sumStds = 0;
  let batches = 0;
  for (let b = 0; b < ok.length; b += batchSize) {
    let batch: Moments = { n: 0, mean: 0, m2: 0 };
    for (const m of ok.slice(b, b + batchSize)) batch = merge(batch, m);
    sumMeans += batch.mean;
    sumStds += unbiasedStd(batch);
    batches++;
    pooled = merge(pooled, batch);
  }
  failed.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    mean: sumMeans / batches,
    std: sumStds / batches,
    pooledMean: pooled.mean,
    pooledStd: unbiasedStd(pooled),
    clips: ok.length,
    batches,
    batchSize,
    targetLength,
    failed,
  };
}
