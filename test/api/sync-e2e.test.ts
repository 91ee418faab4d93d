/**
 * CAV-MAE Sync everywhere, end to end: a small Sync model trained here by the CLI
 * (`make-demo-data --sync`, `pretrain --config sync-tiny --recipe sync`, `finetune`) goes
 * through `cavmae index add`, `search`, `classify`, `localize`, `reconstruct`, `embed`, the
 * HTTP server and the web page (chromium), and every answer equals the library API's:
 * ids and labels exactly, scores and maps within the tolerances named at each assertion.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- page-side code runs in the browser, typed without DOM lib */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CavMae } from '../../src/api/cavmae.js';
import { createModelEngine, indexClip, mediaEmbedder, searchVectors } from '../../src/api/engine.js';
import { openIndexWriter } from '../../src/index/backend.js';
import { addMedia, mediaId } from '../../src/index/index.js';
import type { MediaEmbedder, MediaEmbedding } from '../../src/index/types.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { ffmpeg, hasFfmpeg } from '../index/test-media.js';
import { assertClose, repoRoot, runCavmae } from '../helpers.js';
import { assertReconstructOverHttp, postFiles } from './http.js';
import { chromiumMissing, openHeadless } from '../serve/headless.js';

const skip = hasFfmpeg() ? false : 'ffmpeg is not installed';

let tmp = '';
let pre = '';
let ft = '';
const media: { videos: string[]; wav: string; png: string; all: string[] } = {
  videos: [],
  wav: '',
  png: '',
  all: [],
};

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return runCavmae(tmp, args, { timeoutMs: 120_000 });
}

function ok(args: string[]): string {
  const r = cli(args);
  assert.equal(r.status, 0, `cavmae ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const ONE_STEP = ['--batch-size', '4', '--max-steps', '1', '--epochs', '1', '--workers', '1', '--quiet'];

/** `cavmae finetune` of the pretrained Sync model on the demo data, one step; the model file. */
function finetune(name: string, extra: string[] = []): string {
  const data = join(tmp, 'data');
  ok([
    'finetune',
    '--init',
    pre,
    ...extra,
    '--data',
    join(data, 'sync-train.json'),
    '--val',
    join(data, 'sync-test.json'),
    '--label-csv',
    join(data, 'labels.csv'),
    '--out',
    join(tmp, name),
    ...ONE_STEP,
  ]);
  return join(tmp, name, 'model.safetensors');
}

before(async () => {
  if (skip) return;
  tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-e2e-'));
  const data = join(tmp, 'data');
  ok(['make-demo-data', '--sync', '--n', '4', '--test-n', '2', '--no-real-test', '--out', data, '--quiet']);
  ok([
    'pretrain',
    '--config',
    'sync-tiny',
    '--recipe',
    'sync',
    '--data',
    join(data, 'sync-train.json'),
    '--out',
    join(tmp, 'pre'),
    ...ONE_STEP,
  ]);
  pre = join(tmp, 'pre', 'model.safetensors');
  ft = finetune('ft');
  // Media files of the demo clips: videos (16 frames over 10.24 s + the speech), one sound, one picture.
  const dir = join(tmp, 'media');
  mkdirSync(dir);
  for (let i = 0; i < 3; i++) {
    const id = `avds_train_0000${i}`;
    const out = join(dir, `clip${i}.mp4`);
    ffmpeg([
      '-framerate',
      '1.5625',
      '-i',
      join(data, 'sync-train', id, 'frame_%02d.png'),
      '-i',
      join(data, 'sync-train', `${id}.wav`),
      ...'-vf scale=64:64 -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest'.split(' '),
      out,
    ]);
    media.videos.push(out);
  }
  media.wav = join(dir, 'speech.wav');
  writeFileSync(media.wav, readFileSync(join(data, 'sync-test', 'avds_test_00000.wav')));
  media.png = join(dir, 'digit.png');
  writeFileSync(media.png, readFileSync(join(data, 'sync-test', 'avds_test_00001', 'frame_08.png')));
  media.all = [...media.videos, media.wav, media.png];
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Hit {
  id: string;
  score: number;
}
interface Lists {
  lists: { from: string; to: string; hits: Hit[] }[];
}

let indexed: { id: string; e: MediaEmbedding }[] | undefined;

/** The API's ranking: cosine of the search vectors, exact, highest first (ties by id order of the index). */
async function apiSearch(api: CavMae, query: string, k: number): Promise<Map<string, Hit[]>> {
  const q = await searchVectors(api, query);
  // The indexed files' vectors, computed once (the model is fixed).
  indexed ??= await Promise.all(
    media.all.map(async (p) => ({ id: mediaId(p), e: await searchVectors(api, p) })),
  );
  const items = indexed;
  const cos = (a: Float32Array, b: Float32Array): number => {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
    return ab / Math.sqrt(aa * bb);
  };
  const out = new Map<string, Hit[]>();
  for (const from of ['audio', 'visual'] as const)
    for (const to of ['audio', 'visual'] as const) {
      if (!q[from]) continue;
      const hits = items
        .filter((it) => it.e[to])
        .map((it) => ({ id: it.id, score: cos(q[from]!, it.e[to]!) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, k);
      out.set(`${from}->${to}`, hits);
    }
  return out;
}

function sameHits(got: Lists, want: Map<string, Hit[]>, what: string): void {
  assert.equal(got.lists.length, want.size, `${what}: lists`);
  for (const l of got.lists) {
    const w = want.get(`${l.from}->${l.to}`)!;
    assert.deepEqual(
      l.hits.map((h) => h.id),
      w.map((h) => h.id),
      `${what} ${l.from}->${l.to}: ids in order`,
    );
    // The index stores float32 unit vectors and ranks by one GEMM: scores within 1e-5 of float64 cosines.
    assertClose(
      l.hits.map((h) => h.score),
      w.map((h) => h.score),
      { atol: 1e-5, what: `${what} ${l.from}->${l.to} scores` },
    );
  }
}

test(
  'Sync model from `cavmae pretrain --recipe sync`: index add, search, embed, localize, reconstruct, classify through the CLI equal the API',
  { skip, timeout: 240_000 },
  async () => {
    const api = await CavMae.load(pre);
    assert.equal(api.isSync, true);
    assert.equal(api.clipStrategy, 'diagonal_mean', 'recorded by pretrain');
    const idx = join(tmp, 'index');
    ok(['index', 'add', join(tmp, 'media'), '--model', pre, '--index', idx, '--json']);
    const meta = JSON.parse(readFileSync(join(idx, 'meta.json'), 'utf8')) as { dim: number; clip: unknown };
    assert.equal(meta.dim, 16 * 128, 'clip vectors: 16 pairs x 128');
    assert.deepEqual(meta.clip, { strategy: 'diagonal_mean', pairs: 16 });

    for (const [flag, query] of [
      ['--video', media.videos[1]],
      ['--audio', media.wav],
      ['--image', media.png],
    ] as const) {
      const got = JSON.parse(ok(['search', '--index', idx, flag, query, '--k', '6', '--json'])) as Lists;
      const want = await apiSearch(api, query, 6);
      if (flag === '--audio') want.forEach((_, key) => key.startsWith('visual') && want.delete(key));
      if (flag === '--image') want.forEach((_, key) => key.startsWith('audio') && want.delete(key));
      sameHits(got, want, `search ${flag} ${basename(query)}`);
      // An indexed video finds itself first in both same-modal lists (its own clip vectors).
      if (flag === '--video')
        for (const l of got.lists.filter((x) => x.from === x.to))
          assert.equal(l.hits[0].id, mediaId(query), `${l.from}: itself first`);
    }

    // localize: one map per (segment, frame) pair of the video, the middle pair on --out.
    const out = join(tmp, 'loc.png');
    const loc = JSON.parse(
      ok(['localize', '--model', pre, '--image', media.videos[0], '--out', out, '--json']),
    ) as {
      peak: { row: number; col: number; score: number };
      frames: { frame: number; file: string; peak: { row: number; col: number; score: number } }[];
    };
    const apiLoc = await api.localize(media.videos[0]);
    assert.equal(apiLoc.frames!.length, 16);
    assert.equal(loc.frames.length, 16);
    for (const f of loc.frames) {
      assert.ok(existsSync(f.file), f.file);
      const a = apiLoc.frames![f.frame];
      assert.deepEqual([f.peak.row, f.peak.col], [a.peak.row, a.peak.col], `frame ${f.frame} peak`);
      assert.ok(Math.abs(f.peak.score - a.peak.score) < 1e-6, `frame ${f.frame} peak cosine`);
    }
    assert.deepEqual([loc.peak.row, loc.peak.col], [apiLoc.frames![8].peak.row, apiLoc.frames![8].peak.col]);

    // reconstruct: one pair (the middle one by default).
    const rec = JSON.parse(
      ok(['reconstruct', media.videos[0], '--model', pre, '--out', join(tmp, 'rec.png'), '--json']),
    ) as {
      mseAudio: number;
      mseVisual: number;
      pair: number;
    };
    const apiRec = await api.reconstruct(media.videos[0]);
    assert.equal(rec.pair, 8);
    // Same computation in another process: equal to float32 rounding.
    assert.ok(
      Math.abs(rec.mseAudio - apiRec.mseAudio!) < 1e-6 && Math.abs(rec.mseVisual - apiRec.mseVisual!) < 1e-6,
    );

    // embed: [N, 16, D] pair vectors of a datafile; the audio rows are the API's segment vectors of the same WAV.
    const emb = join(tmp, 'emb.safetensors');
    assert.match(
      ok(['embed', '--model', pre, '--data', join(tmp, 'data', 'sync-test.json'), '--out', emb]),
      /audio \[2, 16, 128\].*diagonal_mean/,
    );
    const file = readSafetensors(emb);
    assert.deepEqual(file.tensors.get('audio')!.shape, [2, 16, 128]);
    assert.equal(file.metadata['cavmae.clip_strategy'], 'diagonal_mean');
    const apiAudio = await api.embedAudio(media.wav);
    assertClose((file.tensors.get('audio')!.data as Float32Array).subarray(0, 16 * 128), apiAudio.pairs!, {
      atol: 1e-5,
      what: 'embed file vs API segment vectors',
    });

    // The file's pair vectors give the same ranks as the model run over the datafile (class-match
    // aside: the file labels clips by their first label, the model run only single-label sets).
    const ranks = (r: Record<string, unknown>): unknown[] =>
      [r.strategy, r.audioToVideo, r.videoToAudio].map((m) =>
        typeof m === 'object' ? { ...(m as object), classMatchAt1: undefined } : m,
      );
    const fromFile = JSON.parse(ok(['retrieval', '--embeddings', emb, '--json'])) as Record<string, unknown>;
    const fromModel = JSON.parse(
      ok(['retrieval', '--model', pre, '--data', join(tmp, 'data', 'sync-test.json'), '--json']),
    ) as Record<string, unknown>;
    assert.deepEqual(ranks(fromFile), ranks(fromModel));

    // classify with the fine-tuned Sync model: the aggregator over the clip's 16 pairs.
    const apiFt = await CavMae.load(ft);
    for (const v of media.videos.slice(0, 1)) {
      const got = JSON.parse(ok(['classify', v, '--model', ft, '--top', '3', '--json'])) as {
        top: { index: number; name: string; score: number }[];
      };
      const want = await apiFt.classify(v, { top: 3 });
      assert.equal(want.logits.length, 10, 'one logits row: the clip');
      assert.deepEqual(
        got.top.map((l) => l.name),
        want.top.map((l) => l.name),
        `${basename(v)}: labels`,
      );
      assertClose(
        got.top.map((l) => l.score),
        want.top.map((l) => l.score),
        { atol: 1e-6, what: `${basename(v)}: scores` },
      );
    }
    const bad = cli(['classify', media.videos[0], '--model', ft, '--frames', 'middle']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--frames: a fine-tuned CAV-MAE Sync model reads all 16/);
  },
);

const post = (s: RunningServer, path: string, files: [string, string][]) => postFiles<any>(s, path, files);

test(
  'Sync models through the server and the web page: search, localize per frame, reconstruct, classify equal the API',
  { skip, timeout: 240_000 },
  async () => {
    const api = await CavMae.load(pre);
    const idx = join(tmp, 'index'); // built by the CLI test above
    if (!existsSync(join(idx, 'meta.json')))
      ok(['index', 'add', join(tmp, 'media'), '--model', pre, '--index', idx, '--json']);
    const s = await startServer({ port: 0, engine: await createModelEngine(pre, idx) });
    try {
      const info = (await (await fetch(new URL('/api/info', s.url))).json()) as any;
      assert.equal(info.engine.dim, 16 * 128);
      assert.deepEqual(info.engine.clip, { strategy: 'diagonal_mean', pairs: 16 });
      const search = await post(s, '/api/search?k=6&mode=all', [['file', media.videos[2]]]);
      assert.equal(search.status, 200, JSON.stringify(search.json));
      sameHits(search.json as Lists, await apiSearch(api, media.videos[2], 6), 'HTTP search');
      const loc = await post(s, '/api/localize', [['file', media.videos[1]]]);
      assert.equal(loc.status, 200, JSON.stringify(loc.json));
      const apiLoc = await api.localize(media.videos[1]);
      // The server rounds the heat to 1e-4.
      assertClose(loc.json.heat, apiLoc.heat, { atol: 1e-4, what: 'heat over HTTP' });
      assert.equal(loc.json.frames.length, 16);
      assert.match(loc.json.frames[15].overlay, /^data:image\/png;base64,/);
      await assertReconstructOverHttp(s, api, media.png, media.wav);

      if (!chromiumMissing) {
        const browser = await openHeadless();
        try {
          const { page, problems } = browser;
          await page.goto(s.url);
          await page.waitForFunction(() =>
            /items/.test((globalThis as any).document.getElementById('fact-index').textContent),
          );
          await page.setInputFiles('#file-main', media.videos[2]);
          await page.waitForSelector('#section-localize:not([hidden]) #heatmap[data-rendered="true"]', {
            timeout: 60_000,
          });
          await page.waitForSelector('#frame-overlays:not([hidden]) img', { timeout: 60_000 });
          await page.waitForSelector('#section-reconstruct:not([hidden])', { timeout: 60_000 });
          await page.waitForFunction(
            () => /Done/.test((globalThis as any).document.getElementById('status').textContent),
            undefined,
            { timeout: 60_000 },
          );
          const facts = await page.evaluate(() => {
            const doc = (globalThis as any).document;
            return {
              cards: doc.querySelectorAll('#search-lists .card').length as number,
              frames: doc.querySelectorAll('#frame-overlays img').length as number,
              framesLoaded: [...doc.querySelectorAll('#frame-overlays img')].filter(
                (i: any) => i.complete && i.naturalWidth > 0,
              ).length as number,
              text: doc.getElementById('search-lists').textContent as string,
            };
          });
          mkdirSync(join(repoRoot(), 'test-artifacts', 'serve'), { recursive: true });
          await page.screenshot({
            path: join(repoRoot(), 'test-artifacts', 'serve', 'page-sync-video.png'),
            fullPage: true,
          });
          assert.ok(facts.cards >= 4, `result cards ${facts.cards}`);
          assert.equal(facts.frames, 16, 'one overlay per frame');
          assert.equal(facts.framesLoaded, 16, 'frame overlays decoded');
          // The page lists what the API ranks first: the query video itself in the same-modal lists.
          assert.match(facts.text, /clip2\.mp4/);
          assert.deepEqual(problems, [], 'no console errors (CSP violations included)');
        } finally {
          await browser.close();
        }
      }
    } finally {
      await s.close();
    }
    // The same server over a LanceDB index of the same items (thumbnails served from the table).
    await apiSearch(api, media.videos[0], 1); // fills `indexed`
    const lance = join(tmp, 'lance');
    const writer = await openIndexWriter(
      lance,
      { modelId: api.modelId, modelName: api.name, dim: api.indexDim, ...indexClip(api), modelPath: pre },
      'lancedb',
    );
    const cached: MediaEmbedder = {
      ...mediaEmbedder(api),
      embedFile: async (path) => indexed!.find((it) => it.id === mediaId(path))!.e,
    };
    await addMedia(writer, media.all, cached);
    await writer.close();
    const sl = await startServer({ port: 0, engine: await createModelEngine(pre, lance) });
    try {
      const search = await post(sl, '/api/search?k=6&mode=all', [['file', media.videos[2]]]);
      assert.equal(search.status, 200, JSON.stringify(search.json));
      sameHits(search.json as Lists, await apiSearch(api, media.videos[2], 6), 'HTTP search, LanceDB index');
      const hit = (search.json as Lists).lists[0].hits[0] as Hit & { thumb?: string };
      assert.ok(hit.thumb, 'a thumbnail link');
      const thumb = await fetch(new URL(hit.thumb!, sl.url));
      assert.equal(thumb.status, 200);
      assert.match(thumb.headers.get('content-type') ?? '', /^image\//);
      assert.ok((await thumb.arrayBuffer()).byteLength > 100);
    } finally {
      await sl.close();
    }

    const sft = await startServer({ port: 0, engine: await createModelEngine(ft) });
    try {
      const cls = await post(sft, '/api/classify?top=3', [['file', media.videos[2]]]);
      assert.equal(cls.status, 200, JSON.stringify(cls.json));
      const want = await (await CavMae.load(ft)).classify(media.videos[2], { top: 3 });
      assert.deepEqual(
        cls.json.labels.map((l: any) => l.name),
        want.top.map((l) => l.name),
      );
      assertClose(
        cls.json.labels.map((l: any) => l.score),
        want.top.map((l) => l.score),
        { atol: 1e-6, what: 'HTTP class scores' },
      );
      const emb = await post(sft, '/api/embed', [['file', media.videos[2]]]);
      assert.ok(
        emb.status >= 400 && emb.status < 500,
        `a fine-tuned Sync model does not embed: ${emb.status}`,
      );
    } finally {
      await sft.close();
    }
  },
);

test(
  'Sync fine-tuning in audioonly and videoonly modes through the CLI: classify a sound / a picture equal to the API',
  { skip, timeout: 240_000 },
  async () => {
    for (const [mode, flag, input] of [
      ['audioonly', '--audio', media.wav],
      ['videoonly', '--image', media.png],
    ] as const) {
      const model = finetune(`ft-${mode}`, ['--mode', mode]);
      const got = JSON.parse(ok(['classify', flag, input, '--model', model, '--top', '3', '--json'])) as {
        mode: string;
        top: { name: string; score: number }[];
      };
      const api = await CavMae.load(model);
      const want = await api.classify(flag === '--audio' ? { audio: input } : { image: input }, { top: 3 });
      assert.equal(got.mode, mode, `${mode}: the mode recorded by finetune`);
      assert.equal(want.mode, mode);
      assert.deepEqual(
        got.top.map((l) => l.name),
        want.top.map((l) => l.name),
        `${mode}: labels`,
      );
      assertClose(
        got.top.map((l) => l.score),
        want.top.map((l) => l.score),
        { atol: 1e-6, what: `${mode}: scores` },
      );
      // The other modality alone is refused with the mode named, not answered from nothing.
      const wrong = cli([
        'classify',
        flag === '--audio' ? '--image' : '--audio',
        flag === '--audio' ? media.png : media.wav,
        '--model',
        model,
      ]);
      assert.notEqual(wrong.status, 0, `${mode}: the other modality alone`);
      assert.match(wrong.stderr, new RegExp(mode));
    }
  },
);
