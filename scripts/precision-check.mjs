#!/usr/bin/env node
// Does reduced precision change what the model learns or what it computes? On the demo task
// (AV-digits, the tiny CAV-MAE with the demo's recipe, src/train/demo.ts):
//  1. bf16 training: pretrain in fp32 and in bf16 with the same seeds (and fp32 with a second seed,
//     for the seed-to-seed noise), then compare zero-shot retrieval on the held-out split and the
//     accuracy of a linear probe on each pretrained encoder;
//  2. reduced-precision inference of the fp32 model: bf16 and int8 embeddings against fp32
//     (cosine per clip), retrieval and probe accuracy with each.
// Prints a markdown table (docs/performance.md) and writes every number to <out>/precision.json.
//
// usage: node scripts/precision-check.mjs [--out DIR] [--ci] [--seeds 0,1] [--steps N] [--probe-steps N]
//                                         [--inference-only]
// --inference-only: train only the fp32 model of the first seed (and its probe) and check the
// inference precisions on it (for a change of the int8 or bf16 inference path). The int8
// attention (AVX512-VNNI) can be switched back to bf16 with CAVMAE_ATTENTION=bf16 to compare.
// Needs a build (npm run build) and espeak-ng/sox for the data (npm run setup). Resumable: runs
// and data already in DIR are reused.
import { existsSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(join(root, 'dist', 'src', p)).href;

function parseArgs(argv) {
  const o = { out: resolve('precision-check'), ci: false, seeds: [0, 1], steps: undefined, probeSteps: undefined, inferenceOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--out') o.out = resolve(v());
    else if (a === '--ci') o.ci = true;
    else if (a === '--seeds') o.seeds = v().split(',').map(Number);
    else if (a === '--steps') o.steps = Number(v());
    else if (a === '--probe-steps') o.probeSteps = Number(v());
    else if (a === '--inference-only') o.inferenceOnly = true;
    else {
      process.stderr.write(`precision-check: unknown option '${a}'\n`);
      process.exit(1);
    }
  }
  return o;
}

// The demo's recipe (src/train/demo.ts DEMO_RECIPE), used when that module is not built.
const FALLBACK_RECIPE = {
  data: { n: 3000, testN: 300, snrMin: 30, snrMax: 50, speedMin: 140, speedMax: 180, duration: 1.0 },
  ciData: { n: 1200, testN: 200 },
  pretrain: { config: 'tiny', batchSize: 64, lr: 1e-3, schedule: 'cosine', warmupSteps: 30, minLrRatio: 0.1, contrastWeight: 1, maskRatioA: 0.5, maskRatioV: 0.5, noise: false, steps: 600, ciSteps: 250 },
  probe: { lr: 1e-3, headLr: 1, batchSize: 64, steps: 150, ciSteps: 80 },
};

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) throw new Error("not built: run 'npm run build'");
  const { makeDemoData } = await import(dist('data/avdigits.js'));
  const { loadDataset } = await import(dist('data/datafile.js'));
  const { createLoader } = await import(dist('data/loader.js'));
  const { pretrain } = await import(dist('train/pretrain.js'));
  const { finetune } = await import(dist('train/finetune.js'));
  const { loadInferenceModel, retrievalFromEmbeddings } = await import(dist('eval/embed.js'));
  const { poolNormalize } = await import(dist('eval/features.js'));
  const { loadModel } = await import(dist('models/registry.js'));
  // int8 runs on the model as CavMae.load(path, { int8: true }) builds it: weights held in int8 only.
  const inferenceModel = (path, precision) => {
    const m = loadInferenceModel(path);
    return precision === 'int8' ? { ...m, model: loadModel(path, { grad: false, int8: true }).model } : m;
  };
  const { loadLabelCsv, resolveLabels } = await import(dist('data/datafile.js'));
  const { Tape } = await import(dist('autograd/tape.js'));
  const { Tensor } = await import(dist('tensor/tensor.js'));
  let recipe = FALLBACK_RECIPE;
  try {
    recipe = (await import(dist('train/demo.js'))).DEMO_RECIPE ?? FALLBACK_RECIPE;
  } catch {
    // demo module not built: the copy above
  }
  const log = (m) => process.stderr.write(`precision-check: ${m}\n`);
  mkdirSync(o.out, { recursive: true });
  const dataSpec = { ...recipe.data, ...(o.ci ? recipe.ciData : {}) };
  log(`data: ${dataSpec.n} train / ${dataSpec.testN} test clips in ${join(o.out, 'data')}`);
  const data = await makeDemoData({ out: join(o.out, 'data'), ...dataSpec, onProgress: undefined });
  const train = loadDataset(data.train);
  const test = loadDataset(data.test);
  const steps = o.steps ?? (o.ci ? recipe.pretrain.ciSteps : recipe.pretrain.steps);
  const r = recipe.pretrain;
  // The recipe has changed shape over time: read both forms.
  const probeRecipe = recipe.classifier ?? recipe.probe;
  const probeMode = probeRecipe.mode ?? 'multimodal';
  const probeSteps = o.probeSteps ?? (o.ci ? probeRecipe.ciSteps : probeRecipe.steps);
  const { readConfigArg } = await import(dist('models/registry.js')).catch(() => ({}));
  const modelConfig = recipe.model
    ? { ...(readConfigArg ? readConfigArg(recipe.model.preset) : {}), ...recipe.model.overrides }
    : r.config;
  const masks = r.maskRatio !== undefined ? { maskRatio: r.maskRatio } : { maskRatioA: r.maskRatioA, maskRatioV: r.maskRatioV };

  const runPretrain = async (name, seed, bf16) => {
    const spe = Math.floor(train.items.length / r.batchSize);
    const t0 = Date.now();
    const res = await pretrain({
      data: data.train, config: modelConfig, out: join(o.out, name), lr: r.lr, batchSize: r.batchSize,
      epochs: Math.max(1, Math.ceil(steps / spe)), schedule: r.schedule, warmupSteps: r.warmupSteps,
      minLrRatio: r.minLrRatio, contrastWeight: r.contrastWeight, ...masks,
      noise: r.noise, maxSteps: steps, checkpointEvery: 50, seed, bf16, resume: true, quiet: true, log: (m) => log(`${name}: ${m}`),
    });
    return { model: res.model, steps: res.loop.globalStep, seconds: (Date.now() - t0) / 1000, train: res.loop.recent };
  };
  const runProbe = async (name, init, seed, bf16) => {
    const p = probeRecipe;
    const spe = Math.floor(train.items.length / p.batchSize);
    const res = await finetune({
      data: data.train, val: data.test, out: join(o.out, name), init, labelCsv: data.labels, freezeBase: true, mode: probeMode,
      lr: p.lr, headLr: p.headLr, batchSize: p.batchSize, epochs: Math.max(1, Math.ceil(probeSteps / spe)),
      schedule: 'cosine', warmupSteps: 10, loss: 'ce', mixup: 0, labelSmooth: 0, freqm: 0, timem: 0, noise: false,
      wa: false, maxSteps: probeSteps, seed, bf16, resume: true, quiet: true, log: (m) => log(`${name}: ${m}`),
    });
    return { model: res.model, acc: res.final.stats.acc };
  };

  // Embeddings of the test split with a given inference precision (fp32, bf16, int8).
  const embed = async (modelPath, precision) => {
    const m = inferenceModel(modelPath, precision);
    const c = m.config;
    const labelMap = loadLabelCsv(data.labels); // the probe's class order
    const loader = createLoader(test, { batchSize: 50, train: false, shuffle: false, dropLast: false, targetLength: c.audio_length, imageSize: c.img_size, labelMap, audioMean: m.audioNorm.mean, audioStd: m.audioNorm.std, workers: 2 });
    const n = test.items.length;
    const D = c.embed_dim;
    const audio = new Float32Array(n * D);
    const video = new Float32Array(n * D);
    let row = 0;
    try {
      for await (const b of loader.batches(0, 0)) {
        const tp = new Tape({ grad: false, bf16: precision === 'bf16', int8: precision === 'int8' });
        const f = m.model.forwardFeat(tp, { audio: new Tensor([b.size, c.audio_length, 128], b.audio), image: new Tensor([b.size, 3, c.img_size, c.img_size], b.image) });
        audio.set(poolNormalize(f.audioTokens), row * D);
        video.set(poolNormalize(f.videoTokens), row * D);
        row += b.size;
      }
    } finally {
      await loader.close();
    }
    const labels = Int32Array.from(resolveLabels(test, labelMap), (l) => (l.length ? l[0] : -1));
    return { n, dim: D, audio, video, ids: test.items.map((it) => it.id), labels, labelNames: labelMap.names };
  };
  const retrieval = (e) => {
    const rr = retrievalFromEmbeddings(e);
    return { a2v_r1: rr.audioToVideo.r1, v2a_r1: rr.videoToAudio.r1, a2v_class1: rr.audioToVideo.classMatchAt1, v2a_class1: rr.videoToAudio.classMatchAt1, chance_class1: rr.chance.classMatchAt1 };
  };
  const cosines = (x, y, n, D) => {
    let min = Infinity;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += x[i * D + d] * y[i * D + d];
      min = Math.min(min, s);
      sum += s;
    }
    return { min, mean: sum / n };
  };
  // Probe accuracy with a given inference precision (argmax of the logits vs the label).
  const probeAccuracy = async (modelPath, precision) => {
    const m = inferenceModel(modelPath, precision);
    const c = m.config;
    const labelMap = loadLabelCsv(data.labels); // the probe's class order
    const loader = createLoader(test, { batchSize: 50, train: false, shuffle: false, dropLast: false, targetLength: c.audio_length, imageSize: c.img_size, labelMap, audioMean: m.audioNorm.mean, audioStd: m.audioNorm.std, workers: 2 });
    let hit = 0;
    let n = 0;
    try {
      for await (const b of loader.batches(0, 0)) {
        const tp = new Tape({ grad: false, bf16: precision === 'bf16', int8: precision === 'int8' });
        const logits = m.model.forward(tp, { audio: new Tensor([b.size, c.audio_length, 128], b.audio), image: new Tensor([b.size, 3, c.img_size, c.img_size], b.image) }, probeMode);
        const K = logits.shape[1];
        for (let i = 0; i < b.size; i++) {
          let best = 0;
          let bl = 0;
          for (let k = 0; k < K; k++) {
            if (logits.data[i * K + k] > logits.data[i * K + best]) best = k;
            if (b.labels[i * K + k] > b.labels[i * K + bl]) bl = k;
          }
          hit += best === bl ? 1 : 0;
          n++;
        }
      }
    } finally {
      await loader.close();
    }
    return hit / n;
  };

  const result = { recipe: { steps, probeSteps, probeMode, model: modelConfig, data: dataSpec }, attention: process.env.CAVMAE_ATTENTION ?? 'default', training: [], inference: [] };
  for (const seed of o.inferenceOnly ? o.seeds.slice(0, 1) : o.seeds) {
    for (const bf16 of o.inferenceOnly ? [false] : [false, true]) {
      if (bf16 && seed !== o.seeds[0]) continue; // bf16 once; fp32 with every seed (the noise)
      const name = `pretrain-${bf16 ? 'bf16' : 'fp32'}-seed${seed}`;
      const pre = await runPretrain(name, seed, bf16);
      const probe = await runProbe(`probe-${bf16 ? 'bf16' : 'fp32'}-seed${seed}`, pre.model, seed, bf16);
      const e = await embed(pre.model, 'fp32');
      const row = { name, precision: bf16 ? 'bf16' : 'fp32', seed, steps: pre.steps, seconds: pre.seconds, finalTrain: pre.train, retrieval: retrieval(e), probeAcc: probe.acc, models: { pretrain: pre.model, probe: probe.model } };
      result.training.push(row);
      log(`${name}: ${JSON.stringify(row.retrieval)} probe acc ${probe.acc}`);
    }
  }
  // Inference precision on the first fp32 model.
  const ref = result.training.find((t) => t.precision === 'fp32' && t.seed === o.seeds[0]);
  const eRef = await embed(ref.models.pretrain, 'fp32');
  for (const precision of ['fp32', 'bf16', 'int8']) {
    const e = precision === 'fp32' ? eRef : await embed(ref.models.pretrain, precision);
    result.inference.push({
      precision,
      cosAudio: cosines(e.audio, eRef.audio, e.n, e.dim),
      cosVideo: cosines(e.video, eRef.video, e.n, e.dim),
      retrieval: retrieval(e),
      probeAcc: await probeAccuracy(ref.models.probe, precision),
    });
  }
  const f = (x) => (x === undefined ? '-' : x.toFixed(3));
  const lines = [];
  lines.push(`Training precision (demo task, ${steps} pretraining steps, ${probeSteps} ${probeMode} probe steps, ${dataSpec.n}/${dataSpec.testN} clips):`, '');
  lines.push('| run | A→V R@1 | V→A R@1 | A→V class@1 | V→A class@1 | linear probe acc |', '|---|---|---|---|---|---|');
  for (const t of result.training) lines.push(`| ${t.precision} seed ${t.seed} | ${f(t.retrieval.a2v_r1)} | ${f(t.retrieval.v2a_r1)} | ${f(t.retrieval.a2v_class1)} | ${f(t.retrieval.v2a_class1)} | ${f(t.probeAcc)} |`);
  lines.push('', `Inference precision (the fp32 model of seed ${o.seeds[0]}; chance class@1 ${f(ref.retrieval.chance_class1)}):`, '');
  lines.push('| inference | min / mean cosine audio | min / mean cosine video | A→V R@1 | V→A R@1 | A→V class@1 | V→A class@1 | probe acc |', '|---|---|---|---|---|---|---|---|');
  for (const i of result.inference)
    lines.push(`| ${i.precision} | ${i.cosAudio.min.toFixed(5)} / ${i.cosAudio.mean.toFixed(5)} | ${i.cosVideo.min.toFixed(5)} / ${i.cosVideo.mean.toFixed(5)} | ${f(i.retrieval.a2v_r1)} | ${f(i.retrieval.v2a_r1)} | ${f(i.retrieval.a2v_class1)} | ${f(i.retrieval.v2a_class1)} | ${f(i.probeAcc)} |`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const path = join(o.out, process.env.CAVMAE_ATTENTION ? `precision-attention-${process.env.CAVMAE_ATTENTION}.json` : 'precision.json');
  writeFileSync(`${path}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

main().catch((e) => {
  process.stderr.write(`precision-check: ${e?.stack ?? e}\n`);
  process.exit(1);
});
