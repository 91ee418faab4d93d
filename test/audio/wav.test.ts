/**
 * RIFF/WAVE parser: sample formats and scaling as torchaudio 0.13 loads them (golden files made by
 * scripts/golden/audio_fbank.py), chunk walking, and hostile or broken headers (clear errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeWav, parseWavHeader, isWav } from '../../src/audio/wav.js';
import { floatToSoxSample, soxSampleToFloat } from '../../src/audio/wav.js';
import { UserError } from '../../src/util/errors.js';
import { repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'audio');

interface WavSpec {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  blockAlign?: number;
  data: Uint8Array;
  before?: [string, Uint8Array][];
  after?: [string, Uint8Array][];
  dataSize?: number;
  riff?: 'RIFF' | 'RF64';
  fmtFirst?: boolean;
}

function chunk(id: string, body: Uint8Array, declared = body.length): Uint8Array {
  const pad = body.length % 2;
  const out = new Uint8Array(8 + body.length + pad);
  out.set(Buffer.from(id, 'latin1'), 0);
  new DataView(out.buffer).setUint32(4, declared, true);
  out.set(body, 8);
  return out;
}

function makeWav(s: WavSpec): Uint8Array {
  const { tag = 1, channels = 1, rate = 16000, bits = 16 } = s;
  const blockAlign = s.blockAlign ?? (channels * bits) / 8;
  const fmt = new Uint8Array(16);
  const dv = new DataView(fmt.buffer);
  dv.setUint16(0, tag, true);
  dv.setUint16(2, channels, true);
  dv.setUint32(4, rate, true);
  dv.setUint32(8, rate * blockAlign, true);
  dv.setUint16(12, blockAlign, true);
  dv.setUint16(14, bits, true);
  const fmtChunk = chunk('fmt ', fmt);
  const dataChunk = chunk('data', s.data, s.dataSize ?? s.data.length);
  const parts = [
    ...(s.fmtFirst === false ? [] : [fmtChunk]),
    ...(s.before ?? []).map(([id, b]) => chunk(id, b)),
    dataChunk,
    ...(s.fmtFirst === false ? [fmtChunk] : []),
    ...(s.after ?? []).map(([id, b]) => chunk(id, b)),
  ];
  const body = Buffer.concat([Buffer.from('WAVE'), ...parts]);
  const head = Buffer.alloc(8);
  head.write(s.riff ?? 'RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return new Uint8Array(Buffer.concat([head, body]));
}

const int16 = (...v: number[]) => new Uint8Array(Int16Array.from(v).buffer);

function throwsUserError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    assert.match(e.message, re);
    return true;
  });
}

test('fixture formats parse with the right header fields', () => {
  const cases: [string, string, number, number][] = [
    ['pcm_u8.wav', 'uint8', 1, 8],
    ['pcm_s16.wav', 'int16', 1, 16],
    ['pcm_s24_ext.wav', 'int24', 1, 24],
    ['pcm_s32.wav', 'int32', 1, 32],
    ['float32_clip.wav', 'float32', 1, 32],
    ['float64.wav', 'float64', 1, 64],
    ['stereo_s16.wav', 'int16', 2, 16],
    ['rate8k_s16.wav', 'int16', 1, 16],
    ['rate44k_stereo_s16.wav', 'int16', 2, 16],
  ];
  for (const [file, format, channels, bits] of cases) {
    const h = parseWavHeader(readFileSync(join(dir, file)), file);
    assert.equal(h.sampleFormat, format, file);
    assert.equal(h.channels, channels, file);
    assert.equal(h.bitsPerSample, bits, file);
  }
  // pcm_s16.wav carries an odd-sized LIST chunk (5 bytes + pad) and a 'junk' chunk before data
  const h = parseWavHeader(readFileSync(join(dir, 'pcm_s16.wav')));
  assert.equal(h.frames, 5120);
  assert.equal(h.dataOffset, 12 + 24 + 14 + 12 + 8);
});

test('sample scaling equals torchaudio.load (uint8, int16, int24, int32 and float via sox rounding)', () => {
  const u8 = decodeWav(makeWav({ bits: 8, data: new Uint8Array([0, 128, 255, 1]) })).samples;
  assert.deepEqual([...u8], [-1, 0, 0.9921875, -0.9921875]); // values torchaudio returned
  const s16 = decodeWav(makeWav({ data: int16(-32768, 0, 32767, 1) })).samples;
  assert.deepEqual([...s16], [-1, 0, 32767 / 32768, 1 / 32768]);
  const s24 = decodeWav(
    makeWav({ bits: 24, data: new Uint8Array([0, 0, 0x80, 0xff, 0xff, 0x7f, 1, 0, 0]) }),
  ).samples;
  assert.deepEqual([...s24], [-1, Math.fround(8388607 / 8388608), Math.fround(1 / 8388608)]);
  const s32 = decodeWav(
    makeWav({
      bits: 32,
      data: new Uint8Array(Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 1, 12345678]).buffer),
    }),
  ).samples;
  assert.deepEqual([...s32], [-1, 1, 0, Math.fround(0.005748927593231201)]); // torchaudio's values
  const f32 = decodeWav(
    makeWav({
      tag: 3,
      bits: 32,
      data: new Uint8Array(Float32Array.from([0.5, 1.5, -2, 1e-9, 0.123456789]).buffer),
    }),
  ).samples;
  assert.deepEqual([...f32], [0.5, 1, -1, 0, Math.fround(0.12345677614212036)]);
  const f64 = decodeWav(
    makeWav({
      tag: 3,
      bits: 64,
      data: new Uint8Array(Float64Array.from([0.5, 1.5, -2, 1e-9, 0.123456789]).buffer),
    }),
  ).samples;
  assert.deepEqual([...f64], [0.5, 1, -1, 0, Math.fround(0.12345677614212036)]);
  assert.equal(floatToSoxSample(-1), -(2 ** 31));
  assert.equal(soxSampleToFloat(2 ** 31 - 64), 1);
  throwsUserError(
    () =>
      decodeWav(makeWav({ tag: 3, bits: 32, data: new Uint8Array(Float32Array.from([0, NaN]).buffer) }), {
        what: 'nan.wav',
      }),
    /nan\.wav: NaN sample at frame 1/,
  );
});

test('channel 0 of interleaved multi-channel data; other channels on request', () => {
  const wav = makeWav({ channels: 3, data: int16(1, 2, 3, 4, 5, 6) });
  assert.deepEqual(
    [...decodeWav(wav).samples].map((v) => v * 32768),
    [1, 4],
  );
  assert.deepEqual(
    [...decodeWav(wav, { channel: 2 }).samples].map((v) => v * 32768),
    [3, 6],
  );
  throwsUserError(
    () => decodeWav(wav, { channel: 3, what: 'x.wav' }),
    /x\.wav: channel 3 requested, file has 3/,
  );
});

test('chunk walking: unknown and odd-sized chunks skipped, fmt after data, trailing chunks, partial last frame', () => {
  const data = int16(7, 8, 9);
  const a = makeWav({
    data,
    before: [
      ['LIST', new Uint8Array(5)],
      ['bext', new Uint8Array(3)],
    ],
    after: [['id3 ', new Uint8Array(9)]],
  });
  assert.deepEqual(
    [...decodeWav(a).samples].map((v) => v * 32768),
    [7, 8, 9],
  );
  const b = makeWav({ data, fmtFirst: false });
  assert.deepEqual(
    [...decodeWav(b).samples].map((v) => v * 32768),
    [7, 8, 9],
  );
  const c = makeWav({ data: new Uint8Array([1, 0, 2, 0, 3]) }); // 2.5 frames: the half frame is dropped
  assert.equal(decodeWav(c).samples.length, 2);
});

test('streamed WAV (data size 0xFFFFFFFF) reads to the end of the file; RF64 uses ds64', () => {
  const streamed = makeWav({ data: int16(1, 2, 3), dataSize: 0xffffffff });
  assert.equal(parseWavHeader(streamed).frames, 3);
  const ds64 = new Uint8Array(28);
  new DataView(ds64.buffer).setUint32(8, 4, true); // data size 4 bytes = 2 frames
  const rf64 = makeWav({ riff: 'RF64', data: int16(1, 2, 3), dataSize: 0xffffffff, before: [] });
  // insert the ds64 chunk right after "WAVE"
  const withDs64 = new Uint8Array(
    Buffer.concat([rf64.subarray(0, 12), chunk('ds64', ds64), rf64.subarray(12)]),
  );
  assert.equal(parseWavHeader(withDs64).frames, 2);
});

test('corrupt, truncated and hostile headers are clear UserErrors naming the file', () => {
  const good = makeWav({ data: int16(1, 2, 3, 4) });
  throwsUserError(() => parseWavHeader(new Uint8Array(0), 'e.wav'), /e\.wav: empty file/);
  throwsUserError(
    () => parseWavHeader(new Uint8Array(Buffer.from('hello world, not a wav')), 't.wav'),
    /t\.wav: not a WAV file/,
  );
  throwsUserError(
    () => parseWavHeader(good.subarray(0, 30), 'h.wav'),
    /h\.wav: corrupt or truncated WAV: chunk 'fmt ' .* declares 16 bytes, only \d+ present/,
  );
  throwsUserError(() => parseWavHeader(good.subarray(0, 12), 'n.wav'), /n\.wav: corrupt WAV: no fmt chunk/);
  throwsUserError(
    () => parseWavHeader(good.subarray(0, 36), 'd.wav'),
    /d\.wav: corrupt or truncated WAV: no data chunk/,
  );
  throwsUserError(
    () => parseWavHeader(good.subarray(0, good.length - 3), 'cut.wav'),
    /cut\.wav: truncated WAV: data chunk declares 8 bytes, only 5 present/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ data: int16(1), dataSize: 1 << 30 }), 'big.wav'),
    /big\.wav: truncated WAV/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ channels: 0, blockAlign: 2, data: int16(1) }), 'c.wav'),
    /c\.wav: corrupt WAV: 0 channels/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ rate: 0, data: int16(1) }), 'r.wav'),
    /r\.wav: corrupt WAV: implausible sample rate 0 Hz/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ rate: 999, data: int16(1) }), 'r.wav'),
    /r\.wav: corrupt WAV: implausible sample rate 999 Hz/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ rate: 2_000_000, data: int16(1) }), 'r.wav'),
    /r\.wav: corrupt WAV: implausible sample rate 2000000 Hz/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ channels: 2, blockAlign: 3, data: int16(1) }), 'b.wav'),
    /b\.wav: corrupt WAV: block align 3 is not a multiple of 2 channels/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ bits: 16, blockAlign: 5, data: int16(1) }), 'f.wav'),
    /f\.wav: unsupported WAV sample format: tag 1, 16 bits in 5 bytes/,
  );
  throwsUserError(
    () => parseWavHeader(makeWav({ bits: 40, blockAlign: 2, data: int16(1) }), 'x.wav'),
    /x\.wav: corrupt WAV: 40 bits per sample/,
  );
  const rifx = new Uint8Array(good);
  rifx.set(Buffer.from('RIFX'), 0);
  throwsUserError(() => parseWavHeader(rifx, 'be.wav'), /be\.wav: big-endian WAV/);
  // a huge chunk size in the middle can neither allocate nor loop
  throwsUserError(
    () =>
      parseWavHeader(
        makeWav({ data: int16(1), before: [['junk', new Uint8Array(4)]] }).map((v, i) =>
          i >= 40 && i < 44 ? 0xff : v,
        ),
        'j.wav',
      ),
    /j\.wav: corrupt or truncated WAV: chunk 'junk'/,
  );
  assert.ok(!isWav(new Uint8Array(4)));
});

test('codecs we do not decode natively are flagged for ffmpeg (mu-law, ADPCM)', () => {
  const mulaw = parseWavHeader(makeWav({ tag: 7, bits: 8, data: new Uint8Array([1, 2, 3]) }));
  assert.equal(mulaw.sampleFormat, null);
  assert.equal(mulaw.formatTag, 7);
  throwsUserError(
    () => decodeWav(makeWav({ tag: 7, bits: 8, data: new Uint8Array([1]) }), { what: 'mu.wav' }),
    /mu\.wav: WAV codec 7 is not decoded natively/,
  );
});
