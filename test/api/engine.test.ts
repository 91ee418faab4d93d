// The model engine behind `cavmae serve` / `index add` / `search` (src/api/engine.ts): its
// answers equal the library API's, and index search over real model embeddings equals a
// brute-force cosine ranking.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import sharp from 'sharp';
import { CavMae } from '../../src/api/cavmae.js';
import { createEngine, createModelEngine, mediaEmbedder } from '../../src/api/engine.js';
import { addMedia } from '../../src/index/add.js';
import { MediaIndex, mediaId } from '../../src/index/store.js';
import type { EmbeddingSpace, Modality } from '../../src/index/types.js';
import type { MediaInput } from '../../src/serve/engine.js';
import { UserError } from '../../src/util/errors.js';
import { hasFfmpeg, makeTestMedia } from '../index/test-media.js';
import { assertClose } from '../helpers.js';
import { writeTestModels } from './models.js';

const skip = !hasFfmpeg() && 'no ffmpeg';
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-engine-'));
const models = writeTestModels(tmp);

function input(path: string, kind: Modality): MediaInput {
  return { kind, data: readFileSync(path), name: basename(path), path };
}

test('engine answers equal the library API (embed, localize, reconstruct, classify)', { skip }, async () => {
  const md = await makeTestMedia(tmp);
  const engine = await createEngine(models.tiny);
  const api = await CavMae.load(models.tiny);
  const info = engine.info();
  assert.equal(info.modelId, api.modelId);
  assert.deepEqual(
    [info.dim, info.capabilities],
    [128, { classify: false, localize: true, reconstruct: true }],
  );
  const e = await engine.embed(input(md.mp4, 'video'));
  const ref = await api.embedMedia(md.mp4);
  assert.deepEqual(e.audio, ref.audio!.pooled);
  assert.deepEqual(e.visual, ref.visual!.pooled);
  const bytesOnly = await engine.embed({ kind: 'video', data: readFileSync(md.mp4), name: 'clip.mp4' });
  assert.deepEqual(bytesOnly.visual, e.visual, 'bytes without a path give the same embedding');
  assert.deepEqual(Object.keys(await engine.embed(input(md.png, 'image'))), ['visual']);
  assert.deepEqual(Object.keys(await engine.embed(input(md.wav, 'audio'))), ['audio']);
  const v = input(md.mp4, 'video');
  const loc = await engine.localize(v, v);
  assert.deepEqual(loc.heat, (await api.localize(md.mp4)).heat);
  assert.deepEqual([(await sharp(loc.overlayPng).metadata()).width, loc.width, loc.height], [224, 224, 224]);
  const rec = await engine.reconstruct(
    { image: input(md.png, 'image'), audio: input(md.wav, 'audio') },
    0.5,
    'freq',
  );
  const apiRec = await api.reconstruct(
    { image: md.png, audio: md.wav },
    { maskRatio: 0.5, maskMode: 'freq' },
  );
  assert.deepEqual([rec.mseAudio, rec.mseVisual], [apiRec.mseAudio, apiRec.mseVisual]);
  await assert.rejects(engine.classify(v, { top: 3 }), UserError);
  const ft = await createEngine(models.tinyFt);
  assert.deepEqual(ft.info().capabilities, { classify: true, localize: true, reconstruct: false });
  assert.equal(ft.info().labels![3], 'three');
  const c = await ft.classify(v, { top: 3 });
  const apiC = await (await CavMae.load(models.tinyFt)).classify(md.mp4, { top: 3 });
  assert.deepEqual(
    c.labels,
    apiC.top.map((l) => ({ index: l.index, name: l.name, score: l.score })),
  );
  assert.equal(c.activation, 'softmax');
});

test(
  'index search with model embeddings equals a brute-force cosine ranking; other models are refused',
  { skip },
  async () => {
    mkdirSync(join(tmp, 'media2'));
    const md = await makeTestMedia(join(tmp, 'media2'));
    const api = await CavMae.load(models.tiny);
    const dir = join(tmp, 'index');
    const files = [md.wav, md.png, md.jpg, md.mp4, md.silentMp4, md.audioOnlyMp4, md.longWav].map((f) =>
      resolve(f),
    );
    const embedder = mediaEmbedder(api);
    const index = MediaIndex.create(dir, {
      modelId: embedder.modelId,
      modelName: embedder.modelName,
      dim: embedder.dim,
    });
    const summary = await addMedia(index, files, embedder, { thumbnails: false });
    index.close();
    assert.deepEqual([summary.added, summary.failed.length], [files.length, 0]);

    // Brute force: every file's embeddings straight from the API, cosine with the query.
    const stored = new Map<string, { audio?: Float32Array; visual?: Float32Array }>();
    for (const f of files) {
      const e = await api.embedMedia(f);
      stored.set(mediaId(f), { audio: e.audio?.pooled, visual: e.visual?.pooled });
    }
    const engine = await createModelEngine(models.tiny, dir);
    for (const [q, kind] of [
      [md.mp4, 'video'],
      [md.wav, 'audio'],
      [md.png, 'image'],
    ] as const) {
      const r = await engine.search(input(q, kind), { k: 10, mode: 'all' });
      const qe = await api.embedMedia(q);
      assert.ok(r.lists.length >= 2, `${q}: ${r.lists.length} lists`);
      for (const list of r.lists) {
        const query = (list.from === 'audio' ? qe.audio : qe.visual)!.pooled;
        const brute: { id: string; score: number }[] = [];
        for (const [id, e] of stored) {
          const x = e[list.to as EmbeddingSpace];
          if (!x) continue;
          let dot = 0;
          for (let d = 0; d < x.length; d++) dot += query[d] * x[d];
          brute.push({ id, score: dot / Math.hypot(...x) });
        }
        brute.sort((a, b) => b.score - a.score);
        assert.deepEqual(
          list.hits.map((h) => h.id),
          brute.slice(0, 10).map((b) => b.id),
          `${basename(q)} ${list.from}->${list.to} order`,
        );
        assertClose(
          list.hits.map((h) => h.score),
          brute.slice(0, 10).map((b) => b.score),
          { atol: 1e-5, what: `${basename(q)} ${list.from}->${list.to} scores` },
        );
      }
      // A file is its own best same-modal match.
      const same = r.lists.find((l) => l.from === l.to)!;
      assert.equal(same.hits[0].id, mediaId(q));
      assertClose([same.hits[0].score], [1], { atol: 1e-5, what: 'self similarity' });
    }
    await engine.close?.();
    await assert.rejects(
      createEngine(models.tinyFt, dir),
      (e: Error) => e instanceof UserError && /built with model/.test(e.message),
    );
  },
);
