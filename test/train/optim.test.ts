// Adam + MultiStepLR against PyTorch 1.13 (test/fixtures/optim/*.json, scripts/golden/optim_golden.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, assertClose } from '../helpers.js';
import { Adam, checkGroups, headAndBaseGroups, mergeRanges, type ParamGroup } from '../../src/train/optim.js';
import { constantLR, multiStepLR, type LrSchedule } from '../../src/train/schedule.js';

interface Golden {
  optimizer: { kind: 'Adam' | 'AdamW'; betas: [number, number]; eps: number; weight_decay: number };
  base_lr: number;
  schedule: { milestones: number[]; gamma: number } | null;
  shapes: Record<string, number[]>;
  params_init: Record<string, number[]>;
  groups: { name: string; params: string[]; lr_scale: number; requires_grad: boolean }[];
  steps: {
    epoch: number;
    iteration: number;
    lrs: Record<string, number>;
    grads: Record<string, number[]>;
    params: Record<string, number[]>;
  }[];
}

function load(name: string): Golden {
  return JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/optim', name), 'utf8')) as Golden;
}

/** Lays the named tensors out in one arena (insertion order) and builds our groups from the golden ones. */
function setup(g: Golden) {
  const offsets: Record<string, [number, number]> = {};
  let size = 0;
  for (const [n, shape] of Object.entries(g.shapes)) {
    const len = shape.reduce((a, b) => a * b, 1);
    offsets[n] = [size, len];
    size += len;
  }
  const params = new Float32Array(size);
  for (const [n, vals] of Object.entries(g.params_init)) params.set(vals, offsets[n][0]);
  const groups: ParamGroup[] = g.groups.map((gr) => ({
    name: gr.name,
    ranges: gr.params.map((p) => offsets[p]),
    lrScale: gr.lr_scale,
    requiresGrad: gr.requires_grad,
  }));
  return { offsets, params, grads: new Float32Array(size), groups };
}

function expectedArena(
  g: Golden,
  offsets: Record<string, [number, number]>,
  values: Record<string, number[]>,
  size: number,
): Float32Array {
  const out = new Float32Array(size);
  for (const [n, v] of Object.entries(values)) out.set(v, offsets[n][0]);
  return out;
}

function runGolden(file: string, schedule: (g: Golden) => LrSchedule) {
  const g = load(file);
  const { offsets, params, grads, groups } = setup(g);
  const adam = new Adam(params, grads, groups, {
    beta1: g.optimizer.betas[0],
    beta2: g.optimizer.betas[1],
    eps: g.optimizer.eps,
    weightDecay: g.optimizer.weight_decay,
    decoupled: g.optimizer.kind === 'AdamW',
  });
  const sched = schedule(g);
  const frozenBefore = Float32Array.from(params);
  for (const s of g.steps) {
    const base = sched.lr(s.epoch, s.iteration);
    // Group lrs: PyTorch multiplies each group's own lr by gamma; we scale the base lr. 1e-12 relative.
    for (const gr of groups)
      assertClose([base * gr.lrScale], [s.lrs[gr.name]], {
        rtol: 1e-12,
        what: `lr ${gr.name} step ${s.iteration}`,
      });
    grads.fill(0);
    for (const [n, v] of Object.entries(s.grads)) grads.set(v, offsets[n][0]);
    adam.step(base);
    // fp32 Adam vs PyTorch's fp32 Adam: 1e-6 relative to the largest parameter (the TS kernel
    // is bit-exact on this data; the native one may differ in the last ulp).
    const want = expectedArena(g, offsets, s.params, params.length);
    assertClose(params, want, { rtol: 1e-6, what: `${file} params after step ${s.iteration}` });
  }
  for (const gr of groups) {
    if (gr.requiresGrad) continue;
    for (const [off, len] of gr.ranges)
      assert.deepEqual(
        params.subarray(off, off + len),
        frozenBefore.subarray(off, off + len),
        'frozen group changed',
      );
  }
  assert.equal(adam.stepCount, g.steps.length);
}

test('Adam (0.95, 0.999, L2 5e-7), two lr groups + frozen group, MultiStepLR per epoch = PyTorch', () => {
  runGolden('adam_multistep.json', (g) =>
    multiStepLR({ lr: g.base_lr, milestones: g.schedule!.milestones, gamma: g.schedule!.gamma }),
  );
});

test('Adam with strong L2 weight decay = PyTorch', () => {
  runGolden('adam_decay.json', (g) => constantLR(g.base_lr));
});

test('AdamW (decoupled decay) = PyTorch', () => {
  runGolden('adamw_decay.json', (g) => constantLR(g.base_lr));
});

test('optimizer state round-trips: resuming from saved m/v/step continues identically', () => {
  const g = load('adam_multistep.json');
  const a = setup(g);
  const b = setup(g);
  const opts = { beta1: 0.95, beta2: 0.999, eps: 1e-8, weightDecay: 5e-7 };
  const adamA = new Adam(a.params, a.grads, a.groups, opts);
  const sched = multiStepLR({ lr: g.base_lr, milestones: g.schedule!.milestones, gamma: g.schedule!.gamma });
  const half = 10;
  const apply = (
    adam: Adam,
    grads: Float32Array,
    offsets: Record<string, [number, number]>,
    s: Golden['steps'][number],
  ) => {
    grads.fill(0);
    for (const [n, v] of Object.entries(s.grads)) grads.set(v, offsets[n][0]);
    adam.step(sched.lr(s.epoch, s.iteration));
  };
  for (const s of g.steps.slice(0, half)) apply(adamA, a.grads, a.offsets, s);
  // "Checkpoint": copies of params and state, loaded into a fresh optimiser.
  const st = adamA.state();
  const saved = { m: Float32Array.from(st.m), v: Float32Array.from(st.v), stepCount: st.stepCount };
  b.params.set(a.params);
  const adamB = new Adam(b.params, b.grads, b.groups, opts);
  adamB.loadState(saved);
  for (const s of g.steps.slice(half)) {
    apply(adamA, a.grads, a.offsets, s);
    apply(adamB, b.grads, b.offsets, s);
  }
  assert.deepEqual(b.params, a.params, 'resumed run must be bit-identical');
});

test('parameter groups: validation, merging, head/base split', () => {
  assert.throws(
    () =>
      checkGroups(
        [
          { name: 'a', ranges: [[0, 4]], lrScale: 1, requiresGrad: true },
          { name: 'b', ranges: [[3, 2]], lrScale: 1, requiresGrad: true },
        ],
        10,
      ),
    /overlaps/,
  );
  assert.throws(
    () => checkGroups([{ name: 'a', ranges: [[8, 4]], lrScale: 1, requiresGrad: true }], 10),
    /outside/,
  );
  assert.deepEqual(
    mergeRanges([
      [4, 2],
      [0, 4],
      [10, 1],
    ]),
    [
      [0, 6],
      [10, 1],
    ],
  );
  const layout = [
    { name: 'module.blocks_a.0.attn.qkv.weight', offset: 0, length: 6 },
    { name: 'mlp_head.0.weight', offset: 6, length: 2 },
    { name: 'mlp_head.1.bias', offset: 8, length: 2 },
    { name: 'norm_a.weight', offset: 10, length: 2 },
  ];
  const groups = headAndBaseGroups(layout, { headLr: 100, freezeBase: true });
  assert.deepEqual(groups, [
    {
      name: 'base',
      ranges: [
        [0, 6],
        [10, 2],
      ],
      lrScale: 1,
      requiresGrad: false,
    },
    { name: 'mlp', ranges: [[6, 4]], lrScale: 100, requiresGrad: true },
  ]);
  const params = new Float32Array(12).fill(1);
  const grads = new Float32Array(12).fill(1);
  const adam = new Adam(params, grads, groups);
  adam.step(1e-3);
  assert.deepEqual(adam.groupLrs(1e-3), { base: 1e-3, mlp: 0.1 });
  for (let i = 0; i < 12; i++) {
    if (i >= 6 && i < 10) assert.ok(params[i] < 1, 'head updated');
    else assert.equal(params[i], 1, 'frozen base untouched');
  }
});
