/**
 * Files the CLI writes from API results: PNGs, raw localisation maps and reconstructions
 * (safetensors or JSON, chosen by the extension). Every write is atomic.
 */
import { extname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensors, type WritableTensor } from '../io/safetensors.js';
import { UserError } from '../util/errors.js';
import type { Classification, LocalizeResult, Reconstruction } from './cavmae.js';

function rawFormat(path: string): 'json' | 'safetensors' {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.safetensors') return 'safetensors';
  throw new UserError(`${path}: use a .json or .safetensors file name`);
}

export function writePng(path: string, png: Uint8Array): void {
  if (extname(path).toLowerCase() !== '.png')
    throw new UserError(`${path}: the picture is a PNG; name the file *.png`);
  writeFileAtomic(path, png);
}

/**
 * The raw localisation: `map` [gh, gw] (cosine similarities), `heat` [H, W] (upsampled, min-max
 * normalised), `query` [D] (the normalised audio query), plus the peak patch.
 */
export function writeLocalizationRaw(path: string, r: LocalizeResult): void {
  const peak = { row: r.peak.row, col: r.peak.col, index: r.peak.index, score: r.peak.score };
  if (rawFormat(path) === 'json') {
    const json = {
      query: r.queryKind,
      gridHeight: r.gridHeight,
      gridWidth: r.gridWidth,
      map: Array.from(r.map),
      height: r.height,
      width: r.width,
      heat: Array.from(r.heat, (v) => Math.round(v * 1e6) / 1e6),
      peak,
    };
    writeFileAtomic(path, JSON.stringify(json) + '\n');
    return;
  }
  const t: Record<string, WritableTensor> = {
    map: { dtype: 'F32', shape: [r.gridHeight, r.gridWidth], data: r.map },
    heat: { dtype: 'F32', shape: [r.height, r.width], data: r.heat },
    query: { dtype: 'F32', shape: [r.query.length], data: r.query },
  };
  writeSafetensors(path, t, {
    'cavmae.kind': 'localization',
    query: r.queryKind,
    peak: JSON.stringify(peak),
  });
}

/** The scalars of a reconstruction (MSEs, ratios, masking), JSON-ready. */
export function reconstructionSummary(r: Reconstruction) {
  return {
    mseAudio: r.mseAudio ?? null,
    mseVisual: r.mseVisual ?? null,
    maskRatioA: r.maskRatioA,
    maskRatioV: r.maskRatioV,
    maskMode: r.maskMode,
    normPixLoss: r.normPixLoss,
  };
}

/** Predictions, masks and MSEs of a reconstruction. */
export function writeReconstructionRaw(path: string, r: Reconstruction): void {
  const summary = reconstructionSummary(r);
  if (rawFormat(path) === 'json') {
    const arr = (x?: Float32Array) => (x ? Array.from(x) : null);
    writeFileAtomic(
      path,
      JSON.stringify({
        ...summary,
        maskA: arr(r.maskA),
        maskV: arr(r.maskV),
        predA: arr(r.predA),
        predV: arr(r.predV),
      }) + '\n',
    );
    return;
  }
  const t: Record<string, WritableTensor> = {};
  const rows = (x: Float32Array, m: Float32Array) => [m.length, x.length / m.length];
  if (r.predA && r.maskA) {
    t.pred_a = { dtype: 'F32', shape: rows(r.predA, r.maskA), data: r.predA };
    t.mask_a = { dtype: 'F32', shape: [r.maskA.length], data: r.maskA };
    t.loss_mae_a = { dtype: 'F32', shape: [1], data: Float32Array.of(r.mseAudio!) };
  }
  if (r.predV && r.maskV) {
    t.pred_v = { dtype: 'F32', shape: rows(r.predV, r.maskV), data: r.predV };
    t.mask_v = { dtype: 'F32', shape: [r.maskV.length], data: r.maskV };
    t.loss_mae_v = { dtype: 'F32', shape: [1], data: Float32Array.of(r.mseVisual!) };
  }
  writeSafetensors(path, t, { 'cavmae.kind': 'reconstruction', summary: JSON.stringify(summary) });
}

/** A classification as plain JSON. */
export function classificationJson(r: Classification): Record<string, unknown> {
  return {
    mode: r.mode,
    activation: r.activation,
    frames: r.frames,
    top: r.top,
    probabilities: Array.from(r.probabilities),
  };
}

export function formatClassification(r: Classification, what: string): string {
  const lines = [
    `${what}: mode ${r.mode}, ${r.activation}${r.frames.length > 1 ? `, averaged over frames ${r.frames.join(',')}` : r.frames.length === 1 ? `, frame ${r.frames[0]}` : ''}`,
  ];
  r.top.forEach((l, i) =>
    lines.push(
      `  ${String(i + 1).padStart(2)}  ${l.score.toFixed(4)}  ${l.name}${l.mid !== String(l.index) ? `  (${l.mid})` : ''}`,
    ),
  );
  return lines.join('\n');
}
