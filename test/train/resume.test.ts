/**
 * Kill -9 during `cavmae pretrain` at random moments, then `--resume`: no completed step is lost
 * and the final weights are bit-identical to those of an uninterrupted run with the same seed
 * (data order, augmentation and mask noise all replay from (seed, position)).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { Checkpointer } from '../../src/train/checkpointer.js';
import { rng } from '../helpers.js';
import { cli, makeSyntheticSet, spawnCli } from './pretrain-fixture.js';

function trainSteps(logPath: string): number[] {
  if (!existsSync(logPath)) return [];
  const out: number[] = [];
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { kind?: string; step?: number };
      if (r.kind === 'train' && typeof r.step === 'number') out.push(r.step);
    } catch {
      /* a torn last line */
    }
  }
  return out;
}

/** The step of the newest valid checkpoint (what a resume must continue from), 0 if none. */
function latestCheckpointStep(run: string): number {
  return new Checkpointer(run, { log: () => {} }).loadLatest()?.state.globalStep ?? 0;
}

test(
  'SIGKILL at random moments + --resume = the uninterrupted run, bit for bit',
  { timeout: 240_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cavmae-resume-'));
    try {
      const set = await makeSyntheticSet(join(dir, 'data'), 24, 8);
      const args = (out: string) => [
        'pretrain',
        '--data',
        set.train,
        '--val',
        set.val,
        '--config',
        set.config,
        '--out',
        out,
        '--batch-size',
        '4',
        '--epochs',
        '8',
        '--lr',
        '1e-3',
        '--schedule',
        'cosine',
        '--warmup-steps',
        '5',
        '--contrast-weight',
        '0.5',
        '--mask-ratio',
        '0.5',
        '--checkpoint-every',
        '3',
        '--seed',
        '7',
        '--workers',
        '1',
        '--quiet',
      ];
      const ref = join(dir, 'ref');
      const r = cli(args(ref));
      assert.equal(r.status, 0, r.stderr);
      const totalSteps = 6 * 8;
      assert.deepEqual(
        trainSteps(join(ref, 'log.jsonl')),
        Array.from({ length: totalSteps }, (_, i) => i + 1),
      );

      const run = join(dir, 'killed');
      const random = rng(99);
      let kills = 0;
      const resumedFrom: number[] = [];
      for (let round = 0; round < 40; round++) {
        const before = latestCheckpointStep(run);
        const child = spawnCli([...args(run), '--resume']);
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
        // Let it make some progress (a new train record), then kill it after a random delay.
        const seen = trainSteps(join(run, 'log.jsonl')).length;
        const killAfter = random() * 1500;
        let done: number | null | undefined;
        let firstProgress = 0;
        while (done === undefined) {
          const settled = await Promise.race([
            exited,
            new Promise<'wait'>((res) => setTimeout(() => res('wait'), 25)),
          ]);
          if (settled !== 'wait') {
            done = settled;
            break;
          }
          if (!firstProgress && trainSteps(join(run, 'log.jsonl')).length > seen) firstProgress = Date.now();
          if (firstProgress && Date.now() - firstProgress > killAfter) {
            child.kill('SIGKILL');
            kills++;
            await exited;
            done = null;
          }
        }
        const m = /resuming .* at step (\d+)/.exec(stderr);
        if (m) {
          // A resumed process starts exactly at the newest checkpoint that existed when it started.
          assert.equal(
            Number(m[1]),
            before,
            `round ${round}: resumed at ${m[1]}, latest checkpoint was ${before}`,
          );
          resumedFrom.push(Number(m[1]));
        }
        if (done === 0) break;
        assert.equal(done, null, `child failed: ${stderr}`);
      }
      t.diagnostic(`${kills} SIGKILLs; resumed at steps ${resumedFrom.join(', ')} of ${totalSteps}`);
      assert.ok(kills >= 3, `only ${kills} kills landed during training`);
      assert.ok(resumedFrom.length >= 3, 'the run resumed from checkpoints');
      // Every step appears exactly once in the log (the abandoned tails were dropped on resume).
      assert.deepEqual(
        trainSteps(join(run, 'log.jsonl')),
        Array.from({ length: totalSteps }, (_, i) => i + 1),
      );
      const a = readSafetensors(join(ref, 'model.safetensors')).tensors;
      const b = readSafetensors(join(run, 'model.safetensors')).tensors;
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [name, t] of a) {
        const u = b.get(name)!;
        assert.deepEqual(u.shape, t.shape, name);
        assert.ok(
          Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(
            Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength),
          ),
          `${name} differs from the uninterrupted run`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
