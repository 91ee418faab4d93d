#!/usr/bin/env node
/* global process, URL */
// One run of the transfer study of docs/demo.md: make (or reuse) an AV-digits set, pretrain the
// tiny CAV-MAE on it, and score zero-shot retrieval on the synthetic held-out split and on the
// real-speech set (overall and per source). Needs a build (`npm run build`).
//
//   node scripts/transfer-study.mjs NAME DATA_DIR [DATA_JSON|existing] [PRETRAIN_JSON] [--root DIR]
//
// DATA_JSON: makeDemoData options (src/data/avdigits.ts), e.g. '{"tts":{"espeak-ng":1}}' or
// '{"recording":"clean"}'; `existing` uses DATA_DIR's manifests as they are (the real set then
// comes from ROOT/real). PRETRAIN_JSON: pretrain options on top of `--config tiny`, e.g.
// '{"epochs":18}', '{"maskRatio":0.3}', '{"augment":{"gainDb":10,"timeShift":10,"freqm":24,"timem":24}}'.
// Writes ROOT/NAME/ (the run) and ROOT/NAME.result.json. ROOT defaults to ./transfer-study.
//
// The rows of docs/demo.md's study (MOD = the `varied` recording ranges, the default):
//   base54  base-data existing '{"epochs":54}'         (data made by the earlier generator: clean espeak-ng, en)
//   vC      d_voices_clean '{"recording":"clean"}' '{}'
//   vE      d_espeak_mod   '{"tts":{"espeak-ng":1}}' '{}'
//   v1L     d_varied       '{"recording":WIDE}' '{"epochs":54}'   (WIDE: see docs/demo.md)
//   vM18    d_moderate     '{}' '{"epochs":18}'
//   vMaug   d_moderate     '{}' '{"augment":{"gainDb":10,"timeShift":10,"freqm":24,"timem":24}}'
//   vMm03   d_moderate     '{}' '{"maskRatio":0.3}'
//   vMm075  d_moderate     '{}' '{"maskRatio":0.75}'
//   vMbig   d_moderate     '{}' '{"recipe":"tiny","config":{...tiny, "embed_dim":192,"num_heads":6,"modality_specific_depth":4}}'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dist = (p) => new URL(`../dist/src/${p}`, import.meta.url).href;
const args = process.argv.slice(2);
const rootAt = args.indexOf('--root');
const root = resolve(rootAt >= 0 ? args.splice(rootAt, 2)[1] : 'transfer-study');
const [name, dataDir, dataJson = '{}', preJson = '{}'] = args;
if (!name || !dataDir) {
  process.stderr.write(
    'usage: node scripts/transfer-study.mjs NAME DATA_DIR [DATA_JSON|existing] [PRETRAIN_JSON] [--root DIR]\n',
  );
  process.exit(2);
}
const { makeDemoData } = await import(dist('data/avdigits.js'));
const { makeRealDigits } = await import(dist('data/real-digits.js'));
const { pretrain } = await import(dist('train/pretrain.js'));
const { realTransfer } = await import(dist('train/demo.js'));
const { retrievalReport } = await import(dist('eval/embed.js'));

mkdirSync(root, { recursive: true });
const t0 = Date.now();
let data;
if (dataJson === 'existing') {
  const real = join(root, 'real', 'real-test.json');
  if (!existsSync(real)) await makeRealDigits({ out: join(root, 'real'), seed: 0 });
  const d = join(root, dataDir);
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
