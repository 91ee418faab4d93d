/**
 * RIFF/WAVE parser for the sample formats the reference loader (torchaudio, sox backend) reads
 * itself: PCM 8-bit unsigned, 16/24/32-bit signed, IEEE float 32/64, plain or
 * WAVE_FORMAT_EXTENSIBLE, any channel count. Other codecs inside a WAV (mu-law, ADPCM, ...) are
 * reported as `nativelyDecodable: false` so that the caller can hand the file to ffmpeg.
 *
 * Contract:
 * - The file is untrusted: every chunk size is checked against the bytes present, chunk walking
 *   always advances, and nothing is allocated from a size field before it is bounded.
 * - Values equal torchaudio 0.13's `load()` (sox backend, normalize=True): uint8 (x - 128) / 128,
 *   int16 x / 2^15, int24 x / 2^23. 32-bit int and float samples pass through sox's 32-bit
 *   integer sample type and its float conversion, which rounds to multiples of 2^-24 and clips
 *   to [-1, 1]; we reproduce that bit for bit (`soxSampleToFloat`). NaN samples are an error.
 * - A data chunk of size 0xFFFFFFFF (streamed WAV, e.g. ffmpeg writing to a pipe) or an RF64
 *   file reads up to the end of the file. Any other data chunk that claims more bytes than the
 *   file holds is an error ("truncated"), never silently shortened.
 */
import { fileError } from '../util/errors.js';

export type WavSampleFormat = 'uint8' | 'int16' | 'int24' | 'int32' | 'float32' | 'float64';

export interface WavHeader {
  /** Format tag after resolving WAVE_FORMAT_EXTENSIBLE (1 = PCM, 3 = IEEE float, ...). */
  formatTag: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  blockAlign: number;
  /** Null when the codec is not one we decode ourselves (the caller uses ffmpeg). */
  sampleFormat: WavSampleFormat | null;
  /** Byte offset and length of the sample data inside the file. */
  dataOffset: number;
  dataBytes: number;
  /** Whole sample frames (one sample per channel) present. */
  frames: number;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
const MAX_CHANNELS = 1024;
const MIN_SAMPLE_RATE = 1000; // below this a header is broken, not audio we can use
const MAX_SAMPLE_RATE = 1_000_000;

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

/** True when the bytes start like a RIFF/RF64 WAVE file (big-endian RIFX included). */
export function isWav(bytes: Uint8Array): boolean {
  if (bytes.length < 12) return false;
  const id = fourcc(bytes, 0);
  return (id === 'RIFF' || id === 'RF64' || id === 'RIFX') && fourcc(bytes, 8) === 'WAVE';
}

function sampleFormatOf(tag: number, bits: number, bytesPerSample: number): WavSampleFormat | null {
  if (tag === WAVE_FORMAT_PCM) {
    // The container size decides the scale (a 20-bit sample in 3 bytes scales like 24-bit).
    if (bytesPerSample === 1 && bits <= 8) return 'uint8';
    if (bytesPerSample === 2 && bits <= 16) return 'int16';
    if (bytesPerSample === 3 && bits <= 24) return 'int24';
    if (bytesPerSample === 4 && bits <= 32) return 'int32';
    return null;
  }
  if (tag === WAVE_FORMAT_IEEE_FLOAT) {
    if (bytesPerSample === 4 && bits === 32) return 'float32';
    if (bytesPerSample === 8 && bits === 64) return 'float64';
    return null;
  }
  return null;
}

/**
 * Walks the chunks and validates the format. Throws a UserError naming `what` for a file that is
 * not a WAV or is corrupt. Formats we do not decode natively come back with sampleFormat null.
 */
export function parseWavHeader(bytes: Uint8Array, what = 'input'): WavHeader {
  const n = bytes.length;
  if (n === 0) throw fileError(what, 'empty file (0 bytes)');
  if (!isWav(bytes)) throw fileError(what, 'not a WAV file (no RIFF/WAVE header)');
  const riff = fourcc(bytes, 0);
  if (riff === 'RIFX') throw fileError(what, 'big-endian WAV (RIFX) is not supported');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let fmt: { tag: number; channels: number; rate: number; blockAlign: number; bits: number } | undefined;
  let dataOffset = -1;
  let dataBytes = 0;
  let rf64DataSize: number | undefined;
  let pos = 12;
  while (pos + 8 <= n) {
    const id = fourcc(bytes, pos);
    const size = dv.getUint32(pos + 4, true);
    const body = pos + 8;
    const remaining = n - body;
    if (id === 'data') {
      dataOffset = body;
      if (rf64DataSize !== undefined && size === 0xffffffff) {
        dataBytes = Math.min(rf64DataSize, remaining);
        if (rf64DataSize > remaining)
          throw fileError(
            what,
            `truncated WAV: data chunk declares ${rf64DataSize} bytes, only ${remaining} present`,
          );
      } else if (size === 0xffffffff) {
        dataBytes = remaining; // streamed WAV: size unknown when the header was written
      } else if (size > remaining) {
        throw fileError(what, `truncated WAV: data chunk declares ${size} bytes, only ${remaining} present`);
      } else {
        dataBytes = size;
      }
      if (fmt) break;
      // fmt after data (legal, rare): keep walking past the data.
      pos = body + dataBytes + (dataBytes & 1);
      continue;
    }
    if (size > remaining) {
      throw fileError(
        what,
        `corrupt or truncated WAV: chunk '${id.replace(/[^\x20-\x7e]/g, '?')}' at byte ${pos} declares ${size} bytes, only ${remaining} present`,
      );
    }
    if (id === 'fmt ') {
      if (size < 16) throw fileError(what, `corrupt WAV: fmt chunk is ${size} bytes (< 16)`);
      let tag = dv.getUint16(body, true);
      const channels = dv.getUint16(body + 2, true);
      const rate = dv.getUint32(body + 4, true);
      const blockAlign = dv.getUint16(body + 12, true);
      const bits = dv.getUint16(body + 14, true);
      if (tag === WAVE_FORMAT_EXTENSIBLE) {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16): the GUID starts with the tag.
        if (size < 40)
          throw fileError(what, `corrupt WAV: WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes (< 40)`);
        tag = dv.getUint16(body + 24, true);
      }
      fmt = { tag, channels, rate, blockAlign, bits };
    } else if (id === 'ds64' && riff === 'RF64') {
      if (size < 16) throw fileError(what, `corrupt RF64: ds64 chunk is ${size} bytes (< 16)`);
      const lo = dv.getUint32(body + 8, true);
      const hi = dv.getUint32(body + 12, true);
      rf64DataSize = hi * 2 ** 32 + lo;
    }
    pos = body + size + (size & 1); // chunks are padded to an even size
  }
  if (!fmt) throw fileError(what, 'corrupt WAV: no fmt chunk');
  if (dataOffset < 0) throw fileError(what, 'corrupt or truncated WAV: no data chunk');
  const { tag, channels, rate, blockAlign, bits } = fmt;
  if (channels < 1 || channels > MAX_CHANNELS) throw fileError(what, `corrupt WAV: ${channels} channels`);
  if (rate < MIN_SAMPLE_RATE || rate > MAX_SAMPLE_RATE)
    throw fileError(what, `corrupt WAV: implausible sample rate ${rate} Hz`);
  if (blockAlign < 1) throw fileError(what, 'corrupt WAV: block align 0');
  let sampleFormat: WavSampleFormat | null = null;
  if (tag === WAVE_FORMAT_PCM || tag === WAVE_FORMAT_IEEE_FLOAT) {
    if (blockAlign % channels !== 0) {
      throw fileError(
        what,
        `corrupt WAV: block align ${blockAlign} is not a multiple of ${channels} channels`,
      );
    }
    const bytesPerSample = blockAlign / channels;
    if (bits < 1 || bits > 8 * bytesPerSample) {
      throw fileError(what, `corrupt WAV: ${bits} bits per sample in ${bytesPerSample}-byte samples`);
    }
    sampleFormat = sampleFormatOf(tag, bits, bytesPerSample);
    if (!sampleFormat)
      throw fileError(
        what,
        `unsupported WAV sample format: tag ${tag}, ${bits} bits in ${bytesPerSample} bytes`,
      );
  }
  return {
    formatTag: tag,
    channels,
    sampleRate: rate,
    bitsPerSample: bits,
    blockAlign,
    sampleFormat,
    dataOffset,
    dataBytes,
    frames: Math.floor(dataBytes / blockAlign),
  };
}

const SOX_SAMPLE_MAX = 2147483647;
const SOX_SAMPLE_MIN = -2147483648;

/** sox's SOX_FLOAT_64BIT_TO_SAMPLE: scale by 2^31, round half away from zero, clip. */
export function floatToSoxSample(x: number): number {
  const t = x * (SOX_SAMPLE_MAX + 1);
  if (t < 0) return t <= SOX_SAMPLE_MIN - 0.5 ? SOX_SAMPLE_MIN : Math.trunc(t - 0.5);
  return t >= SOX_SAMPLE_MAX + 0.5 ? SOX_SAMPLE_MAX : Math.trunc(t + 0.5);
}

/** sox's SOX_SAMPLE_TO_FLOAT_32BIT: round to a multiple of 128 (2^-24 after scaling), clip at +1. */
export function soxSampleToFloat(s: number): number {
  if (s > SOX_SAMPLE_MAX - 64) return 1;
  return ((s + 64) & ~127) / 2147483648;
}

/**
 * Decodes one channel (default 0, as the reference's fbank reads) of a natively decodable WAV to
 * float32 with torchaudio's scaling.
 */
export function decodeWav(
  bytes: Uint8Array,
  opts: { what?: string; channel?: number } = {},
): { samples: Float32Array; sampleRate: number; channels: number; header: WavHeader } {
  const what = opts.what ?? 'input';
  const h = parseWavHeader(bytes, what);
  const channel = opts.channel ?? 0;
  if (!h.sampleFormat)
    throw fileError(
      what,
      `WAV codec ${h.formatTag} is not decoded natively (use decodeAudio, which calls ffmpeg)`,
    );
  if (channel < 0 || channel >= h.channels)
    throw fileError(what, `channel ${channel} requested, file has ${h.channels}`);
  const out = new Float32Array(h.frames);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stride = h.blockAlign;
  let p = h.dataOffset + channel * (stride / h.channels);
  switch (h.sampleFormat) {
    case 'uint8':
      for (let i = 0; i < h.frames; i++, p += stride) out[i] = (bytes[p] - 128) / 128;
      break;
    case 'int16':
      for (let i = 0; i < h.frames; i++, p += stride) out[i] = dv.getInt16(p, true) / 32768;
      break;
    case 'int24':
      for (let i = 0; i < h.frames; i++, p += stride) {
        const v = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16);
        out[i] = ((v << 8) >> 8) / 8388608; // sign-extend 24 -> 32 bits
      }
      break;
    case 'int32':
      for (let i = 0; i < h.frames; i++, p += stride) out[i] = soxSampleToFloat(dv.getInt32(p, true));
      break;
    case 'float32':
    case 'float64': {
      const f64 = h.sampleFormat === 'float64';
      for (let i = 0; i < h.frames; i++, p += stride) {
        const x = f64 ? dv.getFloat64(p, true) : dv.getFloat32(p, true);
        if (Number.isNaN(x)) throw fileError(what, `NaN sample at frame ${i}`);
        out[i] = soxSampleToFloat(floatToSoxSample(x));
      }
      break;
    }
  }
  return { samples: out, sampleRate: h.sampleRate, channels: h.channels, header: h };
}

/** PCM16 mono WAV bytes (little-endian RIFF); samples clipped to [-1, 1] and rounded (x * 32767). */
export function encodeWavPcm16(samples: Float32Array, sampleRate = 16000): Uint8Array {
  const n = samples.length;
  const buf = Buffer.alloc(44 + 2 * n);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + 2 * n, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
    buf.writeInt16LE(v, 44 + 2 * i);
  }
  return buf;
}
