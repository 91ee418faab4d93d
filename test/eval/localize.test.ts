// Localisation maps (docs/reference.md#localisation): PyTorch goldens (scripts/golden/api_golden.py) for the upsampler
// and for whole maps from the official small model's forward_feat tokens, and constructed cases
// whose peak patch is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import {
  audioQueryVector,
  heatIoU,
  heatOverlay,
  heatOverlayPng,
  jet,
  localizeTokens,
  minMaxNormalize,
  patchSimilarity,
  upsample2d,
  type AudioQuery,
  type UpsampleMode,
} from '../../src/eval/localize.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, fixture, hasOfficialFixtures, randomArray, repoRoot } from '../helpers.js';

const golden = readSafetensorsF32(join(repoRoot(), 'test', 'fixtures', 'api', 'golden.safetensors'));
const g = (name: string) => {
  const t = golden.get(name);
  if (!t) throw new Error(`golden tensor ${name} missing`);
  return t.data;
};

test('upsample2d equals F.interpolate (bilinear align_corners=False up and down, nearest) to 1e-6', () => {
  const x = g('interp.input'); // [5, 7]
  assertClose(upsample2d(x, 5, 7, 23, 31, 'bilinear'), g('interp.bilinear'), {
    atol: 1e-6,
    what: 'bilinear 5x7 -> 23x31',
  });
  assertClose(upsample2d(x, 5, 7, 23, 31, 'nearest'), g('interp.nearest'), {
    atol: 0,
    what: 'nearest 5x7 -> 23x31',
  });
  assertClose(upsample2d(x, 5, 7, 3, 4, 'bilinear'), g('interp.bilinear_down'), {
    atol: 1e-6,
    what: 'bilinear 5x7 -> 3x4',
  });
});

test(
  "maps from the official model tokens equal the fork's localisation code (map 1e-6, heat 1e-5)",
  { skip: !hasOfficialFixtures() && 'official fixtures missing' },
  () => {
    const io = readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
    const a = io.get('feat.audio_tokens')!.data.slice(0, 64 * 48); // sample 0: [64, 48]
    const v = io.get('feat.video_tokens')!.data.slice(0, 16 * 48); // [16, 48]
    const cases: [AudioQuery, number | undefined, UpsampleMode, number][] = [
      ['column', undefined, 'bilinear', 224],
      ['mean', undefined, 'nearest', 64],
      ['patchesmean', undefined, 'bilinear', 64],
      ['column', 2, 'bilinear', 64],
    ];
    for (const [query, column, upsample, size] of cases) {
      const name = `loc.${query}${column ?? ''}.${upsample}.${size}`;
      const r = localizeTokens(a, v, {
        dim: 48,
        audioGrid: { rows: 8, cols: 8 },
        visualGrid: { rows: 4, cols: 4 },
        query,
        column,
        upsample,
        height: size,
        width: size,
      });
      assertClose(r.map, g(`${name}.map`), { atol: 1e-6, what: `${name} map` });
      assertClose(r.heat, g(`${name}.heat`), { atol: 1e-5, what: `${name} heat` });
      assert.equal(r.heat.length, size * size);
    }
  },
);

/** Tokens where visual patch `at` points along `dir`, the rest random and nearly orthogonal. */
function visualWithPeak(
  rows: number,
  cols: number,
  D: number,
  dir: Float32Array,
  at: number,
  seed: number,
): Float32Array {
  const v = randomArray(rows * cols * D, seed, 0.05);
  for (let d = 0; d < D; d++) v[at * D + d] += 2 * dir[d];
  return v;
}

function unit(D: number, k: number): Float32Array {
  const u = new Float32Array(D);
  u[k] = 1;
  return u;
}

test('constructed case: the peak is the patch aligned with the audio query (column vs mean vs explicit column)', () => {
  const D = 16;
  const audioGrid = { rows: 8, cols: 6 }; // 8 frequency rows, 6 time columns
  const visualGrid = { rows: 5, cols: 7 };
  // Audio: the centre column (t = 3) says "direction 0", every other column "direction 1"
  // (so the mean over all tokens points mostly along 1), column 1 says "direction 2".
  const a = new Float32Array(audioGrid.rows * audioGrid.cols * D);
  for (let f = 0; f < audioGrid.rows; f++)
    for (let t = 0; t < audioGrid.cols; t++) {
      const k = t === 3 ? 0 : t === 1 ? 2 : 1;
      a[(f * audioGrid.cols + t) * D + k] = 1 + 0.1 * f;
    }
  // Visual: patch (3, 5) along direction 0, patch (1, 2) along 1, patch (4, 0) along 2.
  const v = visualWithPeak(5, 7, D, unit(D, 0), 3 * 7 + 5, 1);
  for (let d = 0; d < D; d++) {
    v[(1 * 7 + 2) * D + d] += 2 * unit(D, 1)[d];
    v[(4 * 7 + 0) * D + d] += 2 * unit(D, 2)[d];
  }
  const opts = { dim: D, audioGrid, visualGrid, height: 5 * 16, width: 7 * 16 };
  const col = localizeTokens(a, v, { ...opts, query: 'column' });
  assert.deepEqual([col.peak.row, col.peak.col], [3, 5]);
  assert.equal(col.heat.length, 80 * 112);
  // The brightest pixel of the upsampled map lies inside the peak patch.
  let best = 0;
  for (let i = 1; i < col.heat.length; i++) if (col.heat[i] > col.heat[best]) best = i;
  const [py, px] = [Math.floor(best / 112), best % 112];
  assert.ok(
    py >= 48 && py < 64 && px >= 80 && px < 96,
    `heat peak at (${py}, ${px}) is outside patch (3, 5)`,
  );
  assertClose([col.heat[best]], [1], { atol: 0, what: 'min-max maximum' });
  const mean = localizeTokens(a, v, { ...opts, query: 'mean' });
  assert.deepEqual([mean.peak.row, mean.peak.col], [1, 2]);
  const col1 = localizeTokens(a, v, { ...opts, query: 'column', column: 1 });
  assert.deepEqual([col1.peak.row, col1.peak.col], [4, 0]);
  // The query is the normalised centre-column mean.
  assertClose(col.query, unit(D, 0), { atol: 1e-7, what: 'normalised column query' });
  assert.throws(() => localizeTokens(a, v, { ...opts, column: 6 }), UserError);
  assert.throws(() => localizeTokens(a.subarray(1), v, opts), UserError);
});

test('audioQueryVector averages over frequency at one time column; patchSimilarity is the cosine', () => {
  const D = 3;
  const a = Float32Array.from({ length: 2 * 3 * D }, (_, i) => i); // [F=2, T=3, D]
  assertClose(
    audioQueryVector(a, { rows: 2, cols: 3 }, D, 'column'),
    [(3 + 12) / 2, (4 + 13) / 2, (5 + 14) / 2],
    { atol: 1e-6, what: 'column 1' },
  );
  assertClose(audioQueryVector(a, { rows: 2, cols: 3 }, D, 'mean'), [7.5, 8.5, 9.5], {
    atol: 1e-6,
    what: 'mean',
  });
  const s = patchSimilarity(Float32Array.of(1, 0, 0), Float32Array.of(2, 0, 0, 0, 3, 0, -1, 1, 0), 3, 3);
  assertClose(s, [1, 0, -Math.SQRT1_2], { atol: 1e-7, what: 'cosines' });
});

test('min-max, IoU and the jet colormap', () => {
  assert.deepEqual(Array.from(minMaxNormalize(Float32Array.of(2, 2, 2))), [0, 0, 0]);
  assertClose(minMaxNormalize(Float32Array.of(-1, 0, 3)), [0, 0.25, 1], { atol: 1e-7, what: 'min-max' });
  // 4x4 heat with the top-left 2x2 hot; box covers the left half.
  const heat = Float32Array.from({ length: 16 }, (_, i) => (Math.floor(i / 4) < 2 && i % 4 < 2 ? 1 : 0));
  assertClose([heatIoU(heat, 4, 4, [0, 0, 2, 4])], [4 / 8], { atol: 1e-12, what: 'IoU' });
  assert.equal(heatIoU(new Float32Array(16), 4, 4, [0, 0, 0, 0]), 0);
  // matplotlib 3.6.3 (Debian): round(255 * cm.jet(t)[:3]) for these t; within one level.
  const mpl: [number, number[]][] = [
    [0, [0, 0, 128]],
    [0.1, [0, 0, 241]],
    [0.25, [0, 128, 255]],
    [0.5, [125, 255, 122]],
    [0.75, [255, 148, 0]],
    [0.9, [241, 8, 0]],
    [1, [128, 0, 0]],
  ];
  for (const [t, rgb] of mpl) assertClose(jet(t), rgb, { atol: 1, what: `jet(${t})` });
});

test("overlay blends jet colours over the picture; the PNG has the picture's size", async () => {
  const img = { width: 2, height: 1, data: Uint8Array.of(200, 100, 0, 0, 0, 0) };
  const o = heatOverlay(img, Float32Array.of(0, 1), 0.5);
  assert.deepEqual(Array.from(o.data), [100, 50, 64, 64, 0, 0]);
  const png = await heatOverlayPng(
    { width: 30, height: 20, data: new Uint8Array(30 * 20 * 3) },
    new Float32Array(600),
  );
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 30, 20]);
  assert.throws(() => heatOverlay(img, new Float32Array(3)), UserError);
});
