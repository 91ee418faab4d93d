/**
 * `cavmae features`: the model inputs of one media file. Library (extractMediaFeatures) against
 * the official fixtures, kind detection by content, and the CLI end to end (outputs, exit codes,
 * one-line errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractMediaFeatures, detectMediaKind } from '../../src/audio/media.js';
import { loadAudioFeatures } from '../../src/audio/index.js';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import {
  assertClose,
  fixture,
  hasOfficialFixtures,
  maxAbsDiff,
  repoRoot,
  runCli,
  type CliResult,
} from '../helpers.js';

const shared = hasOfficialFixtures();
const hasFfmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-features-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const ID = '00W1lcxW-WU_40.000';
const ffmpeg = (...args: string[]) =>
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);

/** A 2 s 256x144 12.5 fps video; with a 44.1 kHz stereo AAC soundtrack unless `silent`. */
function makeVideo(name: string, silent = false): string {
  const out = join(tmp, name);
  const video = ['-f', 'lavfi', '-i', 'testsrc=size=256x144:rate=12.5:duration=2'];
  const audio = silent
    ? []
    : ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=2', '-ac', '2', '-c:a', 'aac'];
  ffmpeg(...video, ...audio, '-c:v', 'mpeg4', '-q:v', '3', '-shortest', out);
  return out;
}

async function rejectsUserError(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => e instanceof UserError && re.test(e.message));
}

test(
  'audio file: audio [1024,128] and audio_raw [999,128] match the official dataloader',
  { skip: !shared && 'official fixtures missing' },
  async () => {
    const f = await extractMediaFeatures(fixture('audio', `${ID}.wav`));
    assert.equal(f.kind, 'audio');
    assert.deepEqual(Object.keys(f.tensors).sort(), ['audio', 'audio_raw']);
    const ref = readSafetensorsF32(fixture('audio', 'fbank.safetensors'));
    assert.deepEqual(f.tensors.audio.shape, [1024, 128]);
    assert.deepEqual(f.tensors.audio_raw.shape, [999, 128]);
    assertClose(f.tensors.audio.data, ref.get(`${ID}.fbank`)!.data, { atol: 5e-4, what: 'audio' });
    assertClose(f.tensors.audio_raw.data, ref.get(`${ID}.fbank_raw`)!.data, {
      atol: 2e-3,
      what: 'audio_raw',
    });
    assert.equal(f.metadata.audio_frames, '999');
    // a shorter target crops; other normalisation statistics apply
    const g = await extractMediaFeatures(fixture('audio', `${ID}.wav`), {
      targetLength: 512,
      mean: -4,
      std: 2,
    });
    assert.deepEqual(g.tensors.audio.shape, [512, 128]);
    const raw = f.tensors.audio_raw.data;
    assert.equal(g.tensors.audio.data[5], Math.fround(Math.fround(raw[5] + 4) / 2));
  },
);

test(
  'image file: image [3,224,224] as the reference eval transform (JPEG decoders may differ by 0.03)',
  { skip: !shared && 'official fixtures missing' },
  async () => {
    const f = await extractMediaFeatures(fixture('image', 'frames', ID, 'frame_5.jpg'));
    assert.equal(f.kind, 'image');
    assert.deepEqual(Object.keys(f.tensors), ['image']);
    assert.deepEqual(f.tensors.image.shape, [3, 224, 224]);
    const ref = readSafetensorsF32(fixture('image', 'image.safetensors')).get(`${ID}.image`)!;
    assertClose(f.tensors.image.data, ref.data, { atol: 0.03, what: 'image' });
  },
);

test(
  'video with a soundtrack: audio from the soundtrack, image from frame 5 of 10 (or --frame)',
  { skip: !hasFfmpeg && 'needs ffmpeg' },
  async () => {
    const path = makeVideo('clip.mp4');
    const f = await extractMediaFeatures(path);
    assert.equal(f.kind, 'video');
    assert.deepEqual(Object.keys(f.tensors).sort(), ['audio', 'audio_raw', 'image']);
    const a = await loadAudioFeatures(path);
    assert.deepEqual(f.tensors.audio.data, a.audio);
    assert.deepEqual(f.tensors.audio_raw.shape, [a.frames, 128]);
    const vision = await import('../../src/vision/index.js');
    assert.deepEqual(f.tensors.image.data, await vision.loadVideoFrameTensor(path, 5, 10));
    const g = await extractMediaFeatures(path, { frame: 2 });
    assert.ok(maxAbsDiff(g.tensors.image.data, f.tensors.image.data) > 0.1, 'frame 2 differs from frame 5');
    assert.equal(g.metadata.frame_index, '2');
  },
);

test(
  'kind is decided by content: silent video -> image only; mp3 with cover art -> audio; renamed files',
  { skip: !hasFfmpeg && 'needs ffmpeg' },
  async () => {
    const silent = makeVideo('silent.mp4', true);
    const f = await extractMediaFeatures(silent);
    assert.deepEqual(Object.keys(f.tensors), ['image']);
    const mp3 = join(repoRoot(), 'test', 'fixtures', 'audio', 'mp3.mp3');
    const cover = join(tmp, 'cover.png');
    ffmpeg('-f', 'lavfi', '-i', 'color=c=red:size=64x64', '-frames:v', '1', cover);
    const tagged = join(tmp, 'tagged.mp3');
    ffmpeg(
      '-i',
      mp3,
      '-i',
      cover,
      '-map',
      '0',
      '-map',
      '1',
      '-c',
      'copy',
      '-id3v2_version',
      '3',
      '-disposition:v',
      'attached_pic',
      tagged,
    );
    assert.deepEqual(await detectMediaKind(tagged), { kind: 'audio', hasAudio: true });
    // extensions lie: a WAV named .jpg and a video named .wav
    const wavAsJpg = join(tmp, 'sound.jpg');
    copyFileSync(join(repoRoot(), 'test', 'fixtures', 'audio', 'pcm_s16.wav'), wavAsJpg);
    assert.equal((await detectMediaKind(wavAsJpg)).kind, 'audio');
    const videoAsWav = join(tmp, 'video.wav');
    copyFileSync(join(tmp, 'clip.mp4'), videoAsWav);
    assert.deepEqual(await detectMediaKind(videoAsWav), { kind: 'video', hasAudio: true });
  },
);

test('bad inputs are UserErrors naming the file', { skip: !hasFfmpeg && 'needs ffmpeg' }, async () => {
  await rejectsUserError(extractMediaFeatures(join(tmp, 'nope.mp4')), /nope\.mp4: no such file/);
  writeFileSync(join(tmp, 'empty.png'), '');
  await rejectsUserError(extractMediaFeatures(join(tmp, 'empty.png')), /empty\.png: empty file/);
  mkdirSync(join(tmp, 'dir.mp4'), { recursive: true });
  await rejectsUserError(extractMediaFeatures(join(tmp, 'dir.mp4')), /dir\.mp4: is a directory/);
  writeFileSync(join(tmp, 'readme.mp4'), 'plain text, not a video\n'.repeat(50));
  await rejectsUserError(extractMediaFeatures(join(tmp, 'readme.mp4')), /readme\.mp4: /);
});

// ---- the command line ----

const cli = (args: string[]): CliResult => runCli(args);

test(
  'cavmae features writes audio, audio_raw (and image) as safetensors',
  { skip: !shared && 'official fixtures missing' },
  () => {
    const out = join(tmp, 'f.safetensors');
    const r = cli(['features', fixture('audio', `${ID}.wav`), '--out', out, '--target-length', '1024']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /audio \[1024,128\], audio_raw \[999,128\]/);
    const st = readSafetensors(out);
    assert.deepEqual(st.tensors.get('audio')!.shape, [1024, 128]);
    assert.equal(st.tensors.get('audio')!.dtype, 'F32');
    assert.equal(st.metadata.kind, 'audio');
    const ref = readSafetensorsF32(fixture('audio', 'fbank.safetensors'));
    assertClose(readSafetensorsF32(out).get('audio')!.data, ref.get(`${ID}.fbank`)!.data, {
      atol: 5e-4,
      what: 'cli audio',
    });
    const img = join(tmp, 'i.safetensors');
    const ri = cli(['features', fixture('image', 'frames', ID, 'frame_5.jpg'), '--out', img]);
    assert.equal(ri.status, 0, ri.stderr);
    assert.deepEqual(readSafetensors(img).tensors.get('image')!.shape, [3, 224, 224]);
  },
);

test('cavmae features: bad input or flags -> non-zero exit, one line naming the file, no stack trace', () => {
  const junk = join(tmp, 'junk.wav');
  writeFileSync(junk, 'RIFF\u0000\u0000\u0000\u0000WAVEjunk');
  for (const [args, re] of [
    [['features', junk, '--out', join(tmp, 'x.safetensors')], /junk\.wav: corrupt WAV: no fmt chunk/],
    [
      ['features', join(tmp, 'missing.flac'), '--out', join(tmp, 'x.safetensors')],
      /missing\.flac: no such file/,
    ],
    [
      ['features', junk, '--out', join(tmp, 'x.safetensors'), '--target-length', '0'],
      /--target-length must be a positive integer, got '0'/,
    ],
    [
      ['features', junk, '--out', join(tmp, 'x.safetensors'), '--frame', '10'],
      /--frame must be an integer in 0\.\.9, got '10'/,
    ],
  ] as [string[], RegExp][]) {
    const r = cli(args);
    assert.notEqual(r.status, 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
