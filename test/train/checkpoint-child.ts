// Child process for the kill -9 test in checkpointer.test.ts (not a test file itself):
// resumes from <run>/checkpoints if possible, then saves checkpoints in a loop forever, printing
// each completed global step. Every value in checkpoint k is a function of k, so the parent can
// tell a complete checkpoint from a torn one.
import { Checkpointer } from '../../src/train/checkpointer.js';

const [runDir, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const ck = new Checkpointer(runDir, { keepLast: 2, log: () => {} });
const resumed = ck.loadLatest();
let step = resumed ? resumed.state.globalStep : 0;
const w = new Float32Array(size);
const b = new Float32Array(7);
const m = new Float32Array(size + 7);
const v = new Float32Array(size + 7);
for (;;) {
  step++;
  w.fill(step);
  b.fill(-step);
  m.fill(2 * step);
  v.fill(3 * step);
  ck.save({
    params: new Map([
      ['blocks.0.w', { shape: [size], data: w }],
      ['blocks.0.b', { shape: [7], data: b }],
    ]),
    optimizer: { m, v, stepCount: step },
    state: {
      epoch: Math.floor(step / 10),
      batchInEpoch: step % 10,
      globalStep: step,
      rng: { seed: 7 * step },
      history: [{ step }],
    },
    modelConfig: { preset: 'test', step },
  });
  process.stdout.write(`${step}\n`);
}
