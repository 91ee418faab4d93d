/**
 * Dataset normalisation statistics (AST get_norm_stats definition: mean of per-batch means and of
 * per-batch unbiased stds over padded, unnormalised fbanks), checked against a direct float64
 * two-pass computation; input listing from folders, datafiles and manifests; the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeAudioStats, listAudioInputs } from '../../src/audio/stats.js';
import { computeFbank, padOrCrop } from '../../src/audio/index.js';
import { decodeWav } from '../../src/audio/wav.js';
import { UserError } from '../../src/util/errors.js';
import { repoRoot, runCli, type CliResult } from '../helpers.js';

const fixtures = join(repoRoot(), 'test', 'fixtures', 'audio');
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-stats-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** Direct definition: per batch, mean and unbiased std of every value (float64, two passes). */
function naiveStats(clips: Float32Array[], batchSize: number): { mean: number; std: number } {
  const means: number[] = [];
  const stds: number[] = [];
  for (let b = 0; b < clips.length; b += batchSize) {
    const values = clips.slice(b, b + batchSize).flatMap((c) => [...c]);
    const m = values.reduce((a, v) => a + v, 0) / values.length;
    const v = values.reduce((a, x) => a + (x - m) ** 2, 0) / (values.length - 1);
    means.push(m);
    stds.push(Math.sqrt(v));
  }
  return {
    mean: means.reduce((a, x) => a + x, 0) / means.length,
    std: stds.reduce((a, x) => a + x, 0) / stds.length,
  };
}

const clipFiles = ['pcm_s16.wav', 'pcm_u8.wav', 'float64.wav'];
const padded = (file: string, T: number) => {
  const { data, frames } = computeFbank(decodeWav(readFileSync(join(fixtures, file))).samples);
  return padOrCrop(data, frames, T);
};

test('statistics equal the direct definition for several batch sizes and target lengths; failures skipped', async () => {
  const broken = join(tmp, 'broken.wav');
  writeFileSync(broken, 'RIFF....WAVE');
  const paths = [...clipFiles.map((f) => join(fixtures, f)), broken];
  for (const [T, B] of [
    [32, 2],
    [20, 1],
    [40, 1000],
  ] as const) {
    const s = await computeAudioStats(paths, { targetLength: T, batchSize: B });
    const ref = naiveStats(
      clipFiles.map((f) => padded(f, T)),
      B,
    );
    assert.ok(
      Math.abs(s.mean - ref.mean) <= 1e-12 * Math.abs(ref.mean),
      `mean T=${T} B=${B}: ${s.mean} vs ${ref.mean}`,
    );
    assert.ok(Math.abs(s.std - ref.std) <= 1e-12 * ref.std, `std T=${T} B=${B}: ${s.std} vs ${ref.std}`);
    assert.equal(s.clips, 3);
    assert.equal(s.batches, Math.ceil(3 / B));
    assert.equal(s.failed.length, 1);
    assert.match(s.failed[0].reason, /broken\.wav: /);
    if (B >= 3) {
      assert.ok(
        Math.abs(s.pooledMean - s.mean) < 1e-12 && Math.abs(s.pooledStd - s.std) < 1e-12,
        'one batch: pooled = batch stats',
      );
    }
  }
  await assert.rejects(
    computeAudioStats([broken]),
    (e: Error) => e instanceof UserError && /no clip could be read/.test(e.message),
  );
});

test('inputs: folders (recursive, sorted, media extensions), official datafiles and manifests', async () => {
  const root = join(tmp, 'data');
  mkdirSync(join(root, 'sub'), { recursive: true });
  copyFileSync(join(fixtures, 'pcm_s16.wav'), join(root, 'b.wav'));
  copyFileSync(join(fixtures, 'flac.flac'), join(root, 'sub', 'a.flac'));
  copyFileSync(join(fixtures, 'mp3.mp3'), join(root, 'C.MP3'));
  writeFileSync(join(root, 'notes.txt'), 'not audio');
  assert.deepEqual(await listAudioInputs(root), [
    join(root, 'C.MP3'),
    join(root, 'b.wav'),
    join(root, 'sub', 'a.flac'),
  ]);
  mkdirSync(join(tmp, 'empty'), { recursive: true });
  await assert.rejects(listAudioInputs(join(tmp, 'empty')), /empty: folder contains no audio or video files/);
  await assert.rejects(listAudioInputs(join(tmp, 'absent')), /absent: no such file or folder/);

  const manifest = join(root, 'manifest.json');
  writeFileSync(
    manifest,
    JSON.stringify({
      items: [
        { id: 'x', audio: 'b.wav', image: 'b.jpg' },
        { audio: 'sub/a.flac', video: 'v.mp4' },
      ],
    }),
  );
  assert.deepEqual(await listAudioInputs(manifest), [join(root, 'b.wav'), join(root, 'sub', 'a.flac')]);
  const datafile = join(tmp, 'train.json');
  writeFileSync(
    datafile,
    JSON.stringify({ data: [{ wav: join(root, 'b.wav'), video_id: 'b', video_path: root, labels: '/m/1' }] }),
  );
  assert.deepEqual(await listAudioInputs(datafile), [join(root, 'b.wav')]);
});

const cli = (args: string[]): CliResult => runCli(args);

test('cavmae audio-stats --json and the text summary; bad --data exits non-zero with one line', () => {
  const root = join(tmp, 'cli');
  mkdirSync(root, { recursive: true });
  for (const f of clipFiles) copyFileSync(join(fixtures, f), join(root, f));
  const r = cli(['audio-stats', '--data', root, '--target-length', '32', '--batch-size', '2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  const ref = naiveStats(
    ['float64.wav', 'pcm_s16.wav', 'pcm_u8.wav'].map((f) => padded(f, 32)),
    2,
  ); // folder order
  assert.ok(Math.abs(s.mean - ref.mean) <= 1e-12 * Math.abs(ref.mean));
  assert.ok(Math.abs(s.std - ref.std) <= 1e-12 * ref.std);
  assert.equal(s.clips, 3);
  const text = cli(['audio-stats', '--data', root, '--target-length', '32']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    /^mean -?\d+\.\d{4} std \d+\.\d{4} \(3 clips in 1 batch of up to 1000, target length 32; pooled/,
  );
  const bad = cli(['audio-stats', '--data', join(tmp, 'nowhere')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /^cavmae: .*nowhere: no such file or folder\n$/);
});
