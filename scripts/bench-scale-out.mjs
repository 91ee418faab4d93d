#!/usr/bin/env node
// Scale-out benchmark for distributed indexing (docs/scale-out.md): the same files indexed
//   local   `cavmae index add --threads 1` (one process, no queue),
//   q1      `index add --queue` with 1 worker of 1 thread,
//   q2      `index add --queue` with 2 workers of 1 thread each,
// alternating, `--reps` times, on AV-digits demo data, with a private redis-server.
// Prints one JSON object (env, runs, medians, throughput ratio q2/q1, queue overhead per job,
// writer time per job, projection for N machines). Run it under /work/bin/cpu-bench.
// Usage: node scripts/bench-scale-out.mjs [--examples 300] [--batch 16] [--reps 3] [--model tiny|FILE] [--out FILE]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(ROOT, 'bin', 'cavmae.js');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const examples = Number(arg('examples', '300'));
const batch = Number(arg('batch', '16'));
const reps = Number(arg('reps', '3'));
const modelArg = arg('model', 'tiny');
const outFile = arg('out', undefined);
const work = join(tmpdir(), 'cavmae-scaleout-bench');
mkdirSync(work, { recursive: true });

const children = new Set();
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(args, onLine) {
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  let out = '';
  let err = '';
  let part = '';
  p.stdout.on('data', (d) => {
    out += d;
    part += d;
    const lines = part.split('\n');
    part = lines.pop();
    lines.forEach((l) => onLine?.(l));
  });
  p.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve) =>
    p.on('exit', (code) => {
      children.delete(p);
      resolve({ code, out, err });
    }),
  );
  return { p, done };
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const { makeDemoData } = await import(join(ROOT, 'dist/src/data/avdigits.js'));
const data = join(work, `avdigits-${examples}`);
await makeDemoData({ out: data, n: examples, testN: 0, jobs: 2 });
const media = join(data, 'train');
let model = modelArg;
if (!existsSync(modelArg)) {
  const m = await import(join(ROOT, 'dist/src/models/index.js'));
  model = join(work, `${modelArg}.safetensors`);
  if (!existsSync(model)) m.saveModel(model, m.CAVMAE.create(m.presetConfig(modelArg), { seed: 0 }));
}

const port = await freePort();
const rdir = join(work, 'redis');
rmSync(rdir, { recursive: true, force: true });
mkdirSync(rdir);
const redis = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--dir', rdir, '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' },
);
children.add(redis);
await sleep(500);
const url = `redis://127.0.0.1:${port}/0`;

async function timed(args) {
  const idx = join(work, `idx-${Date.now()}`);
  const t0 = performance.now();
  const r = await run([...args, '--index', idx, '--json']).done;
  const seconds = (performance.now() - t0) / 1000;
  rmSync(idx, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`${args.join(' ')} failed: ${r.err}`);
  return { seconds, summary: JSON.parse(r.out.trim().split('\n').pop()) };
}

async function queued(workers) {
  const ws = [];
  for (let i = 0; i < workers; i++) {
    let ready;
    const isReady = new Promise((r) => (ready = r));
    const w = run(
      ['worker', '--queue', url, '--threads', '1', '--model', model, '--json', '--name', `bench${i}`],
      (l) => l.includes('"ready"') && ready(),
    );
    await isReady;
    ws.push(w);
  }
  const r = await timed(['index', 'add', media, '--model', model, '--queue', url, '--batch', String(batch)]);
  for (const w of ws) w.p.kill('SIGTERM');
  await Promise.all(ws.map((w) => w.done));
  return r;
}

const runs = { local: [], q1: [], q2: [] };
for (let rep = 0; rep < reps; rep++) {
  const order = rep % 2 === 0 ? ['local', 'q1', 'q2'] : ['q2', 'q1', 'local'];
  for (const kind of order) {
    const r =
      kind === 'local'
        ? await timed(['index', 'add', media, '--model', model, '--threads', '1', '--batch', String(batch)])
        : await queued(kind === 'q1' ? 1 : 2);
    const files = r.summary.added;
    const q = r.summary.queue;
    runs[kind].push({
      seconds: +r.seconds.toFixed(3),
      files,
      filesPerSec: +(files / r.seconds).toFixed(2),
      ...(q
        ? {
            jobs: q.jobs,
            steadyFilesPerSec: +q.steadyFilesPerSec.toFixed(3),
            writerMsPerJob: +(q.writerMs / q.jobs).toFixed(2),
            embedMsPerJob: +(Object.values(q.workers).reduce((s, w) => s + w.ms, 0) / q.jobs).toFixed(1),
          }
        : {}),
    });
    process.stderr.write(`${kind} rep ${rep}: ${r.seconds.toFixed(2)} s, ${files} files\n`);
  }
}
redis.kill('SIGTERM');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const med = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v.map((r) => r.seconds))]));
const files = runs.local[0].files;
const jobs = runs.q1[0].jobs;
const overheadPerJobMs = ((med.q1 - med.local) / jobs) * 1000;
const writerMsPerJob = median([...runs.q1, ...runs.q2].map((r) => r.writerMsPerJob));
const perMachine = files / med.q2; // files/s of one 2-core machine running 2 workers
const writerCapacity = (batch / writerMsPerJob) * 1000; // files/s one writer can commit
const cpuText = readFileSync('/proc/cpuinfo', 'utf8');
const result = {
  benchmark: 'scale-out',
  date: new Date().toISOString(),
  env: {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuText)?.[1],
    cpuFamily: Number(/^cpu family\s*:\s*(\d+)/m.exec(cpuText)?.[1]),
    cores: cpus().length,
    node: process.version,
    redis: spawnSync('redis-server', ['--version']).stdout.toString().trim(),
    kernels: (await import(join(ROOT, 'dist/src/kernels/index.js'))).kernels().name,
    OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE,
    OPENBLAS_L2_SIZE: process.env.OPENBLAS_L2_SIZE,
  },
  setup: { examples, files, batch, jobs, model: modelArg, reps },
  runs,
  medianSeconds: med,
  throughputRatio2v1: +(med.q1 / med.q2).toFixed(3),
  steadyRatio2v1: +(
    median(runs.q2.map((r) => r.steadyFilesPerSec)) / median(runs.q1.map((r) => r.steadyFilesPerSec))
  ).toFixed(3),
  queueVsLocal1: +(med.local / med.q1).toFixed(3),
  overheadPerJobMs: +overheadPerJobMs.toFixed(1),
  writerMsPerJob,
  projection: {
    note: 'N machines like this one, 2 workers each: N x per-machine rate, capped by what one writer commits',
    perMachineFilesPerSec: +perMachine.toFixed(2),
    writerCapacityFilesPerSec: +writerCapacity.toFixed(0),
    byMachines: Object.fromEntries(
      [1, 2, 4, 8, 16, 32, 64].map((n) => [n, +Math.min(n * perMachine, writerCapacity).toFixed(1)]),
    ),
  },
};
const text = JSON.stringify(result, null, 2);
if (outFile) writeFileSync(outFile, text + '\n');
process.stdout.write(text + '\n');
process.exit(0);
