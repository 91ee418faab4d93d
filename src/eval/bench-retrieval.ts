/**
 * Retrieval benchmark (not a test): times both directions of pooled retrieval and, optionally,
 * a CAV-MAE Sync strategy on random unit vectors.
 *   node dist/src/eval/bench-retrieval.js [N=20000] [D=768] [--frames F --strategy S]
 * Prints one JSON line. Uses whatever kernels() selects (native when built).
 */
import { fileURLToPath } from 'node:url';
import { kernels } from '../kernels/index.js';
import { evaluateRetrieval, l2NormalizeRows, type ClipStrategy } from './retrieval.js';

export interface RetrievalBench {
  kernels: string;
  n: number;
  dim: number;
  frames: number;
  strategy: string;
  seconds: number;
  gflops: number;
  r1: number;
}

export function benchRetrieval(
  n: number,
  dim: number,
  frames = 1,
  strategy: ClipStrategy = 'diagonal_mean',
): RetrievalBench {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296 - 0.5;
  const rows = n * frames;
  const v = new Float32Array(rows * dim).map(rand);
  const a = new Float32Array(rows * dim);
  // Noise 12x the signal: the paired cosine (~0.08) is a few sigma above random pairs, so the
  // ranks are not trivial (R@1 well below 1 at N = 20,000).
  for (let i = 0; i < a.length; i++) a[i] = v[i] + 12 * rand();
  const audio = { data: l2NormalizeRows(a, rows, dim), n, dim, frames };
  const video = { data: l2NormalizeRows(v, rows, dim), n, dim, frames };
  const t0 = process.hrtime.bigint();
  const r = evaluateRetrieval(audio, video, { strategy });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // Multiply-adds per direction: pooled/diagonal_mean n²·F·D, diagonal_max the same, max n²·F²·D, mean n²·D.
  const perPair =
    frames === 1
      ? dim
      : strategy === 'max'
        ? frames * frames * dim
        : strategy === 'mean'
          ? dim
          : frames * dim;
  const gflops = (2 * 2 * n * n * perPair) / seconds / 1e9;
  return {
    kernels: kernels().name,
    n,
    dim,
    frames,
    strategy: frames > 1 ? strategy : 'pooled',
    seconds,
    gflops,
    r1: r.audioToVideo.r1,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
  const frames = Number(flag('--frames') ?? 1);
  const strategy = (flag('--strategy') ?? 'diagonal_mean') as ClipStrategy;
  const n = Number(args[0] ?? 20000);
  const dim = Number(args[1] ?? 768);
  process.stdout.write(`${JSON.stringify(benchRetrieval(n, dim, frames, strategy))}\n`);
}
