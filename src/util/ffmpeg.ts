/**
 * The bridge to the system ffmpeg/ffprobe binaries (Debian package `ffmpeg`), used for every
 * container and codec we do not parse ourselves, and to the other command-line tools the project
 * drives (espeak-ng, flite, sox: `runTool`). Every call has a timeout and a bound on the
 * bytes it collects, so a hostile or broken file cannot hang or exhaust the process.
 */
import { spawn } from 'node:child_process';
import { UserError } from './errors.js';

export interface RunOptions {
  /** Kill the process after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** Refuse more than this many bytes of stdout (default 1 GiB). */
  maxBytes?: number;
  /** Data written to stdin (for in-memory inputs given as `-i pipe:0`). */
  input?: Uint8Array;
  /** File name shown in error messages. */
  what?: string;
  /** Debian package that provides the tool (named when it is missing; default ffmpeg). */
  apt?: string;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/** Runs an external tool with a time limit and a bound on its output; rejects with a UserError. */
export function runTool(tool: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const { timeoutMs = 60_000, maxBytes = 1 << 30, input, what = 'input', apt = 'ffmpeg' } = opts;
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      reject(new UserError(`${what}: cannot run ${tool} (${(e as Error).message}); install it with 'apt-get install ${apt}'`));
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let failed: UserError | undefined;
    const timer = setTimeout(() => {
      failed = new UserError(`${what}: ${tool} timed out after ${Math.round(timeoutMs / 1000)} s`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) {
        failed ??= new UserError(`${what}: ${tool} output exceeds ${maxBytes} bytes`);
        child.kill('SIGKILL');
        return;
      }
      chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += c.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' ? ` (${tool} is not installed: 'apt-get install ${apt}')` : '';
      reject(new UserError(`${what}: cannot run ${tool}: ${e.message}${hint}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (failed) return reject(failed);
      if (code !== 0) {
        const last = stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit code ${code}`;
        return reject(new UserError(`${what}: ${tool} failed: ${last}`));
      }
      resolve({ stdout: Buffer.concat(chunks), stderr });
    });
    child.stdin.on('error', () => {
      /* ffmpeg may close stdin early; the exit code tells */
    });
    if (input) child.stdin.end(input);
    else child.stdin.end();
  });
}

export function runFfmpeg(args: string[], opts?: RunOptions): Promise<RunResult> {
  return runTool('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], opts);
}

export function runFfprobe(args: string[], opts?: RunOptions): Promise<RunResult> {
  return runTool('ffprobe', ['-hide_banner', '-loglevel', 'error', ...args], opts);
}

export interface MediaInfo {
  durationSec: number | undefined;
  hasAudio: boolean;
  hasVideo: boolean;
  width?: number;
  height?: number;
  fps?: number;
  /** Frame count as reported by the container (may be missing or inaccurate). */
  nbFrames?: number;
  sampleRate?: number;
}

/** Stream summary via ffprobe (JSON output). */
export async function probeMedia(path: string, opts: RunOptions = {}): Promise<MediaInfo> {
  const { stdout } = await runFfprobe(
    ['-print_format', 'json', '-show_format', '-show_streams', path],
    { timeoutMs: 30_000, maxBytes: 16 << 20, what: path, ...opts },
  );
  let j: { format?: { duration?: string }; streams?: Record<string, unknown>[] };
  try {
    j = JSON.parse(stdout.toString());
  } catch {
    throw new UserError(`${path}: ffprobe returned unreadable output`);
  }
  const streams = j.streams ?? [];
  const v = streams.find((s) => s.codec_type === 'video' && (s.disposition as Record<string, number> | undefined)?.attached_pic !== 1);
  const a = streams.find((s) => s.codec_type === 'audio');
  const rate = (r: unknown): number | undefined => {
    if (typeof r !== 'string') return undefined;
    const [n, d] = r.split('/').map(Number);
    return d ? n / d : n || undefined;
  };
  const dur = Number(j.format?.duration);
  return {
    durationSec: Number.isFinite(dur) ? dur : undefined,
    hasAudio: !!a,
    hasVideo: !!v,
    width: v ? Number(v.width) : undefined,
    height: v ? Number(v.height) : undefined,
    fps: v ? (rate(v.avg_frame_rate) ?? rate(v.r_frame_rate)) : undefined,
    nbFrames: v && v.nb_frames !== undefined ? Number(v.nb_frames) : undefined,
    sampleRate: a ? Number(a.sample_rate) : undefined,
  };
}
