/**
 * `prepare` end to end on tiny synthetic videos made with ffmpeg at test time: outputs, the
 * datafile, failure reporting, resume, and the CLI's exit code and messages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';
import { decodeImage, listVideos, prepareVideos, readLabelsCsv } from '../../src/vision/index.js';

let dir = '';
let videos = '';

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], {
    timeout: 60_000,
  });
}

/** Parses a PCM WAV: format fields and the sample data. */
function readWav(path: string): { channels: number; rate: number; bits: number; samples: Int16Array } {
  const b = readFileSync(path);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF');
  let pos = 12;
  let fmt: { channels: number; rate: number; bits: number } | undefined;
  while (pos + 8 <= b.length) {
    const id = b.toString('ascii', pos, pos + 4);
    const n = b.readUInt32LE(pos + 4);
    if (id === 'fmt ')
      fmt = {
        channels: b.readUInt16LE(pos + 10),
        rate: b.readUInt32LE(pos + 12),
        bits: b.readUInt16LE(pos + 22),
      };
    if (id === 'data') {
      const d = b.subarray(pos + 8, pos + 8 + n);
      const samples = new Int16Array(d.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = d.readInt16LE(2 * i);
      return { ...fmt!, samples };
    }
    pos += 8 + n + (n & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cavmae-prepare-'));
  videos = join(dir, 'videos');
  mkdirSync(join(videos, 'sub'), { recursive: true });
  // Stereo soundtrack with different channels, so that "channel 0" is checked.
  const stereo = 'aevalsrc=0.5*sin(440*2*PI*t)|0.3*sin(1250*2*PI*t):s=44100:d=3';
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=s=96x54:r=12.5:d=3',
    '-f',
    'lavfi',
    '-i',
    stereo,
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-shortest',
    join(videos, 'good.mp4'),
  ]);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=s=80x60:r=25:d=2',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=330:sample_rate=22050:duration=2',
    '-c:v',
    'mpeg4',
    '-c:a',
    'pcm_s16le',
    join(videos, 'sub', 'second.mkv'),
  ]);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=s=64x48:r=10:d=2',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    join(videos, 'silent.mp4'),
  ]);
  writeFileSync(
    join(videos, 'corrupt.mp4'),
    Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31 + 7) % 256)),
  );
  writeFileSync(join(videos, 'empty.avi'), '');
  writeFileSync(join(videos, 'notes.txt'), 'not a video, and not listed: wrong extension\n');
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('listVideos: a folder (recursive, video extensions, sorted) and a list file', () => {
  const found = listVideos(videos);
  assert.deepEqual(
    found,
    ['corrupt.mp4', 'empty.avi', 'good.mp4', 'silent.mp4', 'sub/second.mkv'].map((f) => join(videos, f)),
  );
  const list = join(dir, 'list.csv');
  writeFileSync(list, `# comment\nvideos/good.mp4\n\n${join(videos, 'silent.mp4')},extra column\n`);
  assert.deepEqual(listVideos(list), [join(videos, 'good.mp4'), join(videos, 'silent.mp4')]);
  assert.throws(() => listVideos(join(dir, 'nope')), /nope: not found/);
  const emptyDir = join(dir, 'emptydir');
  mkdirSync(emptyDir);
  assert.throws(() => listVideos(emptyDir), /no video files/);
});

test('prepare: wav + frames + datafile for good videos, failures reported with path and reason, resume', async () => {
  const out = join(dir, 'out');
  const labelsCsv = join(dir, 'labels.csv');
  writeFileSync(labelsCsv, 'video_id,labels\ngood,"/m/068hy,/m/07q6cd_"\nsecond.mkv,/m/09x0r\n');
  const labels = readLabelsCsv(labelsCsv);
  const progress: number[] = [];
  const s = await prepareVideos(listVideos(videos), {
    out,
    jobs: 2,
    labels,
    onProgress: (p) => progress.push(p.done),
  });
  assert.deepEqual([s.total, s.prepared, s.skipped, s.failed], [5, 2, 0, 3]);
  assert.deepEqual(
    progress.sort((a, b) => a - b),
    [1, 2, 3, 4, 5],
  );

  // The datafile: the official format, absolute paths, input order.
  const data = JSON.parse(readFileSync(join(out, 'data.json'), 'utf8')) as { data: Record<string, string>[] };
  assert.deepEqual(data.data, [
    {
      wav: join(out, 'audio', 'good.wav'),
      video_id: 'good',
      video_path: join(out, 'frames'),
      labels: '/m/068hy,/m/07q6cd_',
    },
    {
      wav: join(out, 'audio', 'second.wav'),
      video_id: 'second',
      video_path: join(out, 'frames'),
      labels: '/m/09x0r',
    },
  ]);

  // Audio: 16 kHz mono PCM16, equal to the reference's `ffmpeg -vn -ar 16000` then channel 0.
  const wav = readWav(join(out, 'audio', 'good.wav'));
  assert.deepEqual([wav.channels, wav.rate, wav.bits], [1, 16000, 16]);
  const refStereo = join(dir, 'ref_stereo.wav');
  ffmpeg(['-i', join(videos, 'good.mp4'), '-vn', '-ar', '16000', refStereo]);
  const ref = readWav(refStereo);
  assert.equal(ref.channels, 2);
  assert.equal(wav.samples.length, ref.samples.length / 2);
  let maxDiff = 0;
  for (let i = 0; i < wav.samples.length; i++)
    maxDiff = Math.max(maxDiff, Math.abs(wav.samples[i] - ref.samples[2 * i]));
  assert.equal(maxDiff, 0, 'wav equals channel 0 of the reference resample (tolerance 0)');
  assert.equal(readWav(join(out, 'audio', 'second.wav')).rate, 16000);

  // Frames: frame_<i>/<video_id>.jpg, 224x224.
  for (const id of ['good', 'second']) {
    for (let i = 0; i < 10; i++) {
      const img = await decodeImage(join(out, 'frames', `frame_${i}`, `${id}.jpg`));
      assert.deepEqual([img.width, img.height], [224, 224]);
    }
  }
  assert.ok(
    !existsSync(join(out, 'frames', 'frame_0', 'silent.jpg')),
    'nothing written for a video without audio',
  );

  // Failures: one JSON line each, naming the file and the problem.
  const failures = readFileSync(join(out, 'failures.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { video: string; error: string });
  const byName = new Map(failures.map((f) => [f.video, f.error]));
  assert.equal(failures.length, 3);
  assert.match(byName.get(join(videos, 'silent.mp4'))!, /silent\.mp4: no audio track/);
  assert.match(byName.get(join(videos, 'empty.avi'))!, /empty\.avi: file is empty/);
  assert.match(byName.get(join(videos, 'corrupt.mp4'))!, /corrupt\.mp4: ffprobe failed/);

  // Resume: finished items are skipped, their outputs untouched.
  const mtime = statSync(join(out, 'frames', 'frame_3', 'good.jpg')).mtimeMs;
  const again = await prepareVideos(listVideos(videos), { out, jobs: 2, labels });
  assert.deepEqual([again.prepared, again.skipped, again.failed], [0, 2, 3]);
  assert.equal(statSync(join(out, 'frames', 'frame_3', 'good.jpg')).mtimeMs, mtime);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'data.json'), 'utf8')), data);

  // An item with a missing output (e.g. killed mid-way: only a temp file left) is redone.
  unlinkSync(join(out, 'frames', 'frame_7', 'second.jpg'));
  writeFileSync(join(out, 'frames', 'frame_7', '.second.jpg.1234.1.tmp'), 'half a jpeg');
  const third = await prepareVideos(listVideos(videos), { out, jobs: 1, labels });
  assert.deepEqual([third.prepared, third.skipped, third.failed], [1, 1, 3]);
  assert.ok(existsSync(join(out, 'frames', 'frame_7', 'second.jpg')));
});

test('prepare --frames 16 writes the Sync layout frame_0..frame_15', async () => {
  const out = join(dir, 'out16');
  const s = await prepareVideos([join(videos, 'good.mp4')], { out, frames: 16 });
  assert.equal(s.prepared, 1);
  for (let i = 0; i < 16; i++)
    assert.ok(existsSync(join(out, 'frames', `frame_${i}`, 'good.jpg')), `frame_${i}`);
  assert.ok(!existsSync(join(out, 'frames', 'frame_16')));
});

test('prepare: duplicate video ids are reported, not overwritten', async () => {
  const other = join(dir, 'other');
  mkdirSync(other);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=s=64x48:r=10:d=1',
    '-f',
    'lavfi',
    '-i',
    'sine=duration=1',
    '-c:v',
    'mpeg4',
    '-c:a',
    'pcm_s16le',
    '-shortest',
    join(other, 'good.mkv'),
  ]);
  const s = await prepareVideos([join(videos, 'good.mp4'), join(other, 'good.mkv')], {
    out: join(dir, 'outdup'),
    jobs: 2,
  });
  assert.deepEqual([s.prepared, s.failed], [1, 1]);
  assert.match(s.failures[0].error, /video_id good already used by .*good\.mp4/);
});

/**
 * Runs `cavmae prepare ARGS` in a child process (the command module plus the CLI's error
 * reporting), so its stdout/stderr/exit code are observed as a user sees them. Works from the
 * TypeScript sources (tsx) and from dist/ alike.
 */
function runPrepareCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const cmdUrl = new URL('../../src/cli/commands/prepare.js', import.meta.url).href;
  const mainUrl = new URL('../../src/cli/main.js', import.meta.url).href;
  const code = [
    "import { Command } from 'commander';",
    `const { register } = await import(${JSON.stringify(cmdUrl)});`,
    `const { reportError } = await import(${JSON.stringify(mainUrl)});`,
    'const program = new Command().name("cavmae").exitOverride();',
    'register(program);',
    `try { await program.parseAsync(['node', 'cavmae', ...${JSON.stringify(args)}]); } catch (e) { process.exitCode = reportError(e); }`,
  ].join('\n');
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
  const r = spawnSync(process.execPath, [...execArgv, '--input-type=module', '-e', code], {
    cwd: repoRoot(),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI prepare: failures give a non-zero exit code and one line per failed file', () => {
  const out = join(dir, 'cli-out');
  const r = runPrepareCli(['prepare', videos, '--out', out, '--quiet', '--jobs', '2']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /skipped .*silent\.mp4: no audio track/);
  assert.match(r.stderr, /skipped .*corrupt\.mp4: ffprobe failed/);
  assert.match(r.stderr, /cavmae: 3 of 5 videos failed \(reasons in .*failures\.jsonl\)/);
  assert.match(r.stdout, /prepared 2, already done 0, failed 3 of 5 videos/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(existsSync(join(out, 'data.json')));

  // A single video file is a batch of one.
  const one = runPrepareCli(['prepare', join(videos, 'corrupt.mp4'), '--out', join(dir, 'cli-one')]);
  assert.equal(one.status, 1);
  assert.match(one.stderr, /cavmae: 1 of 1 videos failed/);

  // Bad inputs and flags: one line naming the problem.
  const missing = runPrepareCli(['prepare', join(dir, 'missing'), '--out', out]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^cavmae: .*missing: not found\n$/);
  const bin = join(dir, 'binary.list');
  writeFileSync(bin, Buffer.from([0, 1, 2, 3]));
  const binary = runPrepareCli(['prepare', bin, '--out', out]);
  assert.equal(binary.status, 1);
  assert.match(binary.stderr, /binary\.list: not a text list of video paths/);
  const badJobs = runPrepareCli(['prepare', videos, '--out', out, '--jobs', 'x']);
  assert.notEqual(badJobs.status, 0);
  assert.match(badJobs.stderr, /--jobs must be a positive integer/);
});
