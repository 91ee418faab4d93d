/**
 * Embeddings of a datafile: rows in datafile order, unit L2 norm, independent of the batch size,
 * equal to mean-pooled forward_feat tokens computed here in float64; the file format; a
 * fine-tuned model embeds too; single-modality models give one side.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tape } from '../../src/autograd/tape.js';
import { buildLabelMap, loadDataset } from '../../src/data/datafile.js';
import { createLoader } from '../../src/data/loader.js';
import { buildModel, resolveConfig, CAVMAE } from '../../src/models/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  chanceLevels,
  embedDataset,
  embedToFile,
  readEmbeddings,
  loadInferenceModel,
} from '../../src/eval/embed.js';
import { writeModelFile } from '../../src/train/run.js';
import { assertClose } from '../helpers.js';
import { makeSyntheticSet, TINY_TEST_CONFIG, type SyntheticSet } from '../train/pretrain-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-embed-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let setP: Promise<SyntheticSet> | undefined;
const dataset = (): Promise<SyntheticSet> => (setP ??= makeSyntheticSet(join(tmp, 'data'), 8, 10));

function modelFile(name: string, extra: Record<string, unknown> = {}): string {
  const m = buildModel(resolveConfig({ ...TINY_TEST_CONFIG, ...extra }), { seed: 5 });
  const p = join(tmp, `${name}.safetensors`);
  writeModelFile(p, m);
  return p;
}

test('embeddings: datafile order, unit rows, batch-size independent, = pooled forward_feat (float64 check)', async () => {
  const set = await dataset();
  const path = modelFile('m');
  const m = loadInferenceModel(path);
  const data = loadDataset(set.val);
  const e3 = await embedDataset(m.model, data, { batchSize: 3, workers: 1 });
  const e10 = await embedDataset(m.model, data, { batchSize: 10, workers: 0 });
  assert.deepEqual(
    e3.ids,
    data.items.map((it) => it.id),
  );
  assert.equal(e3.n, 10);
  assert.equal(e3.dim, 32);
  assertClose(e3.audio!, e10.audio!, { atol: 1e-6, what: 'audio, batch 3 vs 10' });
  assertClose(e3.video!, e10.video!, { atol: 1e-6, what: 'video, batch 3 vs 10' });
  for (const side of [e3.audio!, e3.video!]) {
    for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let d = 0; d < 32; d++) s += side[i * 32 + d] ** 2;
      assertClose([Math.sqrt(s)], [1], { atol: 1e-6, what: `row ${i} norm` });
    }
  }
  assert.deepEqual([...e3.labels!], [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
  // Independent computation: the eval loader's inputs, forward_feat, mean and normalise in float64.
  const loader = createLoader(data, {
    batchSize: 10,
    train: false,
    dropLast: false,
    targetLength: 32,
    imageSize: 32,
    labelMap: buildLabelMap(data),
    workers: 0,
  });
  const batch = (await loader.batches(0, 0).next()).value!;
  await loader.close();
  const feat = (m.model as CAVMAE).forwardFeat(new Tape({ grad: false }), {
    audio: new Tensor([10, 32, 128], batch.audio),
    image: new Tensor([10, 3, 32, 32], batch.image),
  });
  for (const [tokens, got] of [
    [feat.audioTokens!, e3.audio!],
    [feat.videoTokens!, e3.video!],
  ] as const) {
    const [B, L, D] = tokens.shape;
    const want = new Float32Array(B * D);
    for (let b = 0; b < B; b++) {
      const acc = new Float64Array(D);
      for (let l = 0; l < L; l++) for (let d = 0; d < D; d++) acc[d] += tokens.data[(b * L + l) * D + d] / L;
      const n = Math.sqrt(acc.reduce((s, x) => s + x * x, 0));
      for (let d = 0; d < D; d++) want[b * D + d] = acc[d] / n;
    }
    assertClose(got, want, { atol: 1e-6, what: 'pooled embedding vs float64 recomputation' });
  }
});

test('embedding file: audio/video [N,D] F32, ids in metadata, labels I32; round trip', async () => {
  const set = await dataset();
  const out = join(tmp, 'emb.safetensors');
  const e = await embedToFile({ model: modelFile('m2'), data: set.val, out, workers: 1 });
  const r = readEmbeddings(out);
  assert.deepEqual(r.ids, e.ids);
  assert.deepEqual(r.audio, e.audio);
  assert.deepEqual(r.video, e.video);
  assert.deepEqual(r.labels, e.labels);
});

test('a fine-tuned model embeds; an audio-only model gives audio only', async () => {
  const set = await dataset();
  const ft = loadInferenceModel(
    modelFile('ft', {
      model: 'cavmae-ft',
      label_dim: 4,
      decoder_embed_dim: undefined,
      decoder_depth: undefined,
      decoder_num_heads: undefined,
      norm_pix_loss: undefined,
    }),
  );
  const e = await embedDataset(ft.model, loadDataset(set.val), { workers: 0 });
  assert.ok(e.audio && e.video);
  const am = loadInferenceModel(modelFile('am', { variant: 'audio-mae' }));
  const a = await embedDataset(am.model, loadDataset(set.val), { workers: 0 });
  assert.ok(a.audio && !a.video);
});

test('chance levels: R@k = k/N, median rank (N+1)/2, class-match = sum of squared class shares', () => {
  const c = chanceLevels(
    20,
    Int32Array.from({ length: 20 }, (_, i) => (i < 10 ? 0 : i < 15 ? 1 : 2)),
  );
  assertClose(
    [c.r1, c.r5, c.r10, c.medianRank, c.classMatchAt1!],
    [0.05, 0.25, 0.5, 10.5, 0.25 + 0.0625 + 0.0625],
    { atol: 1e-15, what: 'chance' },
  );
});
