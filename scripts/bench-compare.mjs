#!/usr/bin/env node
// Side-by-side speed of cavmae and its two peers on the same machine in one run: the PyTorch
// CAV-MAE (../shared/peer/torch_bench.py) and the ONNX Runtime export run by onnxruntime-node
// (../shared/peer/ort/ort_bench.mjs). Each measurement is its own process (so peak RSS is per
// task), the sides alternate (the order rotates from run to run), and the ratios are printed
// per run with their spread.
//
// usage: node scripts/bench-compare.mjs [--runs 5] [--start-run 1] [--batch 8] [--preset base]
//          [--reps 3] [--latency-reps 5] [--dtypes fp32,bf16[,int8]]
//          [--tasks embed,pretrain,ft,latency] [--python /usr/bin/python3] [--peer DIR]
//          [--ort-peer DIR] [--ort-models DIR] [--ort-node DIR] [--ort-spin 0,1]
//          [--no-torch] [--no-ort] [--no-int8] [--out results.json] [--warmup 4]
//        node scripts/bench-compare.mjs --merge a.json b.json ... [--out all.json]
//
// What is measured, per run:
// - embed (batch --batch): ours fp32, bf16, int8; PyTorch fp32, bf16 (autocast); ORT fp32 and
//   int8 (dynamic quantisation), each with thread spinning on and off, the faster kept per run.
// - pretrain, ft: ours fp32, bf16 (ft also int8); PyTorch fp32, bf16.
// - latency: one clip's embedding at batch 1, what `serve` and the API do. Ours through the API
//   (`cavmae bench --model-bench --tasks api`: CavMae.load of a checkpoint, then one clip at a
//   time, audio and image each a batch-1 forward pass), which also gives the cold start: seconds
//   from CavMae.load to the first clip's embeddings. ORT: ort_bench.mjs at batch 1, and
//   scripts/ort-first-run.mjs for session creation + first run. PyTorch: torch_bench.py's embed
//   at batch 1 (no cold-start counterpart).
// --dtypes picks the modes: fp32 and bf16 for every side (ORT: fp32 only), int8 for ours and
// ORT; without int8 in the list, int8 runs unless --no-int8 (e.g. `--dtypes int8 --no-torch
// --tasks embed,latency`: only the int8 rows, ours against ORT's int8).
// Peers that are not installed are skipped with the reason (the ORT peer needs its exported
// models and onnxruntime-node: see ../shared/peer/ort/README.md; --ort-models and --ort-node
// point at them, default <ort-peer>/models and <ort-peer>/node, or CAVMAE_ORT_MODELS and
// ORT_NODE_PATH). "best" is, per run, each side's fastest mode (ours: fp32, bf16 or int8).
// The peer's fp32 runs with OMP_WAIT_POLICY=PASSIVE (its fastest fp32 setting with OpenBLAS here;
// docs/performance.md); `--peer-env none` disables it.
//
// One run of everything takes ~15-25 minutes on 2 cores: run one (or a few tasks) per call with
// --runs 1 --start-run K --out runK.json, then --merge the files into one table.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TASKS = ['embed', 'pretrain', 'ft', 'latency'];

function parseArgs(argv) {
  const o = {
    runs: 5,
    startRun: 1,
    batch: 8,
    preset: 'base',
    reps: 3,
    latencyReps: 5,
    dtypes: ['fp32', 'bf16'],
    tasks: [...TASKS],
    python: '/usr/bin/python3',
    peer: resolve(root, '..', 'shared', 'peer'),
    ortPeer: undefined,
    ortModels: process.env.CAVMAE_ORT_MODELS,
    ortNode: process.env.ORT_NODE_PATH,
    ortSpin: [0, 1],
    torch: true,
    ort: true,
    out: undefined,
    warmup: 4,
    peerEnv: 'passive-fp32',
    int8: true,
    merge: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    const int = (name, x, min = 1) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < min) fail(`${name} must be an integer >= ${min}, got '${x}'`);
      return n;
    };
    if (a === '--runs') o.runs = int(a, v());
    else if (a === '--start-run') o.startRun = int(a, v());
    else if (a === '--batch') o.batch = int(a, v());
    else if (a === '--reps') o.reps = int(a, v());
    else if (a === '--latency-reps') o.latencyReps = int(a, v());
    else if (a === '--preset') o.preset = v();
    else if (a === '--dtypes') {
      const list = v().split(',');
      o.dtypes = list.filter((d) => d !== 'int8');
      if (list.includes('int8')) o.int8 = true;
    }
    else if (a === '--tasks') o.tasks = v().split(',');
    else if (a === '--python') o.python = v();
    else if (a === '--peer') o.peer = resolve(v());
    else if (a === '--ort-peer') o.ortPeer = resolve(v());
    else if (a === '--ort-models') o.ortModels = resolve(v());
    else if (a === '--ort-node') o.ortNode = resolve(v());
    else if (a === '--ort-spin') o.ortSpin = v().split(',').map((s) => int('--ort-spin', s, 0));
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--no-ort') o.ort = false;
    else if (a === '--out') o.out = v();
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--peer-env') o.peerEnv = v();
    else if (a === '--no-int8') o.int8 = false;
    else if (a === '--merge') {
      o.merge = [];
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) o.merge.push(argv[++i]);
      if (o.merge.length === 0) fail('--merge needs result files');
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(
        readFileSync(fileURLToPath(import.meta.url), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('//'))
          .map((l) => l.slice(3))
          .join('\n') + '\n',
      );
      process.exit(0);
    } else fail(`unknown option '${a}'`);
  }
  for (const d of o.dtypes) if (!['fp32', 'bf16'].includes(d)) fail(`--dtypes: unknown dtype '${d}'`);
  for (const t of o.tasks) if (!TASKS.includes(t)) fail(`--tasks: unknown task '${t}' (known: ${TASKS.join(', ')})`);
  for (const s of o.ortSpin) if (s > 1) fail(`--ort-spin takes 0 and/or 1, got ${s}`);
  o.ortPeer ??= join(o.peer, 'ort');
  o.ortModels ??= join(o.ortPeer, 'models');
  o.ortNode ??= join(o.ortPeer, 'node');
  return o;
}

function fail(msg) {
  process.stderr.write(`bench-compare: ${msg}\n`);
  process.exit(1);
}

const log = (s) => process.stderr.write(`bench-compare: ${s}\n`);

function lastJsonLine(text) {
  for (const l of text.trim().split('\n').reverse()) {
    const t = l.trim();
    if (!t.startsWith('{')) continue;
    try {
      return JSON.parse(t);
    } catch {
      // not JSON after all
    }
  }
  return undefined;
}

function run(cmd, args, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  const seconds = (Date.now() - t0) / 1000;
  if (r.status !== 0) {
    const tail = (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    return { error: `${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}: ${tail}`, seconds };
  }
  const json = lastJsonLine(r.stdout);
  if (!json) return { error: `${cmd} printed no JSON line`, seconds };
  return { json, seconds };
}

// ---------------------------------------------------------------------------------------------
// The three sides. Each measurement returns { value, unit, rss, json } or { error }.

const KEY = { embed: 'embed_clips_per_s', pretrain: 'pretrain_samples_per_s', ft: 'ft_clips_per_s' };

function ours(o, mode, task) {
  const cli = join(root, 'bin', 'cavmae.js');
  const common = ['bench', '--model-bench', '--json', '--no-progress', '--preset', o.preset, '--dtype', mode];
  if (task === 'latency') {
    // Through the API from a cold start: no warm-up, no peak probes before CavMae.load.
    const r = run(process.execPath, [cli, ...common, '--tasks', 'api', '--reps', String(o.latencyReps), '--warmup', '0', '--no-peak']);
    if (r.error) return r;
    return { ...r, value: r.json.api.latency_s, cold: r.json.api.load_first_embed_s, rss: r.json.peak_rss_mb };
  }
  const r = run(process.execPath, [cli, ...common, '--batch', String(o.batch), '--reps', String(o.reps), '--tasks', task, '--warmup', String(o.warmup)]);
  if (r.error) return r;
  return { ...r, value: r.json[KEY[task]], rss: r.json.peak_rss_mb, mfu: r.json.mfu?.[task], mfuHw: r.json.mfu_hardware?.[task] };
}

function torch(o, mode, task) {
  const env = o.peerEnv === 'passive-fp32' && mode === 'fp32' ? { OMP_WAIT_POLICY: 'PASSIVE' } : {};
  const B = task === 'latency' ? 1 : o.batch;
  const reps = task === 'latency' ? o.latencyReps : o.reps;
  const t = task === 'latency' ? 'embed' : task;
  const r = run(o.python, [join(o.peer, 'torch_bench.py'), '--dtype', mode, '--batch', String(B), '--reps', String(reps), '--tasks', t], env);
  if (r.error) return r;
  const v = r.json[KEY[t]];
  return { ...r, value: task === 'latency' ? 1 / v : v, rss: r.json.peak_rss_mb };
}

function ortModel(o, mode) {
  return join(o.ortModels, `cavmae_${o.preset}_embed_${mode}.onnx`);
}

function ort(o, mode, task, spin) {
  const B = task === 'latency' ? 1 : o.batch;
  const reps = task === 'latency' ? o.latencyReps : o.reps;
  const r = run(process.execPath, [join(o.ortPeer, 'ort_bench.mjs'), '--model', ortModel(o, mode), '--batch', String(B), '--reps', String(reps), '--spin', String(spin), '--ort', o.ortNode]);
  if (r.error) return r;
  if (task !== 'latency') return { ...r, value: r.json.embed_clips_per_s, rss: r.json.peak_rss_mb };
  // The cold start in its own process: session creation + the first run.
  const c = run(process.execPath, [join(root, 'scripts', 'ort-first-run.mjs'), '--model', ortModel(o, mode), '--spin', String(spin), '--ort', o.ortNode]);
  return { ...r, value: r.json.median_s, cold: c.error ? NaN : c.json.load_first_embed_s, coldJson: c.json, coldError: c.error, rss: r.json.peak_rss_mb };
}

function torchMissing(o) {
  if (!o.torch) return '--no-torch';
  if (o.preset !== 'base') return `torch_bench.py runs the base configuration only, not '${o.preset}'`;
  if (!existsSync(join(o.peer, 'torch_bench.py'))) return `no torch_bench.py in ${o.peer}`;
  const r = spawnSync(o.python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) return `${o.python} cannot import torch`;
  return undefined;
}

function ortMissing(o) {
  if (!o.ort) return '--no-ort';
  if (!existsSync(join(o.ortPeer, 'ort_bench.mjs'))) return `no ort_bench.mjs in ${o.ortPeer}`;
  for (const m of ortModes(o))
    if (!existsSync(ortModel(o, m))) return `no exported model ${ortModel(o, m)} (see ${join(o.ortPeer, 'README.md')}; --ort-models DIR)`;
  const nm = existsSync(join(o.ortNode, 'node_modules', 'onnxruntime-node')) || existsSync(join(o.ortNode, 'onnxruntime-node')) || /onnxruntime-node$/.test(o.ortNode);
  if (!nm) return `onnxruntime-node not found under ${o.ortNode} (--ort-node DIR)`;
  return undefined;
}

// ORT's modes: fp32 when asked for, and its int8 (dynamic quantisation).
function ortModes(o) {
  return [...(o.dtypes.includes('fp32') ? ['fp32'] : []), ...(o.int8 ? ['int8'] : [])];
}

// The measurements of one run, each a { side, mode, task, spin? } job.
function jobsOf(o, missing) {
  const jobs = [];
  for (const task of o.tasks) {
    const embedLike = task === 'embed' || task === 'latency';
    const oursModes = [...o.dtypes, ...(o.int8 && task !== 'pretrain' ? ['int8'] : [])];
    for (const mode of oursModes) jobs.push({ side: 'ours', mode, task });
    if (!missing.torch) for (const mode of o.dtypes) jobs.push({ side: 'torch', mode, task });
    if (!missing.ort && embedLike)
      for (const mode of ortModes(o)) for (const spin of o.ortSpin) jobs.push({ side: 'ort', mode, task, spin });
  }
  return jobs;
}

const SIDES = ['ours', 'torch', 'ort'];

// Every result so far, written after each measurement (atomic), so a call cut short by its time
// limit keeps what it measured (--merge reads such files too).
function saveProgress(o, results, missing) {
  if (!o.out) return;
  const tmp = `${o.out}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ summary: { config: o, missing, partial: true }, results }, null, 2)}\n`);
  renameSync(tmp, o.out);
}

function measure(o) {
  const missing = { torch: torchMissing(o), ort: ortMissing(o) };
  if (missing.torch) log(`PyTorch peer skipped (${missing.torch})`);
  if (missing.ort) log(`ONNX Runtime peer skipped (${missing.ort})`);
  const results = [];
  const jobs = jobsOf(o, missing);
  for (let run = o.startRun; run < o.startRun + o.runs; run++) {
    // Per task, the sides take turns going first: the order rotates from run to run.
    const rot = (run - 1) % SIDES.length;
    const order = [...SIDES.slice(rot), ...SIDES.slice(0, rot)];
    for (const task of o.tasks) {
      for (const side of order) {
        for (const j of jobs.filter((x) => x.task === task && x.side === side)) {
          const fn = side === 'ours' ? ours : side === 'torch' ? torch : ort;
          const r = fn(o, j.mode, j.task, j.spin);
          const label = `run ${run} ${side.padEnd(5)} ${j.mode}${j.spin !== undefined ? ` spin ${j.spin}` : ''} ${task}`;
          if (r.error) {
            log(`${label}: ${r.error}`);
            results.push({ run, ...j, value: NaN, rss: NaN, error: r.error });
            continue;
          }
          const unit = task === 'latency' ? 's/clip' : '/s';
          log(`${label.padEnd(36)} ${fmt(r.value, 3)} ${unit}${r.cold !== undefined ? `, cold start ${fmt(r.cold, 2)} s` : ''}, peak RSS ${fmt(r.rss, 0)} MB (${r.seconds.toFixed(0)} s, load ${loadavg()[0].toFixed(2)})`);
          results.push({ run, ...j, value: r.value, cold: r.cold, rss: r.rss, mfu: r.mfu, mfuHw: r.mfuHw, load: loadavg()[0], json: r.json, coldJson: r.coldJson });
          saveProgress(o, results, missing);
        }
      }
    }
  }
  return { results, missing };
}

// ---------------------------------------------------------------------------------------------
// Summary

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

function range(s, d) {
  return s.n ? `${fmt(s.median, d)} (${fmt(s.min, d)}-${fmt(s.max, d)})` : '-';
}

function summarize(results) {
  const runs = [...new Set(results.map((r) => r.run))].sort((a, b) => a - b);
  const tasks = TASKS.filter((t) => results.some((r) => r.task === t));
  const lowerIsBetter = (task) => task === 'latency';
  const better = (task, a, b) => (lowerIsBetter(task) ? a.value < b.value : a.value > b.value);
  // A side's result for (mode, task, run): ORT's faster spin setting; mode 'best': its fastest mode.
  const pick = (side, mode, task, run) => {
    const c = results.filter((r) => r.side === side && r.task === task && r.run === run && Number.isFinite(r.value) && (mode === 'best' || r.mode === mode));
    return c.reduce((best, r) => (!best || better(task, r, best) ? r : best), undefined);
  };
  const rows = [];
  const lines = [];
  for (const task of tasks) {
    const modes = [...new Set(results.filter((r) => r.task === task).map((r) => r.mode))];
    const ordered = ['fp32', 'bf16', 'int8'].filter((m) => modes.includes(m));
    for (const mode of [...ordered, 'best']) {
      const val = (side, r) => pick(side, mode, task, r)?.value ?? NaN;
      const per = Object.fromEntries(SIDES.map((s) => [s, runs.map((r) => val(s, r))]));
      // Speed-up of ours over a peer per run: throughput ratio, or the peer's latency over ours.
      const ratio = (peer) => runs.map((_, k) => (lowerIsBetter(task) ? per[peer][k] / per.ours[k] : per.ours[k] / per[peer][k]));
      const field = (side, f) => runs.map((r) => pick(side, mode, task, r)?.[f] ?? NaN);
      const row = {
        task,
        mode,
        unit: lowerIsBetter(task) ? 's per clip (batch 1)' : task === 'pretrain' ? 'samples/s' : 'clips/s',
        ours: spread(per.ours),
        torch: spread(per.torch),
        ort: spread(per.ort),
        vsTorch: spread(ratio('torch')),
        vsOrt: spread(ratio('ort')),
        rss: Object.fromEntries(SIDES.map((s) => [s, spread(field(s, 'rss'))])),
        oursMfu: spread(field('ours', 'mfu')),
        oursMfuHardware: spread(field('ours', 'mfuHw')),
        cold: Object.fromEntries(SIDES.map((s) => [s, spread(field(s, 'cold'))])),
        modes: mode === 'best' ? Object.fromEntries(SIDES.map((s) => [s, runs.map((r) => { const p = pick(s, 'best', task, r); return p ? `${p.mode}${p.spin !== undefined ? `/spin${p.spin}` : ''}` : null; })])) : undefined,
        spins: mode !== 'best' ? runs.map((r) => pick('ort', mode, task, r)?.spin ?? null) : undefined,
      };
      if (!row.ours.n && !row.torch.n && !row.ort.n) continue;
      rows.push(row);
    }
  }
  lines.push('| task | mode | ours | PyTorch | ONNX Runtime | ours vs PyTorch | ours vs ORT | peak RSS MB ours / PyTorch / ORT | ours MFU (hardware) |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const name = r.task === 'latency' ? 'latency, s/clip' : `${r.task}, ${r.unit}`;
    const mfu = Number.isFinite(r.oursMfuHardware.median) ? `${(100 * r.oursMfuHardware.median).toFixed(0)}%` : '-';
    lines.push(
      `| ${name} | ${r.mode} | ${range(r.ours, 3)} | ${range(r.torch, 3)} | ${range(r.ort, 3)} | ${range(r.vsTorch, 2)} | ${range(r.vsOrt, 2)} | ` +
        `${fmt(r.rss.ours.median, 0)} / ${fmt(r.rss.torch.median, 0)} / ${fmt(r.rss.ort.median, 0)} | ${mfu} |`,
    );
  }
  const coldRows = rows.filter((r) => r.task === 'latency' && (r.cold.ours.n || r.cold.ort.n));
  if (coldRows.length) {
    lines.push('');
    lines.push('| cold start (load to the first clip), s | ours (CavMae.load + embedClip) | ONNX Runtime (session + first run) | ORT / ours |');
    lines.push('|---|---|---|---|');
    for (const r of coldRows) {
      const pickCold = (side, run) => {
        const c = results.filter((x) => x.side === side && x.task === 'latency' && x.run === run && Number.isFinite(x.cold) && (r.mode === 'best' || x.mode === r.mode));
        return c.reduce((b, x) => (!b || x.cold < b.cold ? x : b), undefined)?.cold ?? NaN;
      };
      const o = runs.map((k) => pickCold('ours', k));
      const p = runs.map((k) => pickCold('ort', k));
      const ratio = spread(runs.map((_, k) => p[k] / o[k]));
      r.coldBest = { ours: spread(o), ort: spread(p), ratio };
      lines.push(`| ${r.mode} | ${range(spread(o), 2)} | ${range(spread(p), 2)} | ${range(ratio, 2)} |`);
    }
  }
  return { rows, lines, runs };
}

// The issue's acceptance targets, checked on the medians.
function targets(rows) {
  const row = (task, mode) => rows.find((r) => r.task === task && r.mode === mode);
  const out = [];
  const add = (what, value, ok) => out.push({ what, value, met: Number.isFinite(value) ? ok(value) : null });
  add('embedding fp32 vs ORT fp32 >= 1.3', row('embed', 'fp32')?.vsOrt.median, (v) => v >= 1.3);
  add('embedding best vs ORT best >= 1.5', row('embed', 'best')?.vsOrt.median, (v) => v >= 1.5);
  add('embedding best vs PyTorch best >= 1.5', row('embed', 'best')?.vsTorch.median, (v) => v >= 1.5);
  add('batch-1 latency: ORT best / ours best > 1', row('latency', 'best')?.vsOrt.median, (v) => v > 1);
  add('batch-1 latency: PyTorch best / ours best > 1', row('latency', 'best')?.vsTorch.median, (v) => v > 1);
  add('pretraining step best vs PyTorch best >= 2', row('pretrain', 'best')?.vsTorch.median, (v) => v >= 2);
  add('fine-tuning forward best vs PyTorch best >= 1.5', row('ft', 'best')?.vsTorch.median, (v) => v >= 1.5);
  for (const task of ['embed', 'pretrain', 'ft', 'latency']) {
    const r = row(task, 'best');
    if (!r) continue;
    for (const peer of ['torch', 'ort'])
      if (r.rss[peer].n) add(`${task} peak RSS (best modes) ours / ${peer === 'torch' ? 'PyTorch' : 'ORT'} < 1`, r.rss.ours.median / r.rss[peer].median, (v) => v < 1);
  }
  const e = row('embed', 'best');
  add('embedding MFU (best mode) >= 70% of its hardware peak', e?.oursMfuHardware.median, (v) => v >= 0.7);
  add('embedding fp32 MFU >= 70% of the fp32 hardware peak', row('embed', 'fp32')?.oursMfuHardware.median, (v) => v >= 0.7);
  return out;
}

function environment(results) {
  const oursEnv = results.find((r) => r.side === 'ours' && r.json?.env)?.json.env;
  const torchJson = results.find((r) => r.side === 'torch' && r.json)?.json;
  const ortJson = results.find((r) => r.side === 'ort' && r.json)?.json;
  const lines = [];
  if (oursEnv) {
    const a = oursEnv.cpuArch;
    lines.push(`cpu: ${oursEnv.cpuModel}${a ? `, ${a.vendor} family ${a.family} model ${a.model} (${a.microarchitecture})` : ''}, ${oursEnv.logicalCpus} logical CPUs`);
    lines.push(`ours: node ${oursEnv.node}, ${oursEnv.native ? `oneDNN ${oursEnv.native.dnnlVersion} ${oursEnv.native.dnnlIsa}, kernels ${oursEnv.native.isa}` : oursEnv.backend}`);
  }
  const hw = results.find((r) => r.side === 'ours' && r.json?.hardware_peak_gflops)?.json.hardware_peak_gflops;
  if (hw) lines.push(`hardware peak (bench probe, 2 threads): fp32 ${hw.fp32} / bf16 ${hw.bf16} GFLOP/s, int8 ${hw.int8 ?? '-'} GOP/s`);
  if (torchJson) lines.push(`PyTorch: torch ${torchJson.torch}, ${torchJson.threads} threads, OPENBLAS_CORETYPE=${torchJson.OPENBLAS_CORETYPE}`);
  if (ortJson) lines.push(`ONNX Runtime: onnxruntime-node ${ortJson.ort_version}, ${ortJson.threads} threads, graph optimisation ${ortJson.graph_opt}`);
  return { lines, cpuArch: oursEnv?.cpuArch, cpuModel: oursEnv?.cpuModel };
}

function report(o, results, missing) {
  const { rows, lines, runs } = summarize(results);
  const env = environment(results);
  const goals = targets(rows);
  const header = `cavmae vs PyTorch and ONNX Runtime: preset ${o.preset}, batch ${o.batch} (latency: batch 1), runs ${runs.join(', ')}; medians over the runs (min-max); ratios per run = speed-up of ours`;
  const out = [header, '', ...env.lines, '', ...lines, '', '| target | median | met |', '|---|---|---|'];
  for (const g of goals) out.push(`| ${g.what} | ${fmt(g.value, 2)} | ${g.met === null ? 'not measured' : g.met ? 'yes' : 'no'} |`);
  for (const [side, why] of Object.entries(missing ?? {})) if (why) out.push(`\n${side === 'torch' ? 'PyTorch' : 'ONNX Runtime'} peer skipped: ${why}`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (o.out) {
    const tmp = `${o.out}.tmp-${process.pid}`;
    const summary = { config: o, missing, cpuModel: env.cpuModel, cpuArch: env.cpuArch, rows, targets: goals, loadavgEnd: loadavg() };
    writeFileSync(tmp, `${JSON.stringify({ summary, results }, null, 2)}\n`);
    renameSync(tmp, o.out);
  }
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.merge) {
    const results = [];
    const missing = {};
    for (const f of o.merge) {
      let data;
      try {
        data = JSON.parse(readFileSync(f, 'utf8'));
      } catch (e) {
        fail(`${f}: not a bench-compare result file (${e.message.split('\n')[0]})`);
      }
      if (!Array.isArray(data.results)) fail(`${f}: no "results" array`);
      results.push(...data.results);
      for (const [k, v] of Object.entries(data.summary?.missing ?? {})) if (v) missing[k] = v;
      if (data.summary?.config) Object.assign(o, { preset: data.summary.config.preset, batch: data.summary.config.batch });
    }
    report(o, results, missing);
    return;
  }
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) fail("not built: run 'npm run build' (or npm run bench:compare)");
  const loadStart = loadavg();
  const { results, missing } = measure(o);
  log(`load ${loadStart.map((x) => x.toFixed(2)).join(' ')} -> ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  report(o, results, missing);
}

main();
