// The HTTP server (src/serve) driven by the real model engine (src/api/engine.ts): the JSON
// answers equal the library API's results for the same files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CavMae } from '../../src/api/cavmae.js';
import { createModelEngine, mediaEmbedder } from '../../src/api/engine.js';
import { addMedia } from '../../src/index/add.js';
import { MediaIndex, mediaId } from '../../src/index/store.js';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { hasFfmpeg, makeTestMedia } from '../index/test-media.js';
import { assertClose } from '../helpers.js';
import { assertReconstructOverHttp, postFiles } from './http.js';
import { writeTestModels } from './models.js';

const skip = !hasFfmpeg() && 'no ffmpeg';

/** The fields of the server's JSON answers these tests read. */
interface Answer {
  audio?: number[];
  visual?: number[];
  lists?: { from: string; to: string; hits: { id: string }[] }[];
  width?: number;
  height?: number;
  heat?: number[];
  overlay?: string;
  mseAudio?: number;
  mseVisual?: number;
  labels?: { name: string }[];
  activation?: string;
}

const post = (s: RunningServer, path: string, files: [string, string][]) => postFiles<Answer>(s, path, files);

test(
  'serve with the model engine: info, embed, search, localize, reconstruct, classify',
  { skip },
  async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cavmae-serve-api-'));
    const models = writeTestModels(tmp);
    mkdirSync(join(tmp, 'media'));
    const md = await makeTestMedia(join(tmp, 'media'));
    const api = await CavMae.load(models.tiny);
    const dir = join(tmp, 'index');
    const embedder = mediaEmbedder(api);
    const index = MediaIndex.create(dir, {
      modelId: embedder.modelId,
      modelName: embedder.modelName,
      dim: embedder.dim,
      modelPath: models.tiny,
    });
    await addMedia(
      index,
      [md.wav, md.png, md.mp4].map((f) => resolve(f)),
      embedder,
      { thumbnails: false },
    );
    index.close();

    const s = await startServer({ port: 0, engine: await createModelEngine(models.tiny, dir) });
    try {
      const info = (await (await fetch(new URL('/api/info', s.url))).json()) as {
        engine: { dim: number; modelId: string };
        index: { count: number };
      };
      assert.deepEqual([info.engine.dim, info.engine.modelId, info.index.count], [128, api.modelId, 3]);
      const emb = await post(s, '/api/embed', [['file', md.mp4]]);
      assert.equal(emb.status, 200, JSON.stringify(emb.json));
      const ref = await api.embedMedia(md.mp4);
      assertClose(emb.json.audio!, ref.audio!.pooled, { atol: 1e-7, what: 'audio embedding over HTTP' });
      assertClose(emb.json.visual!, ref.visual!.pooled, { atol: 1e-7, what: 'visual embedding over HTTP' });
      const search = await post(s, '/api/search?k=3&mode=same', [['file', md.png]]);
      assert.equal(search.status, 200, JSON.stringify(search.json));
      const vv = search.json.lists!.find((l) => l.from === 'visual' && l.to === 'visual')!;
      assert.equal(vv.hits[0].id, mediaId(md.png));
      const loc = await post(s, '/api/localize', [['file', md.mp4]]);
      assert.equal(loc.status, 200, JSON.stringify(loc.json));
      assert.deepEqual([loc.json.width, loc.json.height, loc.json.heat!.length], [224, 224, 224 * 224]);
      assertClose(loc.json.heat!, (await api.localize(md.mp4)).heat, {
        atol: 1e-4,
        what: 'heat over HTTP (rounded to 1e-4)',
      });
      assert.match(loc.json.overlay!, /^data:image\/png;base64,/);
      await assertReconstructOverHttp(s, api, md.png, md.wav);
      const cls = await post(s, '/api/classify', [['file', md.mp4]]);
      assert.equal(cls.status, 501, 'a pretrained model cannot classify');
      const bad = await post(s, '/api/localize', [
        ['image', md.png],
        ['audio', md.png],
      ]);
      assert.ok(bad.status >= 400 && bad.status < 500, `localize with two images: ${bad.status}`);
    } finally {
      await s.close();
    }
    const ft = await startServer({ port: 0, engine: await createModelEngine(models.tinyFt) });
    try {
      const cls = await post(ft, '/api/classify?top=2', [['file', md.mp4]]);
      assert.equal(cls.status, 200, JSON.stringify(cls.json));
      const apiC = await (await CavMae.load(models.tinyFt)).classify(md.mp4, { top: 2 });
      assert.deepEqual(
        cls.json.labels!.map((l) => l.name),
        apiC.top.map((l) => l.name),
      );
      assert.equal(cls.json.activation, 'softmax');
    } finally {
      await ft.close();
    }
  },
);
