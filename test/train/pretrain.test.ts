/**
 * `cavmae pretrain` on a small synthetic audio-visual set with a tiny model: the run folder,
 * logs, plots and metadata; the reference's lr schedules as logged; gradient accumulation;
 * determinism; --init and --max-steps 0; variants; loader augmentation flags; errors (one line,
 * exit code 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { pretrain, type PretrainOptions } from '../../src/train/pretrain.js';
import { NO_AUGMENT, PRETRAIN_RECIPES } from '../../src/train/recipes.js';
import { readJsonl, type LogRecord } from '../../src/train/logger.js';
import { multiStepLR, milestonesRange, cosineWarmup } from '../../src/train/schedule.js';
import { assertClose } from '../helpers.js';
import { cli, makeSyntheticSet, type SyntheticSet } from './pretrain-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-pretrain-'));
let setPromise: Promise<SyntheticSet> | undefined;
const dataset = (): Promise<SyntheticSet> => (setPromise ??= makeSyntheticSet(join(tmp, 'data'), 24, 8));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const quiet = { quiet: true, workers: 1, log: () => {} };

function base(set: SyntheticSet, out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions {
  return {
    data: set.train,
    val: set.val,
    config: set.config,
    out: join(tmp, out),
    batchSize: 4,
    epochs: 2,
    lr: 1e-3,
    contrastWeight: 0.5,
    maskRatio: 0.5,
    seed: 3,
    ...quiet,
    ...extra,
  };
}

const records = (run: string, kind: string): LogRecord[] =>
  readJsonl(join(run, 'log.jsonl')).filter((r) => r.kind === kind);

test('run folder: model with config and preprocessing, checkpoints, JSONL log, PNG plots, result', async () => {
  const set = await dataset();
  const r = await pretrain(base(set, 'basic', { checkpointEvery: 4 }));
  const run = r.out;
  assert.equal(r.loop.globalStep, 12, '24 items / batch 4 = 6 steps per epoch, 2 epochs');
  assert.equal(r.loop.reason, 'epochs');
  for (const f of ['model.safetensors', 'log.jsonl', 'run.json', 'result.json', 'checkpoints/latest.json'])
    assert.ok(existsSync(join(run, f)), f);
  for (const f of ['losses.png', 'c_acc.png', 'lr.png', 'eval.png']) {
    const png = readFileSync(join(run, 'plots', f));
    assert.deepEqual(
      [...png.subarray(0, 8)],
      [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
      `${f} is a PNG`,
    );
  }
  const { metadata } = readSafetensors(r.model);
  const config = JSON.parse(metadata['cavmae.config']) as Record<string, unknown>;
  assert.equal(config.audio_length, 32);
  assert.equal(config.contrast_loss_weight, 0.5);
  assert.equal(config.mask_ratio_a, 0.5);
  const pre = JSON.parse(metadata['cavmae.preprocess']) as {
    audio: { targetLength: number; mean: number; std: number };
    image: { size: number };
  };
  assert.deepEqual(
    [pre.audio.targetLength, pre.image.size, pre.audio.mean, pre.audio.std],
    [32, 32, -5.081, 4.4849],
  );
  const train = records(run, 'train');
  assert.deepEqual(
    train.map((x) => x.step),
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
  for (const t of train)
    for (const k of ['loss', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'c_acc', 'lr'])
      assert.equal(typeof t[k], 'number', `${k} logged`);
  // loss = loss_mae_a + loss_mae_v + loss_c (all weighted as the reference logs them).
  for (const t of train)
    assertClose(
      [t.loss as number],
      [(t.loss_mae_a as number) + (t.loss_mae_v as number) + (t.loss_c as number)],
      { rtol: 1e-6, what: 'loss terms' },
    );
  const evals = records(run, 'eval');
  assert.deepEqual(
    evals.map((e) => e.step),
    [6, 12],
    'one evaluation per epoch',
  );
  for (const k of ['loss', 'c_acc', 'a2v_r1', 'a2v_r10', 'v2a_r1', 'a2v_class1', 'v2a_class1'])
    assert.equal(typeof evals[0][k], 'number', `eval ${k}`);
  const result = JSON.parse(readFileSync(join(run, 'result.json'), 'utf8')) as {
    steps: number;
    stop: string;
    eval: Record<string, number>;
  };
  assert.equal(result.steps, 12);
  assert.equal(result.stop, 'epochs');
  assert.equal(result.eval.a2v_r1, evals[1].a2v_r1);
  // Checkpoints every 4 steps and at epoch ends; the newest 3 are kept.
  const files = readdir(join(run, 'checkpoints')).filter((f) => f.endsWith('.safetensors'));
  assert.deepEqual(files, [
    'step-000000006.safetensors',
    'step-000000008.safetensors',
    'step-000000012.safetensors',
  ]);
});

function readdir(p: string): string[] {
  return readdirSync(p).sort();
}

test('the reconstruction loss falls on the synthetic set (the model learns)', async () => {
  const set = await dataset();
  const r = await pretrain(base(set, 'learn', { epochs: 8, evalRetrieval: false }));
  const t = records(r.out, 'train');
  const mean = (xs: LogRecord[], k: string) => xs.reduce((s, x) => s + (x[k] as number), 0) / xs.length;
  const first = mean(t.slice(0, 6), 'loss_mae_v');
  const last = mean(t.slice(-6), 'loss_mae_v');
  assert.ok(
    last < 0.8 * first,
    `visual MAE loss ${first.toFixed(3)} -> ${last.toFixed(3)} (expected a drop of more than 20%)`,
  );
});

test('logged learning rates follow the reference MultiStepLR per epoch and the cosine warm-up per step', async () => {
  const set = await dataset();
  const ms = await pretrain(
    base(set, 'multistep', {
      epochs: 4,
      lrStart: 1,
      lrStep: 2,
      lrDecay: 0.5,
      evalRetrieval: false,
      val: undefined,
    }),
  );
  const sched = multiStepLR({ lr: 1e-3, milestones: milestonesRange(1, 2), gamma: 0.5 });
  for (const t of records(ms.out, 'train'))
    assert.equal(t.lr, sched.lr(t.epoch as number, (t.step as number) - 1), `step ${t.step}`);
  assert.deepEqual([...new Set(records(ms.out, 'train').map((t) => t.lr))], [1e-3, 5e-4, 2.5e-4]);
  const cos = await pretrain(
    base(set, 'cosine', { epochs: 2, schedule: 'cosine', warmupSteps: 3, minLrRatio: 0.1, val: undefined }),
  );
  const c = cosineWarmup({ lr: 1e-3, totalIterations: 12, warmupFraction: 3 / 12, minLrRatio: 0.1 });
  for (const t of records(cos.out, 'train'))
    assertClose([t.lr as number], [c.lr(0, (t.step as number) - 1)], {
      rtol: 1e-12,
      what: `cosine lr at step ${t.step}`,
    });
});

test('gradient accumulation: ceil(batches / k) optimizer steps per epoch, a short last group', async () => {
  const set = await dataset();
  const r = await pretrain(base(set, 'accum', { batchSize: 4, accum: 4, epochs: 2, val: undefined }));
  // 6 batches per epoch -> steps of 4 and 2 batches.
  assert.equal(r.loop.globalStep, 4);
  assert.deepEqual(
    records(r.out, 'train').map((t) => [t.step, t.epoch]),
    [
      [1, 0],
      [2, 0],
      [3, 1],
      [4, 1],
    ],
  );
});

test('same seed, same weights; another seed, other weights', async () => {
  const set = await dataset();
  const a = await pretrain(base(set, 'det-a', { epochs: 1, val: undefined }));
  const b = await pretrain(base(set, 'det-b', { epochs: 1, val: undefined }));
  const c = await pretrain(base(set, 'det-c', { epochs: 1, val: undefined, seed: 4 }));
  const wa = readSafetensorsF32(a.model);
  const wb = readSafetensorsF32(b.model);
  const wc = readSafetensorsF32(c.model);
  for (const [k, t] of wa) assert.deepEqual(wb.get(k)!.data, t.data, k);
  assert.notDeepEqual(wc.get('blocks_a.0.attn.qkv.weight')!.data, wa.get('blocks_a.0.attn.qkv.weight')!.data);
});

test('--init loads weights (--max-steps 0 writes them back unchanged); bf16 trains', async () => {
  const set = await dataset();
  const first = await pretrain(base(set, 'init-src', { epochs: 1, val: undefined, bf16: true }));
  assert.ok(Number.isFinite(first.loop.recent.loss), 'bf16 run has finite losses');
  const again = await pretrain(
    base(set, 'init-dst', { init: first.model, maxSteps: 0, seed: 11, val: undefined }),
  );
  assert.equal(again.loop.globalStep, 0);
  assert.equal(again.loop.reason, 'max-steps');
  const w0 = readSafetensorsF32(first.model);
  const w1 = readSafetensorsF32(again.model);
  for (const [k, t] of w0) assert.deepEqual(w1.get(k)!.data, t.data, k);
});

test('variants: av-mae has no contrastive term, vanilla-av-mae is one joint encoder, audio-mae needs no image', async () => {
  const set = await dataset();
  const av = await pretrain(
    base(set, 'v-avmae', { variant: 'av-mae', contrastWeight: undefined, epochs: 1 }),
  );
  assert.equal(av.config.contrast_loss_weight, 0);
  assert.ok(records(av.out, 'train').every((t) => t.loss_c === 0));
  const ev = records(av.out, 'eval')[0];
  assert.equal(
    typeof ev.a2v_class1,
    'number',
    'AV-MAE is evaluated for retrieval too (the paper compares it)',
  );
  const van = await pretrain(
    base(set, 'v-vanilla', {
      variant: 'vanilla-av-mae',
      contrastWeight: undefined,
      epochs: 1,
      evalRetrieval: false,
    }),
  );
  assert.deepEqual([van.config.modality_specific_depth, van.config.shared_depth], [0, 2]);
  const am = await pretrain(
    base(set, 'v-audiomae', { variant: 'audio-mae', contrastWeight: undefined, epochs: 1 }),
  );
  assert.ok(records(am.out, 'train').every((t) => t.loss_mae_v === 0 && (t.loss_mae_a as number) > 0));
  await assert.rejects(
    pretrain(base(set, 'v-bad', { variant: 'av-mae', contrastWeight: 0.5 })),
    /variant "av-mae" has no contrastive term/,
  );
});

test('CLI: a finished run is not overwritten; --resume with other options is refused; bad input is one line', async () => {
  const set = await dataset();
  const out = join(tmp, 'cli-run');
  const args = [
    'pretrain',
    '--data',
    set.train,
    '--config',
    set.config,
    '--out',
    out,
    '--batch-size',
    '4',
    '--epochs',
    '1',
    '--quiet',
    '--workers',
    '1',
  ];
  let r = cli(args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pretrain: 6\/6 steps, model .*model\.safetensors\n/);
  r = cli(args);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cavmae: .*cli-run: already holds a run \(checkpoints\/\); pass --resume/);
  r = cli([...args, '--resume', '--lr', '1e-3']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--resume with different training options \(lr: checkpoint 0\.00005, now 0\.001\)/);
  r = cli([...args, '--resume']);
  assert.equal(r.status, 0, 'resuming a finished run is a no-op');
  r = cli(['pretrain', '--data', set.train, '--config', 'no-such-preset', '--out', join(tmp, 'x')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cavmae: no-such-preset: neither a preset .* nor an existing JSON file\n$/);
  r = cli(['pretrain', '--data', join(tmp, 'missing.json'), '--config', set.config, '--out', join(tmp, 'y')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cavmae: .*missing\.json: /);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one line, no stack trace');
  r = cli([
    'pretrain',
    '--data',
    set.train,
    '--config',
    set.config,
    '--out',
    join(tmp, 'z'),
    '--mask-mode',
    'diagonal',
  ]);
  assert.match(
    r.stderr,
    /^cavmae: --mask-mode must be one of unstructured, time, freq, tf, got "diagonal"\n$/,
  );
});

test('CLI: loader augmentation flags reach run.json over the recipe; a Sync model refuses them', async () => {
  const set = await dataset();
  const args = (out: string): string[] => [
    'pretrain',
    '--data',
    set.train,
    '--config',
    set.config,
    '--out',
    join(tmp, out),
    '--batch-size',
    '4',
    '--max-steps',
    '2',
    '--quiet',
    '--workers',
    '1',
  ];
  type RunJson = { recipe: string; augment: Record<string, number> };
  const runJson = (out: string): RunJson =>
    JSON.parse(readFileSync(join(tmp, out, 'run.json'), 'utf8')) as RunJson;
  let r = cli([
    ...args('aug'),
    '--recipe',
    'tiny',
    '--mixup',
    '0.5',
    '--freqm',
    '4',
    '--timem',
    '6',
    '--gain-db',
    '3',
    '--time-shift',
    '2',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const aug = runJson('aug');
  assert.deepEqual(
    [aug.recipe, aug.augment],
    ['tiny', { mixup: 0.5, freqm: 4, timem: 6, gainDb: 3, timeShift: 2 }],
  );
  // One flag: the others keep the recipe's values.
  r = cli([...args('aug1'), '--recipe', 'tiny', '--timem', '5']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(runJson('aug1').augment, { ...PRETRAIN_RECIPES.tiny.augment, timem: 5 });
  r = cli(args('aug0'));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(runJson('aug0').augment, NO_AUGMENT);
  // --resume with other augmentation is another run.
  r = cli([
    ...args('aug'),
    '--recipe',
    'tiny',
    '--mixup',
    '0.25',
    '--freqm',
    '4',
    '--timem',
    '6',
    '--gain-db',
    '3',
    '--time-shift',
    '2',
    '--resume',
  ]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--resume with different training options \(augment/);
  r = cli([...args('bad'), '--mixup', '1.5']);
  assert.match(r.stderr, /^cavmae: --mixup must be a number in \[0, 1\], got '1\.5'\n$/);
  r = cli([
    'pretrain',
    '--data',
    set.train,
    '--config',
    'sync-tiny',
    '--out',
    join(tmp, 'sync-aug'),
    '--freqm',
    '4',
    '--gain-db',
    '2',
  ]);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /^cavmae: augmentation \(--freqm, --gain-db\): the CAV-MAE Sync loader has no audio augmentation .*; leave it off\n$/,
  );
  assert.equal(existsSync(join(tmp, 'sync-aug', 'checkpoints')), false, 'refused before training');
});
