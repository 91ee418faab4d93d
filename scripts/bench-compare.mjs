#!/usr/bin/env node
// Side-by-side throughput of cavmae and the PyTorch CAV-MAE peer (../shared/peer/torch_bench.py)
// on the same machine in one run: both are run alternately, several times, each task in its own
// process (so peak RSS is per task), and the ratios ours / PyTorch are printed with their spread.
//
// usage: node scripts/bench-compare.mjs [--runs 5] [--batch 8] [--preset base] [--reps 3]
//          [--dtypes fp32,bf16] [--tasks embed,pretrain,ft] [--python /usr/bin/python3]
//          [--peer DIR] [--out results.json] [--warmup 4]
//
// Run `npm run build` first (npm run bench:compare does). The peer runs when its Python has
// torch; otherwise only our figures are printed. Per run and dtype, the order alternates
// (ours first on odd runs, the peer first on even runs) so that neither side always gets the
// machine right after the other's load. The peer's fp32 runs with OMP_WAIT_POLICY=PASSIVE (its
// fastest fp32 setting with OpenBLAS here; see docs/performance.md); `--peer-env none` disables it.
// Our int8 inference (embed, ft) is measured too and compared with the peer's best mode
// (`--no-int8` skips it); "best vs best" is over fp32 and bf16 only.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync, renameSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = {
    runs: 5,
    batch: 8,
    preset: 'base',
    reps: 3,
    dtypes: ['fp32', 'bf16'],
    tasks: ['embed', 'pretrain', 'ft'],
    python: '/usr/bin/python3',
    peer: resolve(root, '..', 'shared', 'peer'),
    out: undefined,
    warmup: 4,
    peerEnv: 'passive-fp32',
    int8: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    const int = (name, x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer, got '${x}'`);
      return n;
    };
    if (a === '--runs') o.runs = int(a, v());
    else if (a === '--batch') o.batch = int(a, v());
    else if (a === '--reps') o.reps = int(a, v());
    else if (a === '--preset') o.preset = v();
    else if (a === '--dtypes') o.dtypes = v().split(',');
    else if (a === '--tasks') o.tasks = v().split(',');
    else if (a === '--python') o.python = v();
    else if (a === '--peer') o.peer = resolve(v());
    else if (a === '--out') o.out = v();
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--peer-env') o.peerEnv = v();
    else if (a === '--no-int8') o.int8 = false;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${readUsage()}\n`);
      process.exit(0);
    } else fail(`unknown option '${a}'`);
  }
  for (const d of o.dtypes) if (!['fp32', 'bf16'].includes(d)) fail(`--dtypes: unknown dtype '${d}'`);
  for (const t of o.tasks) if (!['embed', 'pretrain', 'ft'].includes(t)) fail(`--tasks: unknown task '${t}'`);
  return o;
}

function readUsage() {
  return 'usage: node scripts/bench-compare.mjs [--runs 5] [--batch 8] [--preset base] [--reps 3] [--dtypes fp32,bf16] [--tasks embed,pretrain,ft] [--python /usr/bin/python3] [--peer DIR] [--out FILE] [--warmup 4] [--peer-env passive-fp32|none] [--no-int8]';
}

function fail(msg) {
  process.stderr.write(`bench-compare: ${msg}\n`);
  process.exit(1);
}

const KEY = { embed: 'embed_clips_per_s', pretrain: 'pretrain_samples_per_s', ft: 'ft_clips_per_s' };

function lastJsonLine(text) {
  const lines = text.trim().split('\n').reverse();
  for (const l of lines) {
    const t = l.trim();
    if (t.startsWith('{')) {
      try {
        return JSON.parse(t);
      } catch {
        // not JSON after all
      }
    }
  }
  return undefined;
}

function run(cmd, args, env) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  const seconds = (Date.now() - t0) / 1000;
  if (r.status !== 0) {
    return { error: `${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`, seconds };
  }
  const json = lastJsonLine(r.stdout);
  if (!json) return { error: `${cmd} printed no JSON line`, seconds };
  return { json, seconds };
}

function ours(o, dtype, task) {
  const cli = join(root, 'bin', 'cavmae.js');
  return run(process.execPath, [cli, 'bench', '--model-bench', '--json', '--no-progress', '--preset', o.preset, '--batch', String(o.batch), '--dtype', dtype, '--reps', String(o.reps), '--tasks', task, '--warmup', String(o.warmup)], {});
}

function peer(o, dtype, task) {
  const env = o.peerEnv === 'passive-fp32' && dtype === 'fp32' ? { OMP_WAIT_POLICY: 'PASSIVE' } : {};
  return run(o.python, [join(o.peer, 'torch_bench.py'), '--dtype', dtype, '--batch', String(o.batch), '--reps', String(o.reps), '--tasks', task], env);
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function spread(xs) {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length ? { median: median(s), min: Math.min(...s), max: Math.max(...s), n: s.length } : { median: NaN, min: NaN, max: NaN, n: 0 };
}

function fmt(x, d = 2) {
  return Number.isFinite(x) ? x.toFixed(d) : '-';
}

function peerAvailable(o) {
  if (!existsSync(join(o.peer, 'torch_bench.py'))) return `no torch_bench.py in ${o.peer}`;
  const r = spawnSync(o.python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) return `${o.python} cannot import torch`;
  return undefined;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) fail("not built: run 'npm run build' (or npm run bench:compare)");
  // torch_bench.py always runs the base configuration: other presets are measured on our side only.
  const peerMissing = o.preset !== 'base' ? `torch_bench.py runs the base configuration only, not '${o.preset}'` : peerAvailable(o);
  if (peerMissing) process.stderr.write(`bench-compare: PyTorch peer unavailable (${peerMissing}); measuring ours only\n`);
  const results = []; // { run, side, dtype, task, value, rss, json }
  const log = (s) => process.stderr.write(`bench-compare: ${s}\n`);
  const loadStart = loadavg();
  for (let i = 1; i <= o.runs; i++) {
    if (o.int8) {
      // Our int8 inference (no PyTorch counterpart in torch_bench.py): compared with the peer's best.
      for (const task of o.tasks.filter((t) => t !== 'pretrain')) {
        const r = ours(o, 'int8', task);
        if (r.error) {
          log(`run ${i} ours int8 ${task}: ${r.error}`);
          results.push({ run: i, side: 'ours', dtype: 'int8', task, value: NaN, rss: NaN, error: r.error });
        } else {
          results.push({ run: i, side: 'ours', dtype: 'int8', task, value: r.json[KEY[task]], rss: r.json.peak_rss_mb, mfu: r.json.mfu?.[task], load: loadavg()[0], json: r.json });
          log(`run ${i}/${o.runs} ours int8 ${task.padEnd(8)} ${fmt(r.json[KEY[task]], 3)} /s, peak RSS ${fmt(r.json.peak_rss_mb, 0)} MB (${r.seconds.toFixed(0)} s)`);
        }
      }
    }
    for (const dtype of o.dtypes) {
      for (const task of o.tasks) {
        const sides = peerMissing ? ['ours'] : i % 2 === 1 ? ['ours', 'peer'] : ['peer', 'ours'];
        for (const side of sides) {
          const r = side === 'ours' ? ours(o, dtype, task) : peer(o, dtype, task);
          if (r.error) {
            log(`run ${i} ${side} ${dtype} ${task}: ${r.error}`);
            results.push({ run: i, side, dtype, task, value: NaN, rss: NaN, error: r.error });
            continue;
          }
          const value = r.json[KEY[task]];
          const rss = r.json.peak_rss_mb;
          results.push({ run: i, side, dtype, task, value, rss, mfu: r.json.mfu?.[task], load: loadavg()[0], json: r.json });
          log(`run ${i}/${o.runs} ${side.padEnd(4)} ${dtype} ${task.padEnd(8)} ${fmt(value, 3)} /s, peak RSS ${fmt(rss, 0)} MB (${r.seconds.toFixed(0)} s, load ${loadavg()[0].toFixed(2)})`);
        }
      }
    }
  }
  const get = (side, dtype, task, run) => results.find((r) => r.side === side && r.dtype === dtype && r.task === task && r.run === run);
  const runs = Array.from({ length: o.runs }, (_, i) => i + 1);
  const summary = { config: { ...o, peerAvailable: !peerMissing }, loadavgStart: loadStart, loadavgEnd: loadavg(), rows: [] };
  const lines = [];
  lines.push(`| task | mode | ours /s | PyTorch /s | ratio median | ratio min-max | ours peak RSS MB | PyTorch peak RSS MB | ours MFU |`);
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const task of o.tasks) {
    const modes = [...o.dtypes.map((d) => [d, d, d])];
    if (o.dtypes.length > 1) modes.push(['best vs best', 'best', 'best']);
    if (o.int8 && task !== 'pretrain') modes.push(['int8 vs PyTorch best', 'int8', 'best']);
    for (const [label, oursMode, peerMode] of modes) {
      const pick = (side, run) => {
        const mode = side === 'ours' ? oursMode : peerMode;
        if (mode !== 'best') return get(side, mode, task, run);
        const c = o.dtypes.map((d) => get(side, d, task, run)).filter((r) => r && Number.isFinite(r.value));
        return c.sort((a, b) => b.value - a.value)[0];
      };
      const oursV = runs.map((r) => pick('ours', r)?.value ?? NaN);
      const peerV = runs.map((r) => pick('peer', r)?.value ?? NaN);
      const ratios = runs.map((_, k) => oursV[k] / peerV[k]);
      const oursR = runs.map((r) => pick('ours', r)?.rss ?? NaN);
      const peerR = runs.map((r) => pick('peer', r)?.rss ?? NaN);
      const mfu = runs.map((r) => pick('ours', r)?.mfu ?? NaN);
      const rs = spread(ratios);
      const row = {
        task,
        mode: label,
        ours: spread(oursV),
        peer: spread(peerV),
        ratio: rs,
        oursRss: spread(oursR),
        peerRss: spread(peerR),
        oursMfu: spread(mfu),
        oursModes: oursMode === 'best' ? runs.map((r) => pick('ours', r)?.dtype) : undefined,
        peerModes: peerMode === 'best' ? runs.map((r) => pick('peer', r)?.dtype) : undefined,
      };
      summary.rows.push(row);
      lines.push(
        `| ${task} | ${label} | ${fmt(row.ours.median, 3)} (${fmt(row.ours.min, 3)}-${fmt(row.ours.max, 3)}) | ${fmt(row.peer.median, 3)} (${fmt(row.peer.min, 3)}-${fmt(row.peer.max, 3)}) | ` +
          `${fmt(rs.median)} | ${fmt(rs.min)}-${fmt(rs.max)} | ${fmt(row.oursRss.median, 0)} | ${fmt(row.peerRss.median, 0)} | ${Number.isFinite(row.oursMfu.median) ? `${(100 * row.oursMfu.median).toFixed(0)}%` : '-'} |`,
      );
    }
  }
  const header =
    `cavmae vs PyTorch peer: preset ${o.preset}, batch ${o.batch}, ${o.runs} alternating runs, median of ${o.reps} calls per run; ` +
    `load ${loadStart.map((x) => x.toFixed(2)).join(' ')} -> ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
  process.stdout.write(`${header}\n\n${lines.join('\n')}\n`);
  const envOurs = results.find((r) => r.side === 'ours' && r.json)?.json.env;
  const envPeer = results.find((r) => r.side === 'peer' && r.json)?.json;
  if (envOurs) process.stdout.write(`\nours: ${envOurs.cpuModel}, node ${envOurs.node}, ${envOurs.native ? `oneDNN ${envOurs.native.dnnlVersion} ${envOurs.native.dnnlIsa}` : envOurs.backend}\n`);
  if (envPeer) process.stdout.write(`peer: torch ${envPeer.torch}, ${envPeer.threads} threads, OPENBLAS_CORETYPE=${envPeer.OPENBLAS_CORETYPE}\n`);
  if (o.out) {
    const tmp = `${o.out}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify({ summary, results }, null, 2)}\n`);
    renameSync(tmp, o.out);
  }
}

main();
