/**
 * Library side of `cavmae convert` and `cavmae inspect`: the commands only print what these
 * return. Inspect reads headers only (safetensors JSON, .pth pickle) and never tensor data.
 */
import { basename } from 'node:path';
import { withFile } from './bytes.js';
import {
  compareKeys,
  detectFormat,
  loadRawStateDict,
  saveCheckpoint,
  stripModulePrefix,
  type CheckpointFormat,
  type KeyReport,
} from './checkpoint.js';
import { toFloat32, type Dtype } from './dtypes.js';
import { inferLayout, cavmaeFtLayout, cavmaeLayout, type LayoutConfig } from './layouts.js';
import { findStateDict, withPthArchive } from './pth.js';
import { readSafetensorsHeader, type WritableTensor } from './safetensors.js';

export interface LayoutCheck {
  model: 'CAVMAE' | 'CAVMAEFT';
  config: LayoutConfig;
  report: KeyReport;
}

/** Compares keys with the official layout of the class the shapes suggest (undefined if not CAV-MAE-like). */
export function checkLayout(shapes: ReadonlyMap<string, readonly number[]>): LayoutCheck | undefined {
  const guess = inferLayout(shapes);
  if (!guess) return undefined;
  const expected = guess.model === 'CAVMAE' ? cavmaeLayout(guess.config) : cavmaeFtLayout(guess.config);
  return { ...guess, report: compareKeys(expected, shapes) };
}

export interface ConvertReport {
  input: string;
  output: string;
  format: CheckpointFormat;
  keys: number;
  nestedKey?: string;
  strippedModule: number;
  /** Count of tensors per stored dtype. */
  dtypes: Partial<Record<Dtype, number>>;
  /** Non-F32 tensors (written as stored unless toF32). */
  nonF32: { key: string; dtype: Dtype }[];
  layout?: LayoutCheck;
}

/** .pth (or .safetensors) -> safetensors; "module." stripped; dtypes kept unless toF32. */
export function convertCheckpoint(
  input: string,
  output: string,
  opts: { toF32?: boolean } = {},
): ConvertReport {
  const raw = loadRawStateDict(input);
  const dtypes: Partial<Record<Dtype, number>> = {};
  const nonF32: ConvertReport['nonF32'] = [];
  const out = new Map<string, WritableTensor>();
  for (const [key, t] of raw.tensors) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    if (t.dtype !== 'F32') nonF32.push({ key, dtype: t.dtype });
    if (opts.toF32 || t.dtype === 'F32')
      out.set(key, { dtype: 'F32', shape: t.shape, data: toFloat32(t.dtype, t.data) });
    else out.set(key, { dtype: t.dtype, shape: t.shape, data: t.data });
  }
  const shapes = new Map([...raw.tensors].map(([k, t]) => [k, t.shape] as const));
  saveCheckpoint(output, out, { extra: { ...raw.metadata, 'cavmae.source': basename(input) } });
  return {
    input,
    output,
    format: raw.format,
    keys: raw.tensors.size,
    nestedKey: raw.nestedKey,
    strippedModule: raw.strippedModule,
    dtypes,
    nonF32,
    layout: checkLayout(shapes),
  };
}

export interface InspectReport {
  file: string;
  format: CheckpointFormat;
  metadata: Record<string, string>;
  nestedKey?: string;
  strippedModule: number;
  tensors: { name: string; dtype: string; shape: number[] }[];
  elements: number;
  layout?: LayoutCheck;
}

/** Keys, shapes, dtypes and metadata of a checkpoint, without reading tensor data. */
export function inspectCheckpoint(path: string): InspectReport {
  return withFile(path, (src) => {
    const format = detectFormat(src);
    let list: { name: string; dtype: string; shape: number[] }[];
    let metadata: Record<string, string> = {};
    let nestedKey: string | undefined;
    if (format === 'safetensors') {
      const h = readSafetensorsHeader(src);
      list = h.entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape }));
      metadata = h.metadata;
    } else {
      const r = withPthArchive(src, (archive) => findStateDict(archive.root, archive.what));
      nestedKey = r.nestedKey;
      list = [...r.dict].map(([name, t]) => ({
        name,
        dtype: t.storage.dtype ?? t.storage.typeName,
        shape: t.shape,
      }));
    }
    const stripped = stripModulePrefix(new Map(list.map((t) => [t.name, t])), path);
    const tensors = [...stripped.tensors].map(([name, t]) => ({ ...t, name }));
    const elements = tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    return {
      file: path,
      format,
      metadata,
      nestedKey,
      strippedModule: stripped.stripped,
      tensors,
      elements,
      layout: checkLayout(new Map(tensors.map((t) => [t.name, t.shape]))),
    };
  });
}
