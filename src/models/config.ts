/**
 * The model-config schema of the one model family (CAV-MAE and CAV-MAE Sync) and its traits
 * tables: what each model kind and each variant is, in one place, instead of string comparisons
 * spread over the code.
 *
 * Keys: the official constructors' argument names, so a config JSON written for the PyTorch
 * classes works here unchanged (src/models/cav_mae.py: CAVMAE / CAVMAEFT.__init__; for Sync,
 * cav_mae_sync.py: CAVMAE / CAVMAEFT.__init__), plus our extras:
 * - model: 'cavmae' | 'cavmae-ft' | 'cavmae-sync' | 'cavmae-sync-ft' (KIND_TRAITS); a config
 *   with label_dim and no model is 'cavmae-ft'.
 * - variant (paper table 1, VARIANT_TRAITS): 'cavmae' | 'av-mae' | 'cav' | 'vanilla-av-mae' |
 *   'audio-mae' | 'visual-mae'. Fine-tuning takes 'cavmae' and the one-modality variants.
 * - shared_depth: number of shared layers (the reference hard-wires 12 - modality_specific_depth,
 *   the default); chain_shared_layers: false reproduces the reference's contrastive stream (each
 *   shared layer applied to the same input, only the last one counts), true chains them.
 * - contrast_loss_weight, mae_loss_weight, mask_ratio_a/_v, mask_mode, bidirect_contrast,
 *   contrastive_groups: defaults of the pretraining forward.
 * - The Sync parts (SYNC_KEYS; refused on CAV-MAE kinds, filled with the official defaults on
 *   Sync kinds): num_register_tokens, cls_token, total_frame, keep_register_tokens; pretraining
 *   only: global_local_losses, contrastive_heads, multi_ratio_masking; fine-tuning only:
 *   aggregate, mode. A Sync model's `audio_length` is the SEGMENT length, not the clip length.
 *   CAV-MAE is Sync with every part off (`modelDims`: no registers, no global token, F = 1).
 *
 * The named configs (presets): PRESETS are the CAV-MAE layouts, SYNC_PRESETS the CAV-MAE Sync ones;
 * `presetConfig`, `readConfigArg` and `inferConfigFromShapes` look in both.
 *
 * Stored configs (checkpoints, run.json) keep exactly the keys a kind has, so files written by
 * earlier versions still load and resume.
 */
import { UserError } from '../util/errors.js';
import { MASK_MODES, type MaskMode } from './masking.js';

export type ModelKind = 'cavmae' | 'cavmae-ft' | 'cavmae-sync' | 'cavmae-sync-ft';
export type Variant = 'cavmae' | 'av-mae' | 'cav' | 'vanilla-av-mae' | 'audio-mae' | 'visual-mae';
/** Modalities a Sync fine-tuning model reads (its constructor's `mode`, fixed at construction). */
export type SyncFtMode = 'multimodal' | 'audioonly' | 'videoonly';
export const SYNC_FT_MODES: readonly SyncFtMode[] = ['multimodal', 'audioonly', 'videoonly'];

/** What a model kind is. */
export interface KindTraits {
  /** Pretraining model (encoder, decoder, losses) or fine-tuning model (encoder + a head). */
  task: 'pretrain' | 'finetune';
  /** The Sync family: (segment, frame) pair inputs, F per clip, the Sync keys. */
  sync: boolean;
  /** Fine-tuning head: mean-pooled `mlp_head`, or the Sync clip aggregator over F pair features. */
  head?: 'mlp' | 'aggregator';
  /**
   * Which shared layers forward_feat runs: 'chained' (cav_mae.py: CAVMAE.forward_feat chains
   * every shared layer) or 'contrastive' (cav_mae_sync.py: forward_feat is the contrastive
   * stream, whose loop keeps only the last shared layer's output unless chain_shared_layers).
   */
  featStream: 'chained' | 'contrastive';
  /** Class name stored under "class" in checkpoint metadata (Python exports: the first two). */
  className: string;
  /** The pretraining and fine-tuning kinds of the same family. */
  pretrainKind: ModelKind;
  finetuneKind: ModelKind;
}

export const KIND_TRAITS: Readonly<Record<ModelKind, KindTraits>> = {
  cavmae: {
    task: 'pretrain',
    sync: false,
    featStream: 'chained',
    className: 'CAVMAE',
    pretrainKind: 'cavmae',
    finetuneKind: 'cavmae-ft',
  },
  'cavmae-ft': {
    task: 'finetune',
    sync: false,
    head: 'mlp',
    featStream: 'chained',
    className: 'CAVMAEFT',
    pretrainKind: 'cavmae',
    finetuneKind: 'cavmae-ft',
  },
  'cavmae-sync': {
    task: 'pretrain',
    sync: true,
    featStream: 'contrastive',
    className: 'CAVMAESync',
    pretrainKind: 'cavmae-sync',
    finetuneKind: 'cavmae-sync-ft',
  },
  'cavmae-sync-ft': {
    task: 'finetune',
    sync: true,
    head: 'aggregator',
    featStream: 'contrastive',
    className: 'CAVMAESyncFT',
    pretrainKind: 'cavmae-sync',
    finetuneKind: 'cavmae-sync-ft',
  },
};
export const MODEL_KINDS = Object.keys(KIND_TRAITS) as readonly ModelKind[];

/** What a table-1 variant is. */
export interface VariantTraits {
  audio: boolean;
  video: boolean;
  /** A decoder (and the reconstruction loss). */
  decoder: boolean;
  /** The contrastive streams exist (λc may be > 0). */
  contrastive: boolean;
  /** Default loss weights of the pretraining forward; λc 0 defines the variants without a contrastive term. */
  contrastWeight: number;
  maeWeight: number;
  /** forward_feat and embeddings use the joint LayerNorms and `norm`: the modality ones are never trained. */
  jointFeat: boolean;
  /** One joint encoder of all layers (modality_specific_depth 0). */
  jointEncoder: boolean;
  /** A fine-tuning model takes the variant; one-modality encoders fine-tune in their only mode. */
  finetunes: boolean;
  ftMode?: 'audioonly' | 'videoonly';
}

const FULL = {
  audio: true,
  video: true,
  decoder: true,
  contrastive: true,
  contrastWeight: 0.01,
  maeWeight: 1,
  jointFeat: false,
  jointEncoder: false,
  finetunes: false,
};
export const VARIANT_TRAITS: Readonly<Record<Variant, VariantTraits>> = {
  cavmae: { ...FULL, finetunes: true },
  'av-mae': { ...FULL, contrastWeight: 0, jointFeat: true },
  cav: { ...FULL, decoder: false, maeWeight: 0 },
  'vanilla-av-mae': { ...FULL, contrastive: false, contrastWeight: 0, jointFeat: true, jointEncoder: true },
  'audio-mae': {
    ...FULL,
    video: false,
    contrastive: false,
    contrastWeight: 0,
    finetunes: true,
    ftMode: 'audioonly',
  },
  'visual-mae': {
    ...FULL,
    audio: false,
    contrastive: false,
    contrastWeight: 0,
    finetunes: true,
    ftMode: 'videoonly',
  },
};
export const VARIANTS = Object.keys(VARIANT_TRAITS) as readonly Variant[];

export const kindTraits = (c: { model: ModelKind }): KindTraits => KIND_TRAITS[c.model];
export const variantTraits = (c: { variant: Variant }): VariantTraits => VARIANT_TRAITS[c.variant];

export interface CavmaeConfig {
  model: ModelKind;
  img_size: number;
  audio_length: number;
  patch_size: number;
  in_chans: number;
  embed_dim: number;
  modality_specific_depth: number;
  num_heads: number;
  decoder_embed_dim: number;
  decoder_depth: number;
  decoder_num_heads: number;
  mlp_ratio: number;
  norm_pix_loss: boolean;
  tr_pos: boolean;
  /** Number of classes of the fine-tuning head (fine-tuning kinds only). */
  label_dim?: number;

  variant: Variant;
  shared_depth: number;
  chain_shared_layers: boolean;
  contrast_loss_weight: number;
  mae_loss_weight: number;
  mask_ratio_a: number;
  mask_ratio_v: number;
  mask_mode: MaskMode;
  bidirect_contrast: boolean;
  contrastive_groups: number;

  /** The Sync parts (Sync kinds only; see SYNC_KEYS). */
  num_register_tokens?: number;
  cls_token?: boolean;
  global_local_losses?: boolean;
  total_frame?: number;
  contrastive_heads?: boolean;
  multi_ratio_masking?: boolean;
  keep_register_tokens?: boolean;
  aggregate?: string;
  mode?: SyncFtMode;
}

/** Mel bins of the spectrogram input: fixed by the reference (8 frequency patches of 16). */
export const MEL_BINS = 128;

const OFFICIAL_DEFAULTS = {
  img_size: 224,
  audio_length: 1024,
  patch_size: 16,
  in_chans: 3,
  embed_dim: 768,
  modality_specific_depth: 11,
  num_heads: 12,
  decoder_embed_dim: 512,
  decoder_depth: 8,
  decoder_num_heads: 16,
  mlp_ratio: 4,
  norm_pix_loss: false,
} as const;

type KeyType = 'number' | 'boolean' | 'string';

/**
 * The Sync keys: JSON type, which Sync kinds take them, and the official constructors'
 * defaults (cav_mae_sync.py: CAVMAE.__init__ for pretraining, CAVMAEFT.__init__ for fine-tuning).
 */
export const SYNC_KEYS = {
  num_register_tokens: { type: 'number', pretrain: 4, finetune: 0 },
  cls_token: { type: 'boolean', pretrain: false, finetune: false },
  total_frame: { type: 'number', pretrain: 16, finetune: 16 },
  keep_register_tokens: { type: 'boolean', pretrain: false, finetune: false },
  global_local_losses: { type: 'boolean', pretrain: false },
  contrastive_heads: { type: 'boolean', pretrain: true },
  multi_ratio_masking: { type: 'boolean', pretrain: false },
  // The official default aggregate is 'None', whose multimodal path cannot run (it mean-pools a
  // [B*F, 2D] matrix over its feature axis into a LayerNorm(D)); the self-attention aggregator
  // (docs/sync-reference.md) is the default here.
  aggregate: { type: 'string', finetune: 'self_attention_cls' },
  mode: { type: 'string', finetune: 'multimodal' },
} as const satisfies Record<string, { type: KeyType; pretrain?: unknown; finetune?: unknown }>;
type SyncKey = keyof typeof SYNC_KEYS;

const KEYS: Record<keyof CavmaeConfig, KeyType> = {
  model: 'string',
  img_size: 'number',
  audio_length: 'number',
  patch_size: 'number',
  in_chans: 'number',
  embed_dim: 'number',
  modality_specific_depth: 'number',
  num_heads: 'number',
  decoder_embed_dim: 'number',
  decoder_depth: 'number',
  decoder_num_heads: 'number',
  mlp_ratio: 'number',
  norm_pix_loss: 'boolean',
  tr_pos: 'boolean',
  label_dim: 'number',
  variant: 'string',
  shared_depth: 'number',
  chain_shared_layers: 'boolean',
  contrast_loss_weight: 'number',
  mae_loss_weight: 'number',
  mask_ratio_a: 'number',
  mask_ratio_v: 'number',
  mask_mode: 'string',
  bidirect_contrast: 'boolean',
  contrastive_groups: 'number',
  ...(Object.fromEntries(Object.entries(SYNC_KEYS).map(([k, v]) => [k, v.type])) as Record<SyncKey, KeyType>),
};

/** Keys of the official constructors that we accept and ignore (no effect on the maths here). */
const IGNORED_KEYS = new Set(['norm_layer', 'class']);

/**
 * A complete, validated config from a partial one (a preset, a JSON file, checkpoint metadata).
 * `where` names the source in error messages.
 */
export function resolveConfig(partial: Record<string, unknown>, where = 'config'): CavmaeConfig {
  const bad = (msg: string): UserError => new UserError(`${where}: ${msg}`);
  const given: Partial<CavmaeConfig> = {};
  for (const [k, v] of Object.entries(partial)) {
    if (IGNORED_KEYS.has(k)) continue;
    const type = KEYS[k as keyof CavmaeConfig];
    if (!type) throw bad(`unknown key "${k}" (known: ${Object.keys(KEYS).join(', ')})`);
    if (v === null || v === undefined) continue;
    // Metadata written by Python may carry numbers as strings ("label_dim": "10").
    let value: unknown = v;
    if (type === 'number' && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)))
      value = Number(v);
    if (type === 'boolean' && (v === 'true' || v === 'false')) value = v === 'true';
    if (typeof value !== type) throw bad(`"${k}" must be a ${type}, got ${JSON.stringify(v)}`);
    (given as Record<string, unknown>)[k] = value;
  }
  const model: ModelKind = given.model ?? (given.label_dim !== undefined ? 'cavmae-ft' : 'cavmae');
  if (!MODEL_KINDS.includes(model))
    throw bad(`"model" must be one of ${MODEL_KINDS.join(', ')}, got "${model}"`);
  const variant = given.variant ?? 'cavmae';
  if (!VARIANTS.includes(variant))
    throw bad(`"variant" must be one of ${VARIANTS.join(', ')}, got "${variant}"`);
  const vt = VARIANT_TRAITS[variant];
  const msd =
    given.modality_specific_depth ?? (vt.jointEncoder ? 0 : OFFICIAL_DEFAULTS.modality_specific_depth);
  const cfg: CavmaeConfig = {
    ...OFFICIAL_DEFAULTS,
    tr_pos: KIND_TRAITS[model].task === 'finetune',
    ...given,
    model,
    variant,
    modality_specific_depth: msd,
    shared_depth: given.shared_depth ?? 12 - msd,
    chain_shared_layers: given.chain_shared_layers ?? false,
    contrast_loss_weight: given.contrast_loss_weight ?? vt.contrastWeight,
    mae_loss_weight: given.mae_loss_weight ?? vt.maeWeight,
    mask_ratio_a: given.mask_ratio_a ?? 0.75,
    mask_ratio_v: given.mask_ratio_v ?? 0.75,
    mask_mode: given.mask_mode ?? 'unstructured',
    bidirect_contrast: given.bidirect_contrast ?? false,
    contrastive_groups: given.contrastive_groups ?? 1,
  };
  applySyncDefaults(cfg, given, bad);
  validate(cfg, bad);
  return cfg;
}

/** Fills the official defaults of a Sync kind's keys (in place), or refuses Sync keys on a CAV-MAE kind. */
function applySyncDefaults(
  cfg: CavmaeConfig,
  given: Partial<CavmaeConfig>,
  bad: (msg: string) => UserError,
): void {
  const present = (Object.keys(SYNC_KEYS) as SyncKey[]).filter((k) => given[k] !== undefined);
  const kt = KIND_TRAITS[cfg.model];
  if (!kt.sync) {
    if (present.length > 0)
      throw bad(
        `"${present[0]}" is a CAV-MAE Sync key: set "model" to "cavmae-sync" (or "cavmae-sync-ft") to use it`,
      );
    return;
  }
  const spec = (k: SyncKey): { pretrain?: unknown; finetune?: unknown } => SYNC_KEYS[k];
  const foreign = present.filter((k) => !(kt.task in spec(k)));
  if (foreign.length > 0)
    throw bad(
      `"${foreign[0]}" does not apply to model "${cfg.model}" (${kt.task === 'finetune' ? 'a pretraining-only key' : 'a fine-tuning-only key'})`,
    );
  const rec = cfg as unknown as Record<string, unknown>;
  for (const k of Object.keys(SYNC_KEYS) as SyncKey[]) {
    const d = spec(k)[kt.task];
    if (d !== undefined && rec[k] === undefined) rec[k] = d;
  }
}

function validate(c: CavmaeConfig, bad: (msg: string) => UserError): void {
  const posInt = (k: keyof CavmaeConfig, min = 1): void => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < min) throw bad(`"${k}" must be an integer >= ${min}, got ${v}`);
  };
  const kt = KIND_TRAITS[c.model];
  const vt = VARIANT_TRAITS[c.variant];
  if (!MASK_MODES.includes(c.mask_mode))
    throw bad(`"mask_mode" must be one of ${MASK_MODES.join(', ')}, got "${c.mask_mode}"`);
  if (c.patch_size !== 16)
    throw bad(`"patch_size" must be 16 (the reference's patch embedding), got ${c.patch_size}`);
  if (c.in_chans !== 3) throw bad(`"in_chans" must be 3, got ${c.in_chans}`);
  posInt('img_size', 16);
  posInt('audio_length', 16);
  if (c.img_size % 16 !== 0) throw bad(`"img_size" must be a multiple of 16, got ${c.img_size}`);
  if (c.audio_length % 16 !== 0) throw bad(`"audio_length" must be a multiple of 16, got ${c.audio_length}`);
  posInt('embed_dim', 4);
  posInt('num_heads');
  posInt('modality_specific_depth', 0);
  posInt('shared_depth', 0);
  if (c.embed_dim % c.num_heads !== 0)
    throw bad(`"embed_dim" ${c.embed_dim} is not divisible by "num_heads" ${c.num_heads}`);
  if (c.embed_dim % 4 !== 0)
    throw bad(`"embed_dim" must be a multiple of 4 (sin-cos tables), got ${c.embed_dim}`);
  if (!(c.mlp_ratio > 0)) throw bad(`"mlp_ratio" must be positive, got ${c.mlp_ratio}`);
  if (c.modality_specific_depth + c.shared_depth === 0) throw bad('the encoder has no layers');
  if (vt.jointEncoder && c.modality_specific_depth !== 0)
    throw bad(`variant "${c.variant}" is one joint encoder: "modality_specific_depth" must be 0`);
  if (kt.sync) validateSync(c, bad);
  if (kt.task === 'finetune') {
    posInt('label_dim');
    if (!vt.finetunes) {
      const ok = VARIANTS.filter((v) => VARIANT_TRAITS[v].finetunes).map((v) => `"${v}"`);
      throw bad(
        `the fine-tuning model takes variant ${ok.slice(0, -1).join(', ')} or ${ok[ok.length - 1]} (one modality), got "${c.variant}"`,
      );
    }
  } else if (vt.decoder) {
    posInt('decoder_embed_dim', 4);
    posInt('decoder_depth', 0);
    posInt('decoder_num_heads');
    if (c.decoder_embed_dim % c.decoder_num_heads !== 0)
      throw bad(
        `"decoder_embed_dim" ${c.decoder_embed_dim} is not divisible by "decoder_num_heads" ${c.decoder_num_heads}`,
      );
    if (c.decoder_embed_dim % 4 !== 0)
      throw bad(`"decoder_embed_dim" must be a multiple of 4, got ${c.decoder_embed_dim}`);
  }
  for (const k of ['mask_ratio_a', 'mask_ratio_v'] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) throw bad(`"${k}" must be in [0, 1), got ${c[k]}`);
  }
  posInt('contrastive_groups');
  if (!(c.contrast_loss_weight >= 0) || !(c.mae_loss_weight >= 0)) throw bad('loss weights must be >= 0');
}

function validateSync(c: CavmaeConfig, bad: (msg: string) => UserError): void {
  if (c.variant !== 'cavmae')
    throw bad(`model "${c.model}" has no table-1 variants: "variant" must be "cavmae", got "${c.variant}"`);
  const R = c.num_register_tokens!;
  if (!(Number.isInteger(R) && R >= 0)) throw bad(`"num_register_tokens" must be an integer >= 0, got ${R}`);
  if (!(Number.isInteger(c.total_frame) && c.total_frame! >= 1))
    throw bad(`"total_frame" must be an integer >= 1, got ${c.total_frame}`);
  if (KIND_TRAITS[c.model].head !== 'aggregator') return;
  if (c.aggregate !== 'self_attention_cls')
    throw bad(
      `"aggregate" must be "self_attention_cls" (the clip aggregator, docs/sync-reference.md; the release's 'None' and 'concat_mlp' cannot run on 16 frames), got "${c.aggregate}"`,
    );
  if (!SYNC_FT_MODES.includes(c.mode as SyncFtMode))
    throw bad(`"mode" must be one of ${SYNC_FT_MODES.join(', ')}, got "${c.mode}"`);
  const width = c.mode === 'multimodal' ? 2 * c.embed_dim : c.embed_dim;
  if (width % c.num_heads !== 0)
    throw bad(`the aggregator width ${width} is not divisible by "num_heads" ${c.num_heads}`);
}

/** The `tiny` CPU layout (see PRESETS.tiny): encoder, and decoder with norm_pix_loss. */
const TINY_ENCODER = {
  img_size: 32,
  audio_length: 128,
  embed_dim: 128,
  modality_specific_depth: 3,
  shared_depth: 1,
  num_heads: 4,
};
const TINY_DECODER = { decoder_embed_dim: 64, decoder_depth: 1, decoder_num_heads: 4, norm_pix_loss: true };

/** Presets. `base` is the paper's (recipe values: 1024 frames, norm_pix_loss True). */
export const PRESETS: Record<string, Partial<CavmaeConfig>> = {
  base: { model: 'cavmae', norm_pix_loss: true },
  'base-ft': { model: 'cavmae-ft', label_dim: 527 },
  /**
   * tiny: what learned on two CPU cores (docs/model.md, docs/demo.md): a shallower, wider
   * encoder (3 modality-specific + 1 shared layer of width 128, 4 heads), a 64-wide one-layer
   * decoder, 32x32 images (4 patches: a random visual tower already tells MNIST digits apart at
   * 32 px, far better than at 64 px) and 128 frames (1.28 s, 64 patches). Its pretraining recipe
   * is `tiny` (src/train/recipes.ts).
   */
  tiny: { model: 'cavmae', ...TINY_ENCODER, ...TINY_DECODER },
  'tiny-ft': { model: 'cavmae-ft', ...TINY_ENCODER, label_dim: 10 },
  /** The golden fixture test/fixtures/official/model_small/cavmae_small (made by the official code). */
  'small-fixture': {
    model: 'cavmae',
    img_size: 64,
    audio_length: 128,
    embed_dim: 48,
    modality_specific_depth: 11,
    num_heads: 3,
    decoder_embed_dim: 32,
    decoder_depth: 2,
    decoder_num_heads: 4,
    norm_pix_loss: true,
  },
  'small-fixture-ft': {
    model: 'cavmae-ft',
    img_size: 64,
    audio_length: 128,
    embed_dim: 48,
    modality_specific_depth: 11,
    num_heads: 3,
    label_dim: 10,
  },
};

/**
 * Sync presets. Shapes: `sync-base` is the released retrieval model (cav_mae_sync.pth: L = 416
 * rows = 4 s segments, R = 8, global tokens, built without contrastive heads as retrieval.py
 * does); `sync-base-heads` the same with the constructor's default heads (a checkpoint trained
 * with heads). `sync-tiny` is the `tiny` CPU model on 96-row (0.96 s) segments with the Sync
 * tokens, for the AV-digits demo. λc is the research recipe's 0.1 (docs/sync-training.md).
 */
export const SYNC_PRESETS: Record<string, Partial<CavmaeConfig>> = {
  'sync-base': {
    model: 'cavmae-sync',
    audio_length: 416,
    num_register_tokens: 8,
    cls_token: true,
    contrastive_heads: false,
    total_frame: 16,
    norm_pix_loss: true,
    contrast_loss_weight: 0.1,
  },
  'sync-base-heads': {
    model: 'cavmae-sync',
    audio_length: 416,
    num_register_tokens: 8,
    cls_token: true,
    contrastive_heads: true,
    total_frame: 16,
    norm_pix_loss: true,
    contrast_loss_weight: 0.1,
  },
  'sync-base-ft': {
    model: 'cavmae-sync-ft',
    audio_length: 416,
    num_register_tokens: 8,
    cls_token: true,
    total_frame: 16,
    label_dim: 527,
    aggregate: 'self_attention_cls',
    mode: 'multimodal',
  },
  'sync-tiny': {
    model: 'cavmae-sync',
    ...TINY_ENCODER,
    img_size: 64, // the Sync AV-digits runs were measured at 64 px (docs/sync-training.md)
    audio_length: 96,
    ...TINY_DECODER,
    num_register_tokens: 4,
    cls_token: true,
    contrastive_heads: false,
    total_frame: 16,
    contrast_loss_weight: 0.1,
  },
  'sync-tiny-ft': {
    model: 'cavmae-sync-ft',
    ...TINY_ENCODER,
    img_size: 64,
    audio_length: 96,
    num_register_tokens: 4,
    cls_token: true,
    total_frame: 16,
    label_dim: 10,
    aggregate: 'self_attention_cls',
    mode: 'multimodal',
  },
};

export function presetNames(): string[] {
  return [...Object.keys(PRESETS), ...Object.keys(SYNC_PRESETS)];
}

/** A preset's partial config (CAV-MAE or Sync), or undefined. */
export function presetPartial(name: string): Partial<CavmaeConfig> | undefined {
  if (Object.prototype.hasOwnProperty.call(PRESETS, name)) return PRESETS[name];
  if (Object.prototype.hasOwnProperty.call(SYNC_PRESETS, name)) return SYNC_PRESETS[name];
  return undefined;
}

/** A preset by name (with optional overrides). */
export function presetConfig(name: string, overrides: Record<string, unknown> = {}): CavmaeConfig {
  const p = presetPartial(name);
  if (!p) throw new UserError(`unknown preset "${name}" (known: ${presetNames().join(', ')})`);
  return resolveConfig({ ...p, ...overrides }, `preset ${name}`);
}

/** Derived sizes and parts used everywhere (CAV-MAE: the Sync parts off). */
export interface ModelDims {
  /** Audio tokens: 8 frequency rows × audio_length/16 time columns. */
  La: number;
  /** Visual tokens: (img_size/16)². */
  Lv: number;
  fRows: number;
  tCols: number;
  vGrid: number;
  hasAudio: boolean;
  hasVideo: boolean;
  hasDecoder: boolean;
  /** Register tokens per modality (0 for CAV-MAE). */
  registers: number;
  /** Leading global tokens per modality: 1 with cls_token, else 0. */
  lead: number;
  /** (segment, frame) pairs per clip: total_frame for Sync, 1 for CAV-MAE (one clip, one vector). */
  framesPerClip: number;
}

export function modelDims(c: CavmaeConfig): ModelDims {
  const fRows = MEL_BINS / c.patch_size;
  const tCols = c.audio_length / c.patch_size;
  const vGrid = c.img_size / c.patch_size;
  const vt = VARIANT_TRAITS[c.variant];
  return {
    La: fRows * tCols,
    Lv: vGrid * vGrid,
    fRows,
    tCols,
    vGrid,
    hasAudio: vt.audio,
    hasVideo: vt.video,
    hasDecoder: KIND_TRAITS[c.model].task === 'pretrain' && vt.decoder,
    registers: c.num_register_tokens ?? 0,
    lead: c.cls_token ? 1 : 0,
    framesPerClip: c.total_frame ?? 1,
  };
}

/** The config as stored in checkpoints (every key explicit). */
export function configToJson(c: CavmaeConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}
