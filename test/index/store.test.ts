/**
 * Media index store: exact search equals brute force (float64 dot products, full sort),
 * persistence, replace/remove/compact, identity and lock checks, torn tails after a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MediaIndex,
  mediaId,
  topKInnerProduct,
  TopKCollector,
  type EmbeddingSpace,
  type NewItem,
  type SearchHit,
} from '../../src/index/index.js';
import { kernels, tsKernels, useKernels } from '../../src/kernels/index.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, rng } from '../helpers.js';

const ID = { modelId: 'sha256:test-model-a', modelName: 'test-a', dim: 48 };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'cavmae-index-'));
}

function gaussVec(r: () => number, dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) v[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return v;
}

/** Items with a mix of modalities: every third audio-only, every fifth image (visual only). */
function makeItems(n: number, dim: number, seed: number, prefix = '/media/item'): NewItem[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const modality = i % 3 === 0 ? 'audio' : i % 5 === 0 ? 'image' : 'video';
    return {
      path: `${prefix}-${i}.${modality === 'audio' ? 'wav' : modality === 'image' ? 'jpg' : 'mp4'}`,
      modality,
      mtimeMs: 1_700_000_000_000 + i,
      size: 1000 + i,
      embedding: {
        ...(modality !== 'image' ? { audio: gaussVec(r, dim) } : {}),
        ...(modality !== 'audio' ? { visual: gaussVec(r, dim) } : {}),
      },
    } as NewItem;
  });
}

function normalized(v: Float32Array): Float64Array {
  // The store keeps float32 copies of v / |v| computed in float64: reproduce exactly that.
  let ss = 0;
  for (const x of v) ss += x * x;
  const inv = 1 / Math.sqrt(ss);
  return Float64Array.from(v, (x) => Math.fround(x * inv));
}

/** Brute force: float64 dot product with every live item that has the space, full sort. */
function bruteForce(
  live: Map<string, NewItem>,
  q: Float32Array,
  space: EmbeddingSpace,
  k: number,
): { id: string; score: number }[] {
  const qn = normalized(q);
  const all: { id: string; score: number }[] = [];
  for (const it of live.values()) {
    const v = it.embedding[space];
    if (!v) continue;
    const x = normalized(v);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += qn[i] * x[i];
    all.push({ id: mediaId(it.path), score: s });
  }
  all.sort((a, b) => b.score - a.score);
  return all.slice(0, k);
}

/**
 * Hits equal brute force: same ids in the same order, scores within 1e-5 (float32 GEMM vs
 * float64). Two adjacent results may only swap when their float64 scores differ by < 1e-5
 * (a numerical tie); the count of such swaps must be 0 on this random data.
 */
function assertSameAsBruteForce(got: SearchHit[], want: { id: string; score: number }[], what: string): void {
  assert.equal(got.length, want.length, `${what}: result count`);
  assertClose(
    got.map((h) => h.score),
    want.map((w) => w.score),
    { atol: 1e-5, what: `${what} scores` },
  );
  assert.deepEqual(
    got.map((h) => h.id),
    want.map((w) => w.id),
    `${what}: ids differ from brute force`,
  );
}

test('TopKCollector equals a full sort (ties broken by lower index, NaN never selected)', () => {
  const r = rng(7);
  for (const [nq, n, k] of [
    [3, 50, 5],
    [2, 10, 10],
    [1, 7, 20],
    [4, 1000, 17],
  ]) {
    // Scores on a coarse grid so that many ties occur.
    const block = Float32Array.from({ length: nq * n }, () => Math.floor(r() * 8) / 4);
    block[0] = NaN;
    const c = new TopKCollector(nq, k);
    // Feed in three uneven column chunks as the index feeds segments.
    const cuts = [0, Math.floor(n / 3), Math.floor((2 * n) / 3), n];
    for (let p = 0; p < 3; p++) {
      const cols = cuts[p + 1] - cuts[p];
      const sub = new Float32Array(nq * cols);
      for (let q = 0; q < nq; q++) sub.set(block.subarray(q * n + cuts[p], q * n + cuts[p + 1]), q * cols);
      c.offerBlock(sub, cols, cuts[p], (i) => i % 11 !== 3);
    }
    const res = c.result();
    for (let q = 0; q < nq; q++) {
      const want = [...Array(n).keys()]
        .filter((i) => i % 11 !== 3 && !Number.isNaN(block[q * n + i]))
        .sort((a, b) => block[q * n + b] - block[q * n + a] || a - b)
        .slice(0, k);
      assert.deepEqual(Array.from(res[q].index), want, `nq=${nq} n=${n} k=${k} q=${q}`);
      assert.deepEqual(
        Array.from(res[q].score),
        want.map((i) => block[q * n + i]),
      );
    }
  }
});

test('topKInnerProduct (blocked GEMM) equals float64 brute force, ts and dispatched kernels', () => {
  const dim = 40;
  const n = 2500;
  const nq = 9;
  const r = rng(11);
  const x = Float32Array.from({ length: n * dim }, () => r() * 2 - 1);
  const q = Float32Array.from({ length: nq * dim }, () => r() * 2 - 1);
  const before = kernels();
  try {
    for (const K of [tsKernels, before]) {
      useKernels(K);
      for (const blockRows of [97, 1024, undefined]) {
        const res = topKInnerProduct(q, nq, x, n, dim, 12, { blockRows });
        for (let i = 0; i < nq; i++) {
          const s = Array.from({ length: n }, (_, j) => {
            let d = 0;
            for (let t = 0; t < dim; t++) d += q[i * dim + t] * x[j * dim + t];
            return d;
          });
          const want = [...s.keys()].sort((a, b) => s[b] - s[a]).slice(0, 12);
          assert.deepEqual(
            Array.from(res[i].index),
            want,
            `${K.name} kernels, block ${blockRows}, query ${i}`,
          );
          assertClose(
            res[i].score,
            want.map((j) => s[j]),
            { atol: 1e-5, what: `${K.name} scores` },
          );
        }
      }
    }
  } finally {
    useKernels(before);
  }
});

test('exact search equals brute force across segments, spaces, removals and replacements; survives reopen and compaction', () => {
  const dir = tmp();
  try {
    const dim = ID.dim;
    const idx = MediaIndex.create(dir, ID, { segmentRows: 256 }); // several segment files
    const items = makeItems(700, dim, 3);
    const live = new Map<string, NewItem>();
    for (let i = 0; i < items.length; i += 64) {
      idx.add(items.slice(i, i + 64));
      for (const it of items.slice(i, i + 64)) live.set(mediaId(it.path), it);
    }
    // Replace 20 items with new vectors (same path -> same id), remove 30 others.
    const repl = makeItems(20, dim, 99).map((it, i) => ({
      ...it,
      path: items[i * 7].path,
      modality: items[i * 7].modality,
      embedding: {
        ...(items[i * 7].embedding.audio ? { audio: it.embedding.audio ?? gaussVec(rng(i), dim) } : {}),
        ...(items[i * 7].embedding.visual
          ? { visual: it.embedding.visual ?? gaussVec(rng(i + 500), dim) }
          : {}),
      },
    }));
    idx.add(repl);
    for (const it of repl) live.set(mediaId(it.path), it);
    const gone = items.filter((_, i) => i % 23 === 5).map((it) => mediaId(it.path));
    const res = idx.remove([...gone, 'ffffffffffffffff']);
    assert.deepEqual(res.unknown, ['ffffffffffffffff']);
    for (const id of gone) live.delete(id);
    assert.equal(idx.count, live.size);

    const r = rng(5);
    const queries = Array.from({ length: 12 }, () => gaussVec(r, dim));
    const check = (index: MediaIndex, what: string) => {
      for (const space of ['audio', 'visual'] as const) {
        const batch = index.searchBatch(
          Float32Array.from(queries.flatMap((q) => Array.from(q))),
          queries.length,
          { space, k: 10 },
        );
        queries.forEach((q, i) => {
          assertSameAsBruteForce(batch[i], bruteForce(live, q, space, 10), `${what} ${space} query ${i}`);
          for (const h of batch[i]) assert.ok(space === 'audio' ? h.entry.hasAudio : h.entry.hasVisual);
        });
      }
      // k larger than the space: every item with that embedding, once.
      const all = index.search(queries[0], { space: 'audio', k: 10_000 });
      assert.equal(all.length, [...live.values()].filter((it) => it.embedding.audio).length);
    };
    check(idx, 'live');
    idx.close();

    const ro = MediaIndex.open(dir);
    assert.equal(ro.writable, false);
    assert.equal(ro.count, live.size);
    check(ro, 'reopened');
    assert.throws(() => ro.add(makeItems(1, dim, 1)), UserError);

    const w = MediaIndex.open(dir, { writable: true });
    const before = w.search(queries[1], { space: 'visual', k: 25 });
    const { before: rowsBefore, after } = w.compact();
    assert.equal(rowsBefore, 720);
    assert.equal(after, live.size);
    assert.equal(w.rows, live.size);
    assert.equal(w.generation, 1);
    const afterHits = w.search(queries[1], { space: 'visual', k: 25 });
    assert.deepEqual(
      afterHits.map((h) => [h.id, h.score]),
      before.map((h) => [h.id, h.score]),
      'compaction changes no result',
    );
    check(w, 'compacted');
    w.close();
    check(MediaIndex.open(dir), 'compacted+reopened');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the stored vectors are the normalised inputs, bit for bit, after reopen', () => {
  const dir = tmp();
  try {
    const idx = MediaIndex.create(dir, ID);
    const items = makeItems(30, ID.dim, 21);
    idx.add(items);
    idx.close();
    const ro = MediaIndex.open(dir);
    for (const it of items) {
      const e = ro.get(mediaId(it.path))!;
      assert.equal(e.path, it.path);
      assert.equal(e.modality, it.modality);
      for (const space of ['audio', 'visual'] as const) {
        const v = it.embedding[space];
        assert.equal(ro.has(space, e.row), !!v);
        if (v) assert.deepEqual(Array.from(ro.vector(space, e.row)), Array.from(normalized(v)));
      }
    }
    assert.deepEqual(ro.stats().byModality, { audio: 10, image: 4, video: 16 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('identity, input validation and the write lock', () => {
  const dir = tmp();
  try {
    const idx = MediaIndex.create(dir, ID);
    assert.throws(() => MediaIndex.create(dir, ID), /already holds a media index/);
    assert.throws(() => MediaIndex.open(dir, { writable: true }), /is being written by process/);
    assert.throws(
      () => idx.add([{ ...makeItems(1, ID.dim, 1)[0], embedding: { audio: new Float32Array(7).fill(1) } }]),
      /7 values, the index holds 48/,
    );
    assert.throws(
      () => idx.add([{ ...makeItems(1, ID.dim, 1)[0], embedding: { audio: new Float32Array(48) } }]),
      /all zeros/,
    );
    assert.throws(
      () =>
        idx.add([{ ...makeItems(1, ID.dim, 1)[0], embedding: { visual: new Float32Array(48).fill(NaN) } }]),
      /non-finite/,
    );
    assert.throws(() => idx.add([{ ...makeItems(1, ID.dim, 1)[0], embedding: {} }]), /no embedding/);
    assert.throws(() => idx.search(new Float32Array(5), { space: 'audio', k: 3 }), /index holds 48/);
    assert.throws(
      () => idx.search(new Float32Array(48).fill(1), { space: 'audio', k: 0 }),
      /k must be a positive integer/,
    );
    assert.equal(idx.count, 0, 'failed adds commit nothing');
    idx.close();
    assert.throws(
      () => MediaIndex.openOrCreate(dir, { ...ID, modelId: 'sha256:other' }),
      /was built with model test-a/,
    );
    assert.throws(() => MediaIndex.openOrCreate(dir, { ...ID, dim: 64 }), /holds 48-dimensional embeddings/);
    // A stale lock of a dead process is taken over.
    writeFileSync(join(dir, 'write.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname() }) + '\n');
    const again = MediaIndex.open(dir, { writable: true });
    assert.ok(again.writable);
    again.close();
    assert.throws(() => MediaIndex.open(join(dir, 'nope')), /no media index here/);
    writeFileSync(join(dir, 'meta.json'), '{"format": "something-else"}');
    assert.throws(
      () => MediaIndex.open(dir),
      (e: unknown) => e instanceof UserError && /meta\.json: not a valid media index/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn tail (bytes past the commit) is ignored by readers and cut by the next writer', () => {
  const dir = tmp();
  try {
    const idx = MediaIndex.create(dir, ID, { segmentRows: 16 });
    const items = makeItems(40, ID.dim, 8);
    idx.add(items.slice(0, 20));
    idx.close();
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
    const manifest = join(dir, 'g0', 'manifest.jsonl');
    // What a SIGKILL between "append" and "commit meta" leaves behind: extra rows in the last
    // segment, a new segment file, half a manifest line, a temp meta file.
    appendFileSync(join(dir, 'g0', 'audio-00001.f32'), Buffer.alloc(ID.dim * 4 * 3, 7));
    writeFileSync(join(dir, 'g0', 'visual-00002.f32'), Buffer.alloc(ID.dim * 4 * 2, 9));
    appendFileSync(manifest, '{"op":"add","id":"0123456789abcdef","row":20,"pa');
    writeFileSync(join(dir, '.meta.json.999.1.tmp'), '{"torn":');
    const ro = MediaIndex.open(dir);
    assert.equal(ro.count, 20);
    assert.equal(ro.rows, 20);
    const w = MediaIndex.open(dir, { writable: true });
    assert.equal(statSync(manifest).size, meta.manifestBytes, 'manifest cut to the committed end');
    assert.equal(statSync(join(dir, 'g0', 'audio-00001.f32')).size, 4 * ID.dim * 4);
    assert.throws(() => statSync(join(dir, 'g0', 'visual-00002.f32')));
    w.add(items.slice(20));
    w.close();
    const again = MediaIndex.open(dir);
    assert.equal(again.count, 40);
    for (const it of items) {
      const e = again.get(mediaId(it.path))!;
      if (it.embedding.visual)
        assert.deepEqual(
          Array.from(again.vector('visual', e.row)),
          Array.from(normalized(it.embedding.visual)),
        );
    }
    // A committed file that is shorter than meta.json says is an error naming the file.
    writeFileSync(join(dir, 'g0', 'audio-00000.f32'), Buffer.alloc(10));
    assert.throws(() => MediaIndex.open(dir), /audio-00000\.f32: audio vectors is truncated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
