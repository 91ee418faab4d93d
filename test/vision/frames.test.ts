/**
 * Frame positions and extraction. Positions are checked against the reference extractors'
 * expressions evaluated in Python (golden.json); extraction against synthetic videos whose
 * frames carry their own index as a colour code, made with ffmpeg at test time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertClose, repoRoot } from '../helpers.js';
import { UserError } from '../../src/util/errors.js';
import {
  extractFrameSet,
  framePositions,
  loadImageTensor,
  loadVideoFrameTensor,
  referenceFrameIndices,
  videoIdOf,
  writeFrames,
  type RgbImage,
} from '../../src/vision/index.js';

const golden = JSON.parse(
  readFileSync(join(repoRoot(), 'test', 'fixtures', 'image', 'golden.json'), 'utf8'),
) as {
  positions: {
    frame_count: number;
    fps: number;
    cavmae_frame_idx: number[];
    cavmae_decoded: number[];
    sync: number[];
  }[];
};

let dir = '';
/** 64x36 @ 12.5 fps, 10 s = 125 frames, H.264 with B-frames, AAC sine. Frame n is coloured
 * r = 8 + 16 (n mod 16), g = 8 + 16 floor(n / 16). */
let mp4 = '';
/** Matroska (no frame count in the container) at 25 fps, 4 s = 100 frames, MPEG-4 part 2. */
let mkv = '';
/** Matroska with 3 s of video but 6 s of audio: duration x fps over-reports the frames. */
let shortVideo = '';

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], {
    timeout: 60_000,
  });
}

function indexedSource(fps: number, seconds: number): string {
  return `color=c=black:s=64x36:r=${fps}:d=${seconds},format=rgb24,geq=r='8+16*mod(N\\,16)':g='8+16*floor(N/16)':b=128`;
}

/** The frame number encoded in a decoded frame's colour (centre pixel region average). */
function frameNumber(f: RgbImage): number {
  let r = 0;
  let g = 0;
  let n = 0;
  for (let y = Math.floor(f.height / 4); y < Math.floor((3 * f.height) / 4); y++) {
    for (let x = Math.floor(f.width / 4); x < Math.floor((3 * f.width) / 4); x++) {
      r += f.data[(y * f.width + x) * 3];
      g += f.data[(y * f.width + x) * 3 + 1];
      n++;
    }
  }
  return Math.round((r / n - 8) / 16) + 16 * Math.round((g / n - 8) / 16);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cavmae-frames-'));
  mp4 = join(dir, 'indexed.mp4');
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    indexedSource(12.5, 10),
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=44100:duration=10',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-shortest',
    mp4,
  ]);
  mkv = join(dir, 'indexed.mkv');
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    indexedSource(25, 4),
    '-c:v',
    'mpeg4',
    '-q:v',
    '2',
    '-pix_fmt',
    'yuv420p',
    mkv,
  ]);
  shortVideo = join(dir, 'short.mkv');
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    indexedSource(25, 3),
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=300:sample_rate=16000:duration=6',
    '-c:v',
    'mpeg4',
    '-q:v',
    '2',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'pcm_s16le',
    shortVideo,
  ]);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('framePositions equals the reference extractors (CAV-MAE 10 with its off-by-one seek; Sync 16)', () => {
  assert.ok(golden.positions.length >= 8);
  for (const p of golden.positions) {
    const what = `${p.frame_count} frames @ ${p.fps} fps`;
    assert.deepEqual(
      referenceFrameIndices(p.frame_count, p.fps, 10),
      p.cavmae_frame_idx,
      `frame_idx, ${what}`,
    );
    assert.deepEqual(framePositions(p.frame_count, p.fps, 10), p.cavmae_decoded, `decoded, ${what}`);
    assert.deepEqual(framePositions(p.frame_count, p.fps, 16), p.sync, `sync, ${what}`);
  }
});

test('extraction returns exactly the frames at the reference positions (H.264 with B-frames)', async () => {
  for (const count of [10, 16]) {
    const s = await extractFrameSet(mp4, { count, size: false });
    assert.equal(s.totalFrames, 125);
    assert.equal(s.fps, 12.5);
    assert.deepEqual(s.positions, framePositions(125, 12.5, count));
    assert.deepEqual(s.frames.map(frameNumber), s.positions, `colour-coded frame numbers, ${count} frames`);
    assert.deepEqual([s.frames[0].width, s.frames[0].height], [64, 36]);
  }
  // The default output is the extractor's Resize(224) + CenterCrop(224).
  const f = await extractFrameSet(mp4, { only: [5] });
  assert.deepEqual([f.frames.length, f.frames[0].width, f.frames[0].height], [1, 224, 224]);
  assert.equal(frameNumber(f.frames[0]), 61);
});

test('a container without a frame count uses round(duration x fps), as OpenCV does', async () => {
  const s = await extractFrameSet(mkv, { size: false });
  assert.equal(s.totalFrames, 100);
  assert.deepEqual(s.positions, framePositions(100, 25, 10));
  assert.deepEqual(s.frames.map(frameNumber), s.positions);
});

test('an over-reported frame count falls back to the decoded count', async () => {
  // 6 s container duration x 25 fps = 150 claimed frames, 75 real ones.
  const s = await extractFrameSet(shortVideo, { size: false });
  assert.equal(s.totalFrames, 75);
  assert.deepEqual(s.positions, framePositions(75, 25, 10));
  assert.deepEqual(s.frames.map(frameNumber), s.positions);
  // Asking for one frame gives the same frame as the full set.
  const one = await extractFrameSet(shortVideo, { only: [9], size: false });
  assert.deepEqual(one.positions, [s.positions[9]]);
  assert.equal(frameNumber(one.frames[0]), s.positions[9]);
});

test('writeFrames lays out frame_<i>/<video_id>.jpg; the in-memory tensor equals loading that file', async () => {
  const out = join(dir, 'frames-out');
  const paths = await writeFrames(mp4, out);
  assert.equal(videoIdOf(mp4), 'indexed');
  assert.deepEqual(
    paths,
    Array.from({ length: 10 }, (_, i) => join(out, `frame_${i}`, 'indexed.jpg')),
  );
  const fromFile = await loadImageTensor(paths[5]);
  const inMemory = await loadVideoFrameTensor(mp4, 5, 10);
  assert.equal(inMemory.length, 3 * 224 * 224);
  assertClose(inMemory, fromFile, { atol: 0, what: 'video frame tensor vs saved JPEG tensor' });
  const noJpeg = await loadVideoFrameTensor(mp4, 5, 10, { jpeg: false });
  // The JPEG round trip changes a flat-colour frame only slightly.
  assertClose(noJpeg, fromFile, { atol: 0.1, what: 'without the JPEG round trip' });
});

test('bad video inputs give a UserError naming the file and the reason, without hanging', async () => {
  const bad = join(dir, 'bad');
  mkdirSync(bad);
  const empty = join(bad, 'empty.mp4');
  writeFileSync(empty, '');
  const text = join(bad, 'notes.mp4');
  writeFileSync(text, 'not a video at all\n');
  const random = join(bad, 'random.mkv');
  writeFileSync(random, Buffer.from(Array.from({ length: 20000 }, (_, i) => (i * 2654435761) % 251)));
  const truncated = join(bad, 'truncated.mp4');
  writeFileSync(truncated, readFileSync(mp4).subarray(0, 3000));
  const audioOnly = join(bad, 'tone.wav');
  ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=16000:duration=1', audioOnly]);
  const folder = join(bad, 'folder.mp4');
  mkdirSync(folder);
  const fifo = join(bad, 'fifo.mp4');
  execFileSync('mkfifo', [fifo]);
  const cases: [string, RegExp][] = [
    [empty, /file is empty/],
    [text, /ffprobe failed|Invalid data/],
    [random, /ffprobe failed|Invalid data|no video stream/],
    [truncated, /ffprobe failed|moov atom not found|Invalid data/],
    [audioOnly, /no video stream/],
    [folder, /directory/],
    [fifo, /not a regular file/],
    [join(bad, 'missing.mp4'), /not found/],
  ];
  for (const [path, why] of cases) {
    await assert.rejects(extractFrameSet(path), (e: unknown) => {
      assert.ok(e instanceof UserError, `${path}: expected UserError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${path}: `), `message names the file: ${e.message}`);
      assert.match(e.message, why);
      return true;
    });
  }
  // Every ffmpeg/ffprobe call is bounded in time.
  await assert.rejects(extractFrameSet(mp4, { timeoutMs: 1 }), /timed out/);
  await assert.rejects(loadVideoFrameTensor(mp4, 10, 10), /frame index 10 is outside 0..9/);
});
