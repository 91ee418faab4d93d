#!/usr/bin/env node
/* global process, URL */
// One run of the transfer study of docs/demo.md: make (or reuse) an AV-digits set, pretrain the
// tiny CAV-MAE on it, and score zero-shot retrieval on the synthetic held-out split and on the
// real-speech set (overall and per source). Needs a build (`npm run build`).
//
//   node scripts/transfer-study.mjs NAME DATA_DIR [DATA_JSON|existing] [PRETRAIN_JSON] [--root DIR] [--threads N]
//
// DATA_JSON: makeDemoData options (src/data/avdigits.ts), e.g. '{"tts":{"espeak-ng":1}}' or
// '{"recording":"clean"}'; `existing` uses DATA_DIR's manifests as they are (the real set from
// DATA_DIR/real-test.json, else ROOT/real). PRETRAIN_JSON: pretrain options on top of `--config tiny`, e.g.
// '{"epochs":18}', '{"maskRatio":0.3}', '{"augment":{"gainDb":10,"timeShift":10,"freqm":24,"timem":24}}'.
// Writes ROOT/NAME/ (the run) and ROOT/NAME.result.json. ROOT defaults to ./transfer-study.
// --threads N: kernel threads of this run (default: all cores), e.g. 1 for two runs side by side.
//
// The rows of docs/demo.md's study (d_moderate = make-demo-data's defaults, the recipe's data):
//   base54    base-data   existing '{"epochs":54}'   (the earlier generator's clean espeak-ng `en` data)
//   v1 / v1L  d_varied    '{"recording":WIDE}' '{"epochs":18}' / '{}'   (WIDE: see docs/demo.md)
//   vM18      d_moderate  '{}' '{"epochs":18}'
//   vMaug     d_moderate  existing '{"augment":{"gainDb":10,"timeShift":10,"freqm":24,"timem":24}}'
//   vMaugmix  d_moderate  existing '{"augment":{"mixup":0.3,"freqm":24,"timem":24,"gainDb":10,"timeShift":10}}'
//   vMsmall   d_moderate  existing '{"recipe":"tiny","config":{TINY,"embed_dim":96,"modality_specific_depth":2}}'
//             (TINY: the `tiny` preset's entries; a config object brings no recipe, hence "recipe")
//   vMm075    d_moderate  existing '{"maskRatio":0.75}'
// (all with `--root runs`; the recipe row itself is the seed-0 demo.)
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dist = (p) => new URL(`../dist/src/${p}`, import.meta.url).href;
const args = process.argv.slice(2);
const rootAt = args.indexOf('--root');
const root = resolve(rootAt >= 0 ? args.splice(rootAt, 2)[1] : 'transfer-study');
const threadsAt = args.indexOf('--threads');
const threads = threadsAt >= 0 ? Number(args.splice(threadsAt, 2)[1]) : undefined;
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
  process.stderr.write('--threads must be an integer >= 1\n');
  process.exit(2);
}
const [name, dataDir, dataJson = '{}', preJson = '{}'] = args;
if (!name || !dataDir) {
  process.stderr.write(
    'usage: node scripts/transfer-study.mjs NAME DATA_DIR [DATA_JSON|existing] [PRETRAIN_JSON] [--root DIR] [--threads N]\n',
  );
  process.exit(2);
}
const { makeDemoData } = await import(dist('data/avdigits.js'));
const { makeRealDigits } = await import(dist('data/real-digits.js'));
const { pretrain } = await import(dist('train/pretrain.js'));
const { realTransfer } = await import(dist('train/demo.js'));
const { retrievalReport } = await import(dist('eval/embed.js'));
if (threads !== undefined) (await import(dist('kernels/index.js'))).kernels().setThreads(threads);

mkdirSync(root, { recursive: true });
const t0 = Date.now();
let data;
if (dataJson === 'existing') {
  // The set's own real-speech manifest when make-demo-data wrote one, else a shared ROOT/real.
  const d = join(root, dataDir);
  let real = join(d, 'real-test.json');
  if (!existsSync(real)) {
    real = join(root, 'real', 'real-test.json');
    if (!existsSync(real)) await makeRealDigits({ out: join(root, 'real'), seed: 0 });
  }
  data = {
    train: join(d, 'train.json'),
    test: join(d, 'test.json'),
    labels: join(d, 'labels.csv'),
    real: { path: real },
  };
} else data = await makeDemoData({ out: join(root, dataDir), jobs: 2, ...JSON.parse(dataJson) });
const dataSeconds = (Date.now() - t0) / 1000;
const pre = JSON.parse(preJson);
const t1 = Date.now();
const res = await pretrain({
  data: data.train,
  val: data.test,
  config: 'tiny',
  out: join(root, name),
  evalEvery: 4,
  checkpointEvery: 100,
  resume: true,
  quiet: true,
  ...pre,
});
const trainSeconds = (Date.now() - t1) / 1000;
const syn = await retrievalReport({ model: res.model, data: data.test, labelCsv: data.labels });
const real = await realTransfer(res.model, data.real.path, data.labels);
const f = (x) => x.toFixed(3);
const out = {
  name,
  dataDir,
  data: dataJson,
  pretrain: pre,
  steps: res.loop.globalStep,
  dataSeconds,
  trainSeconds,
  synthetic: [syn.audioToVideo.classMatchAt1, syn.videoToAudio.classMatchAt1],
  real: [real.retrieval.audioToVideo.classMatchAt1, real.retrieval.videoToAudio.classMatchAt1],
  realChance: real.retrieval.chance.classMatchAt1,
  sources: real.sources,
  lastEval: res.lastEval,
};
writeFileSync(join(root, `${name}.result.json`), JSON.stringify(out, null, 1) + '\n');
process.stdout.write(
  `${name}: ${out.steps} steps; class-match@1 a->i / i->a: synthetic ${out.synthetic.map(f).join(' / ')}, real ${out.real.map(f).join(' / ')} (chance ${f(out.realChance)})\n` +
    `  ${real.sources.map((s) => `${s.source} ${f(s.a2v)}/${f(s.v2a)}`).join('; ')}\n`,
);
