/**
 * Model configuration: the official constructor's argument names (so a config JSON written for
 * the PyTorch classes works here unchanged) plus our extras, and the named presets.
 *
 * Official keys (CAVMAE / CAVMAEFT): img_size, audio_length, patch_size (16), in_chans (3),
 * embed_dim, modality_specific_depth, num_heads, decoder_embed_dim, decoder_depth,
 * decoder_num_heads, mlp_ratio, norm_pix_loss, tr_pos, label_dim (present = CAVMAEFT).
 *
 * Extras (ours):
 * - model: 'cavmae' (pretraining) | 'cavmae-ft' (fine-tuning; implied by label_dim).
 * - variant (paper table 1): 'cavmae' | 'av-mae' (λc = 0) | 'cav' (no reconstruction, no
 *   decoder) | 'vanilla-av-mae' (one joint encoder of all layers over the concatenated masked
 *   tokens, no contrastive streams) | 'audio-mae' | 'visual-mae' (one modality, no contrastive).
 *   A fine-tuning model takes 'audio-mae' / 'visual-mae' too: the one-modality encoder + head.
 * - shared_depth: number of shared ("unified") layers; the reference hard-wires
 *   12 - modality_specific_depth, which stays the default.
 * - chain_shared_layers: false reproduces the reference's contrastive streams (each shared layer
 *   applied to the same input, only the last one counts: spec 9.1 item 7); true chains them.
 * - contrast_loss_weight, mae_loss_weight, mask_ratio_a, mask_ratio_v, mask_mode,
 *   bidirect_contrast, contrastive_groups: defaults of the pretraining forward.
 *
 * CAV-MAE Sync ('cavmae-sync', 'cavmae-sync-ft'): the official Sync constructor keys
 * (num_register_tokens, cls_token, global_local_losses, total_frame, contrastive_heads,
 * multi_ratio_masking, keep_register_tokens; FT: aggregate, mode), defaults and presets in
 * sync-config.ts. They are absent from CAV-MAE configs.
 */
import { UserError } from '../util/errors.js';
import { MASK_MODES, type MaskMode } from './masking.js';
import { SYNC_PRESETS, applySyncDefaults, validateSync, type SyncFtMode } from './sync-config.js';

export type ModelKind = 'cavmae' | 'cavmae-ft' | 'cavmae-sync' | 'cavmae-sync-ft';
export const MODEL_KINDS: readonly ModelKind[] = ['cavmae', 'cavmae-ft', 'cavmae-sync', 'cavmae-sync-ft'];
export type Variant = 'cavmae' | 'av-mae' | 'cav' | 'vanilla-av-mae' | 'audio-mae' | 'visual-mae';
export const VARIANTS: readonly Variant[] = [
  'cavmae',
  'av-mae',
  'cav',
  'vanilla-av-mae',
  'audio-mae',
  'visual-mae',
];

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
  /** Number of classes of the fine-tuning head (CAVMAEFT only). */
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

  /** CAV-MAE Sync only (sync-config.ts); undefined for CAV-MAE models. */
  num_register_tokens?: number;
  cls_token?: boolean;
  global_local_losses?: boolean;
  total_frame?: number;
  contrastive_heads?: boolean;
  multi_ratio_masking?: boolean;
  keep_register_tokens?: boolean;
  /** cavmae-sync-ft: the clip aggregator ('self_attention_cls') and the modalities it reads. */
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

/** Presets. `base` is the paper's (recipe values: 1024 frames, norm_pix_loss True). */
export const PRESETS: Record<string, Partial<CavmaeConfig>> = {
  base: { model: 'cavmae', norm_pix_loss: true },
  'base-ft': { model: 'cavmae-ft', label_dim: 527 },
  /**
   * tiny: what learned on two CPU cores (docs/model.md, docs/demo.md): a shallower, wider
   * encoder (3 modality-specific + 1 shared layer of width 128, 4 heads), a 64-wide one-layer
   * decoder, 32x32 images (4 patches: a random visual tower already tells MNIST digits apart at
   * 32 px, far better than at 64 px) and 128 frames (1.28 s, 64 patches). Its pretraining recipe
   * is `tiny` (src/train/sync-pretrain.ts).
   */
  tiny: {
    model: 'cavmae',
    img_size: 32,
    audio_length: 128,
    embed_dim: 128,
    modality_specific_depth: 3,
    shared_depth: 1,
    num_heads: 4,
    decoder_embed_dim: 64,
    decoder_depth: 1,
    decoder_num_heads: 4,
    norm_pix_loss: true,
  },
  'tiny-ft': {
    model: 'cavmae-ft',
    img_size: 32,
    audio_length: 128,
    embed_dim: 128,
    modality_specific_depth: 3,
    shared_depth: 1,
    num_heads: 4,
    label_dim: 10,
  },
  /** The golden fixture ../shared/fixtures/model_small/cavmae_small. */
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

export function presetNames(): string[] {
  return [...Object.keys(PRESETS), ...Object.keys(SYNC_PRESETS)];
}

/** A preset's partial config (CAV-MAE or Sync), or undefined. */
export function presetPartial(name: string): Partial<CavmaeConfig> | undefined {
  if (Object.prototype.hasOwnProperty.call(PRESETS, name)) return PRESETS[name];
  if (Object.prototype.hasOwnProperty.call(SYNC_PRESETS, name)) return SYNC_PRESETS[name];
  return undefined;
}

const KEYS: Record<keyof CavmaeConfig, 'number' | 'boolean' | 'string'> = {
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
  num_register_tokens: 'number',
  cls_token: 'boolean',
  global_local_losses: 'boolean',
  total_frame: 'number',
  contrastive_heads: 'boolean',
  multi_ratio_masking: 'boolean',
  keep_register_tokens: 'boolean',
  aggregate: 'string',
  mode: 'string',
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
  const variant = given.variant ?? 'cavmae';
  const msd =
    given.modality_specific_depth ??
    (variant === 'vanilla-av-mae' ? 0 : OFFICIAL_DEFAULTS.modality_specific_depth);
  const cfg: CavmaeConfig = {
    ...OFFICIAL_DEFAULTS,
    tr_pos: model === 'cavmae-ft' || model === 'cavmae-sync-ft',
    ...given,
    model,
    variant,
    modality_specific_depth: msd,
    shared_depth: given.shared_depth ?? 12 - msd,
    chain_shared_layers: given.chain_shared_layers ?? false,
    contrast_loss_weight:
      given.contrast_loss_weight ?? (variant === 'cavmae' || variant === 'cav' ? 0.01 : 0),
    mae_loss_weight: given.mae_loss_weight ?? (variant === 'cav' ? 0 : 1),
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

function validate(c: CavmaeConfig, bad: (msg: string) => UserError): void {
  const posInt = (k: keyof CavmaeConfig, min = 1): void => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < min) throw bad(`"${k}" must be an integer >= ${min}, got ${v}`);
  };
  if (!MODEL_KINDS.includes(c.model))
    throw bad(`"model" must be one of ${MODEL_KINDS.join(', ')}, got "${c.model}"`);
  if (!VARIANTS.includes(c.variant))
    throw bad(`"variant" must be one of ${VARIANTS.join(', ')}, got "${c.variant}"`);
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
  if (c.variant === 'vanilla-av-mae' && c.modality_specific_depth !== 0) {
    throw bad('variant "vanilla-av-mae" is one joint encoder: "modality_specific_depth" must be 0');
  }
  validateSync(c, bad);
  if (c.model === 'cavmae-ft' || c.model === 'cavmae-sync-ft') {
    posInt('label_dim');
    if (c.variant !== 'cavmae' && c.variant !== 'audio-mae' && c.variant !== 'visual-mae') {
      throw bad(
        `the fine-tuning model takes variant "cavmae", "audio-mae" or "visual-mae" (one modality), got "${c.variant}"`,
      );
    }
  } else if (c.variant !== 'cav') {
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

/** A preset by name (with optional overrides). */
export function presetConfig(name: string, overrides: Record<string, unknown> = {}): CavmaeConfig {
  const p = presetPartial(name);
  if (!p) throw new UserError(`unknown preset "${name}" (known: ${presetNames().join(', ')})`);
  return resolveConfig({ ...p, ...overrides }, `preset ${name}`);
}

/** Derived sizes used everywhere. */
export function modelDims(c: CavmaeConfig): {
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
} {
  const fRows = MEL_BINS / c.patch_size;
  const tCols = c.audio_length / c.patch_size;
  const vGrid = c.img_size / c.patch_size;
  return {
    La: fRows * tCols,
    Lv: vGrid * vGrid,
    fRows,
    tCols,
    vGrid,
    hasAudio: c.variant !== 'visual-mae',
    hasVideo: c.variant !== 'audio-mae',
    hasDecoder: (c.model === 'cavmae' || c.model === 'cavmae-sync') && c.variant !== 'cav',
  };
}

/** The config as stored in checkpoints (every key explicit). */
export function configToJson(c: CavmaeConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}
