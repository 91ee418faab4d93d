/**
 * `cavmae demo`: the README's first command, end to end on built-in data.
 *
 *   1. make the AV-digits set (src/data/avdigits.ts, make-demo-data's defaults) and the
 *      held-out real-speech set (src/data/real-digits.ts: people saying the digits);
 *   2. pretrain the tiny CAV-MAE on it (`pretrain --config tiny`: the `tiny` recipe);
 *   3. zero-shot retrieval against chance, both directions, class-match@1 and R@k, on the
 *      held-out synthetic split (unseen MNIST writers, unseen voices) and on real speech
 *      (transfer: the model never heard a person), with real speech per source;
 *   4. a digit classifier from the pretrained encoder (linear probe by default, or fine-tuning)
 *      and the same classifier trained from scratch with the same budget;
 *   5. a report folder: index.html with the training curves, a reconstruction panel, localisation
 *      heat maps and the numbers (report.json).
 *
 * Design contract:
 * - Every stage writes into <out>/ (data/, pretrain/, probe/, scratch/, report/) and is
 *   resumable: the data generator keeps a journal, the training runs resume from their
 *   checkpoints, so re-running `cavmae demo --out D` continues where a killed run stopped and
 *   finished stages cost nothing.
 * - The recipe (DEMO_RECIPE) and why it is what it is: docs/demo.md. Budgets are counted in
 *   optimizer steps (reproducible on any machine); `--minutes` caps the pretraining wall time
 *   on top (a slower or busier machine then trains fewer steps).
 * - `--ci` is the reduced budget CI runs (fewer examples and steps); it prints the same verdict.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { makeDemoData, type DemoSummary } from '../data/avdigits.js';
import type { RealItem } from '../data/real-digits.js';
import { loadDataset } from '../data/datafile.js';
import { UserError } from '../util/errors.js';
import { retrievalReport, type RetrievalReport } from '../eval/embed.js';
import { rankQueries } from '../eval/retrieval.js';
import { pretrain, type PretrainOptions, type PretrainResult } from './pretrain.js';
import { finetune, type FinetuneResult } from './finetune.js';
import { formatDuration } from '../util/progress.js';
import { escapeXml as esc } from '../eval/reconstruct.js';
import { readConfigArg } from '../models/index.js';
import { PRETRAIN_RECIPES } from './recipes.js';
import { bf16IsFast } from '../kernels/index.js';

const TINY = PRETRAIN_RECIPES.tiny;

/**
 * The demo's recipe. It is no demo-only setting: the data are `cavmae make-demo-data`'s defaults
 * (src/data/avdigits.ts), the model the `tiny` preset and the training `cavmae pretrain`'s `tiny`
 * recipe (src/train/recipes.ts), so `make-demo-data` + `pretrain --config tiny` is the same
 * run. docs/demo.md explains each choice and its evidence. What the demo adds: the CI budget,
 * the evaluation interval, the classifiers.
 */
export const DEMO_RECIPE = {
  /** make-demo-data's default clip counts. */
  data: { n: 3000, testN: 300 },
  ciData: { n: 1200, testN: 200 },
  model: { preset: 'tiny', overrides: {} },
  pretrain: {
    batchSize: TINY.batchSize,
    lr: TINY.lr,
    schedule: 'cosine' as const,
    warmupSteps: TINY.warmupSteps ?? 30,
    minLrRatio: TINY.minLrRatio,
    contrastWeight: TINY.contrastWeight ?? 1,
    maskRatio: TINY.maskRatio ?? 0.5,
    noise: TINY.noise,
    bf16: TINY.bf16 ?? true,
    /** The recipe's epochs on make-demo-data's 3000 clips. */
    steps: TINY.epochs * Math.floor(3000 / TINY.batchSize),
    ciSteps: 1200,
    /** Wall-clock cap of the pretraining (minutes); the budget is counted in steps. */
    minutes: 12,
    /** Held-out evaluation about every this many steps (whole epochs). */
    evalSteps: 100,
  },
  /** Audio-only digit classifiers: a linear probe of the pretrained audio encoder vs the same network trained from scratch. */
  classifier: {
    mode: 'audioonly' as const,
    lr: 1e-3,
    headLr: 1,
    batchSize: 64,
    steps: 200,
    ciSteps: 100,
    bf16: true,
  },
} as const;

/** The demo's model config: the `tiny` preset (a JSON object every command accepts). */
export function demoModelConfig(): Record<string, unknown> {
  return { ...readConfigArg(DEMO_RECIPE.model.preset), ...DEMO_RECIPE.model.overrides };
}

export interface DemoOptions {
  out?: string;
  /** Pretraining wall-clock cap in minutes (default DEMO_RECIPE.pretrain.minutes; 0 = no cap). */
  minutes?: number;
  /** Pretraining steps (default DEMO_RECIPE.pretrain.steps, or ciSteps with --ci). */
  steps?: number;
  /** Classifier steps (probe and scratch alike). */
  classifierSteps?: number;
  /** Reduced budget for CI. */
  ci?: boolean;
  /** Fine-tune the whole encoder instead of a linear probe. */
  finetune?: boolean;
  /**
   * bf16 GEMMs (default: the recipe's, true, where the CPU computes bf16 natively, else fp32);
   * false computes everything in fp32.
   */
  bf16?: boolean;
  /** Also pretrain AV-MAE (no contrastive term) with the same budget and compare retrieval. */
  baseline?: boolean;
  n?: number;
  testN?: number;
  seed?: number;
  workers?: number;
  jobs?: number;
  quiet?: boolean;
  /** Progress lines (default: stderr). */
  log?: (msg: string) => void;
}

export interface ClassifierSummary {
  name: string;
  acc: number;
  mAP: number;
  steps: number;
  run: string;
}

/** Retrieval on the real-speech set: the whole set and each source (speaker / channel). */
export interface RealTransfer {
  retrieval: RetrievalReport;
  /** Per source: clips, class-match@1 audio->image (over that source's queries) and image->audio (over its images' queries). */
  sources: { source: string; speaker: string; channel: string; queries: number; a2v: number; v2a: number }[];
  /** Recordings and speakers. */
  clips: number;
  speakers: number;
}

export interface DemoResult {
  out: string;
  data: DemoSummary;
  pretrain: PretrainResult;
  /** Retrieval on the held-out synthetic split. */
  retrieval: RetrievalReport;
  /** Retrieval on held-out real speech (absent when its packages are not installed). */
  real?: RealTransfer;
  baseline?: { pretrain: PretrainResult; retrieval: RetrievalReport; real?: RealTransfer };
  classifiers: ClassifierSummary[];
  report: string;
  seconds: number;
  /** Wall time of each stage, s (data, pretrain, retrieval, baseline, classifiers, report). */
  stages: Record<string, number>;
  /** Synthetic retrieval class-match@1 (mean of both directions) clearly above chance: 2 x chance. */
  learned: boolean;
}

/**
 * The pretraining run: `cavmae pretrain --config tiny` on the demo data, i.e. the `tiny` recipe
 * untouched; a step budget (--steps, --ci) only sets the epochs and the stop.
 */
function pretrainArgs(
  out: string,
  data: DemoSummary,
  o: DemoOptions,
  steps: number | undefined,
  minutes: number | undefined,
): PretrainOptions {
  const r = DEMO_RECIPE.pretrain;
  const spe = Math.max(1, Math.floor(data.trainCount / r.batchSize));
  return {
    data: data.train,
    val: data.test,
    config: DEMO_RECIPE.model.preset,
    out,
    ...(steps !== undefined ? { epochs: Math.max(1, Math.ceil(steps / spe)), maxSteps: steps } : {}),
    ...(o.bf16 !== undefined ? { bf16: o.bf16 } : {}),
    evalEvery: Math.max(1, Math.round(r.evalSteps / spe)),
    maxMinutes: minutes,
    checkpointEvery: 50,
    seed: o.seed ?? 0,
    workers: o.workers,
    quiet: o.quiet,
    resume: true,
    log: o.log,
  };
}

/** Zero-shot retrieval on the real-speech set, overall and per source. */
export async function realTransfer(
  model: string,
  realPath: string,
  labelCsv: string,
  workers?: number,
): Promise<RealTransfer> {
  const { loadInferenceModel, embedWith, retrievalFromEmbeddings } = await import('../eval/embed.js');
  const e = await embedWith(loadInferenceModel(model), loadDataset(realPath), { workers, labelCsv });
  const retrieval = retrievalFromEmbeddings(e);
  const raw = (JSON.parse(readFileSync(realPath, 'utf8')) as { items: RealItem[] }).items;
  const byId = new Map(raw.map((it) => [it.id, it]));
  // Class-match per query: 1 when the top-ranked candidate has the query's label.
  const set = (data: Float32Array) => ({ data, n: e.n, dim: e.dim, frames: e.frames });
  const matches = (q: Float32Array, c: Float32Array) =>
    rankQueries(set(q), set(c), { strategy: e.strategy }).top1.map((j, i) =>
      e.labels![j] === e.labels![i] ? 1 : 0,
    );
  const a2v = matches(e.audio!, e.video!);
  const v2a = matches(e.video!, e.audio!);
  const groups = new Map<string, { speaker: string; channel: string; rows: number[] }>();
  e.ids.forEach((id, row) => {
    const it = byId.get(id)!;
    if (!groups.has(it.source)) groups.set(it.source, { speaker: it.speaker, channel: it.channel, rows: [] });
    groups.get(it.source)!.rows.push(row);
  });
  const mean = (h: Int32Array, rows: number[]) => rows.reduce((a, r) => a + h[r], 0) / rows.length;
  const sources = [...groups].map(([source, g]) => ({
    source,
    speaker: g.speaker,
    channel: g.channel,
    queries: g.rows.length,
    a2v: mean(a2v, g.rows),
    v2a: mean(v2a, g.rows),
  }));
  return {
    retrieval,
    sources,
    clips: new Set(raw.map((it) => it.audio)).size,
    speakers: new Set(raw.map((it) => it.speaker)).size,
  };
}

async function classifier(
  name: string,
  out: string,
  data: DemoSummary,
  o: DemoOptions,
  steps: number,
  init?: string,
): Promise<FinetuneResult> {
  const r = DEMO_RECIPE.classifier;
  const spe = Math.floor(data.trainCount / r.batchSize);
  const epochs = Math.max(1, Math.ceil(steps / spe));
  const probe = !o.finetune && init !== undefined;
  return finetune({
    data: data.train,
    val: data.test,
    out,
    init,
    config: init ? undefined : demoModelConfig(),
    labelCsv: data.labels,
    mode: r.mode,
    // A from-scratch classifier trains everything (a frozen random encoder is no baseline).
    freezeBase: probe,
    lr: r.lr,
    headLr: r.headLr,
    batchSize: r.batchSize,
    epochs,
    schedule: 'cosine',
    warmupSteps: 10,
    loss: 'ce',
    mixup: 0,
    labelSmooth: 0,
    freqm: 0,
    timem: 0,
    noise: false,
    wa: false,
    bf16: o.bf16 ?? (r.bf16 && bf16IsFast()),
    maxSteps: steps,
    seed: o.seed ?? 0,
    workers: o.workers,
    quiet: o.quiet,
    resume: true,
    log: (m) => (o.log ?? ((x: string) => process.stderr.write(`cavmae: ${x}\n`)))(`${name}: ${m}`),
  });
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae demo: ${m}\n`));
  const out = resolve(o.out ?? 'demo-out');
  mkdirSync(out, { recursive: true });
  const ci = o.ci ?? false;
  const r = DEMO_RECIPE;
  // undefined: the recipe's own epochs (the same run as `cavmae pretrain --config tiny`)
  const steps = o.steps ?? (ci ? r.pretrain.ciSteps : undefined);
  const clsSteps = o.classifierSteps ?? (ci ? r.classifier.ciSteps : r.classifier.steps);
  const minutes = o.minutes === 0 ? undefined : (o.minutes ?? (ci ? undefined : r.pretrain.minutes));
  for (const [name, v] of [
    ['--steps', steps ?? 1],
    ['--classifier-steps', clsSteps],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`${name} must be a positive integer, got ${v}`);
  }

  const stages: Record<string, number> = {};
  let tStage = performance.now();
  const stage = (name: string): void => {
    const now = performance.now();
    stages[name] = Math.round((now - tStage) / 100) / 10;
    tStage = now;
  };
  log(`1/5 AV-digits data in ${join(out, 'data')}`);
  const data = await makeDemoData({
    out: join(out, 'data'),
    n: o.n ?? (ci ? r.ciData.n : r.data.n),
    testN: o.testN ?? (ci ? r.ciData.testN : r.data.testN),
    seed: o.seed ?? 0,
    jobs: o.jobs ?? 2,
    onWarning: (m) => log(`   ${m}`),
  });
  log(
    `   ${data.trainCount} train + ${data.testCount} test clips (${data.generated} made, ${data.reused} reused)${data.real ? `; real speech: ${data.real.clips} recordings of ${data.real.speakers} speakers` : ''}`,
  );

  const planned = steps ?? Math.floor(data.trainCount / r.pretrain.batchSize) * PRETRAIN_RECIPES.tiny.epochs;
  log(`2/5 pretraining the tiny CAV-MAE: ${planned} steps${minutes ? `, at most ${minutes} min` : ''}`);
  stage('data');
  const pre = await pretrain(pretrainArgs(join(out, 'pretrain'), data, o, steps, minutes));
  stage('pretrain');
  // Zero-shot retrieval of a pretrained model: the synthetic test split and real speech.
  const zeroShot = async (model: string) => ({
    retrieval: await retrievalReport({ model, data: data.test, labelCsv: data.labels, workers: o.workers }),
    real: data.real ? await realTransfer(model, data.real.path, data.labels, o.workers) : undefined,
  });
  const { retrieval, real } = await zeroShot(pre.model);
  stage('retrieval');
  const c3 = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(3));
  log(
    `3/5 zero-shot retrieval, class-match@1 A->V / V->A: synthetic ${c3(retrieval.audioToVideo.classMatchAt1)} / ${c3(retrieval.videoToAudio.classMatchAt1)} (chance ${c3(retrieval.chance.classMatchAt1)})${real ? `, real speech ${c3(real.retrieval.audioToVideo.classMatchAt1)} / ${c3(real.retrieval.videoToAudio.classMatchAt1)} (chance ${c3(real.retrieval.chance.classMatchAt1)})` : ''}`,
  );

  let baseline: DemoResult['baseline'];
  if (o.baseline) {
    log(`   baseline: AV-MAE (no contrastive term), ${pre.loop.globalStep} steps`);
    const b = await pretrain({
      ...pretrainArgs(join(out, 'pretrain-avmae'), data, o, pre.loop.globalStep, undefined),
      variant: 'av-mae',
    });
    baseline = { pretrain: b, ...(await zeroShot(b.model)) };
  }

  if (o.baseline) stage('baseline');
  const kind = o.finetune ? 'fine-tuned' : 'linear probe';
  log(
    `4/5 spoken-digit classifiers (audio only, ${clsSteps} steps each): ${kind} on the pretrained audio encoder, and from scratch`,
  );
  const probe = await classifier(
    o.finetune ? 'fine-tune' : 'probe',
    join(out, o.finetune ? 'finetune' : 'probe'),
    data,
    o,
    clsSteps,
    pre.model,
  );
  const scratch = await classifier('scratch', join(out, 'scratch'), data, o, clsSteps);
  const classifiers: ClassifierSummary[] = (
    [
      [`${kind} of the pretrained audio encoder`, probe],
      ['same network trained from scratch', scratch],
    ] as const
  ).map(([name, c]) => ({
    name,
    acc: c.final.stats.acc,
    mAP: c.final.stats.mAP,
    steps: c.loop.globalStep,
    run: c.out,
  }));

  stage('classifiers');
  log('5/5 report');
  const report = await writeReport(out, {
    data,
    pre,
    retrieval,
    real,
    baseline,
    classifiers,
    ci,
    stages,
    seconds: (performance.now() - t0) / 1000,
  });
  stage('report');
  const chance = retrieval.chance.classMatchAt1 ?? 0.1;
  const mean =
    ((retrieval.audioToVideo.classMatchAt1 ?? 0) + (retrieval.videoToAudio.classMatchAt1 ?? 0)) / 2;
  return {
    out,
    data,
    pretrain: pre,
    retrieval,
    real,
    baseline,
    classifiers,
    report,
    seconds: (performance.now() - t0) / 1000,
    stages,
    learned: mean >= 2 * chance,
  };
}

/** The verdict lines printed at the end. */
export function formatDemo(r: DemoResult): string {
  const p = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(3));
  const rr = r.retrieval;
  const row = (
    name: string,
    a2v: number | undefined,
    v2a: number | undefined,
    chance: number | undefined,
    n: number,
  ) => `  ${name.padEnd(40)} ${p(a2v).padEnd(14)} ${p(v2a).padEnd(14)} ${p(chance).padEnd(8)} ${n}`;
  const reportRow = (name: string, q: RetrievalReport) =>
    row(name, q.audioToVideo.classMatchAt1, q.videoToAudio.classMatchAt1, q.chance.classMatchAt1, q.n);
  const lines = [
    `AV-digits demo (${formatDuration(r.seconds)}): tiny CAV-MAE pretrained for ${r.pretrain.loop.globalStep} steps on ${r.data.trainCount} synthetic clips`,
    '',
    'zero-shot retrieval, class-match@1 (the top-ranked candidate shows / says the same digit):',
    `  ${'test set'.padEnd(40)} ${'audio->image'.padEnd(14)} ${'image->audio'.padEnd(14)} ${'chance'.padEnd(8)} pairs`,
    reportRow('synthetic (unseen writers, voices)', rr),
  ];
  if (r.real) {
    lines.push(reportRow(`real speech (${r.real.speakers} people, never trained)`, r.real.retrieval));
    for (const s of r.real.sources) lines.push(row(`  ${s.source}`, s.a2v, s.v2a, undefined, s.queries));
  } else lines.push('  real speech: not measured (its Debian packages are not installed: scripts/setup.sh)');
  lines.push(
    `  synthetic R@1 / R@10: ${p(rr.audioToVideo.r1)} / ${p(rr.audioToVideo.r10)} audio->image, ${p(rr.videoToAudio.r1)} / ${p(rr.videoToAudio.r10)} image->audio (chance ${p(rr.chance.r1)} / ${p(rr.chance.r10)})`,
  );
  if (r.baseline) {
    const b = r.baseline;
    lines.push(
      `  AV-MAE baseline (no contrastive term): synthetic ${p(b.retrieval.audioToVideo.classMatchAt1)} / ${p(b.retrieval.videoToAudio.classMatchAt1)}${b.real ? `, real ${p(b.real.retrieval.audioToVideo.classMatchAt1)} / ${p(b.real.retrieval.videoToAudio.classMatchAt1)}` : ''}`,
    );
  }
  lines.push('', `spoken-digit classification (audio only) on the held-out clips:`);
  for (const c of r.classifiers) lines.push(`  ${c.name.padEnd(40)} accuracy ${p(c.acc)} (${c.steps} steps)`);
  lines.push(
    '',
    `verdict: ${r.learned ? 'LEARNED: retrieval is well above chance' : 'NOT LEARNED: retrieval is not clearly above chance (train longer: --steps, --minutes)'}`,
  );
  lines.push(
    `time: ${Object.entries(r.stages)
      .map(([k, v]) => `${k} ${formatDuration(v)}`)
      .join(', ')}`,
  );
  lines.push(`report: ${join(r.report, 'index.html')}`);
  return lines.join('\n');
}

interface ReportInput {
  data: DemoSummary;
  pre: PretrainResult;
  retrieval: RetrievalReport;
  real?: RealTransfer;
  baseline?: DemoResult['baseline'];
  classifiers: ClassifierSummary[];
  ci: boolean;
  stages: Record<string, number>;
  seconds: number;
}

/** report/index.html + PNGs + report.json. */
async function writeReport(out: string, x: ReportInput): Promise<string> {
  const dir = join(out, 'report');
  mkdirSync(dir, { recursive: true });
  const figures: { file: string; caption: string }[] = [];
  const copy = (from: string, to: string, caption: string): void => {
    if (!existsSync(from)) return;
    copyFileSync(from, join(dir, to));
    figures.push({ file: to, caption });
  };
  const pdir = join(x.pre.out, 'plots');
  copy(
    join(pdir, 'losses.png'),
    'pretrain-losses.png',
    'Pretraining losses (train per step, evaluation on the held-out split dashed)',
  );
  copy(join(pdir, 'c_acc.png'), 'pretrain-c_acc.png', 'Contrastive accuracy within a batch (chance 1/batch)');
  copy(
    join(pdir, 'eval.png'),
    'pretrain-eval.png',
    'Held-out retrieval during pretraining: R@k and class-match@1 (a2v = audio query, v2a = image query)',
  );
  copy(join(pdir, 'lr.png'), 'pretrain-lr.png', 'Learning rate');
  for (const c of x.classifiers) {
    const tag = c.run.endsWith('scratch') ? 'scratch' : 'probe';
    copy(
      join(c.run, 'plots', 'eval.png'),
      `${tag}-eval.png`,
      `${c.name}: held-out accuracy and mAP per epoch`,
    );
  }

  // Pictures from the pretrained model on held-out clips: reconstruction and localisation.
  const pictures: { file: string; caption: string }[] = [];
  try {
    const { CavMae } = await import('../api/cavmae.js');
    const m = await CavMae.load(x.pre.model);
    const test = loadDataset(x.data.test);
    const pick = [0, 3, 7].map((i) => test.items[Math.min(test.items.length - 1, i)]);
    const first = pick[0];
    const imagePath = (it: (typeof test.items)[number]) =>
      it.visual.kind === 'image' ? it.visual.path : it.visual.kind === 'video' ? it.visual.path : '';
    const rec = await m.reconstruct({ audio: first.audioPath, image: imagePath(first) });
    writeFileAtomic(join(dir, 'reconstruction.png'), rec.panelPng);
    pictures.push({
      file: 'reconstruction.png',
      caption: `Reconstruction of held-out clip ${first.id} ("${first.labels[0]}") with 75% of the patches removed: image (top) and spectrogram (bottom)`,
    });
    for (const it of pick) {
      const loc = await m.localize(imagePath(it), it.audioPath, { query: 'mean', size: 192 });
      const file = `localize-${it.id}.png`;
      writeFileAtomic(join(dir, file), loc.overlayPng);
      pictures.push({
        file,
        caption: `Localisation: similarity of the spoken "${it.labels[0]}" (mean audio token) to each image patch`,
      });
    }
  } catch (e) {
    pictures.push({ file: '', caption: `pictures unavailable: ${(e as Error).message}` });
  }

  const rr = x.retrieval;
  const p = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(3));
  const json = {
    ci: x.ci,
    seconds: x.seconds,
    stageSeconds: x.stages,
    data: { train: x.data.trainCount, test: x.data.testCount, folder: x.data.out },
    pretrain: {
      steps: x.pre.loop.globalStep,
      model: x.pre.model,
      stop: x.pre.loop.reason,
      lastEval: x.pre.lastEval ?? null,
    },
    retrieval: rr,
    real: x.real ?? null,
    baseline: x.baseline
      ? {
          steps: x.baseline.pretrain.loop.globalStep,
          retrieval: x.baseline.retrieval,
          real: x.baseline.real ?? null,
        }
      : null,
    classifiers: x.classifiers,
  };
  writeFileAtomic(join(dir, 'report.json'), JSON.stringify(json, null, 1) + '\n');
  const row = (name: string, m: RetrievalReport['audioToVideo']) =>
    `<tr><td>${name}</td><td>${p(m.classMatchAt1)}</td><td>${p(m.r1)}</td><td>${p(m.r5)}</td><td>${p(m.r10)}</td><td>${m.medianRank.toFixed(1)}</td></tr>`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cavmae demo: AV-digits</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:90%}.pics{display:flex;flex-wrap:wrap;gap:1em}.pics figure{margin:0}</style>
</head><body>
<h1>CAV-MAE on AV-digits</h1>
<p>A tiny CAV-MAE was pretrained without labels for ${x.pre.loop.globalStep} steps on ${x.data.trainCount} pairs of a handwritten digit (MNIST) and the spoken digit (synthetic speech: espeak-ng and flite voices through drawn rooms, microphones, telephone channels and noise),
then evaluated on ${x.data.testCount} held-out pairs whose writers and voices were never seen${x.ci ? ' (reduced CI budget)' : ''}. Total time ${esc(formatDuration(x.seconds))}.</p>
<h2>Zero-shot retrieval: synthetic and real speech</h2>
<p>Each clip's audio is the query and every image of the same test set a candidate (and the reverse). Class-match@1: the top-ranked candidate shows (or says) the same digit.
The synthetic test set has voices and handwriting never seen in training; the real-speech set has recordings of people (${x.real ? `${x.real.clips} recordings, ${x.real.speakers} speakers` : 'not measured: its Debian packages are not installed'}) that no model here ever trained on,
each paired with unseen MNIST images: it measures whether what was learned from synthetic voices transfers to human speech.</p>
<table><tr><th>test set</th><th>audio &rarr; image</th><th>image &rarr; audio</th><th>chance</th><th>pairs</th></tr>
<tr><td>synthetic (held out)</td><td>${p(rr.audioToVideo.classMatchAt1)}</td><td>${p(rr.videoToAudio.classMatchAt1)}</td><td>${p(rr.chance.classMatchAt1)}</td><td>${rr.n}</td></tr>
${x.real ? `<tr><td>real speech</td><td>${p(x.real.retrieval.audioToVideo.classMatchAt1)}</td><td>${p(x.real.retrieval.videoToAudio.classMatchAt1)}</td><td>${p(x.real.retrieval.chance.classMatchAt1)}</td><td>${x.real.retrieval.n}</td></tr>` : ''}
${x.real ? x.real.sources.map((s) => `<tr><td>&nbsp;&nbsp;${esc(s.source)}: ${esc(s.speaker)}; ${esc(s.channel)}</td><td>${p(s.a2v)}</td><td>${p(s.v2a)}</td><td></td><td>${s.queries}</td></tr>`).join('\n') : ''}
${x.baseline ? `<tr><td>AV-MAE baseline, synthetic</td><td>${p(x.baseline.retrieval.audioToVideo.classMatchAt1)}</td><td>${p(x.baseline.retrieval.videoToAudio.classMatchAt1)}</td><td>${p(x.baseline.retrieval.chance.classMatchAt1)}</td><td>${x.baseline.retrieval.n}</td></tr>` : ''}
${x.baseline?.real ? `<tr><td>AV-MAE baseline, real speech</td><td>${p(x.baseline.real.retrieval.audioToVideo.classMatchAt1)}</td><td>${p(x.baseline.real.retrieval.videoToAudio.classMatchAt1)}</td><td>${p(x.baseline.real.retrieval.chance.classMatchAt1)}</td><td>${x.baseline.real.retrieval.n}</td></tr>` : ''}
</table>
<p>Instance-level retrieval on the synthetic set (ranks count only candidates scoring strictly higher than the true pair; audio and image share only the digit, so R@1 is low by design):</p>
<table><tr><th>direction</th><th>class-match@1</th><th>R@1</th><th>R@5</th><th>R@10</th><th>median rank</th></tr>
${row('audio &rarr; image', rr.audioToVideo)}
${row('image &rarr; audio', rr.videoToAudio)}
<tr><td>chance</td><td>${p(rr.chance.classMatchAt1)}</td><td>${p(rr.chance.r1)}</td><td>${p(rr.chance.r5)}</td><td>${p(rr.chance.r10)}</td><td>${rr.chance.medianRank.toFixed(1)}</td></tr>
${x.baseline ? `${row('AV-MAE audio &rarr; image', x.baseline.retrieval.audioToVideo)}${row('AV-MAE image &rarr; audio', x.baseline.retrieval.videoToAudio)}` : ''}
</table>
<h2>Spoken-digit classification (audio only)</h2>
<p>A classifier of the spoken digit from the audio alone: a linear probe on the audio encoder that CAV-MAE pretrained without any label
(it learned the digits from the paired pictures), against the same network trained with the labels from scratch for the same number of steps.</p>
<table><tr><th>classifier</th><th>accuracy</th><th>mAP</th><th>steps</th></tr>
${x.classifiers.map((c) => `<tr><td>${esc(c.name)}</td><td>${p(c.acc)}</td><td>${p(c.mAP)}</td><td>${c.steps}</td></tr>`).join('\n')}
</table>
<h2>Training curves</h2>
${figures.map((f) => `<figure><img src="${f.file}" alt="${esc(f.caption)}"><figcaption>${esc(f.caption)}</figcaption></figure>`).join('\n')}
<h2>Reconstruction and localisation</h2>
<div class="pics">
${pictures.map((f) => (f.file ? `<figure><img src="${f.file}" alt="${esc(f.caption)}"><figcaption>${esc(f.caption)}</figcaption></figure>` : `<p>${esc(f.caption)}</p>`)).join('\n')}
</div>
<p>Numbers: <a href="report.json">report.json</a>. Runs: <code>${esc(x.pre.out)}</code> and the classifier folders next to it.</p>
</body></html>
`;
  writeFileAtomic(join(dir, 'index.html'), html);
  return dir;
}
