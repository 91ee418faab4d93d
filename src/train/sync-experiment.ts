/**
 * The issue-7 acceptance experiment's evaluation: segment-level retrieval of finished pretraining
 * runs (CAV-MAE Sync and clip-level CAV-MAE alike) at every kept checkpoint, as curves and a
 * summary (docs/sync-training.md). Training itself is plain `cavmae pretrain`.
 *
 * Design contract:
 * - The test clips are decoded once (segments of `segmentLength` rows, frames at `imageSize`);
 *   every checkpoint of every run is scored on exactly these items with `segmentRetrieval`'s
 *   protocol (src/train/sync-eval.ts). A run's points: checkpoints/step-*.safetensors, then
 *   model.safetensors as the final step (from result.json).
 * - Outputs in `out`: segment-curves.json (every point), and PNG curves (src/train/plots.ts):
 *   seg-class1.png (class-match@1 both directions vs training samples), seg-r10.png (R@10),
 *   train-c_acc.png and train-loss_c.png (the runs' logged training curves, 20-step means).
 * - Run as a script: `node dist/src/train/sync-experiment.js --data TEST.json --out DIR
 *   name=RUN_DIR ...` (prints the summary table).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../io/atomic.js';
import { CAVMAE, CAVMAESync } from '../models/index.js';
import { loadDataset } from '../data/datafile.js';
import { loadInferenceModel } from '../eval/embed.js';
import { UserError } from '../util/errors.js';
import { readJsonl } from './logger.js';
import { writeLinePlot, type Series } from './plots.js';
import { loadClipBatches, segmentRetrieval, type LevelRetrievalReport } from './sync-eval.js';

export interface ExperimentRun {
  name: string;
  dir: string;
}

export interface CurvePoint {
  step: number;
  samples: number;
  report: LevelRetrievalReport;
}

export interface ExperimentResult {
  data: string;
  segmentLength: number;
  runs: { name: string; dir: string; batchSize: number; seconds: number | null; points: CurvePoint[] }[];
}

/** Checkpoints of a run in step order, the final model last. */
function runPoints(dir: string): { step: number; path: string }[] {
  const ck = join(dir, 'checkpoints');
  const points = existsSync(ck)
    ? readdirSync(ck)
        .map((f) => /^step-(\d+)\.safetensors$/.exec(f))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ step: Number(m[1]), path: join(ck, m[0]) }))
    : [];
  points.sort((a, b) => a.step - b.step);
  const resultPath = join(dir, 'result.json');
  if (existsSync(join(dir, 'model.safetensors')) && existsSync(resultPath)) {
    const steps = (JSON.parse(readFileSync(resultPath, 'utf8')) as { steps: number }).steps;
    const last = points.filter((p) => p.step !== steps);
    return [...last, { step: steps, path: join(dir, 'model.safetensors') }];
  }
  return points;
}

export async function evaluateExperiment(o: { runs: ExperimentRun[]; data: string; out: string; segmentLength?: number; imageSize?: number; log?: (m: string) => void }): Promise<ExperimentResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const L = o.segmentLength ?? 96;
  const S = o.imageSize ?? 64;
  const dataset = loadDataset(o.data);
  const clips = await loadClipBatches(dataset, { segmentLength: L, imageSize: S });
  log(`decoded ${clips.reduce((s, b) => s + b.n, 0)} test clips`);
  const result: ExperimentResult = { data: dataset.path, segmentLength: L, runs: [] };
  for (const run of o.runs) {
    const runJson = JSON.parse(readFileSync(join(run.dir, 'run.json'), 'utf8')) as { batchSize: number; accum: number };
    const resultPath = join(run.dir, 'result.json');
    const seconds = existsSync(resultPath) ? (JSON.parse(readFileSync(resultPath, 'utf8')) as { secondsThisRun: number }).secondsThisRun : null;
    const points: CurvePoint[] = [];
    for (const p of runPoints(run.dir)) {
      const m = loadInferenceModel(p.path);
      if (!(m.model instanceof CAVMAESync) && !(m.model instanceof CAVMAE)) throw new UserError(`${p.path}: not a pretraining model`);
      const report = await segmentRetrieval(m.model, dataset, { clips, audioNorm: m.audioNorm, segmentLength: m.model instanceof CAVMAESync ? undefined : L });
      points.push({ step: p.step, samples: p.step * runJson.batchSize * runJson.accum, report });
      log(`${run.name} step ${p.step}: class@1 A->V ${report.audioToVideo.classMatchAt1?.toFixed(3)} V->A ${report.videoToAudio.classMatchAt1?.toFixed(3)}`);
    }
    result.runs.push({ name: run.name, dir: resolve(run.dir), batchSize: runJson.batchSize, seconds, points });
  }
  mkdirSync(o.out, { recursive: true });
  writeFileAtomic(join(o.out, 'segment-curves.json'), JSON.stringify(result, null, 1) + '\n');
  writePlots(result, o.runs, o.out);
  return result;
}

function writePlots(r: ExperimentResult, runs: ExperimentRun[], out: string): void {
  type Metrics = { r10: number; classMatchAt1?: number };
  const curve = (pick: (m: Metrics) => number | undefined, title: string, yLabel: string, file: string): void => {
    const series: Series[] = [];
    for (const run of r.runs) {
      const x = run.points.map((p) => p.samples);
      series.push({ name: `${run.name} A->V`, x, y: run.points.map((p) => pick(p.report.audioToVideo) ?? null) });
      series.push({ name: `${run.name} V->A`, x, y: run.points.map((p) => pick(p.report.videoToAudio) ?? null), dashed: true });
    }
    const first = r.runs.find((run) => run.points.length)?.points[0];
    const c = first ? pick(first.report.chance) : undefined;
    if (c !== undefined) {
      const xs = r.runs.flatMap((run) => run.points.map((p) => p.samples));
      series.push({ name: 'chance', x: [Math.min(...xs), Math.max(...xs)], y: [c, c], dashed: true });
    }
    writeLinePlot(join(out, file), { title, xLabel: 'training samples (pairs or clips)', yLabel, series });
  };
  curve((m) => m.classMatchAt1, 'segment-level retrieval: class-match@1 (test clips)', 'class-match@1', 'seg-class1.png');
  curve((m) => m.r10, 'segment-level retrieval: R@10 (test clips)', 'R@10', 'seg-r10.png');
  for (const key of ['c_acc', 'loss_c']) {
    const series: Series[] = runs.map((run, i) => {
      const rs = readJsonl(join(run.dir, 'log.jsonl')).filter((x) => x.kind === 'train' && typeof x[key] === 'number');
      const bs = r.runs[i].batchSize;
      const x: number[] = [];
      const y: number[] = [];
      for (let j = 0; j + 20 <= rs.length; j += 20) {
        const w = rs.slice(j, j + 20);
        x.push((w[w.length - 1].step as number) * bs);
        y.push(w.reduce((s, v) => s + (v[key] as number), 0) / w.length);
      }
      return { name: run.name, x, y };
    });
    writeLinePlot(join(out, `train-${key}.png`), { title: `training ${key} (20-step means)`, xLabel: 'training samples', yLabel: key, series });
  }
}

export function formatExperiment(r: ExperimentResult): string {
  const p = (x: number | undefined): string => (x === undefined ? '  -  ' : x.toFixed(3));
  const lines = [`segment-level retrieval on ${r.data} (${r.runs[0]?.points.at(-1)?.report.n ?? 0} items)`, 'run                     step   A->V R@1  R@5    R@10   class@1 | V->A R@1  R@5    R@10   class@1'];
  for (const run of r.runs) {
    const last = run.points.at(-1);
    if (!last) continue;
    const a = last.report.audioToVideo;
    const v = last.report.videoToAudio;
    lines.push(`${run.name.padEnd(22)} ${String(last.step).padStart(5)}   ${p(a.r1)}  ${p(a.r5)}  ${p(a.r10)}  ${p(a.classMatchAt1)}  |      ${p(v.r1)}  ${p(v.r5)}  ${p(v.r10)}  ${p(v.classMatchAt1)}`);
  }
  const ch = r.runs[0]?.points.at(-1)?.report.chance;
  if (ch) lines.push(`${'chance'.padEnd(22)}         ${p(ch.r1)}  ${p(ch.r5)}  ${p(ch.r10)}  ${p(ch.classMatchAt1)}`);
  return lines.join('\n');
}

/** `node dist/src/train/sync-experiment.js --data F --out D name=RUN ...` */
async function main(argv: string[]): Promise<void> {
  let data: string | undefined;
  let out: string | undefined;
  const runs: ExperimentRun[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--data') data = argv[++i];
    else if (argv[i] === '--out') out = argv[++i];
    else {
      const m = /^([^=]+)=(.+)$/.exec(argv[i]);
      if (!m) throw new UserError(`expected name=RUN_DIR, got "${argv[i]}"`);
      runs.push({ name: m[1], dir: m[2] });
    }
  }
  if (!data || !out || runs.length === 0) throw new UserError('usage: sync-experiment --data TEST.json --out DIR name=RUN_DIR ...');
  process.stdout.write(formatExperiment(await evaluateExperiment({ runs, data, out })) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`sync-experiment: ${e.message}\n`);
    process.exit(1);
  });
}
