#!/usr/bin/env node
// The linear layers' GEMMs of one pretraining step, one by one, as the bf16 training tape calls
// them (src/autograd/fused.ts): forward x·Wᵀ (x fp32, rounded inside; W the step's bf16 copy),
// dX = dy·W (dy rounded once), dW += dyᵀ·x (dy bf16, x fp32), each also with both operands
// already bf16 (what a producer writing bf16 would hand over). GFLOP/s and the fraction of the
// `vdpbf16ps` peak that the addon's probe measures in the same process; JSON with the
// environment. Uses the compiled package (`npm run build` first).
//
//   node scripts/bench-step-gemms.mjs [--preset base] [--batch 8] [--threads 1,2] [--only dec] [--out f.json]
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { kernels, nativeKernels } from '../dist/src/kernels/index.js';
import { fused } from '../dist/src/kernels/fused.js';
import { hostEnv, measureHardwarePeak, median, randomFill, timeCalls } from '../dist/src/bench/kernels.js';
import { modelDims, presetConfig } from '../dist/src/models/config.js';

const { values: o } = parseArgs({
  options: {
    preset: { type: 'string', default: 'base' },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '1,2' },
    only: { type: 'string' },
    seconds: { type: 'string', default: '0.4' },
    out: { type: 'string' },
  },
});
const K = kernels();
const nat = nativeKernels();
if (!nat) throw new Error('bench-step-gemms: the native addon is not loaded (the bf16 GEMM runs only there)');
const F = fused(K);
const cfg = presetConfig(o.preset);
const dims = modelDims(cfg);
const B = Number(o.batch);
const threads = o.threads.split(',').map(Number);

// Rows each linear layer sees in a step: the encoders run on the unmasked tokens, the decoder on
// every token of both modalities.
const keptA = Math.round(dims.La * (1 - cfg.mask_ratio_a));
const layers = [
  { part: 'enc', rows: B * keptA, c: cfg.embed_dim }, // the audio encoder (the larger of the two)
  { part: 'dec', rows: B * (dims.La + dims.Lv), c: cfg.decoder_embed_dim },
];
// Each linear layer's three products: [name, [m, n, k, transA, transB], A's type, B's type, beta].
const products = (rows, nOut, nIn) => [
  ['fwd', [rows, nOut, nIn, false, true], 'f32', 'bf16', 0],
  ['dX', [rows, nIn, nOut, false, false], 'bf16', 'bf16', 0],
  ['dW', [nOut, nIn, rows, true, false], 'bf16', 'f32', 1],
];
const cases = [];
for (const { part, rows, c } of layers) {
  const hid = c * cfg.mlp_ratio;
  for (const [name, nOut, nIn] of [
    ['qkv', 3 * c, c],
    ['proj', c, c],
    ['fc1', hid, c],
    ['fc2', c, hid],
  ]) {
    for (const [kind, shape, a, b, beta] of products(rows, nOut, nIn))
      cases.push({ what: `${part} ${kind} ${name}`, shape, a, b, beta });
  }
}

function operand(n, seed) {
  const f32 = randomFill(new Float32Array(n), seed);
  const bf16 = new Uint16Array(n);
  K.f32ToBf16(bf16, f32, n);
  return { f32, bf16 };
}

const env = hostEnv(K, 0);
const peak = measureHardwarePeak(nat, threads, 300);
const results = [];
for (const t of threads) {
  K.setThreads(t);
  const peakBf16 = peak?.byThreads.find((p) => p.threads === t)?.bf16 ?? 0;
  for (const cs of cases) {
    if (o.only && !cs.what.includes(o.only)) continue;
    const [m, n, k, tA, tB] = cs.shape;
    const A = operand(m * k, 1);
    const Bm = operand(n * k, 2);
    const C = new Float32Array(m * n);
    const flop = 2 * m * n * k;
    const rate = (a, b) => {
      const s = timeCalls(
        () => F.gemmEx(a, b, C, m, n, k, tA, tB, 1, cs.beta, true, null, 0, null),
        Number(o.seconds),
        5,
      );
      return flop / s.median / 1e9;
    };
    const asStep = rate(A[cs.a], Bm[cs.b]);
    const bothBf16 = rate(A.bf16, Bm.bf16);
    const r = {
      threads: t,
      what: cs.what,
      m,
      n,
      k,
      transA: tA,
      transB: tB,
      gflops: +asStep.toFixed(1),
      gflopsBothBf16: +bothBf16.toFixed(1),
      ofPeak: peakBf16 ? +(asStep / peakBf16).toFixed(3) : null,
    };
    results.push(r);
    process.stderr.write(
      `${t} thr  ${cs.what.padEnd(12)} ${m}x${n}x${k}  ${r.gflops} GFLOP/s (${r.gflopsBothBf16} both bf16)${r.ofPeak ? `, ${(100 * r.ofPeak).toFixed(0)}% of peak` : ''}\n`,
    );
  }
}
const summary = threads.map((t) => {
  const mine = results.filter((r) => r.threads === t && r.ofPeak !== null);
  return { threads: t, medianOfPeak: mine.length ? median(mine.map((r) => r.ofPeak)) : null };
});
// Whether large buffers may get 2 MiB pages (this project never asks for them).
const thpFile = '/sys/kernel/mm/transparent_hugepage/enabled';
const transparentHugepages = existsSync(thpFile) ? readFileSync(thpFile, 'utf8').trim() : 'unknown';
const report = {
  bench: 'step-gemms',
  preset: o.preset,
  batch: B,
  env: { ...env, native: nat.info(), transparentHugepages },
  hardwarePeak: peak,
  summary,
  results,
};
const text = JSON.stringify(report, null, 1) + '\n';
if (o.out) {
  writeFileSync(`${o.out}.tmp`, text);
  renameSync(`${o.out}.tmp`, o.out);
} else process.stdout.write(text);
