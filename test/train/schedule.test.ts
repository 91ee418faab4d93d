// Learning-rate schedules: PyTorch MultiStepLR semantics (docs/reference.md#training-machinery, #pretraining-recipe, #fine-tuning-recipe, #training-logs) and the Sync cosine warm-up (docs/reference.md#sync-recipe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  constantLR,
  cosineWarmup,
  makeSchedule,
  milestonesRange,
  multiStepLR,
} from '../../src/train/schedule.js';
import { UserError } from '../../src/util/errors.js';

test('AS-2M pretraining schedule: epochs 1-10 at lr, 11-15 lr/2, 16-20 lr/4, 21-25 lr/8 (docs/reference.md#pretraining-recipe)', () => {
  const s = makeSchedule({ kind: 'multistep', lr: 5e-5, start: 10, step: 5, gamma: 0.5 });
  for (let epoch1 = 1; epoch1 <= 25; epoch1++) {
    const want = epoch1 <= 10 ? 5e-5 : epoch1 <= 15 ? 2.5e-5 : epoch1 <= 20 ? 1.25e-5 : 6.25e-6;
    assert.equal(s.lr(epoch1 - 1, 0), want, `epoch ${epoch1}`); // powers of two: exact
  }
});

test('AS-20K fine-tuning: epochs 1-5 at 5e-5 then halved every epoch (epoch 15 ~ 4.9e-8), docs/reference.md#fine-tuning-recipe', () => {
  const s = makeSchedule({ kind: 'multistep', lr: 5e-5, start: 5, step: 1, gamma: 0.5 });
  assert.equal(s.lr(4, 0), 5e-5);
  assert.equal(s.lr(5, 0), 2.5e-5);
  assert.equal(s.lr(14, 0), 5e-5 / 1024);
  assert.ok(Math.abs(s.lr(14, 0) - 4.9e-8) < 1e-9);
});

test('AS-2M fine-tuning log: the lr printed after epoch e is lr(e) (the next epoch), docs/reference.md#training-logs', () => {
  const s = makeSchedule({ kind: 'multistep', lr: 1e-5, start: 2, step: 1, gamma: 0.5 });
  const logged = [1e-5, 5e-6, 2.5e-6, 1.25e-6, 6.25e-7];
  logged.forEach((lr, i) => assert.equal(s.lr(i + 1, 0), lr, `after epoch ${i + 1}`));
});

test('milestonesRange = Python range(start, 1000, step)', () => {
  const m = milestonesRange(10, 5);
  assert.equal(m[0], 10);
  assert.equal(m[m.length - 1], 995);
  assert.equal(m.length, 198);
  assert.throws(() => milestonesRange(1, 0), UserError);
});

test('repeated milestones apply gamma**count; milestone 0 applies from the first epoch (PyTorch)', () => {
  const s = multiStepLR({ lr: 1, milestones: [0, 3, 3], gamma: 0.5 });
  assert.equal(s.lr(0, 0), 0.5);
  assert.equal(s.lr(2, 0), 0.5);
  assert.equal(s.lr(3, 0), 0.125);
});

test('cosine warm-up: linear lr*(it+1)/warmup for 10% of iterations, then cosine to 0.1*lr', () => {
  const total = 1000;
  const s = cosineWarmup({ lr: 2e-4, totalIterations: total });
  assert.equal(s.lr(0, 0), (2e-4 * 1) / 100);
  assert.equal(s.lr(0, 49), (2e-4 * 50) / 100);
  assert.equal(s.lr(0, 99), 2e-4);
  assert.ok(Math.abs(s.lr(0, 100) - 2e-4) < 1e-18, 'cosine starts at lr');
  assert.ok(Math.abs(s.lr(0, 550) - (2e-5 + 1.8e-4 * 0.5)) < 1e-16, 'midpoint is the mean of lr and min lr');
  assert.ok(Math.abs(s.lr(0, 1000) - 2e-5) < 1e-18, 'reaches min lr at the last iteration count');
  assert.equal(s.lr(0, 5000), 2e-5, 'held at min lr after the end');
  // Fractional warm-up (the reference would exceed lr at it = 2 here): capped at lr.
  const f = cosineWarmup({ lr: 1, totalIterations: 25 });
  assert.deepEqual(
    [0, 1, 2].map((it) => f.lr(0, it)),
    [1 / 2.5, 2 / 2.5, 1],
  );
  for (let it = 101; it < total; it++) assert.ok(s.lr(0, it) <= s.lr(0, it - 1), 'monotone decay');
});

test('constant schedule and config validation', () => {
  assert.equal(constantLR(3e-4).lr(7, 123), 3e-4);
  assert.throws(() => makeSchedule({ kind: 'multistep', lr: -1, start: 1, step: 1, gamma: 0.5 }), UserError);
  assert.throws(() => makeSchedule({ kind: 'bogus' } as never), UserError);
});
