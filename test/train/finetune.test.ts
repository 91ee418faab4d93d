/**
 * `cavmae finetune` and `cavmae eval --model` on the synthetic set: weight averaging equals the
 * float32 mean of the epoch weights, a linear probe leaves the encoder bit-identical, from-scratch
 * training, the final report equals `cavmae eval` on the stored predictions and on the model,
 * learning on an easy task, bad labels refused before training.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { finetune, type FinetuneOptions } from '../../src/train/finetune.js';
import { pretrain } from '../../src/train/pretrain.js';
import { assertClose } from '../helpers.js';
import { cli, makeSyntheticSet, type SyntheticSet } from './pretrain-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-finetune-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const quiet = { quiet: true, workers: 1, log: () => {} };

let ready: Promise<{ set: SyntheticSet; pretrained: string }> | undefined;
function setup(): Promise<{ set: SyntheticSet; pretrained: string }> {
  ready ??= (async () => {
    const set = await makeSyntheticSet(join(tmp, 'data'), 24, 12);
    const p = await pretrain({
      data: set.train,
      config: set.config,
      out: join(tmp, 'pre'),
      batchSize: 4,
      epochs: 2,
      lr: 1e-3,
      contrastWeight: 0.5,
      ...quiet,
    });
    return { set, pretrained: p.model };
  })();
  return ready;
}

function opts(
  s: { set: SyntheticSet; pretrained: string },
  out: string,
  extra: Partial<FinetuneOptions> = {},
): FinetuneOptions {
  return {
    data: s.set.train,
    val: s.set.val,
    labelCsv: s.set.labels,
    init: s.pretrained,
    out: join(tmp, out),
    batchSize: 4,
    epochs: 3,
    lr: 1e-3,
    headLr: 10,
    seed: 1,
    ...quiet,
    ...extra,
  };
}

test('weight averaging: the final model is the float32 mean of the kept epoch weights', async () => {
  const s = await setup();
  const r = await finetune(opts(s, 'wa', { waStart: 2, waEnd: 3 }));
  assert.match(r.weights, /mean of epochs 2\.\.3/);
  const e2 = readSafetensorsF32(join(r.out, 'epochs', 'epoch-2.safetensors'));
  const e3 = readSafetensorsF32(join(r.out, 'epochs', 'epoch-3.safetensors'));
  assert.ok(
    !existsSync(join(r.out, 'epochs', 'epoch-1.safetensors')),
    'epochs outside wa_start..wa_end are not kept',
  );
  const final = readSafetensorsF32(r.model);
  for (const [k, t] of final) {
    const a = e2.get(k)!.data;
    const b = e3.get(k)!.data;
    const want = Float32Array.from(a, (x, i) => Math.fround(Math.fround(x + b[i]) / 2));
    assert.deepEqual(t.data, want, k);
  }
  const { metadata } = readSafetensors(r.model);
  assert.deepEqual(JSON.parse(metadata['cavmae.labels']).names, ['class 0', 'class 1', 'class 2', 'class 3']);
  assert.equal(metadata['cavmae.ft_loss'], 'ce', 'single-label data: cross-entropy (auto)');
  assert.equal(metadata['cavmae.ft_mode'], 'multimodal');
  assert.equal(JSON.parse(metadata['cavmae.config']).label_dim, 4);
  assert.equal(r.history.length, 3, 'one validation per epoch');
});

test('the report equals `cavmae eval` on the stored predictions and on the model (frame aggregation)', async () => {
  const s = await setup();
  const r = await finetune(opts(s, 'report'));
  const result = JSON.parse(readFileSync(join(r.out, 'result.json'), 'utf8')) as {
    final: { mAP: number; acc: number; frames: number[] };
  };
  assert.deepEqual(result.final.frames, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], '10-frame aggregation');
  let c = cli(['eval', '--pred', join(r.out, 'predictions.safetensors'), '--json']);
  assert.equal(c.status, 0, c.stderr);
  const fromPred = JSON.parse(c.stdout) as { mAP: number; acc: number; N: number; K: number };
  assert.deepEqual([fromPred.N, fromPred.K], [12, 4]);
  assertClose([fromPred.mAP, fromPred.acc], [result.final.mAP, result.final.acc], {
    atol: 1e-12,
    what: 'eval --pred vs finetune report',
  });
  c = cli(['eval', '--model', r.model, '--data', s.set.val, '--json', '--workers', '1']);
  assert.equal(c.status, 0, c.stderr);
  const fromModel = JSON.parse(c.stdout) as {
    mAP: number;
    acc: number;
    mode: string;
    loss: string;
    frames: number[];
    perClass: { name: string }[];
  };
  assert.equal(fromModel.mode, 'multimodal');
  assert.equal(fromModel.loss, 'ce');
  assert.equal(fromModel.frames.length, 10);
  assert.equal(fromModel.perClass[2].name, 'class 2', 'class names stored with the model');
  assertClose([fromModel.mAP, fromModel.acc], [result.final.mAP, result.final.acc], {
    atol: 1e-12,
    what: 'eval --model vs finetune report',
  });
  c = cli([
    'eval',
    '--model',
    r.model,
    '--data',
    s.set.val,
    '--mode',
    'audioonly',
    '--summary',
    '--workers',
    '1',
  ]);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /^mode audioonly, softmax probabilities, frame 5\nsamples 12, classes 4\nmAP /);
});

test('linear probe (--freeze-base): the encoder is bit-identical to the pretrained one, the head trains', async () => {
  const s = await setup();
  const r = await finetune(opts(s, 'probe', { freezeBase: true, wa: false, epochs: 2 }));
  const pre = readSafetensorsF32(s.pretrained);
  const ft = readSafetensorsF32(r.model);
  let encoderKeys = 0;
  for (const [k, t] of ft) {
    if (k.startsWith('mlp_head.')) continue;
    assert.deepEqual(t.data, pre.get(k)!.data, `${k} changed under --freeze-base`);
    encoderKeys++;
  }
  assert.ok(encoderKeys > 20);
  assert.ok(ft.get('mlp_head.1.weight')!.data.some((x) => x !== 0));
});

test('from scratch (--config, no --init) learns the easy synthetic classes; bad labels fail before training', async () => {
  const s = await setup();
  const r = await finetune({
    ...opts(s, 'scratch', {
      epochs: 8,
      mixup: 0,
      labelSmooth: 0,
      freqm: 0,
      timem: 0,
      noise: false,
      wa: false,
    }),
    init: undefined,
    config: s.set.config,
  });
  assert.ok(r.final.stats.acc >= 0.75, `accuracy ${r.final.stats.acc} on 4 easy classes (chance 0.25)`);
  const bad = join(tmp, 'bad-val.json');
  writeFileSync(
    bad,
    JSON.stringify({
      items: [
        {
          id: 'x',
          audio: join(s.set.dir, 'media', 'val_000_0.wav'),
          image: join(s.set.dir, 'media', 'val_000_0.png'),
          label: 'class9',
        },
      ],
    }),
  );
  await assert.rejects(finetune({ ...opts(s, 'bad'), val: bad }), /label "class9" is not in .*labels\.csv/);
  assert.ok(!existsSync(join(tmp, 'bad', 'checkpoints')), 'nothing trained');
  await assert.rejects(
    finetune({ ...opts(s, 'noinit'), init: undefined }),
    /^OptionError: finetune: pass init <pretrained model> \(or config <preset>/,
  );
});

test('balanced sampling: weights from the labels or from a file (checked against the data size)', async () => {
  const s = await setup();
  const r = await finetune(opts(s, 'bal', { balanced: true, epochs: 1, wa: false }));
  assert.equal(r.loop.globalStep, 6);
  const wfile = join(tmp, 'w.csv');
  writeFileSync(wfile, '1\n2\n3\n');
  await assert.rejects(
    finetune(opts(s, 'bal2', { weights: wfile, epochs: 1 })),
    /has 3 weights but the data file has 24 entries/,
  );
});
