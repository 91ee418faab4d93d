/**
 * Any audio (or video soundtrack) -> 16 kHz mono float32 samples, channel 0, torchaudio's scale.
 *
 * Contract:
 * - 16 kHz WAV in a sample format we parse (wav.ts) is decoded natively, channel 0, exactly as
 *   torchaudio.load reads it.
 * - Everything else (WAV at another rate or with another codec, flac, ogg, mp3, m4a, mp4, webm,
 *   mkv, ...) goes through the system ffmpeg, reproducing the official extraction
 *   (src/preprocess/extract_audio.py): `ffmpeg -i IN -vn -ar 16000 OUT.wav` (16-bit PCM, every
 *   channel resampled), then `sox OUT.wav remix 1` (channel 0). We ask ffmpeg for the same
 *   16-bit WAV on a pipe and take channel 0 ourselves, so the samples equal the official
 *   pipeline's bit for bit (test/audio/decode.test.ts checks this).
 * - Every failure is a UserError naming the input: missing, empty, corrupt, truncated, no audio
 *   stream, no samples, ffmpeg failure or timeout.
 */
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileError, UserError } from '../util/errors.js';
import { runFfmpeg } from '../util/ffmpeg.js';
import { decodeWav, isWav, parseWavHeader } from './wav.js';

export const SAMPLE_RATE = 16000;

export interface DecodeAudioOptions {
  /** Name used in error messages (defaults to the path, or "input" for bytes). */
  what?: string;
  /** ffmpeg time limit in milliseconds (default 120 s). */
  timeoutMs?: number;
}

export interface DecodedAudio {
  samples: Float32Array;
  sampleRate: 16000;
}

/** WAV files up to this size are read into memory and parsed natively. */
const MAX_NATIVE_WAV_BYTES = 1 << 30;
/** 16-bit mono 16 kHz output cap from ffmpeg: 1 GiB = 9.3 hours; longer input is refused. */
const MAX_FFMPEG_OUTPUT_BYTES = 1 << 30;
const DEFAULT_TIMEOUT_MS = 120_000;

function finish(samples: Float32Array, what: string): DecodedAudio {
  if (samples.length === 0) throw fileError(what, 'contains no audio samples');
  return { samples, sampleRate: SAMPLE_RATE };
}

/** Bytes of a natively decodable 16 kHz WAV, or null when ffmpeg must handle them. */
function nativeWav(bytes: Uint8Array, what: string): Float32Array | null {
  if (!isWav(bytes)) return null;
  const header = parseWavHeader(bytes, what); // throws a clear error for corrupt files
  if (!header.sampleFormat || header.sampleRate !== SAMPLE_RATE) return null;
  if (header.frames === 0) throw fileError(what, 'WAV file contains no audio samples');
  return decodeWav(bytes, { what }).samples;
}

async function readHead(path: string, n: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Translates ffmpeg's last error line into a sentence a user understands. */
function explainFfmpegError(e: unknown, path: string, what: string): Error {
  if (!(e instanceof UserError)) return e as Error;
  const marker = 'ffmpeg failed: ';
  const at = e.message.indexOf(marker);
  if (at < 0) return e; // timeout, output too large, ffmpeg missing: already clear
  let detail = e.message.slice(at + marker.length);
  if (detail.startsWith(`file:${path}: `)) detail = detail.slice(`file:${path}: `.length);
  if (/matches no streams|does not contain any stream|trailing '\?' to the map/i.test(detail))
    return fileError(what, 'has no audio stream');
  if (
    /Invalid data found|End of file|Invalid argument|moov atom not found|could not find codec parameters/i.test(
      detail,
    )
  ) {
    return fileError(what, `not a readable audio or video file (ffmpeg: ${detail})`);
  }
  return fileError(what, `ffmpeg could not decode it: ${detail}`);
}

async function decodeWithFfmpeg(path: string, what: string, timeoutMs: number): Promise<Float32Array> {
  let stdout: Buffer;
  try {
    ({ stdout } = await runFfmpeg(
      // file: and the whitelist stop a crafted name or playlist from reaching other protocols
      [
        '-protocol_whitelist',
        'file',
        '-i',
        `file:${path}`,
        '-map',
        '0:a:0',
        '-vn',
        '-sn',
        '-dn',
        '-ar',
        String(SAMPLE_RATE),
        '-c:a',
        'pcm_s16le',
        '-f',
        'wav',
        'pipe:1',
      ],
      { timeoutMs, maxBytes: MAX_FFMPEG_OUTPUT_BYTES, what },
    ));
  } catch (e) {
    throw explainFfmpegError(e, path, what);
  }
  const bytes = new Uint8Array(stdout.buffer, stdout.byteOffset, stdout.byteLength);
  const header = parseWavHeader(bytes, `${what} (ffmpeg output)`);
  if (header.frames === 0) throw fileError(what, 'contains no audio samples');
  if (header.sampleRate !== SAMPLE_RATE || header.sampleFormat !== 'int16') {
    throw fileError(
      what,
      `ffmpeg returned ${header.sampleRate} Hz ${header.sampleFormat ?? 'codec ' + header.formatTag}, expected 16 kHz int16`,
    );
  }
  return decodeWav(bytes, { what }).samples;
}

/**
 * Decodes a file path or in-memory bytes to 16 kHz mono float32 (channel 0 of the source).
 */
export async function decodeAudio(
  input: string | Uint8Array,
  opts: DecodeAudioOptions = {},
): Promise<DecodedAudio> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof input !== 'string') {
    const what = opts.what ?? 'input';
    if (input.length === 0) throw fileError(what, 'empty input (0 bytes)');
    const native = nativeWav(input, what);
    if (native) return finish(native, what);
    // ffmpeg needs a seekable input for containers such as mp4 (index at the end): use a file
    const dir = await mkdtemp(join(tmpdir(), 'cavmae-audio-'));
    try {
      const tmp = join(dir, 'input');
      await writeFile(tmp, input);
      return finish(await decodeWithFfmpeg(tmp, what, timeoutMs), what);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const path = input;
  const what = opts.what ?? path;
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw fileError(
      what,
      code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (e as Error).message})`,
    );
  }
  if (st.isDirectory()) throw fileError(what, 'is a directory, not a media file');
  if (st.isFile()) {
    if (st.size === 0) throw fileError(what, 'empty file (0 bytes)');
    const head = await readHead(path, 12);
    if (isWav(head) && st.size <= MAX_NATIVE_WAV_BYTES) {
      const { readFile } = await import('node:fs/promises');
      const bytes = await readFile(path);
      const native = nativeWav(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), what);
      if (native) return finish(native, what);
    }
  }
  // Not a regular file (a FIFO, a device) or not a natively decodable WAV: ffmpeg reads it,
  // under the time limit.
  return finish(await decodeWithFfmpeg(path, what, timeoutMs), what);
}
