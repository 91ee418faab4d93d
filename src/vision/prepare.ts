/**
 * `cavmae prepare`: turn a folder (or list) of videos into the reference's on-disk dataset.
 *
 * Contract:
 * - Per video `<out>/audio/<video_id>.wav` (16 kHz mono PCM16, channel 0: the reference's
 *   `ffmpeg -vn -ar 16000` + `sox remix 1`, sample-identical) and `<out>/frames/frame_<i>/<video_id>.jpg`
 *   (frames.ts), then `<out>/data.json` = `{"data": [{wav, video_id, video_path, labels}]}` with
 *   absolute paths, in input order.
 * - Every output file is written atomically, so "all outputs exist" means "item finished": a rerun
 *   skips finished items (resume) and redoes the rest.
 * - A failing video (corrupt, empty, no audio track — the reference skips those — no video
 *   stream, timeout) never aborts the batch: it is listed with its reason in
 *   `<out>/failures.jsonl` and in the returned summary.
 */
import { existsSync, readdirSync, statSync, unlinkSync, readFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { probeMedia, runFfmpeg } from '../util/ffmpeg.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  FRAME_COUNTS,
  framePath,
  tidyToolError,
  videoIdOf,
  writeFrames,
  type FrameScheme,
} from './frames.js';

export const VIDEO_EXTENSIONS = new Set([
  '.mp4',
  '.m4v',
  '.mkv',
  '.webm',
  '.avi',
  '.mov',
  '.flv',
  '.mpg',
  '.mpeg',
  '.ts',
  '.mts',
  '.wmv',
  '.3gp',
  '.ogv',
  '.ogg',
]);

/** Upper bound on the number of videos one list or folder may name. */
const MAX_INPUTS = 10_000_000;
const MAX_LIST_BYTES = 1 << 30;

export interface DatafileEntry {
  wav: string;
  video_id: string;
  video_path: string;
  labels: string;
}

export interface PrepareFailure {
  video: string;
  error: string;
}

export interface PrepareSummary {
  total: number;
  prepared: number;
  skipped: number;
  failed: number;
  failures: PrepareFailure[];
  dataFile: string;
  failuresFile: string;
  entries: DatafileEntry[];
}

export interface PrepareProgress {
  done: number;
  total: number;
  failed: number;
  skipped: number;
  video: string;
}

export interface PrepareOptions {
  out: string;
  /** Frames per clip: 10 (CAV-MAE) or 16 (CAV-MAE Sync). */
  frames?: number;
  scheme?: FrameScheme;
  /** Videos processed concurrently (each runs its own ffmpeg processes). */
  jobs?: number;
  /** video_id -> labels string (comma-separated label ids). Missing ids get ''. */
  labels?: Map<string, string>;
  /** ffmpeg timeout per call (default 120 s). */
  timeoutMs?: number;
  onProgress?: (p: PrepareProgress) => void;
}

function walkVideos(dir: string, out: string[]): void {
  const names = readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const d of names) {
    if (d.name.startsWith('.')) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) walkVideos(p, out);
    else if (VIDEO_EXTENSIONS.has(extname(d.name).toLowerCase())) out.push(p);
    if (out.length > MAX_INPUTS) throw fileError(dir, `more than ${MAX_INPUTS} videos`);
  }
}

/**
 * The videos named by a folder (searched recursively for video extensions, sorted), a single
 * video file (by extension), or a list file (one path per line, or the first column of a csv as the reference's list; relative paths
 * are relative to the list's folder; blank lines and lines starting with '#' are ignored).
 */
export function listVideos(dirOrList: string): string[] {
  let st;
  try {
    st = statSync(dirOrList);
  } catch {
    throw fileError(dirOrList, 'not found');
  }
  const out: string[] = [];
  if (st.isDirectory()) {
    walkVideos(resolve(dirOrList), out);
    if (out.length === 0)
      throw fileError(dirOrList, `no video files (${[...VIDEO_EXTENSIONS].join(' ')}) in this folder`);
    return out;
  }
  if (!st.isFile()) throw fileError(dirOrList, 'not a folder or a list file');
  if (VIDEO_EXTENSIONS.has(extname(dirOrList).toLowerCase())) return [resolve(dirOrList)];
  if (st.size > MAX_LIST_BYTES) throw fileError(dirOrList, 'list file is too large');
  const text = readFileSync(dirOrList, 'utf8');
  if (text.includes('\u0000')) throw fileError(dirOrList, 'not a text list of video paths (binary content)');
  const base = dirname(resolve(dirOrList));
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const first = parseCsvLine(line)[0]?.trim() ?? '';
    if (!first) continue;
    out.push(isAbsolute(first) ? first : resolve(base, first));
    if (out.length > MAX_INPUTS) throw fileError(dirOrList, `more than ${MAX_INPUTS} entries`);
  }
  if (out.length === 0) throw fileError(dirOrList, 'the list names no videos');
  return out;
}

/** One csv record (RFC 4180 quoting, no embedded newlines). */
export function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = false;
      } else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      fields.push(cur);
      cur = '';
    } else cur += ch;
  }
  fields.push(cur);
  return fields;
}

/**
 * Labels csv: `video,labels` per line, where video is a video_id or a file name and labels is a
 * (quoted) comma-separated list of label ids, e.g. `abc123,"/m/068hy,/m/07q6cd_"`. A header
 * row whose first field is `video`, `video_id` or `id` is skipped.
 */
export function readLabelsCsv(path: string): Map<string, string> {
  let text: string;
  try {
    if (statSync(path).size > MAX_LIST_BYTES) throw fileError(path, 'labels file is too large');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw fileError(path, 'cannot read the labels file');
  }
  const map = new Map<string, string>();
  let lineNo = 0;
  for (const raw of text.split(/\r?\n/)) {
    lineNo++;
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const f = parseCsvLine(line).map((s) => s.trim());
    if (lineNo === 1 && /^(video|video_id|id|ytid|file)$/i.test(f[0])) continue;
    if (f.length < 2) throw fileError(path, `line ${lineNo}: expected "video,labels"`);
    const labels = f.slice(1).filter(Boolean).join(',');
    map.set(videoIdOf(f[0]), labels);
  }
  return map;
}

export function datafilePaths(out: string): {
  dataFile: string;
  failuresFile: string;
  audioDir: string;
  framesDir: string;
} {
  const root = resolve(out);
  return {
    dataFile: join(root, 'data.json'),
    failuresFile: join(root, 'failures.jsonl'),
    audioDir: join(root, 'audio'),
    framesDir: join(root, 'frames'),
  };
}

/** 16 kHz mono PCM16 WAV of channel 0, written atomically to `wavPath`. */
export async function extractAudioWav(
  videoPath: string,
  wavPath: string,
  timeoutMs = 120_000,
): Promise<void> {
  mkdirSync(dirname(wavPath), { recursive: true });
  const tmp = join(dirname(wavPath), `.${videoIdOf(wavPath)}.${process.pid}.${Date.now()}.wav.tmp`);
  try {
    // pan keeps channel 0 unchanged; resampling is per channel, so this equals the reference's
    // resample-then-`sox remix 1` sample for sample. bitexact flags keep the header minimal.
    await runFfmpeg(
      [
        '-y',
        '-i',
        videoPath,
        '-vn',
        '-map',
        '0:a:0',
        '-af',
        'pan=mono|c0=c0',
        '-ar',
        '16000',
        '-c:a',
        'pcm_s16le',
        '-map_metadata',
        '-1',
        '-flags',
        '+bitexact',
        '-fflags',
        '+bitexact',
        '-f',
        'wav',
        tmp,
      ],
      { timeoutMs, maxBytes: 1 << 20, what: videoPath },
    );
    const st = statSync(tmp);
    if (st.size <= 44) throw fileError(videoPath, 'the audio track decodes to no samples');
    renameSync(tmp, wavPath);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* renamed or never written */
    }
  }
}

function isDone(wav: string, framesDir: string, videoId: string, frames: number): boolean {
  if (!existsSync(wav)) return false;
  for (let i = 0; i < frames; i++) if (!existsSync(framePath(framesDir, videoId, i))) return false;
  return true;
}

async function prepareOne(
  video: string,
  wav: string,
  framesDir: string,
  videoId: string,
  opts: PrepareOptions,
): Promise<void> {
  let st;
  try {
    st = statSync(video);
  } catch {
    throw fileError(video, 'file not found');
  }
  if (!st.isFile()) throw fileError(video, 'not a regular file');
  if (st.size === 0) throw fileError(video, 'file is empty');
  const info = await probeMedia(video, { timeoutMs: Math.min(opts.timeoutMs ?? 120_000, 30_000) });
  if (!info.hasVideo) throw fileError(video, 'no video stream');
  if (!info.hasAudio) throw fileError(video, 'no audio track (the reference skips such videos)');
  await extractAudioWav(video, wav, opts.timeoutMs);
  await writeFrames(video, framesDir, {
    count: opts.frames ?? FRAME_COUNTS.cavmae,
    scheme: opts.scheme,
    videoId,
    timeoutMs: opts.timeoutMs,
  });
}

/** Prepares every video; never throws for a single bad video. */
export async function prepareVideos(videos: string[], opts: PrepareOptions): Promise<PrepareSummary> {
  const frames = opts.frames ?? FRAME_COUNTS.cavmae;
  if (!(Number.isInteger(frames) && frames > 0 && frames <= 1000))
    throw new OptionError((n) => `${n('frames')} must be an integer in [1, 1000], got ${frames}`);
  const jobs = opts.jobs ?? 2;
  if (!(Number.isInteger(jobs) && jobs > 0 && jobs <= 256))
    throw new OptionError((n) => `${n('jobs')} must be an integer in [1, 256], got ${jobs}`);
  const { dataFile, failuresFile, audioDir, framesDir } = datafilePaths(opts.out);
  try {
    mkdirSync(audioDir, { recursive: true });
    mkdirSync(framesDir, { recursive: true });
  } catch (e) {
    throw fileError(opts.out, `cannot create the output folder (${(e as Error).message})`);
  }

  // Outputs are named by video_id, so two inputs with the same id would overwrite each other.
  const firstById = new Map<string, number>();
  const results: (DatafileEntry | PrepareFailure | undefined)[] = new Array(videos.length);
  let done = 0;
  let failed = 0;
  let skipped = 0;
  let prepared = 0;
  let next = 0;
  const finish = (i: number, r: DatafileEntry | PrepareFailure): void => {
    results[i] = r;
    done++;
    if ('error' in r) failed++;
    opts.onProgress?.({ done, total: videos.length, failed, skipped, video: videos[i] });
  };
  const worker = async (): Promise<void> => {
    while (next < videos.length) {
      const i = next++;
      const video = resolve(videos[i]);
      const videoId = videoIdOf(video);
      const prev = firstById.get(videoId);
      if (prev !== undefined) {
        finish(i, { video, error: `video_id ${videoId} already used by ${resolve(videos[prev])}` });
        continue;
      }
      firstById.set(videoId, i);
      const wav = join(audioDir, `${videoId}.wav`);
      const entry: DatafileEntry = {
        wav,
        video_id: videoId,
        video_path: framesDir,
        labels: opts.labels?.get(videoId) ?? '',
      };
      if (isDone(wav, framesDir, videoId, frames)) {
        skipped++;
        finish(i, entry);
        continue;
      }
      try {
        await prepareOne(video, wav, framesDir, videoId, opts);
        prepared++;
        finish(i, entry);
      } catch (err) {
        const e = tidyToolError(err, video);
        const msg = e instanceof UserError ? e.message : `${video}: ${(e as Error)?.message ?? String(e)}`;
        finish(i, { video, error: msg });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, videos.length) }, worker));

  const entries = results.filter((r): r is DatafileEntry => !!r && !('error' in r));
  const failures = results.filter((r): r is PrepareFailure => !!r && 'error' in r);
  writeFileAtomic(dataFile, `${JSON.stringify({ data: entries }, null, 1)}\n`);
  writeFileAtomic(failuresFile, failures.map((f) => `${JSON.stringify(f)}\n`).join(''));
  return { total: videos.length, prepared, skipped, failed, failures, dataFile, failuresFile, entries };
}
