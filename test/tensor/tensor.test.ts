/** Tensor shapes, the flat parameter arena, the activation pool and the seeded Rng. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, ShapeError, expectShape } from '../../src/tensor/tensor.js';
import { ParamArena, ParamBuilder } from '../../src/tensor/arena.js';
import { ActivationPool } from '../../src/tensor/pool.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import { UserError } from '../../src/util/errors.js';

test('Tensor checks shapes and data length', () => {
  const t = new Tensor([2, 3]);
  assert.equal(t.size, 6);
  assert.equal(t.lastDim, 3);
  assert.equal(t.rows, 2);
  assert.throws(() => new Tensor([2, 3], new Float32Array(5)), ShapeError);
  assert.throws(() => new Tensor([2, -1]), ShapeError);
  assert.throws(() => t.item(), ShapeError);
  expectShape('op', 'x', t, [-1, 3]);
  assert.throws(() => expectShape('op', 'x', t, [2, 4]), /op: x has shape \[2,3\], expected \[2,4\]/);
});

function smallArena(): { arena: ParamArena; names: string[] } {
  const pb = ParamBuilder.root();
  const fill = (v: number) => (out: Float32Array) => void out.fill(v);
  pb.param('modality_a', [1, 1, 4], fill(1));
  pb.param('pos_embed_a', [1, 3, 4], fill(2), { requiresGrad: false });
  const lin = pb.scope('blocks').scope(0).scope('fc');
  lin.param('weight', [2, 4], fill(3));
  lin.param('bias', [2], fill(4));
  pb.param('decoder_pos', [1, 2, 2], fill(5), { requiresGrad: false });
  pb.param('head', [3], fill(6));
  return { arena: new ParamArena(pb.params), names: pb.params.map((p) => p.name) };
}

test('ParamArena: one buffer, state-dict order kept, trainable parameters stored first', () => {
  const { arena, names } = smallArena();
  assert.deepEqual(names, [
    'modality_a',
    'pos_embed_a',
    'blocks.0.fc.weight',
    'blocks.0.fc.bias',
    'decoder_pos',
    'head',
  ]);
  assert.deepEqual(arena.names(), names);
  arena.initialize(new Rng(0));
  assert.equal(arena.size, 4 + 12 + 8 + 2 + 4 + 3);
  assert.equal(arena.numTrainable, 4 + 8 + 2 + 3);
  // Trainable first (in order), frozen after: one range covers every trainable value.
  assert.deepEqual(arena.trainableRanges(), [{ offset: 0, size: 17 }]);
  assert.deepEqual(Array.from(arena.data.subarray(0, 17)), [
    ...Array(4).fill(1),
    ...Array(8).fill(3),
    4,
    4,
    6,
    6,
    6,
  ]);
  assert.deepEqual(Array.from(arena.data.subarray(17)), [...Array(12).fill(2), ...Array(4).fill(5)]);
  // Views are zero-copy.
  arena.get('head').data[0] = 42;
  assert.equal(arena.data[14], 42);
  arena.get('head').grad![1] = 7;
  assert.equal(arena.grad[15], 7);
  arena.zeroGrad();
  assert.equal(arena.grad[15], 0);
  // A group (the head) and freezing (linear probing).
  assert.deepEqual(
    arena.trainableRanges((p) => p.name === 'head'),
    [{ offset: 14, size: 3 }],
  );
  arena.setRequiresGrad((p) => p.name.startsWith('blocks.'), false);
  assert.deepEqual(arena.trainableRanges(), [
    { offset: 0, size: 4 },
    { offset: 14, size: 3 },
  ]);
  assert.throws(() => arena.get('nope'), /no parameter named nope/);
});

test('ParamArena.load reports missing and unexpected keys and refuses shape mismatches', () => {
  const { arena } = smallArena();
  const sd = new Map<string, { shape: number[]; data: Float32Array }>([
    ['modality_a', { shape: [1, 1, 4], data: new Float32Array([1, 2, 3, 4]) }],
    ['head', { shape: [3], data: new Float32Array([7, 8, 9]) }],
    ['extra', { shape: [1], data: new Float32Array([0]) }],
  ]);
  const r = arena.load(sd, 'ck.safetensors');
  assert.deepEqual(r.missing, ['pos_embed_a', 'blocks.0.fc.weight', 'blocks.0.fc.bias', 'decoder_pos']);
  assert.deepEqual(r.unexpected, ['extra']);
  assert.deepEqual(Array.from(arena.get('head').data), [7, 8, 9]);
  sd.set('head', { shape: [1, 3], data: new Float32Array(3) });
  assert.throws(
    () => arena.load(sd, 'ck.safetensors'),
    (e: unknown) => e instanceof UserError && /ck.safetensors: size mismatch for head/.test(e.message),
  );
});

test('ParamArena: lazy gradients and layout-only arenas', () => {
  const pb = ParamBuilder.root();
  const p = pb.param('w', [2, 2], (o) => void o.fill(1));
  const arena = new ParamArena(pb.params, { grad: false });
  arena.initialize(new Rng(1));
  assert.equal(arena.hasGrad, false);
  // A backward pass allocates the arena's gradient buffer, not a pool buffer.
  const tp = new Tape();
  const y = ops.linear(tp, new Tensor([1, 2], new Float32Array([1, 2])), p, null);
  tp.backward(y, new Float32Array([1, 1]));
  assert.equal(arena.hasGrad, true);
  assert.deepEqual(Array.from(arena.grad), [1, 2, 1, 2]);
  const pb2 = ParamBuilder.root();
  pb2.param('big', [1000, 1000], () => undefined);
  const layout = new ParamArena(pb2.params, { allocate: false });
  assert.equal(layout.size, 1e6);
  assert.equal(layout.data.length, 0);
  assert.throws(() => layout.grad, /layout-only/);
  assert.throws(() => pb2.param('big', [1], () => undefined), /declared twice/);
});

test('ActivationPool serves a repeated step without new allocations', () => {
  const pool = new ActivationPool();
  const step = (): void => {
    const tp = new Tape({ pool });
    const x = new Tensor([4, 8], new Float32Array(32).fill(0.5), true);
    const w = new Tensor([8, 8], new Float32Array(64).fill(0.1), true);
    const h = ops.gelu(tp, ops.linear(tp, x, w, null));
    const loss = ops.maskedMse(
      tp,
      ops.reshape(tp, h, [1, 4, 8]),
      new Float32Array(32),
      new Float32Array(4).fill(1),
    );
    tp.backward(loss);
    tp.reset();
  };
  step();
  const after1 = pool.freshAllocations;
  step();
  step();
  assert.equal(pool.freshAllocations, after1, 'steady-state steps must not allocate');
  const a = pool.alloc(10);
  pool.release(a);
  assert.equal(pool.alloc(10), a, 'a released buffer is reused');
});

test('Rng: seeded, uniform in [0,1), normal moments, distinct samples', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 20000 }, () => a.uniform());
  assert.deepEqual(
    xs.slice(0, 5),
    Array.from({ length: 5 }, () => b.uniform()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `uniform mean ${mean} (tolerance 0.01, ~5 sigma)`);
  const n = new Rng(3).fillNormal(new Float32Array(20000), 0, 2);
  const m = n.reduce((s, x) => s + x, 0) / n.length;
  const sd = Math.sqrt(n.reduce((s, x) => s + (x - m) ** 2, 0) / n.length);
  assert.ok(Math.abs(m) < 0.05 && Math.abs(sd - 2) < 0.05, `normal mean ${m} sd ${sd} (tolerance 0.05)`);
  const s = new Rng(1).sample(64, 48);
  assert.equal(new Set(s).size, 48);
  assert.ok(s.every((v) => v >= 0 && v < 64));
});
