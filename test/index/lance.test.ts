/**
 * The LanceDB backend against the embedded index, on the same commits (synthetic embeddings,
 * no model): the same entries, ids, thumbnails and search answers (ids identical, scores within
 * 1e-5) after adds, replacements and removals, reopened from disk; a writer reopening after a
 * commit cut short deletes its leftovers; LanceDB's vector index answers with the exact
 * index's scores and recall@10 >= 0.9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LanceIndex } from '../../src/index/lance.js';
import { openIndexReader, existingBackend } from '../../src/index/backend.js';
import { MediaIndex, type PreparedItem } from '../../src/index/store.js';
import type { EmbeddingSpace, Modality, SearchHit } from '../../src/index/types.js';
import { randomArray, rng } from '../helpers.js';

const DIM = 24;
/** Scores from the two backends: |a - b| <= 1e-5. */
const SCORE_TOL = 1e-5;
const identity = { modelId: 'sha256:lance-test', modelName: 'lance-test', dim: DIM };

function items(n: number, seed: number, prefix = '/media/clip'): PreparedItem[] {
  return Array.from({ length: n }, (_, i) => {
    const modality: Modality = (['audio', 'image', 'video'] as const)[i % 3];
    const embedding = {
      ...(modality !== 'image' ? { audio: randomArray(DIM, seed * 1000 + i * 2) } : {}),
      ...(modality !== 'audio' ? { visual: randomArray(DIM, seed * 1000 + i * 2 + 1) } : {}),
    };
    return {
      path: `${prefix}-${i}.${modality === 'audio' ? 'wav' : modality === 'image' ? 'png' : 'mp4'}`,
      modality,
      mtimeMs: 1000 + i,
      size: 10 + i,
      embedding,
      ...(i % 3 === 0
        ? {
            thumbnail: {
              bytes: Buffer.from(`thumb ${seed} ${i}`),
              ext: i % 2 ? ('png' as const) : ('jpg' as const),
            },
          }
        : {}),
    };
  });
}

function assertSameHits(a: SearchHit[], b: SearchHit[], what: string): void {
  assert.deepEqual(
    a.map((h) => h.id),
    b.map((h) => h.id),
    `${what}: ids`,
  );
  a.forEach((h, i) =>
    assert.ok(Math.abs(h.score - b[i].score) <= SCORE_TOL, `${what}: score ${h.score} vs ${b[i].score}`),
  );
}

test('LanceDB and embedded backends hold the same items and give equal search answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-lance-'));
  try {
    const emb = MediaIndex.create(join(dir, 'emb'), identity);
    const lance = await LanceIndex.openOrCreate(join(dir, 'lance'), identity);
    const batches = [items(120, 1), items(80, 2, '/media/more'), items(30, 3)]; // the third replaces 30 of the first
    for (const b of batches) {
      emb.commit(b);
      await lance.commit(b);
    }
    const gone = emb
      .list()
      .slice(5, 12)
      .map((e) => e.id);
    emb.remove(gone);
    await lance.remove(gone);
    emb.close();
    lance.close();
    assert.equal(existingBackend(join(dir, 'lance')), 'lancedb');
    assert.equal(existingBackend(join(dir, 'emb')), 'embedded');

    const a = await openIndexReader(join(dir, 'emb'));
    const b = (await openIndexReader(join(dir, 'lance'))) as LanceIndex;
    assert.equal(b.backend, 'lancedb');
    assert.equal(a.stats().count, 200 - gone.length, '30 of the first batch were replaced');
    assert.equal(b.stats().count, a.stats().count);
    const strip = (e: { addedAt: string; row: number }) => ({ ...e, addedAt: '', row: 0 });
    assert.deepEqual(b.list().map(strip), a.list().map(strip), 'same entries in the same order');
    for (const e of a.list())
      if (e.thumb)
        assert.ok(
          Buffer.from((await b.thumbnail(e.id))!.bytes).equals(readFileSync(join(dir, 'emb', e.thumb))),
          `${e.id} thumbnail`,
        );
    assert.equal(b.stats().withAudio, a.stats().withAudio);

    const r = rng(9);
    for (let qi = 0; qi < 12; qi++) {
      const q = randomArray(DIM, 5000 + qi);
      for (const space of ['audio', 'visual'] as EmbeddingSpace[]) {
        for (const k of [1, 10, 500])
          assertSameHits(
            await b.searchAsync(q, { space, k }),
            await a.searchAsync(q, { space, k }),
            `query ${qi} ${space} k=${k}`,
          );
      }
      // A stored item as the query finds itself first with score 1.
      const e = a.list()[Math.floor(r() * a.list().length)];
      const space: EmbeddingSpace = e.hasAudio ? 'audio' : 'visual';
      const self = (await b.vector(space, e.id))!;
      const hits = await b.searchAsync(self, { space, k: 3 });
      assert.equal(hits[0].id, e.id);
      assert.ok(Math.abs(hits[0].score - 1) < 1e-6);
    }
    await a.close();
    b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LanceDB: a commit cut short leaves no trace after the next writer opens; one writer at a time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-lance-'));
  try {
    const loc = join(dir, 'lance');
    const w = await LanceIndex.openOrCreate(loc, identity);
    await w.commit(items(10, 1));
    await assert.rejects(LanceIndex.openOrCreate(loc, identity), /is being written by process/);
    // Vectors written, items never: what a crash between steps 1 and 2 of a commit leaves.
    const tables = (
      w as unknown as { tables: Record<EmbeddingSpace, { add(rows: unknown[]): Promise<unknown> }> }
    ).tables;
    await tables.audio.add([{ id: 'ffffffffffffffff', seq: 99n, vector: Array.from(randomArray(DIM, 1)) }]);
    w.close();
    const again = await LanceIndex.openOrCreate(loc, identity);
    const q = randomArray(DIM, 77);
    const hits = await again.searchAsync(q, { space: 'audio', k: 50 });
    assert.ok(!hits.some((h) => h.id === 'ffffffffffffffff'));
    assert.equal(
      await (
        again as unknown as { tables: Record<EmbeddingSpace, { countRows(): Promise<number> }> }
      ).tables.audio.countRows(),
      again.stats().withAudio,
    );
    // New commits never reuse the orphan's seq.
    const [e] = await again.commit(items(1, 5, '/media/late'));
    assert.ok(e.row > 99);
    again.close();
    await assert.rejects(
      LanceIndex.openOrCreate(loc, { ...identity, modelId: 'sha256:other' }),
      /was built with model lance-test/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("LanceDB's vector index (IVF_PQ): approximate answers carry exact scores, recall@10 >= 0.9", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-lance-'));
  try {
    const lance = await LanceIndex.openOrCreate(join(dir, 'lance'), identity);
    // Clustered data (as embeddings are), 3000 items with visual embeddings.
    const centres = Array.from({ length: 20 }, (_, c) => randomArray(DIM, 900 + c));
    const r = rng(3);
    const batch: PreparedItem[] = Array.from({ length: 3000 }, (_, i) => {
      const v = new Float32Array(DIM);
      const c = centres[i % 20];
      for (let d = 0; d < DIM; d++) v[d] = c[d] + 0.3 * (r() * 2 - 1);
      return {
        path: `/media/img-${i}.png`,
        modality: 'image',
        mtimeMs: i,
        size: i,
        embedding: { visual: v },
      };
    });
    for (let i = 0; i < batch.length; i += 1000) await lance.commit(batch.slice(i, i + 1000));
    const built = await lance.buildAnn('visual', { pqMinRows: 2000 });
    assert.match(built.kind, /^IVF_PQ/);
    let found = 0;
    const Q = 20;
    for (let qi = 0; qi < Q; qi++) {
      const q = randomArray(DIM, 7000 + qi);
      for (let d = 0; d < DIM; d++) q[d] += centres[qi % 20][d];
      const exact = await lance.searchAsync(q, { space: 'visual', k: 10 });
      const approx = await lance.searchAsync(q, { space: 'visual', k: 10, approximate: true });
      const exactScore = new Map(exact.map((h) => [h.id, h.score]));
      for (const h of approx)
        if (exactScore.has(h.id)) {
          found++;
          assert.ok(Math.abs(h.score - exactScore.get(h.id)!) <= SCORE_TOL);
        }
    }
    assert.ok(found / (Q * 10) >= 0.9, `recall@10 ${found / (Q * 10)}`);
    lance.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
