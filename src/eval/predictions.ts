/**
 * Stored predictions and targets -> classification report (what `cavmae eval --pred` runs).
 *
 * Accepted files (all untrusted; sizes bounded before allocation):
 * - .safetensors: tensor `pred` [N,K] (and optionally `target` [N,K] in the same file) or, for
 *   the target file, `target`; any float/int dtype (converted to float32).
 * - .npy: a 2-D little-endian array ('<f4', '<f8', '<i4', '<i8', '|u1', '|b1'), C order, as
 *   np.save writes it (no pickled objects).
 * - .csv: one row per sample, comma-separated numbers (the reference's
 *   predictions/predictions_<epoch>.csv and target.csv from np.savetxt).
 */
import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { readSafetensorsF32 } from '../io/safetensors.js';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { calculateStats, type ClassificationStats } from './metrics.js';

export interface Matrix {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}

/** Largest prediction file read (2 GB: AudioSet eval 17,249 x 527 float64 is 73 MB). */
export const MAX_PRED_BYTES = 2 * 1024 * 1024 * 1024;

/** Reads an [N,K] matrix; `tensor` names the safetensors entry to use. */
export function loadMatrix(path: string, tensor: string): Matrix {
  checkedSize(path);
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') return matrixFromSafetensors(readSafetensorsF32(path), path, tensor);
  const bytes = readFileSync(path);
  if (ext === '.npy') return parseNpy(bytes, path);
  if (ext === '.csv' || ext === '.txt') return parseCsvMatrix(bytes.toString('utf8'), path);
  throw fileError(path, `unknown prediction format '${ext}' (use .safetensors, .npy or .csv)`);
}

function checkedSize(path: string): number {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw fileError(path, 'file not found');
  }
  if (size > MAX_PRED_BYTES) throw fileError(path, `larger than ${MAX_PRED_BYTES} bytes`);
  return size;
}

function matrixFromSafetensors(
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  path: string,
  tensor: string,
): Matrix {
  const t = tensors.get(tensor);
  if (!t)
    throw fileError(
      path,
      `no tensor named '${tensor}' (has: ${[...tensors.keys()].slice(0, 10).join(', ') || 'none'})`,
    );
  if (t.shape.length !== 2)
    throw fileError(path, `tensor '${tensor}' has shape [${t.shape}], expected [N, K]`);
  return { data: t.data, rows: t.shape[0], cols: t.shape[1] };
}

const NPY_DTYPES: Record<string, { size: number; read: (v: DataView, o: number) => number }> = {
  '<f4': { size: 4, read: (v, o) => v.getFloat32(o, true) },
  '<f8': { size: 8, read: (v, o) => v.getFloat64(o, true) },
  '<i4': { size: 4, read: (v, o) => v.getInt32(o, true) },
  '<i8': { size: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
  '|u1': { size: 1, read: (v, o) => v.getUint8(o) },
  '|b1': { size: 1, read: (v, o) => v.getUint8(o) },
};

/** A 2-D .npy array (format versions 1-3). */
export function parseNpy(bytes: Uint8Array, what: string): Matrix {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b))
    throw fileError(what, 'not a .npy file (bad magic)');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (headerLen > 65536 || headerStart + headerLen > bytes.length)
    throw fileError(what, '.npy header is truncated or too large');
  const header = Buffer.from(bytes.subarray(headerStart, headerStart + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined)
    throw fileError(what, '.npy header lacks descr / fortran_order / shape');
  const dt = NPY_DTYPES[descr];
  if (!dt)
    throw fileError(what, `.npy dtype '${descr}' is not supported (float32/64, int32/64, uint8, bool)`);
  if (fortran === 'True') throw fileError(what, '.npy array is in Fortran order; save it C-contiguous');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.length !== 2 || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw fileError(what, `.npy shape (${shapeText}) is not [N, K]`);
  const count = shape[0] * shape[1];
  const dataStart = headerStart + headerLen;
  if (dataStart + count * dt.size !== bytes.length)
    throw fileError(
      what,
      `.npy data holds ${bytes.length - dataStart} bytes, shape needs ${count * dt.size}`,
    );
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = dt.read(view, dataStart + i * dt.size);
  return { data: descr === '<f4' ? Float32Array.from(out) : out, rows: shape[0], cols: shape[1] };
}

/** Rows of comma (or whitespace) separated numbers; '#' lines are comments (np.savetxt headers). */
export function parseCsvMatrix(text: string, what: string): Matrix {
  const values: number[] = [];
  let cols = -1;
  let rows = 0;
  const lines = text.split(/\r?\n/);
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li].trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/[,\s]+/);
    if (cols < 0) cols = fields.length;
    else if (fields.length !== cols)
      throw fileError(what, `line ${li + 1} has ${fields.length} values, expected ${cols}`);
    for (const f of fields) {
      const v = Number(f);
      if (f === '' || (Number.isNaN(v) && f.toLowerCase() !== 'nan'))
        throw fileError(what, `line ${li + 1}: '${f}' is not a number`);
      values.push(v);
    }
    rows++;
  }
  if (rows === 0) throw fileError(what, 'no rows');
  return { data: Float64Array.from(values), rows, cols };
}

export interface PredictionReport extends ClassificationStats {
  N: number;
  K: number;
  classNames?: string[];
}

/**
 * Metrics of stored predictions. The target comes from `targetPath`, else from a `target`
 * tensor inside the prediction safetensors file.
 */
export function evaluatePredictionFiles(
  predPath: string,
  targetPath?: string,
  classNames?: string[],
): PredictionReport {
  let pred: Matrix;
  let target: Matrix;
  if (targetPath) {
    pred = loadMatrix(predPath, 'pred');
    target = loadMatrix(targetPath, 'target');
  } else {
    if (extname(predPath).toLowerCase() !== '.safetensors')
      throw new OptionError(
        (n) => `${predPath}: pass ${n('target')} (only a .safetensors prediction file can carry the target)`,
      );
    checkedSize(predPath);
    const tensors = readSafetensorsF32(predPath);
    pred = matrixFromSafetensors(tensors, predPath, 'pred');
    if (!tensors.has('target'))
      throw new OptionError((n) => `${predPath}: no 'target' tensor in the file; pass ${n('target')}`);
    target = matrixFromSafetensors(tensors, predPath, 'target');
  }
  if (pred.rows !== target.rows || pred.cols !== target.cols) {
    throw new UserError(
      `prediction [${pred.rows}, ${pred.cols}] and target [${target.rows}, ${target.cols}] shapes differ (${predPath}${targetPath ? `, ${targetPath}` : ''})`,
    );
  }
  if (classNames && classNames.length !== pred.cols) {
    throw new UserError(`label CSV names ${classNames.length} classes but the predictions have ${pred.cols}`);
  }
  const stats = calculateStats(pred.data, target.data, pred.rows, pred.cols);
  return { ...stats, N: pred.rows, K: pred.cols, classNames };
}

/** JSON form: NaN -> null, per-class rows with index and name. */
export function reportToJson(r: PredictionReport): Record<string, unknown> {
  const num = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    N: r.N,
    K: r.K,
    mAP: num(r.mAP),
    mAUC: num(r.mAUC),
    mAUCDefined: num(r.mAUCDefined),
    dprime: num(r.dprime),
    acc: num(r.acc),
    undefinedAucClasses: r.undefinedAucClasses,
    perClass: r.perClass.map((c, k) => ({
      index: k,
      name: r.classNames?.[k],
      positives: c.positives,
      ap: num(c.ap),
      auc: c.aucDefined ? c.auc : -1,
    })),
  };
}

/** The human-readable report: summary lines, then one row per class. */
export function formatReport(r: PredictionReport, opts: { perClass?: boolean } = {}): string {
  const f = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : 'nan');
  const lines = [
    `samples ${r.N}, classes ${r.K}`,
    `mAP   ${f(r.mAP)}`,
    `mAUC  ${f(r.mAUC)}${r.undefinedAucClasses.length ? `  (reference convention: ${r.undefinedAucClasses.length} class(es) without positives or negatives count as AUC -1; mean over the other classes ${f(r.mAUCDefined)})` : ''}`,
    `d'    ${f(r.dprime)}`,
    `acc   ${f(r.acc)}  (argmax of target vs argmax of output; meaningful for single-label data)`,
  ];
  if (opts.perClass ?? true) {
    const names = r.classNames ?? r.perClass.map((_, k) => `class ${k}`);
    const w = Math.min(40, Math.max(5, ...names.map((n) => n.length)));
    lines.push(
      '',
      `${'index'.padStart(5)}  ${'class'.padEnd(w)}  ${'pos'.padStart(6)}  ${'AP'.padStart(7)}  ${'AUC'.padStart(7)}`,
    );
    r.perClass.forEach((c, k) => {
      const name = names[k].length > w ? names[k].slice(0, w - 1) + '…' : names[k];
      lines.push(
        `${String(k).padStart(5)}  ${name.padEnd(w)}  ${String(c.positives).padStart(6)}  ${f(c.ap).padStart(7)}  ${(c.aucDefined ? f(c.auc) : '-1').padStart(7)}`,
      );
    });
  }
  return lines.join('\n');
}
