/**
 * Writes the model bench's seeded checkpoint (`node seeded-checkpoint.js PRESET SEED FILE`): the
 * `api` task runs this in a child process, so the fp32 model made to be saved does not count in
 * the peak RSS the bench reports for loading and serving it (the ONNX Runtime peer, likewise,
 * loads a model exported beforehand).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CAVMAE } from '../models/cavmae.js';
import { presetConfig } from '../models/config.js';
import { saveModel } from '../models/registry.js';

/** The preset's model, initialised from `seed`, saved to `file` by a child process. */
export function writeSeededCheckpoint(preset: string, seed: number, file: string): void {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), preset, String(seed), file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(
      `writing the seeded ${preset} checkpoint ${file} failed (${r.status ?? r.signal}): ${(r.stderr ?? '').trim()}`,
    );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [preset, seed, file] = process.argv.slice(2);
  saveModel(file, CAVMAE.create(presetConfig(preset), { seed: Number(seed), grad: false }));
}
