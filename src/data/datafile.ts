/**
 * Datasets: the official CAV-MAE datafile JSON, our own manifest, label CSVs and the balanced
 * sampling weight file (docs/reference.md#unreadable-samples, #balanced-sampling, #data-files).
 *
 * Contract:
 * - `loadDataset(path)` auto-detects the format and returns one normalised item list:
 *   official  `{"data": [{wav, video_id, video_path, labels: "mid1,mid2"}]}`, frames at
 *             `<video_path>/frame_<i>/<video_id>.jpg`;
 *   manifest  `{"items": [{id, audio, image | video, label | labels}]}`, paths relative to the
 *             manifest's folder; `image` is one still used for every frame; `video` is a video
 *             file or a folder of frame images.
 *   Relative paths in an official datafile are resolved against the datafile's folder (the
 *   reference resolves them against its working directory; the released lists use absolute paths).
 * - Label strings stay strings here; `resolveLabels` maps them to class indices through a label
 *   CSV (`index,mid,display_name`; a label may be a mid or a display name) or through an index
 *   built from the data (`buildLabelMap`: unique labels in natural sort order).
 * - Every error is a UserError naming the file and, for entries, the entry index.
 * - Sizes are bounded: datafiles up to 1 GiB, label CSVs up to 64 MiB, weight files up to 256 MiB.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { UserError, fileError } from '../util/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { scanJsonList } from './json-scan.js';

export const MAX_DATAFILE_BYTES = 1 << 30;
export const MAX_LABEL_CSV_BYTES = 64 << 20;
export const MAX_WEIGHT_FILE_BYTES = 256 << 20;

/** Where the visual frames of an item come from. */
export type VisualSource =
  /** Official layout: frame i at `<dir>/frame_<i>/<videoId>.jpg`. */
  | { kind: 'frames'; dir: string; videoId: string }
  /** One still image used for every frame index. */
  | { kind: 'image'; path: string }
  /** A video file (frames extracted by the vision module) or a folder of frame images. */
  | { kind: 'video'; path: string };

export interface DataItem {
  id: string;
  audioPath: string;
  visual: VisualSource;
  /** Label strings as written in the file (mids or names); may be empty for unlabelled data. */
  labels: string[];
}

export interface Dataset {
  /** Absolute path of the file the items came from. */
  path: string;
  format: 'datafile' | 'manifest';
  items: DataItem[];
}

/** Path of frame `i` of an item in the official layout. */
export function officialFramePath(dir: string, videoId: string, i: number): string {
  return join(dir, `frame_${i}`, `${videoId}.jpg`);
}

/** A whole file, refused past `maxBytes` (untrusted inputs never decide how much is read). */
export function readBounded(path: string, maxBytes: number, what: string): Buffer {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw fileError(path, 'not a regular file');
    size = st.size;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw fileError(
      path,
      `cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  if (size > maxBytes) throw fileError(path, `${what} is ${size} bytes; the limit is ${maxBytes}`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw fileError(path, `cannot read ${what}: ${(e as Error).message}`);
  }
}

/** Reads a datafile or manifest (format auto-detected by its top-level key). */
export function loadDataset(path: string): Dataset {
  const abs = resolve(path);
  const buf = readBounded(abs, MAX_DATAFILE_BYTES, 'data file');
  const { key, entries } = scanJsonList(buf, ['data', 'items'], abs);
  return key === 'data' ? parseOfficialEntries(abs, entries) : parseManifestEntries(abs, entries);
}

/** Parses an in-memory JSON value (tests, programmatic use); `path` gives the base folder. */
export function parseDataset(path: string, json: unknown): Dataset {
  const abs = resolve(path);
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw fileError(abs, 'expected a JSON object');
  const o = json as Record<string, unknown>;
  if (Array.isArray(o.data) && Array.isArray(o.items))
    throw fileError(abs, 'holds both "data" and "items" lists; expected one');
  if (Array.isArray(o.data)) return parseOfficialEntries(abs, o.data);
  if (Array.isArray(o.items)) return parseManifestEntries(abs, o.items);
  throw fileError(abs, 'no "data" (official datafile) or "items" (manifest) list at the top level');
}

function entryError(file: string, list: string, i: number, problem: string): UserError {
  return fileError(file, `${list} entry ${i}: ${problem}`);
}

function splitLabels(s: string): string[] {
  if (s.indexOf(',') < 0) {
    const t = s.trim();
    return t ? [t] : [];
  }
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

/** Absolute paths are kept as written (no normalisation cost for millions of entries). */
function resolveFrom(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

function parseOfficialEntries(file: string, entries: unknown[]): Dataset {
  const base = dirname(file);
  let lastDir = '';
  let lastDirResolved = '';
  const items: DataItem[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (!e || typeof e !== 'object' || Array.isArray(e))
      throw entryError(file, 'data', i, 'expected an object');
    const o = e as Record<string, unknown>;
    const str = (k: string, allowEmpty = false): string => {
      const v = o[k];
      if (typeof v !== 'string') throw entryError(file, 'data', i, `missing string field "${k}"`);
      if (!allowEmpty && v.length === 0) throw entryError(file, 'data', i, `field "${k}" is empty`);
      return v;
    };
    const wav = str('wav');
    const videoId = str('video_id');
    const videoPath = str('video_path');
    const labels = str('labels', true);
    // Most entries share one frame folder: resolve it once.
    if (videoPath !== lastDir) {
      lastDir = videoPath;
      lastDirResolved = resolveFrom(base, videoPath);
    }
    items[i] = {
      id: videoId,
      audioPath: resolveFrom(base, wav),
      visual: { kind: 'frames', dir: lastDirResolved, videoId },
      labels: splitLabels(labels),
    };
  }
  return { path: file, format: 'datafile', items };
}

function parseManifestEntries(file: string, entries: unknown[]): Dataset {
  const base = dirname(file);
  const items: DataItem[] = new Array(entries.length);
  const seen = new Map<string, number>();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (!e || typeof e !== 'object' || Array.isArray(e))
      throw entryError(file, 'items', i, 'expected an object');
    const o = e as Record<string, unknown>;
    const path = (k: string): string | undefined => {
      const v = o[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || v.length === 0)
        throw entryError(file, 'items', i, `"${k}" must be a non-empty path string`);
      return resolveFrom(base, v);
    };
    const audio = path('audio');
    if (!audio) throw entryError(file, 'items', i, 'missing "audio"');
    const image = path('image');
    const video = path('video');
    if (image && video) throw entryError(file, 'items', i, 'has both "image" and "video"; give one');
    if (!image && !video) throw entryError(file, 'items', i, 'missing "image" or "video"');
    let id: string;
    if (o.id === undefined) id = basename(audio, extname(audio));
    else if (typeof o.id === 'string' && o.id.length > 0) id = o.id;
    else if (typeof o.id === 'number' && Number.isFinite(o.id)) id = String(o.id);
    else throw entryError(file, 'items', i, '"id" must be a non-empty string');
    const prev = seen.get(id);
    if (prev !== undefined) throw entryError(file, 'items', i, `duplicate id "${id}" (also entry ${prev})`);
    seen.set(id, i);
    let labels: string[] = [];
    if (o.label !== undefined && o.labels !== undefined)
      throw entryError(file, 'items', i, 'has both "label" and "labels"; give one');
    const raw = o.label ?? o.labels;
    if (raw === undefined || raw === null) labels = [];
    else if (typeof raw === 'string')
      labels = o.label !== undefined ? [raw.trim()].filter(Boolean) : splitLabels(raw);
    else if (typeof raw === 'number' && Number.isFinite(raw)) labels = [String(raw)];
    else if (Array.isArray(raw)) {
      labels = raw.map((x, j) => {
        if (typeof x === 'string' && x.trim()) return x.trim();
        if (typeof x === 'number' && Number.isFinite(x)) return String(x);
        throw entryError(file, 'items', i, `label ${j} must be a non-empty string`);
      });
    } else
      throw entryError(file, 'items', i, '"label"/"labels" must be a string, a number or a list of strings');
    items[i] = {
      id,
      audioPath: audio,
      visual: image ? { kind: 'image', path: image } : { kind: 'video', path: video! },
      labels,
    };
  }
  return { path: file, format: 'manifest', items };
}

// ---------------------------------------------------------------------------------------------
// Labels

export interface LabelMap {
  /** Number of classes K (the model's output units). */
  numLabels: number;
  /** mids[index] */
  mids: string[];
  /** names[index] (display names) */
  names: string[];
  /** Where the map came from: a CSV path, or 'data' when built from the dataset. */
  source: string;
}

/** Splits CSV text into rows of fields (RFC 4180: quoted fields, "" escapes, CRLF or LF). */
export function parseCsv(text: string, what: string, maxRows = 4_000_000): string[][] {
  const rows: string[][] = [];
  let field = '';
  let row: string[] = [];
  let quoted = false;
  let i = 0;
  let line = 1;
  const n = text.length;
  let fieldStarted = false;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      if (field.length > 0) throw fileError(what, `line ${line}: a quote inside an unquoted field`);
      quoted = true;
      fieldStarted = true;
      i++;
      continue;
    }
    if (c === ',') {
      row.push(field);
      field = '';
      fieldStarted = true;
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      if (fieldStarted || field.length > 0 || row.length > 0) {
        row.push(field);
        rows.push(row);
        if (rows.length > maxRows) throw fileError(what, `more than ${maxRows} rows`);
      }
      row = [];
      field = '';
      fieldStarted = false;
      if (c === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      continue;
    }
    field += c;
    i++;
  }
  if (quoted) throw fileError(what, `line ${line}: unterminated quoted field`);
  if (fieldStarted || field.length > 0 || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Reads a label CSV with header `index,mid,display_name` (AudioSet / VGGSound style). */
export function loadLabelCsv(path: string): LabelMap {
  const abs = resolve(path);
  const text = readBounded(abs, MAX_LABEL_CSV_BYTES, 'label CSV')
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  return parseLabelCsv(text, abs);
}

export function parseLabelCsv(text: string, what: string): LabelMap {
  const rows = parseCsv(text, what);
  if (rows.length === 0) throw fileError(what, 'empty label CSV');
  const header = rows[0].map((h) => h.trim().toLowerCase());
  if (header.length !== 3 || header[0] !== 'index' || header[1] !== 'mid' || header[2] !== 'display_name')
    throw fileError(what, `expected the header "index,mid,display_name", got "${rows[0].join(',')}"`);
  const k = rows.length - 1;
  if (k === 0) throw fileError(what, 'no label rows after the header');
  const mids: string[] = new Array(k);
  const names: string[] = new Array(k);
  const seenMid = new Map<string, number>();
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== 3)
      throw fileError(what, `row ${r}: expected 3 fields (index,mid,display_name), got ${row.length}`);
    const idxText = row[0].trim();
    if (!/^\d+$/.test(idxText))
      throw fileError(what, `row ${r}: index "${row[0]}" is not a non-negative integer`);
    const idx = Number(idxText);
    if (idx >= k)
      throw fileError(
        what,
        `row ${r}: index ${idx} is out of range for ${k} labels (indices must be 0..${k - 1})`,
      );
    if (mids[idx] !== undefined) throw fileError(what, `row ${r}: index ${idx} appears twice`);
    const mid = row[1].trim();
    if (!mid) throw fileError(what, `row ${r}: empty mid`);
    const prev = seenMid.get(mid);
    if (prev !== undefined) throw fileError(what, `row ${r}: mid "${mid}" appears twice (also row ${prev})`);
    seenMid.set(mid, r);
    mids[idx] = mid;
    names[idx] = row[2].trim();
  }
  return { numLabels: k, mids, names, source: what };
}

/** Writes a label CSV in the official format (names are always quoted). */
export function writeLabelCsv(path: string, map: { mids: string[]; names: string[] }): void {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const lines = ['index,mid,display_name'];
  for (let i = 0; i < map.mids.length; i++) lines.push(`${i},${map.mids[i]},${q(map.names[i])}`);
  writeFileAtomic(path, lines.join('\n') + '\n');
}

/** Natural order: digit runs compare as numbers ("2" < "10"), other runs by code unit. */
export function naturalCompare(a: string, b: string): number {
  const re = /(\d+|\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const sx = x.replace(/^0+(?=\d)/, '');
      const sy = y.replace(/^0+(?=\d)/, '');
      if (sx.length !== sy.length) return sx.length - sy.length;
      if (sx !== sy) return sx < sy ? -1 : 1;
      return x.length - y.length; // "01" after "1"
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * A label index built from the data when no CSV is given: the unique label strings of all
 * given datasets in natural sort order. Build it from the training AND validation sets together
 * (or pass a CSV) so that both use the same class indices.
 */
export function buildLabelMap(...datasets: Dataset[]): LabelMap {
  const set = new Set<string>();
  for (const d of datasets) for (const it of d.items) for (const l of it.labels) set.add(l);
  const labels = [...set].sort(naturalCompare);
  return { numLabels: labels.length, mids: labels, names: labels.slice(), source: 'data' };
}

/**
 * Maps each item's label strings to class indices. A label matches a mid first, then a display
 * name. Unknown labels are an error naming the data file and the entry.
 */
export function resolveLabels(dataset: Dataset, map: LabelMap): Int32Array[] {
  const byMid = new Map<string, number>();
  const byName = new Map<string, number>();
  map.mids.forEach((m, i) => byMid.set(m, i));
  map.names.forEach((m, i) => {
    if (!byName.has(m)) byName.set(m, i);
  });
  const list = dataset.format === 'datafile' ? 'data' : 'items';
  return dataset.items.map((it, i) => {
    const out = new Int32Array(it.labels.length);
    it.labels.forEach((l, j) => {
      const idx = byMid.get(l) ?? byName.get(l);
      if (idx === undefined)
        throw fileError(
          dataset.path,
          `${list} entry ${i} (id "${it.id}"): label "${l}" is not in ${map.source === 'data' ? 'the label index' : map.source}`,
        );
      out[j] = idx;
    });
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Balanced sampling weights (docs/reference.md#balanced-sampling)

/**
 * label_weight[c] = 1000 / (count_c + 0.01) over the dataset; sample weight = sum of label_weight
 * over the sample's labels (a label listed twice counts twice, as in the reference loop).
 */
export function computeSampleWeights(itemLabels: Int32Array[], numLabels: number): Float64Array {
  const count = new Float64Array(numLabels);
  for (const ls of itemLabels) for (const c of ls) count[c] += 1;
  const labelWeight = new Float64Array(numLabels);
  for (let c = 0; c < numLabels; c++) labelWeight[c] = 1000 / (count[c] + 0.01);
  const out = new Float64Array(itemLabels.length);
  for (let i = 0; i < itemLabels.length; i++) {
    let s = 0;
    for (const c of itemLabels[i]) s += labelWeight[c];
    out[i] = s;
  }
  return out;
}

/** The reference's weight file name: `<datafile without .json>_weight.csv`. */
export function defaultWeightPath(dataPath: string): string {
  const p = resolve(dataPath);
  return (p.endsWith('.json') ? p.slice(0, -5) : p) + '_weight.csv';
}

/** One float per line, same order as the datafile, written atomically (full double precision). */
export function writeWeights(path: string, weights: ArrayLike<number>): void {
  const lines: string[] = new Array(weights.length);
  for (let i = 0; i < weights.length; i++) lines[i] = weights[i].toExponential(17);
  writeFileAtomic(path, lines.join('\n') + '\n');
}

/** Reads a weight file; `expectedCount` (the dataset size) is checked when given. */
export function readWeights(path: string, expectedCount?: number): Float64Array {
  const abs = resolve(path);
  const text = readBounded(abs, MAX_WEIGHT_FILE_BYTES, 'weight file').toString('utf8');
  const lines = text.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop();
  const out = new Float64Array(lines.length);
  let sum = 0;
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].trim();
    const v = s === '' ? NaN : Number(s);
    if (!Number.isFinite(v) || v < 0)
      throw fileError(abs, `line ${i + 1}: "${lines[i]}" is not a non-negative number`);
    out[i] = v;
    sum += v;
  }
  if (expectedCount !== undefined && out.length !== expectedCount)
    throw fileError(abs, `has ${out.length} weights but the data file has ${expectedCount} entries`);
  if (!(sum > 0)) throw fileError(abs, 'all weights are zero');
  return out;
}
