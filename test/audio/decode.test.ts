/**
 * decodeAudio: native 16 kHz WAV; every other rate, codec and container through ffmpeg, equal bit
 * for bit to the official extraction (ffmpeg -vn -ar 16000 to a WAV, then sox remix 1), and the
 * fbank of the result against torchaudio's fbank of that extraction (golden, <= 2e-3 log-mel).
 * Errors: missing, empty, corrupt, truncated, non-media and audio-less files are UserErrors naming
 * the path; ffmpeg calls time out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAudio, computeFbank } from '../../src/audio/index.js';
import { decodeWav } from '../../src/audio/wav.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'audio');
const has = (tool: string) =>
  spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0 ||
  spawnSync(tool, ['-version'], { stdio: 'ignore' }).status === 0;
const hasFfmpeg = has('ffmpeg');
const hasSox = has('sox');
const LOGMEL_TOL = 2e-3;

const viaFfmpeg: [string, string][] = [
  ['rate8k_s16', 'rate8k_s16.wav'],
  ['rate44k_stereo_s16', 'rate44k_stereo_s16.wav'],
  ['flac', 'flac.flac'],
  ['vorbis', 'vorbis.ogg'],
  ['mp3', 'mp3.mp3'],
  ['aac', 'aac.m4a'],
];

async function rejectsUserError(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    assert.match(e.message, re);
    return true;
  });
}

test('native 16 kHz WAV: same samples as the parser, from a path or from bytes', async () => {
  const bytes = readFileSync(join(dir, 'stereo_s16.wav'));
  const ref = decodeWav(bytes).samples;
  const a = await decodeAudio(join(dir, 'stereo_s16.wav'));
  assert.equal(a.sampleRate, 16000);
  assert.deepEqual(a.samples, ref);
  assert.deepEqual((await decodeAudio(new Uint8Array(bytes))).samples, ref);
});

test(
  'other rates and codecs equal the official ffmpeg + sox extraction sample for sample',
  { skip: !(hasFfmpeg && hasSox) && 'needs ffmpeg and sox' },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cavmae-audio-test-'));
    try {
      for (const [name, file] of viaFfmpeg) {
        const mid = join(tmp, `${name}.mid.wav`);
        const out = join(tmp, `${name}.wav`);
        execFileSync('ffmpeg', [
          '-hide_banner',
          '-loglevel',
          'error',
          '-y',
          '-i',
          join(dir, file),
          '-vn',
          '-ar',
          '16000',
          mid,
        ]);
        execFileSync('sox', [mid, out, 'remix', '1']);
        const official = decodeWav(readFileSync(out)).samples;
        const ours = (await decodeAudio(join(dir, file))).samples;
        assert.equal(ours.length, official.length, `${file} length`);
        assert.deepEqual(ours, official, `${file} samples`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);

test(
  `fbank after ffmpeg resampling/decoding vs torchaudio on the official extraction: <= ${LOGMEL_TOL}`,
  { skip: !hasFfmpeg && 'needs ffmpeg' },
  async () => {
    const golden = readSafetensorsF32(join(dir, 'golden.safetensors'));
    for (const [name, file] of viaFfmpeg) {
      const { samples } = await decodeAudio(join(dir, file));
      const { data, frames } = computeFbank(samples);
      const ref = golden.get(`${name}.fbank_raw`)!;
      assert.equal(frames, ref.shape[0], `${name} frames`);
      assertClose(data, ref.data, { atol: LOGMEL_TOL, what: `${name} log-mel` });
    }
  },
);

test(
  'in-memory non-WAV bytes and WAV codecs we do not parse go through ffmpeg',
  { skip: !hasFfmpeg && 'needs ffmpeg' },
  async () => {
    const fromFile = (await decodeAudio(join(dir, 'mp3.mp3'))).samples;
    const fromBytes = (
      await decodeAudio(new Uint8Array(readFileSync(join(dir, 'mp3.mp3'))), { what: 'clip.mp3' })
    ).samples;
    assert.deepEqual(fromBytes, fromFile);
    const m4a = await decodeAudio(new Uint8Array(readFileSync(join(dir, 'aac.m4a'))));
    assert.equal(m4a.samples.length, 5120);
    // mu-law WAV at 16 kHz: not parsed natively, decoded by ffmpeg; mu-law steps at |x| < 0.5 are < 0.016
    const tmp = mkdtempSync(join(tmpdir(), 'cavmae-audio-test-'));
    try {
      const mu = join(tmp, 'mu.wav');
      execFileSync('ffmpeg', [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        '-i',
        join(dir, 'pcm_s16.wav'),
        '-c:a',
        'pcm_mulaw',
        mu,
      ]);
      const ref = decodeWav(readFileSync(join(dir, 'pcm_s16.wav'))).samples;
      assertClose((await decodeAudio(mu)).samples, ref, { atol: 0.016, what: 'mu-law vs 16-bit' });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);

test('broken inputs are UserErrors naming the file', { skip: !hasFfmpeg && 'needs ffmpeg' }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'cavmae-audio-test-'));
  try {
    const p = (name: string) => join(tmp, name);
    await rejectsUserError(decodeAudio(p('missing.wav')), /missing\.wav: no such file/);
    mkdirSync(p('folder.wav'));
    await rejectsUserError(decodeAudio(p('folder.wav')), /folder\.wav: is a directory/);
    writeFileSync(p('empty.mp3'), '');
    await rejectsUserError(decodeAudio(p('empty.mp3')), /empty\.mp3: empty file \(0 bytes\)/);
    await rejectsUserError(decodeAudio(new Uint8Array(0)), /input: empty input/);
    // a WAV header with a zero-length data chunk
    const wav = readFileSync(join(dir, 'pcm_u8.wav'));
    const headerOnly = Buffer.from(wav.subarray(0, 44));
    headerOnly.writeUInt32LE(0, 40);
    writeFileSync(p('zero.wav'), headerOnly);
    await rejectsUserError(decodeAudio(p('zero.wav')), /zero\.wav: WAV file contains no audio samples/);
    const badRate = Buffer.from(wav);
    badRate.writeUInt32LE(0, 24);
    writeFileSync(p('rate0.wav'), badRate);
    await rejectsUserError(
      decodeAudio(p('rate0.wav')),
      /rate0\.wav: corrupt WAV: implausible sample rate 0 Hz/,
    );
    writeFileSync(p('cut.wav'), readFileSync(join(dir, 'pcm_s16.wav')).subarray(0, 4000));
    await rejectsUserError(
      decodeAudio(p('cut.wav')),
      /cut\.wav: truncated WAV: data chunk declares 10240 bytes, only \d+ present/,
    );
    writeFileSync(p('notes.mp3'), 'these are not the droids you are looking for\n'.repeat(20));
    await rejectsUserError(
      decodeAudio(p('notes.mp3')),
      /notes\.mp3: not a readable audio or video file \(ffmpeg: /,
    );
    writeFileSync(p('noise.ogg'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)));
    await rejectsUserError(decodeAudio(p('noise.ogg')), /noise\.ogg: not a readable audio or video file/);
    writeFileSync(p('head.m4a'), readFileSync(join(dir, 'aac.m4a')).subarray(0, 200));
    await rejectsUserError(decodeAudio(p('head.m4a')), /head\.m4a: not a readable audio or video file/);
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=32x32:rate=5:duration=0.4',
      '-c:v',
      'mpeg4',
      p('silent.mp4'),
    ]);
    await rejectsUserError(decodeAudio(p('silent.mp4')), /silent\.mp4: has no audio stream/);
    // an audio stream that decodes to nothing: a 0.0 s clip
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'anullsrc=r=16000:cl=mono',
      '-t',
      '0',
      '-c:a',
      'flac',
      p('nothing.flac'),
    ]);
    await rejectsUserError(decodeAudio(p('nothing.flac')), /nothing\.flac: contains no audio samples/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test(
  'ffmpeg is killed at the time limit (a FIFO nobody writes to)',
  { skip: (!hasFfmpeg || process.platform === 'win32') && 'needs ffmpeg and mkfifo' },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cavmae-audio-test-'));
    try {
      const fifo = join(tmp, 'stuck.wav');
      execFileSync('mkfifo', [fifo]);
      const t0 = Date.now();
      await rejectsUserError(decodeAudio(fifo, { timeoutMs: 400 }), /stuck\.wav: ffmpeg timed out/);
      assert.ok(Date.now() - t0 < 10_000, 'returned promptly after the time limit');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
