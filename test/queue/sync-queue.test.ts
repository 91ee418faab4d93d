/**
 * A CAV-MAE Sync model through the distributed indexer and approximate search: a `sync-tiny`
 * model, a private redis-server, two `cavmae worker` processes and `cavmae index add --queue` over
 * videos (with and without sound, and sound only), sounds and pictures. The queued index equals a
 * single-process `index add` bit for bit (the 16 x 128 clip vectors of every segment pair, the
 * clip strategy in meta.json); the file that is not media is reported, not indexed; and
 * `search --approximate` (HNSW) answers every cross-modal list with the ids and scores of exact
 * search (a handful of items: the graph is exhaustive at this size).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MediaIndex } from '../../src/index/store.js';
import { CAVMAE, presetConfig, saveModel } from '../../src/models/index.js';
import { makeTestMedia } from '../index/test-media.js';
import { TestRedis, cavmae, exited, queueSkip, stopAll, testRoot } from './procs.js';

const skip = queueSkip();
const root = testRoot('cavmae-sync-queue-');

interface Summary {
  added: number;
  failed: { path: string; error: string }[];
  queue?: { jobs: number; workers: Record<string, { jobs: number; files: number }> };
}
interface Lists {
  lists: { from: string; to: string; hits: { id: string; score: number }[] }[];
}

/** Runs the CLI to its end; `index add` exits 1 when a file failed (here: the one that is not media). */
async function run(args: string[], what: string, want = 0): Promise<string> {
  const p = cavmae(args);
  const code = await exited(p);
  assert.equal(code, want, `${what} exited with ${code}: ${p.stderrText().slice(-2000)}`);
  return p.stdoutText();
}
const summary = (out: string): Summary => JSON.parse(out.trim().split('\n').pop()!) as Summary;
const bytesOf = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

test(
  'Sync model: queued index add equals a single-process one bit for bit; approximate search equals exact',
  { skip, timeout: 300_000 },
  async () => {
    const media = join(root, 'media');
    mkdirSync(media);
    const m = await makeTestMedia(media);
    const model = join(root, 'sync-tiny.safetensors');
    saveModel(model, CAVMAE.create(presetConfig('sync-tiny'), { seed: 3 }));

    // 7 media files and one text file named .mp4: the indexer reports it and goes on.
    const refDir = join(root, 'ref');
    const ref = summary(
      await run(['index', 'add', media, '--model', model, '--index', refDir, '--json'], 'index add', 1),
    );
    assert.equal(ref.added, 7);
    assert.deepEqual(
      ref.failed.map((f) => f.path),
      [m.notMedia],
    );

    const redis = await TestRedis.start();
    try {
      // Two workers (stopped by stopAll at the end).
      ['w0', 'w1'].forEach((name) =>
        cavmae(['worker', '--queue', redis.url, '--threads', '1', '--json', '--name', name]),
      );
      const qDir = join(root, 'queued');
      const s = summary(
        await run(
          [
            'index',
            'add',
            media,
            '--model',
            model,
            '--index',
            qDir,
            '--queue',
            redis.url,
            '--batch',
            '2',
            '--json',
          ],
          'queued index add',
          1,
        ),
      );
      assert.equal(s.added, 7);
      assert.deepEqual(
        s.failed.map((f) => f.path),
        [m.notMedia],
      );
      assert.ok(s.queue && s.queue.jobs >= 4, `jobs: ${JSON.stringify(s.queue)}`);
      assert.ok(Object.keys(s.queue.workers).length >= 1, 'the workers embedded the files');

      const metaOf = (dir: string) =>
        JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(metaOf(qDir).clip, { strategy: 'diagonal_mean', pairs: 16 });
      assert.deepEqual(metaOf(qDir).clip, metaOf(refDir).clip);
      assert.equal(metaOf(qDir).dim, 16 * presetConfig('sync-tiny').embed_dim);

      const q = MediaIndex.open(qDir);
      const r = MediaIndex.open(refDir);
      assert.equal(q.count, 7);
      let vectors = 0;
      for (const e of q.list()) {
        const f = r.get(e.id)!;
        assert.ok(f, `${e.path} is in the single-process index`);
        assert.deepEqual([e.modality, e.hasAudio, e.hasVisual], [f.modality, f.hasAudio, f.hasVisual]);
        for (const space of ['audio', 'visual'] as const) {
          if (!(space === 'audio' ? e.hasAudio : e.hasVisual)) continue;
          assert.ok(
            bytesOf(q.vector(space, e.row)).equals(bytesOf(r.vector(space, f.row))),
            `${e.path} ${space}`,
          );
          vectors++;
        }
      }
      // Audio: 2 WAVs, the video with sound, the sound-only one; visual: 2 pictures, both videos with frames.
      assert.equal(vectors, 8);

      for (const [flag, query] of [
        ['--video', m.mp4],
        ['--audio', m.longWav],
        ['--image', m.jpg],
      ] as const) {
        const ask = (extra: string[]) =>
          run(
            ['search', '--index', qDir, flag, query, '--k', '8', '--json', ...extra],
            `search ${flag}`,
          ).then((o) => JSON.parse(o) as Lists);
        const exact = await ask([]);
        const approx = await ask(['--approximate']);
        assert.ok(exact.lists.length >= 2, `${flag}: lists`);
        assert.deepEqual(
          approx.lists.map((l) => [l.from, l.to, l.hits.map((h) => h.id)]),
          exact.lists.map((l) => [l.from, l.to, l.hits.map((h) => h.id)]),
          `${flag}: approximate ids equal exact`,
        );
        // Approximate hits are re-scored exactly in float32: the same scores within 1e-6.
        for (let i = 0; i < exact.lists.length; i++)
          exact.lists[i].hits.forEach((h, j) =>
            assert.ok(Math.abs(approx.lists[i].hits[j].score - h.score) <= 1e-6, `${flag} score ${h.id}`),
          );
      }
    } finally {
      await stopAll();
      await redis.stop();
    }
  },
);
