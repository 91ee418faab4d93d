#!/usr/bin/env node
// The ONNX Runtime peer's cold start, the counterpart of `cavmae bench --model-bench --tasks api`:
// seconds from InferenceSession.create (the model file read, graph optimised, weights packed)
// to the first embeddings of one clip (batch 1), after onnxruntime-node is imported. Session
// options as ../shared/peer/ort/ort_bench.mjs (CPU provider, 2 intra-op threads, sequential,
// graph optimisation 'all', spinning on or off). Prints one JSON line.
//
// usage: node scripts/ort-first-run.mjs --model FILE --ort DIR [--spin 0|1] [--threads 2]
//   --ort  a folder with node_modules/onnxruntime-node (or the package folder itself)
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

function fail(msg) {
  process.stderr.write(`ort-first-run: ${msg}\n`);
  process.exit(1);
}

const o = { model: undefined, ort: undefined, spin: 1, threads: 2 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => (i + 1 < argv.length ? argv[++i] : fail(`${a} needs a value`));
  if (a === '--model') o.model = v();
  else if (a === '--ort') o.ort = v();
  else if (a === '--spin') o.spin = Number(v());
  else if (a === '--threads') o.threads = Number(v());
  else fail(`unknown option '${a}'`);
}
if (!o.model || !existsSync(o.model)) fail(`--model: no such file '${o.model}'`);
if (!o.ort) fail('--ort DIR is required');
if (![0, 1].includes(o.spin)) fail(`--spin must be 0 or 1, got ${o.spin}`);
if (!(Number.isInteger(o.threads) && o.threads >= 1)) fail(`--threads must be a positive integer`);

// onnxruntime-node is CommonJS: resolve it from the given folder.
const dir = resolve(o.ort);
const own = join(dir, 'package.json');
const pkgDir =
  existsSync(own) && JSON.parse(readFileSync(own, 'utf8')).name === 'onnxruntime-node'
    ? dir
    : join(dir, 'node_modules', 'onnxruntime-node');
if (!existsSync(join(pkgDir, 'package.json'))) fail(`onnxruntime-node not found under ${dir}`);
const req = createRequire(join(pkgDir, 'noop.js'));
const ort = req(pkgDir);
const version = req(join(pkgDir, 'package.json')).version;

// One clip: a standard-normal spectrogram [1,1024,128] and image [1,3,224,224] (values do not
// change the time); a fixed LCG so runs are identical.
let seed = 12345;
const normal = (n) => {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const u = (seed + 0.5) / 4294967296;
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const w = (seed + 0.5) / 4294967296;
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
  }
  return out;
};
const audio = normal(1024 * 128);
const image = normal(3 * 224 * 224);

const t0 = performance.now();
const session = await ort.InferenceSession.create(o.model, {
  executionProviders: ['cpu'],
  intraOpNumThreads: o.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: String(o.spin) } } },
});
const t1 = performance.now();
const [aName, vName] = session.inputNames;
const out = await session.run({
  [aName]: new ort.Tensor('float32', audio, [1, 1024, 128]),
  [vName]: new ort.Tensor('float32', image, [1, 3, 224, 224]),
});
const t2 = performance.now();
const ok = session.outputNames.every((n) => out[n].dims[0] === 1 && out[n].data.every(Number.isFinite));
process.stdout.write(
  `${JSON.stringify({
    session_s: (t1 - t0) / 1000,
    first_run_s: (t2 - t1) / 1000,
    load_first_embed_s: (t2 - t0) / 1000,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    model: o.model,
    spin: o.spin,
    threads: o.threads,
    ort_version: version,
    outputs_ok: ok,
  })}\n`,
);
if (!ok) process.exit(1);
