// Run-folder checkpoints: round trip, pruning, fallback past a corrupt newest file, and a child
// process killed with SIGKILL at random moments while saving in a loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Checkpointer,
  loadCheckpoint,
  checkpointName,
  type LoadedCheckpoint,
} from '../../src/train/checkpointer.js';
import { loadStateDict } from '../../src/io/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { rng } from '../helpers.js';

function tmpRun(): string {
  return mkdtempSync(join(tmpdir(), 'cavmae-ckpt-'));
}

function payload(step: number, n = 10) {
  const w = new Float32Array(n).map((_, i) => step + i / 8);
  return {
    params: {
      'a.weight': { shape: [2, n / 2], data: w },
      'a.bias': { shape: [3], data: new Float32Array([step, 1, 2]) },
    },
    optimizer: {
      m: new Float32Array(n + 3).fill(step / 2),
      v: new Float32Array(n + 3).fill(step / 4),
      stepCount: step,
      hyper: { beta1: 0.95 },
    },
    state: {
      epoch: 1,
      batchInEpoch: step % 4,
      globalStep: step,
      schedule: { kind: 'constant', lr: 1e-4 },
      rng: { s: [1, 2, step] },
      history: [{ epoch: 0, mAP: 0.25 }],
    },
    modelConfig: { model: 'cavmae', embed_dim: 8 },
  };
}

test('save / loadLatest round trip keeps every field; the file also loads as a state dict', () => {
  const run = tmpRun();
  try {
    const ck = new Checkpointer(run, { keepLast: 2, log: () => {} });
    assert.equal(ck.loadLatest(), undefined, 'empty run folder: nothing to resume');
    const path = ck.save(payload(5));
    const got = ck.loadLatest()!;
    assert.equal(got.path, path);
    assert.deepEqual(got.state, payload(5).state);
    assert.deepEqual(got.modelConfig, payload(5).modelConfig);
    assert.deepEqual([...got.params.keys()], ['a.weight', 'a.bias']);
    assert.deepEqual(got.params.get('a.weight')!.shape, [2, 5]);
    assert.deepEqual(got.params.get('a.weight')!.data, payload(5).params['a.weight'].data);
    assert.deepEqual(got.optimizer!.m, payload(5).optimizer.m);
    assert.equal(got.optimizer!.stepCount, 5);
    assert.deepEqual(got.optimizer!.hyper, { beta1: 0.95 });
    const sd = loadStateDict(path);
    assert.deepEqual(sd.tensors.get('a.bias')!.data, new Float32Array([5, 1, 2]));
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('keeps the last K checkpoints; the save policy fires every N steps and at epoch ends', () => {
  const run = tmpRun();
  try {
    const ck = new Checkpointer(run, { keepLast: 2, everySteps: 100, log: () => {} });
    for (const s of [100, 200, 250, 300]) ck.save(payload(s));
    assert.deepEqual(
      ck.list().map((f) => f.step),
      [300, 250],
    );
    assert.equal(ck.due(200, false), true);
    assert.equal(ck.due(250, false), false);
    assert.equal(ck.due(250, true), true);
    assert.equal(ck.due(0, false), false);
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('a truncated or corrupt newest checkpoint falls back to the previous valid one, with a message', () => {
  const run = tmpRun();
  try {
    const messages: string[] = [];
    const ck = new Checkpointer(run, { keepLast: 3, log: (m) => messages.push(m) });
    ck.save(payload(1));
    ck.save(payload(2));
    const newest = ck.save(payload(3));
    truncateSync(newest, statSync(newest).size - 5);
    let got = ck.loadLatest()!;
    assert.equal(got.state.globalStep, 2);
    assert.ok(
      messages.some((m) => m.includes('resuming from') && m.includes(checkpointName(3))),
      messages.join('\n'),
    );
    // Garbage header in the next one too, and an unreadable pointer.
    writeFileSync(join(run, 'checkpoints', checkpointName(2)), 'not a checkpoint at all');
    writeFileSync(join(run, 'checkpoints', 'latest.json'), '{"file": 12');
    got = ck.loadLatest()!;
    assert.equal(got.state.globalStep, 1);
    assert.ok(messages.some((m) => m.includes('latest.json') && m.includes('unreadable')));
    // The resumed run's next save (step 2) replaces the corrupt file of that step and removes the
    // abandoned newer one (step 3).
    ck.save(payload(2));
    assert.deepEqual(
      ck.list().map((f) => f.step),
      [2, 1],
    );
    assert.ok(messages.some((m) => m.includes('removing') && m.includes(checkpointName(3))));
    // Nothing valid at all: a UserError naming the folder and each problem.
    for (const f of ck.list()) writeFileSync(f.path, 'x');
    assert.throws(
      () => ck.loadLatest(),
      (e: unknown) => e instanceof UserError && /no valid checkpoint/.test((e as Error).message),
    );
    assert.throws(() => loadCheckpoint(join(run, 'checkpoints', checkpointName(2))), UserError);
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

/** Values in the child's checkpoint k are all functions of k: complete or not. */
function assertComplete(ck: LoadedCheckpoint, size: number): void {
  const k = ck.state.globalStep;
  const w = ck.params.get('blocks.0.w')!.data;
  const b = ck.params.get('blocks.0.b')!.data;
  assert.equal(w.length, size);
  assert.ok(
    w.every((x) => x === k),
    `params of step ${k} incomplete`,
  );
  assert.ok(b.every((x) => x === -k));
  assert.ok(
    ck.optimizer!.m.every((x) => x === 2 * k) && ck.optimizer!.v.every((x) => x === 3 * k),
    'optimizer state mismatched',
  );
  assert.equal(ck.optimizer!.stepCount, k);
  assert.deepEqual(ck.state.rng, { seed: 7 * k });
  assert.deepEqual(ck.modelConfig, { preset: 'test', step: k });
}

test('SIGKILL at random moments while saving: the latest checkpoint is always loadable and complete', async (t) => {
  const run = tmpRun();
  const here = dirname(fileURLToPath(import.meta.url));
  const child = join(here, `checkpoint-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`);
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
  const size = 1 << 20; // 4 MB per tensor, 12 MB per checkpoint: kills land mid-write often
  const r = rng(2024);
  let lastReported = 0;
  let tornWrites = 0; // rounds whose kill interrupted a write (left a temporary file)
  try {
    for (let round = 0; round < 6; round++) {
      const proc = spawn(process.execPath, [...execArgv, child, run, String(size)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((res) => proc.on('exit', () => res()));
      // Wait for the first completed save of this round, then kill after a random delay.
      await new Promise<void>((res, rej) => {
        let buf = '';
        const timer = setTimeout(
          () => rej(new Error(`child produced no checkpoint in 20 s: ${stderr}`)),
          20000,
        );
        proc.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.trim().split('\n');
          const n = Number(lines[lines.length - 1]);
          if (Number.isFinite(n)) lastReported = Math.max(lastReported, n);
          if (lines.length >= 1 && buf.includes('\n')) {
            clearTimeout(timer);
            res();
          }
        });
        proc.on('exit', (code) => rej(new Error(`child exited early (${code}): ${stderr}`)));
      });
      await new Promise((res) => setTimeout(res, 20 + r() * 400));
      proc.kill('SIGKILL');
      await exited;
      const messages: string[] = [];
      const got = new Checkpointer(run, { keepLast: 2, log: (m) => messages.push(m) }).loadLatest();
      assert.ok(got, `round ${round}: no checkpoint`);
      assertComplete(got, size);
      // The pointer only ever moves to completed files: never behind a save the child reported.
      assert.ok(
        got.state.globalStep >= lastReported,
        `round ${round}: loaded step ${got.state.globalStep} < reported ${lastReported}`,
      );
      const files = readdirSync(join(run, 'checkpoints'));
      if (files.some((f) => f.endsWith('.tmp'))) tornWrites++;
      assert.ok(
        files.filter((f) => f.endsWith('.safetensors')).length <= 3,
        `too many checkpoints kept: ${files}`,
      );
    }
    t.diagnostic(`${tornWrites}/6 kills interrupted a write (left a temporary file)`);
    // The next run cleans temporary files of the killed writers.
    const ck = new Checkpointer(run, { keepLast: 2, log: () => {} });
    const latest = ck.loadLatest()!;
    ck.save({
      params: new Map([
        ['blocks.0.w', { shape: [size], data: latest.params.get('blocks.0.w')!.data }],
        ['blocks.0.b', { shape: [7], data: latest.params.get('blocks.0.b')!.data }],
      ]),
      optimizer: latest.optimizer,
      state: latest.state,
      modelConfig: latest.modelConfig,
    });
    assert.deepEqual(
      readdirSync(join(run, 'checkpoints')).filter((f) => f.endsWith('.tmp')),
      [],
    );
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});
