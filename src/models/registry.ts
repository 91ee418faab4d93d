/**
 * Building models by config, loading and saving checkpoints.
 *
 * - `buildModel(config)` builds the pretraining model (CAVMAE) or the fine-tuning model (CAVMAEFT)
 *   of any kind of the family (KIND_TRAITS.task).
 * - `resolveModelConfig` finds the config: an explicit one (object, preset name or JSON file),
 *   else the checkpoint's metadata (ours: "cavmae.config"; Python exports: "config" + "class" +
 *   "label_dim"), else a preset whose parameter shapes match the checkpoint exactly.
 * - `loadModel(path)` loads a .pth or .safetensors (through src/io/checkpoint.ts, which strips
 *   `module.`), reports missing / unexpected keys as PyTorch does, refuses shape mismatches and,
 *   unless told otherwise, refuses missing keys other than a fresh fine-tuning head.
 * - `loadSyncInit` initialises a Sync model from CAV-MAE weights (IN-initial.pth, made by
 *   `cavmae adapt-mae`, or any CAV-MAE / Sync checkpoint): see its contract.
 * - `saveModel(path, model)` writes safetensors with the config in the metadata (fp32, or bf16
 *   storage when asked).
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  CONFIG_KEY,
  DEFAULT_PREPROCESS,
  checkpointConfig,
  compareKeys,
  formatKeyReport,
  loadStateDict,
  saveCheckpoint,
  withStateDict,
  type KeyReport,
  type PreprocessConstants,
} from '../io/checkpoint.js';
import type { WritableTensor } from '../io/safetensors.js';
import { kernels } from '../kernels/index.js';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { CAVMAE, HEAD_AUDIO, HEAD_VISUAL, type CreateOptions } from './cavmae.js';
import { CAVMAEFT, isHeadParam } from './cavmae-ft.js';
import {
  KIND_TRAITS,
  MODEL_KINDS,
  SYNC_KEYS,
  VARIANT_TRAITS,
  configToJson,
  presetConfig,
  presetNames,
  presetPartial,
  resolveConfig,
  type CavmaeConfig,
  type ModelKind,
  type Variant,
} from './config.js';

export type AnyModel = CAVMAE | CAVMAEFT;

export function buildModel(config: CavmaeConfig, opts: CreateOptions = {}): AnyModel {
  return KIND_TRAITS[config.model].task === 'finetune'
    ? CAVMAEFT.create(config, opts)
    : CAVMAE.create(config, opts);
}

/** The official class name of a model (what Python exports store under "class"). */
export function officialClassName(config: CavmaeConfig): string {
  return KIND_TRAITS[config.model].className;
}

/** The model kind of a stored class name, if known. */
function kindOfClass(name: string | undefined): ModelKind | undefined {
  return MODEL_KINDS.find((k) => KIND_TRAITS[k].className === name);
}

/** The weight of a fine-tuning head's output layer ([label_dim, W]) in a state dict. */
const HEAD_OUTPUT = { mlp: 'mlp_head.1.weight', aggregator: 'classifier_head.weight' } as const;
export const headOutputName = (head: 'mlp' | 'aggregator'): string => HEAD_OUTPUT[head];

/** Parameter names and shapes of a config, without allocating anything. */
export function parameterShapes(config: CavmaeConfig): Map<string, number[]> {
  const m = buildModel(config, { allocate: false, init: false });
  return new Map(m.arena.params.map((p) => [p.name, [...p.shape]]));
}

/** A config argument: a preset name, a JSON file, or an object. */
export function readConfigArg(arg: string | Record<string, unknown>): Record<string, unknown> {
  if (typeof arg !== 'string') return arg;
  const preset = presetPartial(arg);
  if (preset) return { ...preset };
  if (!existsSync(arg))
    throw new UserError(`${arg}: neither a preset (${presetNames().join(', ')}) nor an existing JSON file`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(arg, 'utf8'));
  } catch (e) {
    throw fileError(arg, `not valid JSON (${(e as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw fileError(arg, 'a config must be a JSON object');
  const obj = parsed as Record<string, unknown>;
  // Accept a summary with a nested "config" (as the golden fixtures' JSON files have).
  if (obj.config && typeof obj.config === 'object' && !Array.isArray(obj.config)) {
    const inner = { ...(obj.config as Record<string, unknown>) };
    const kind = kindOfClass(typeof obj.class === 'string' ? obj.class : undefined);
    if (kind && inner.model === undefined) inner.model = kind;
    // The Sync fixtures keep our non-official keys (shared_depth) apart, under "extras".
    if (obj.extras && typeof obj.extras === 'object' && !Array.isArray(obj.extras))
      Object.assign(inner, obj.extras as Record<string, unknown>);
    return inner;
  }
  return obj;
}

/** The config stored in a checkpoint's metadata, if any. */
export function configFromMetadata(
  metadata: Record<string, string>,
  what: string,
): Record<string, unknown> | undefined {
  if (metadata[CONFIG_KEY] !== undefined) {
    const c = checkpointConfig(metadata, what);
    if (!c || typeof c !== 'object' || Array.isArray(c))
      throw fileError(what, `metadata "${CONFIG_KEY}" is not a JSON object`);
    return c as Record<string, unknown>;
  }
  if (metadata.config !== undefined) {
    let c: unknown;
    try {
      c = JSON.parse(metadata.config);
    } catch (e) {
      throw fileError(what, `metadata "config" is not valid JSON (${(e as Error).message})`);
    }
    if (!c || typeof c !== 'object' || Array.isArray(c))
      throw fileError(what, 'metadata "config" is not a JSON object');
    const out = { ...(c as Record<string, unknown>) };
    if (metadata.label_dim !== undefined && out.label_dim === undefined)
      out.label_dim = Number(metadata.label_dim);
    const kind = kindOfClass(metadata.class);
    if (kind) out.model = kind;
    if (metadata.extras !== undefined) {
      let extras: unknown;
      try {
        extras = JSON.parse(metadata.extras);
      } catch (e) {
        throw fileError(what, `metadata "extras" is not valid JSON (${(e as Error).message})`);
      }
      if (extras && typeof extras === 'object' && !Array.isArray(extras)) Object.assign(out, extras);
    }
    return out;
  }
  return undefined;
}

/** A preset whose parameter set matches the checkpoint's shapes exactly (label_dim taken from the head). */
export function inferConfigFromShapes(
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
): CavmaeConfig | undefined {
  for (const name of presetNames()) {
    const kt = KIND_TRAITS[presetPartial(name)!.model ?? 'cavmae'];
    const head = kt.head && tensors.get(HEAD_OUTPUT[kt.head]);
    let cfg: CavmaeConfig;
    try {
      cfg = presetConfig(name, head ? { label_dim: head.shape[0] } : {});
    } catch {
      continue;
    }
    if ((cfg.label_dim !== undefined) !== (head !== undefined)) continue;
    const r = compareKeys(parameterShapes(cfg), tensors);
    if (r.missing.length === 0 && r.unexpected.length === 0 && r.shapeMismatch.length === 0) return cfg;
  }
  return undefined;
}

export interface LoadModelOptions {
  /** Explicit config (object, preset name or JSON path); overrides the checkpoint's. */
  config?: string | Record<string, unknown>;
  /** Build this kind regardless of the checkpoint (e.g. a fine-tuning model from pretrained weights). */
  kind?: ModelKind;
  /** Extra config keys applied last (e.g. { label_dim: 10 }). */
  overrides?: Record<string, unknown>;
  /** Refuse any missing or unexpected key (default false). */
  strict?: boolean;
  /** Accept these missing keys (default: only a fine-tuning model's fresh head). */
  allowMissing?: (name: string) => boolean;
  /** Allocate the gradient buffer now (default false: inference). */
  grad?: boolean;
  /** Seed of the initialisation of parameters the checkpoint does not provide. */
  seed?: number;
  /**
   * An int8 inference model (CreateOptions.int8): GEMM weights quantised as they are read and
   * never held in fp32; it runs on int8 tapes only.
   */
  int8?: boolean;
}

export interface LoadedModel<M extends AnyModel = AnyModel> {
  model: M;
  config: CavmaeConfig;
  report: KeyReport;
  format: 'pth' | 'safetensors';
  /** PyTorch's wording of the key report. */
  reportText: string;
}

export function resolveModelConfig(
  path: string,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  metadata: Record<string, string>,
  opts: Pick<LoadModelOptions, 'config' | 'kind' | 'overrides'> = {},
): CavmaeConfig {
  let partial: Record<string, unknown> | undefined;
  let where = path;
  if (opts.config !== undefined) {
    partial = readConfigArg(opts.config);
    where = typeof opts.config === 'string' ? opts.config : 'config';
  } else {
    partial = configFromMetadata(metadata, path);
  }
  if (!partial) {
    const inferred = inferConfigFromShapes(tensors);
    if (!inferred) {
      throw new OptionError(
        (n) =>
          `${path}: carries no model config and matches no preset; pass ${n('config')} (a preset name or a JSON file of the constructor arguments)`,
      );
    }
    partial = configToJson(inferred);
  }
  partial = { ...partial, ...(opts.overrides ?? {}) };
  if (opts.kind && opts.kind !== partial.model) {
    partial.model = opts.kind;
    const head = KIND_TRAITS[opts.kind].head;
    if (head) {
      // A pretraining config seen as a fine-tuning one: drop the decoder and pretraining-only keys.
      const pretrainOnly = Object.entries(SYNC_KEYS)
        .filter(([, v]) => !('finetune' in v))
        .map(([k]) => k);
      for (const k of [
        'decoder_embed_dim',
        'decoder_depth',
        'decoder_num_heads',
        'norm_pix_loss',
        ...pretrainOnly,
      ])
        delete partial[k];
      // One-modality encoders fine-tune as such; the other variants share the full encoder.
      if (!VARIANT_TRAITS[partial.variant as Variant]?.ftMode) delete partial.variant;
      if (partial.tr_pos === false) delete partial.tr_pos;
      const out = tensors.get(HEAD_OUTPUT[head]);
      if (partial.label_dim === undefined && out) partial.label_dim = out.shape[0];
    }
  }
  return resolveConfig(partial, where);
}

/** Loads a checkpoint into a freshly built model (with an explicit fine-tuning kind: a CAVMAEFT). */
export function loadModel(
  path: string,
  opts: LoadModelOptions & { kind: 'cavmae-ft' | 'cavmae-sync-ft' },
): LoadedModel<CAVMAEFT>;
export function loadModel(path: string, opts?: LoadModelOptions): LoadedModel;
export function loadModel(path: string, opts: LoadModelOptions = {}): LoadedModel {
  // Tensors are read from the file as they are copied (safetensors): one at a time in memory.
  return withStateDict(path, ({ tensors, metadata, format }) => {
    const config = resolveModelConfig(path, tensors, metadata, opts);
    // Check shapes on the layout before allocating (a wrong config may name a huge model).
    const keys = compareKeys(parameterShapes(config), tensors);
    checkShapes(keys, path);
    // A checkpoint holding every parameter overwrites them all: the random initialisation would
    // be thrown away (it was ~80% of CavMae.load for the base model). With any parameter missing
    // (a fine-tuning head), the whole model is initialised as before, so the missing ones get the
    // same values from the same random stream.
    const model = buildModel(config, {
      seed: opts.seed,
      grad: opts.grad ?? false,
      init: keys.missing.length > 0,
      int8: opts.int8,
    });
    const report = loadInto(model, tensors, path, opts);
    return { model, config, report, format, reportText: formatKeyReport(report) };
  });
}

/**
 * Copies a state dict into a model (PyTorch's load_state_dict). Shape mismatches always throw;
 * missing keys throw unless allowed; unexpected keys throw only when strict.
 */
export function loadInto(
  model: AnyModel,
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
  what: string,
  opts: Pick<LoadModelOptions, 'strict' | 'allowMissing'> = {},
): KeyReport {
  const expected = new Map(model.arena.params.map((p) => [p.name, p.shape]));
  const report = compareKeys(expected, tensors);
  checkShapes(report, what);
  const allow = opts.allowMissing ?? ((name: string) => model instanceof CAVMAEFT && isHeadParam(name));
  const badMissing = report.missing.filter((k) => opts.strict || !allow(k));
  if (badMissing.length > 0) {
    throw new OptionError(
      (n) =>
        `${what}: ${badMissing.length} parameter(s) missing from the checkpoint (check ${n('config')}): ${preview(badMissing)}`,
    );
  }
  if (opts.strict && report.unexpected.length > 0) {
    throw fileError(what, `${report.unexpected.length} unexpected key(s): ${preview(report.unexpected)}`);
  }
  model.arena.load(tensors, what);
  return report;
}

function checkShapes(report: KeyReport, what: string): void {
  const m = report.shapeMismatch;
  if (m.length === 0) return;
  const s = (d: number[]): string => `[${d.join(',')}]`;
  throw new OptionError(
    (n) =>
      `${what}: does not fit the model config (check ${n('config')}): ${m.length} size mismatch(es), e.g. ${m[0].key}: checkpoint ${s(m[0].got)}, model ${s(m[0].expected)}`,
  );
}

function preview(keys: string[], n = 8): string {
  return keys.slice(0, n).join(', ') + (keys.length > n ? `, ... (${keys.length - n} more)` : '');
}

/**
 * The preprocessing a model's inputs need, from its config: the fbank length and image side the
 * model was built for (the reference defaults otherwise). Sync models' `audio_length` is the
 * segment length, which is what their loader takes as `targetLength` (src/data/sync.ts).
 */
export function preprocessForConfig(
  config: { audio_length: number; img_size: number },
  audioNorm: { mean: number; std: number } = DEFAULT_PREPROCESS.audio,
): PreprocessConstants {
  return {
    audio: {
      ...DEFAULT_PREPROCESS.audio,
      targetLength: config.audio_length,
      mean: audioNorm.mean,
      std: audioNorm.std,
    },
    image: { ...DEFAULT_PREPROCESS.image, size: config.img_size },
  };
}

/**
 * Saves a model as safetensors with its config and preprocessing constants (atomic; by default
 * the constants follow the config, so a 32 px / 112-frame model is not served 224 px / 1024
 * frames). bf16 storage halves the file.
 */
export function saveModel(
  path: string,
  model: AnyModel,
  opts: { dtype?: 'F32' | 'BF16'; extra?: Record<string, string>; preprocess?: PreprocessConstants } = {},
): void {
  const tensors = new Map<string, WritableTensor>();
  for (const p of model.arena.params) {
    if (opts.dtype === 'BF16') {
      const bits = new Uint16Array(p.size);
      kernels().f32ToBf16(bits, p.data, p.size);
      tensors.set(p.name, { dtype: 'BF16', shape: p.shape, data: bits });
    } else {
      tensors.set(p.name, { dtype: 'F32', shape: p.shape, data: p.data });
    }
  }
  saveCheckpoint(path, tensors, {
    config: configToJson(model.config),
    preprocess: opts.preprocess ?? preprocessForConfig(model.config),
    extra: { class: officialClassName(model.config), ...(opts.extra ?? {}) },
  });
}

/*
 * Initialising a CAV-MAE Sync model from CAV-MAE weights (docs/sync-training.md): `IN-initial.pth`
 * (the ImageNet MAE adapted to CAV-MAE, `cavmae adapt-mae`) or any CAV-MAE / Sync checkpoint.
 * - `adaptToSyncGrid` drops `pos_embed_a` and `decoder_pos_embed_a` (the recipe deletes them
 *   before loading: their 8 × 64 grid does not fit the 8 × L/16 segment grid, and the fresh
 *   model already holds the sin-cos tables of its own grid), and the visual tables only when
 *   their grid differs. Nothing else is changed.
 * - `loadSyncInit` loads the rest with strict=False semantics: the Sync-only parameters
 *   (`register_tokens`, `cls_token_a/_v`, `constrative_head_*`) and the dropped tables keep their
 *   fresh initialisation; any other missing key is refused (it means the encoder sizes differ:
 *   check the config). Unexpected keys are reported, not refused.
 */
type StateDict = Map<string, { shape: number[]; data: Float32Array }>;

const AUDIO_TABLES = ['pos_embed_a', 'decoder_pos_embed_a'];
const VISUAL_TABLES = ['pos_embed_v', 'decoder_pos_embed_v'];

/** Parameters a CAV-MAE checkpoint cannot provide (fresh in a Sync model). */
export function isSyncOnlyParam(name: string): boolean {
  return (
    name === 'register_tokens' ||
    name === 'cls_token_a' ||
    name === 'cls_token_v' ||
    name.startsWith(`${HEAD_AUDIO}.`) ||
    name.startsWith(`${HEAD_VISUAL}.`)
  );
}

/**
 * The state dict without the position tables the Sync model recomputes (audio always, visual
 * on a grid change), given the model's expected shapes.
 */
export function adaptToSyncGrid(
  tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
  expected: ReadonlyMap<string, readonly number[]>,
): { tensors: StateDict; dropped: string[] } {
  const out: StateDict = new Map(tensors);
  const dropped: string[] = [];
  const sameShape = (k: string): boolean => {
    const a = tensors.get(k)!.shape;
    const b = expected.get(k);
    return b !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
  };
  for (const k of [...AUDIO_TABLES, ...VISUAL_TABLES]) {
    if (!tensors.has(k)) continue;
    if (AUDIO_TABLES.includes(k) || !sameShape(k)) {
      out.delete(k);
      dropped.push(k);
    }
  }
  return { tensors: out, dropped };
}

export interface SyncInitReport extends KeyReport {
  /** Position tables left at the model's own sin-cos values. */
  dropped: string[];
  reportText: string;
}

/** Loads CAV-MAE / IN-initial weights into a freshly built Sync model (see the contract). */
export function loadSyncInit(model: AnyModel, path: string): SyncInitReport {
  const { tensors } = loadStateDict(path);
  const expected = new Map(model.arena.params.map((p) => [p.name, p.shape]));
  const { tensors: adapted, dropped } = adaptToSyncGrid(tensors, expected);
  const mismatch = compareKeys(expected, adapted).shapeMismatch;
  if (mismatch.length > 0) {
    const m = mismatch[0];
    throw fileError(
      path,
      `does not fit the Sync model (check the encoder sizes in the config): ${m.key} is [${m.got.join(',')}], the model has [${m.expected.join(',')}]`,
    );
  }
  const droppedSet = new Set(dropped);
  const report = loadInto(model, adapted, path, {
    allowMissing: (name) => isSyncOnlyParam(name) || droppedSet.has(name),
  });
  return { ...report, dropped, reportText: formatKeyReport(report) };
}
