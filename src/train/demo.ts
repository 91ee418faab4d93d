/**
 * `cavmae demo`: the README's first command, end to end on built-in data.
 *
 *   1. make the AV-digits set (src/data/demo.ts) with the demo's data recipe;
 *   2. pretrain the tiny CAV-MAE on it (the demo's training recipe, a few minutes on 2 cores);
 *   3. zero-shot retrieval on the held-out split (unseen MNIST writers, unseen voices) against
 *      chance, both directions, class-match@1 and R@k;
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
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { makeDemoData, type DemoSummary } from '../data/demo.js';
import { loadDataset } from '../data/datafile.js';
import { UserError } from '../util/errors.js';
import { retrievalReport, type RetrievalReport } from '../eval/embed.js';
import { pretrain, type PretrainOptions, type PretrainResult } from './pretrain.js';
import { finetune, type FinetuneResult } from './finetune.js';
import { formatDuration } from './progress.js';
import { readConfigArg } from '../models/index.js';

/** The demo's data, model and training recipe (docs/demo.md explains each choice and its evidence). */
export const DEMO_RECIPE = {
  /** Cleaner and steadier speech than make-demo-data's defaults: the audio tower learns faster. */
  data: { n: 3000, testN: 300, snrMin: 30, snrMax: 50, speedMin: 140, speedMax: 180, duration: 1.0 },
  ciData: { n: 1200, testN: 200 },
  /**
   * The `tiny` preset with 32 px images (2 x 2 patches of 16 px): a random visual tower already
   * separates MNIST digits far better at 32 px than at 64 px (4 x 4 patches), and the audio tower
   * learns the digits from the pictures through the contrastive term.
   */
  model: { preset: 'tiny', overrides: { img_size: 32 } },
  pretrain: {
    batchSize: 64,
    lr: 1e-3,
    schedule: 'cosine' as const,
    warmupSteps: 30,
    minLrRatio: 0.1,
    contrastWeight: 1,
    maskRatio: 0.5,
    noise: false,
    /** bf16 GEMM inputs (fp32 accumulation): about twice as fast here. */
    bf16: true,
    steps: 800,
    ciSteps: 400,
    minutes: 6,
    /** Held-out evaluation about every this many steps (whole epochs). */
    evalSteps: 100,
  },
  /** Audio-only digit classifiers: a linear probe of the pretrained audio encoder vs the same network trained from scratch. */
  classifier: { mode: 'audioonly' as const, lr: 1e-3, headLr: 1, batchSize: 64, steps: 200, ciSteps: 100, bf16: true },
} as const;

/** The demo's model config: a preset plus overrides (a JSON object every command accepts). */
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
  /** bf16 GEMMs (default: the recipe's, true); false computes everything in fp32. */
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

export interface DemoResult {
  out: string;
  data: DemoSummary;
  pretrain: PretrainResult;
  retrieval: RetrievalReport;
  baseline?: { pretrain: PretrainResult; retrieval: RetrievalReport };
  classifiers: ClassifierSummary[];
  report: string;
  seconds: number;
  /** Retrieval class-match@1 (mean of both directions) clearly above chance: 2 x chance. */
  learned: boolean;
}

function pretrainArgs(out: string, data: DemoSummary, o: DemoOptions, steps: number, minutes: number | undefined): PretrainOptions {
  const r = DEMO_RECIPE.pretrain;
  const spe = Math.floor(data.trainCount / r.batchSize);
  return {
    data: data.train,
    val: data.test,
    config: demoModelConfig(),
    out,
    lr: r.lr,
    batchSize: r.batchSize,
    epochs: Math.max(1, Math.ceil(steps / spe)),
    schedule: r.schedule,
    warmupSteps: r.warmupSteps,
    minLrRatio: r.minLrRatio,
    contrastWeight: r.contrastWeight,
    maskRatio: r.maskRatio,
    noise: r.noise,
    bf16: o.bf16 ?? r.bf16,
    evalEvery: Math.max(1, Math.round(r.evalSteps / spe)),
    maxSteps: steps,
    maxMinutes: minutes,
    checkpointEvery: 50,
    seed: o.seed ?? 0,
    workers: o.workers,
    quiet: o.quiet,
    resume: true,
    log: o.log,
  };
}

async function classifier(name: string, out: string, data: DemoSummary, o: DemoOptions, steps: number, init?: string): Promise<FinetuneResult> {
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
    bf16: o.bf16 ?? r.bf16,
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
  const steps = o.steps ?? (ci ? r.pretrain.ciSteps : r.pretrain.steps);
  const clsSteps = o.classifierSteps ?? (ci ? r.classifier.ciSteps : r.classifier.steps);
  const minutes = o.minutes === 0 ? undefined : (o.minutes ?? (ci ? undefined : r.pretrain.minutes));
  for (const [name, v] of [['--steps', steps], ['--classifier-steps', clsSteps]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`${name} must be a positive integer, got ${v}`);
  }

  log(`1/5 AV-digits data in ${join(out, 'data')}`);
  const data = await makeDemoData({
    out: join(out, 'data'),
    n: o.n ?? (ci ? r.ciData.n : r.data.n),
    testN: o.testN ?? (ci ? r.ciData.testN : r.data.testN),
    seed: o.seed ?? 0,
    snrMin: r.data.snrMin,
    snrMax: r.data.snrMax,
    speedMin: r.data.speedMin,
    speedMax: r.data.speedMax,
    duration: r.data.duration,
    jobs: o.jobs ?? 2,
  });
  log(`   ${data.trainCount} train + ${data.testCount} test clips (${data.generated} made, ${data.reused} reused)`);

  log(`2/5 pretraining the tiny CAV-MAE: ${steps} steps${minutes ? `, at most ${minutes} min` : ''}`);
  const pre = await pretrain(pretrainArgs(join(out, 'pretrain'), data, o, steps, minutes));
  const retrieval = await retrievalReport({ model: pre.model, data: data.test, labelCsv: data.labels, workers: o.workers });
  log(`3/5 zero-shot retrieval on ${retrieval.n} held-out clips: class-match@1 A->V ${retrieval.audioToVideo.classMatchAt1?.toFixed(3)}, V->A ${retrieval.videoToAudio.classMatchAt1?.toFixed(3)} (chance ${retrieval.chance.classMatchAt1?.toFixed(3)})`);

  let baseline: DemoResult['baseline'];
  if (o.baseline) {
    log(`   baseline: AV-MAE (no contrastive term), ${pre.loop.globalStep} steps`);
    const b = await pretrain({ ...pretrainArgs(join(out, 'pretrain-avmae'), data, o, pre.loop.globalStep, undefined), variant: 'av-mae', contrastWeight: undefined });
    baseline = { pretrain: b, retrieval: await retrievalReport({ model: b.model, data: data.test, labelCsv: data.labels, workers: o.workers }) };
  }

  const kind = o.finetune ? 'fine-tuned' : 'linear probe';
  log(`4/5 spoken-digit classifiers (audio only, ${clsSteps} steps each): ${kind} on the pretrained audio encoder, and from scratch`);
  const probe = await classifier(o.finetune ? 'fine-tune' : 'probe', join(out, o.finetune ? 'finetune' : 'probe'), data, o, clsSteps, pre.model);
  const scratch = await classifier('scratch', join(out, 'scratch'), data, o, clsSteps);
  const classifiers: ClassifierSummary[] = [
    { name: `${kind} of the pretrained audio encoder`, acc: probe.final.stats.acc, mAP: probe.final.stats.mAP, steps: probe.loop.globalStep, run: probe.out },
    { name: 'same network trained from scratch', acc: scratch.final.stats.acc, mAP: scratch.final.stats.mAP, steps: scratch.loop.globalStep, run: scratch.out },
  ];

  log('5/5 report');
  const report = await writeReport(out, { data, pre, retrieval, baseline, classifiers, ci, seconds: (performance.now() - t0) / 1000 });
  const chance = retrieval.chance.classMatchAt1 ?? 0.1;
  const mean = ((retrieval.audioToVideo.classMatchAt1 ?? 0) + (retrieval.videoToAudio.classMatchAt1 ?? 0)) / 2;
  return { out, data, pretrain: pre, retrieval, baseline, classifiers, report, seconds: (performance.now() - t0) / 1000, learned: mean >= 2 * chance };
}

/** The verdict lines printed at the end. */
export function formatDemo(r: DemoResult): string {
  const p = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(3));
  const rr = r.retrieval;
  const lines = [
    `AV-digits demo (${formatDuration(r.seconds)}): tiny CAV-MAE pretrained for ${r.pretrain.loop.globalStep} steps on ${r.data.trainCount} clips`,
    '',
    `zero-shot retrieval on ${rr.n} held-out clips (unseen writers and voices):`,
    `                 class-match@1   R@1     R@10    chance (class@1 / R@1 / R@10)`,
    `  audio->image   ${p(rr.audioToVideo.classMatchAt1).padEnd(14)}  ${p(rr.audioToVideo.r1)}   ${p(rr.audioToVideo.r10)}   ${p(rr.chance.classMatchAt1)} / ${p(rr.chance.r1)} / ${p(rr.chance.r10)}`,
    `  image->audio   ${p(rr.videoToAudio.classMatchAt1).padEnd(14)}  ${p(rr.videoToAudio.r1)}   ${p(rr.videoToAudio.r10)}`,
  ];
  if (r.baseline) {
    const b = r.baseline.retrieval;
    lines.push(`  AV-MAE baseline (no contrastive term): class-match@1 ${p(b.audioToVideo.classMatchAt1)} / ${p(b.videoToAudio.classMatchAt1)}`);
  }
  lines.push('', `spoken-digit classification (audio only) on the held-out clips:`);
  for (const c of r.classifiers) lines.push(`  ${c.name.padEnd(40)} accuracy ${p(c.acc)} (${c.steps} steps)`);
  lines.push('', `verdict: ${r.learned ? 'LEARNED: retrieval is well above chance' : 'NOT LEARNED: retrieval is not clearly above chance (train longer: --steps, --minutes)'}`);
  lines.push(`report: ${join(r.report, 'index.html')}`);
  return lines.join('\n');
}

interface ReportInput {
  data: DemoSummary;
  pre: PretrainResult;
  retrieval: RetrievalReport;
  baseline?: DemoResult['baseline'];
  classifiers: ClassifierSummary[];
  ci: boolean;
  seconds: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
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
  copy(join(pdir, 'losses.png'), 'pretrain-losses.png', 'Pretraining losses (train per step, evaluation on the held-out split dashed)');
  copy(join(pdir, 'c_acc.png'), 'pretrain-c_acc.png', 'Contrastive accuracy within a batch (chance 1/batch)');
  copy(join(pdir, 'eval.png'), 'pretrain-eval.png', 'Held-out retrieval during pretraining: R@k and class-match@1 (a2v = audio query, v2a = image query)');
  copy(join(pdir, 'lr.png'), 'pretrain-lr.png', 'Learning rate');
  for (const c of x.classifiers) {
    const tag = c.run.endsWith('scratch') ? 'scratch' : 'probe';
    copy(join(c.run, 'plots', 'eval.png'), `${tag}-eval.png`, `${c.name}: held-out accuracy and mAP per epoch`);
  }

  // Pictures from the pretrained model on held-out clips: reconstruction and localisation.
  const pictures: { file: string; caption: string }[] = [];
  try {
    const { CavMae } = await import('../api/cavmae.js');
    const m = await CavMae.load(x.pre.model);
    const test = loadDataset(x.data.test);
    const pick = [0, 3, 7].map((i) => test.items[Math.min(test.items.length - 1, i)]);
    const first = pick[0];
    const imagePath = (it: (typeof test.items)[number]) => (it.visual.kind === 'image' ? it.visual.path : it.visual.kind === 'video' ? it.visual.path : '');
    const rec = await m.reconstruct({ audio: first.audioPath, image: imagePath(first) });
    writeFileAtomic(join(dir, 'reconstruction.png'), rec.panelPng);
    pictures.push({ file: 'reconstruction.png', caption: `Reconstruction of held-out clip ${first.id} ("${first.labels[0]}") with 75% of the patches removed: image (top) and spectrogram (bottom)` });
    for (const it of pick) {
      const loc = await m.localize(imagePath(it), it.audioPath, { query: 'mean', size: 192 });
      const file = `localize-${it.id}.png`;
      writeFileAtomic(join(dir, file), loc.overlayPng);
      pictures.push({ file, caption: `Localisation: similarity of the spoken "${it.labels[0]}" (mean audio token) to each image patch` });
    }
  } catch (e) {
    pictures.push({ file: '', caption: `pictures unavailable: ${(e as Error).message}` });
  }

  const rr = x.retrieval;
  const p = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(3));
  const json = {
    ci: x.ci,
    seconds: x.seconds,
    data: { train: x.data.trainCount, test: x.data.testCount, folder: x.data.out },
    pretrain: { steps: x.pre.loop.globalStep, model: x.pre.model, stop: x.pre.loop.reason, lastEval: x.pre.lastEval ?? null },
    retrieval: rr,
    baseline: x.baseline ? { steps: x.baseline.pretrain.loop.globalStep, retrieval: x.baseline.retrieval } : null,
    classifiers: x.classifiers,
  };
  writeFileAtomic(join(dir, 'report.json'), JSON.stringify(json, null, 1) + '\n');
  const row = (name: string, m: RetrievalReport['audioToVideo']) => `<tr><td>${name}</td><td>${p(m.classMatchAt1)}</td><td>${p(m.r1)}</td><td>${p(m.r5)}</td><td>${p(m.r10)}</td><td>${m.medianRank.toFixed(1)}</td></tr>`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cavmae demo: AV-digits</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:90%}.pics{display:flex;flex-wrap:wrap;gap:1em}.pics figure{margin:0}</style>
</head><body>
<h1>CAV-MAE on AV-digits</h1>
<p>A tiny CAV-MAE was pretrained without labels for ${x.pre.loop.globalStep} steps on ${x.data.trainCount} pairs of a handwritten digit (MNIST) and the spoken digit (espeak-ng),
then evaluated on ${x.data.testCount} held-out pairs whose writers and voices were never seen${x.ci ? ' (reduced CI budget)' : ''}. Total time ${esc(formatDuration(x.seconds))}.</p>
<h2>Zero-shot retrieval</h2>
<p>Each clip's audio is the query and every held-out image a candidate (and the reverse). Class-match@1: the top-ranked candidate shows (or says) the same digit.
Ranks count only candidates scoring strictly higher than the true pair.</p>
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
