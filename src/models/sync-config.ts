/**
 * CAV-MAE Sync configuration (spec 8): the official constructor's extra arguments, their
 * defaults and checks, the Sync presets, and the Sync training recipe as data.
 *
 * Design contract:
 * - `model: "cavmae-sync"` is the official `CAVMAE` of cav_mae_sync.py (pretraining, retrieval);
 *   `model: "cavmae-sync-ft"` is its fine-tuning class (spec 8.7, research branch) with the
 *   `self_attention_cls` clip aggregator. Both reuse every CAV-MAE key (config.ts) and add the
 *   official names below; `audio_length` is the SEGMENT length L (rows), not the clip length.
 * - config.ts calls `applySyncDefaults` / `validateSync` from resolveConfig, so a Sync config is
 *   complete and checked exactly like a CAV-MAE one. The Sync keys are refused on CAV-MAE models.
 * - SYNC_PRESETS are kept apart from config.ts's PRESETS (whose entries are all CAV-MAE layouts);
 *   presetConfig / readConfigArg / inferConfigFromShapes look in both.
 */
import type { CavmaeConfig } from './config.js';

/** Sync keys and their JSON types (official constructor names, plus aggregate/mode of the FT class). */
export const SYNC_KEY_TYPES = {
  num_register_tokens: 'number',
  cls_token: 'boolean',
  global_local_losses: 'boolean',
  total_frame: 'number',
  contrastive_heads: 'boolean',
  multi_ratio_masking: 'boolean',
  keep_register_tokens: 'boolean',
  aggregate: 'string',
  mode: 'string',
} as const;

export type SyncKey = keyof typeof SYNC_KEY_TYPES;

/** Keys only the pretraining class takes / only the fine-tuning class takes. */
const PRETRAIN_ONLY: readonly SyncKey[] = ['global_local_losses', 'contrastive_heads', 'multi_ratio_masking'];
const FT_ONLY: readonly SyncKey[] = ['aggregate', 'mode'];

/** Modalities the fine-tuning model reads (its constructor's `mode`, fixed at construction). */
export type SyncFtMode = 'multimodal' | 'audioonly' | 'videoonly';
export const SYNC_FT_MODES: readonly SyncFtMode[] = ['multimodal', 'audioonly', 'videoonly'];

/** Defaults of the official constructors (cav_mae_sync.py CAVMAE and CAVMAEFT). */
const PRETRAIN_DEFAULTS = {
  num_register_tokens: 4,
  cls_token: false,
  global_local_losses: false,
  total_frame: 16,
  contrastive_heads: true,
  multi_ratio_masking: false,
  keep_register_tokens: false,
} as const;
const FT_DEFAULTS = {
  num_register_tokens: 0,
  cls_token: false,
  total_frame: 16,
  keep_register_tokens: false,
  // The official default aggregate is 'None', whose multimodal path cannot run (it mean-pools a
  // [B*F, 2D] matrix over its feature axis into a LayerNorm(D)); the aggregator of spec 8.7 is the default here.
  aggregate: 'self_attention_cls',
  mode: 'multimodal',
} as const;

export function isSyncKind(model: string): model is 'cavmae-sync' | 'cavmae-sync-ft' {
  return model === 'cavmae-sync' || model === 'cavmae-sync-ft';
}

/** A config with every Sync key filled (what the Sync classes read). */
export type SyncConfig = CavmaeConfig & {
  num_register_tokens: number;
  cls_token: boolean;
  total_frame: number;
  keep_register_tokens: boolean;
};

/** Narrows a resolved config to the Sync keys (throws if it is not a Sync config). */
export function syncConfig(c: CavmaeConfig): SyncConfig {
  if (!isSyncKind(c.model) || c.num_register_tokens === undefined)
    throw new Error(`a CAV-MAE Sync model built with a "${c.model}" config`);
  return c as SyncConfig;
}

/**
 * Fills the official defaults of the Sync keys into `cfg` (in place), or refuses Sync keys on a
 * CAV-MAE model. `given` holds only the keys the user gave.
 */
export function applySyncDefaults(
  cfg: CavmaeConfig,
  given: Partial<CavmaeConfig>,
  bad: (msg: string) => Error,
): void {
  const present = (Object.keys(SYNC_KEY_TYPES) as SyncKey[]).filter((k) => given[k] !== undefined);
  const rec = cfg as unknown as Record<string, unknown>;
  if (!isSyncKind(cfg.model)) {
    if (present.length > 0)
      throw bad(
        `"${present[0]}" is a CAV-MAE Sync key: set "model" to "cavmae-sync" (or "cavmae-sync-ft") to use it`,
      );
    return;
  }
  const ft = cfg.model === 'cavmae-sync-ft';
  const foreign = present.filter((k) => (ft ? PRETRAIN_ONLY : FT_ONLY).includes(k));
  if (foreign.length > 0)
    throw bad(
      `"${foreign[0]}" does not apply to model "${cfg.model}" (${ft ? 'a pretraining-only key' : 'a fine-tuning-only key'})`,
    );
  for (const [k, v] of Object.entries(ft ? FT_DEFAULTS : PRETRAIN_DEFAULTS))
    if (rec[k] === undefined) rec[k] = v;
}

export function validateSync(c: CavmaeConfig, bad: (msg: string) => Error): void {
  if (!isSyncKind(c.model)) return;
  const s = syncConfig(c);
  if (c.variant !== 'cavmae')
    throw bad(`model "${c.model}" has no table-1 variants: "variant" must be "cavmae", got "${c.variant}"`);
  if (!(Number.isInteger(s.num_register_tokens) && s.num_register_tokens >= 0))
    throw bad(`"num_register_tokens" must be an integer >= 0, got ${s.num_register_tokens}`);
  if (!(Number.isInteger(s.total_frame) && s.total_frame >= 1))
    throw bad(`"total_frame" must be an integer >= 1, got ${s.total_frame}`);
  if (c.model === 'cavmae-sync-ft') {
    if (c.aggregate !== 'self_attention_cls')
      throw bad(
        `"aggregate" must be "self_attention_cls" (the clip aggregator of spec 8.7; the release's 'None' and 'concat_mlp' cannot run on 16 frames), got "${c.aggregate}"`,
      );
    if (!SYNC_FT_MODES.includes(c.mode as SyncFtMode))
      throw bad(`"mode" must be one of ${SYNC_FT_MODES.join(', ')}, got "${c.mode}"`);
    const width = c.mode === 'multimodal' ? 2 * c.embed_dim : c.embed_dim;
    if (width % c.num_heads !== 0)
      throw bad(`the aggregator width ${width} is not divisible by "num_heads" ${c.num_heads}`);
  }
}

/**
 * Sync presets. Shapes: `sync-base` is the released retrieval model (cav_mae_sync.pth: L = 416
 * rows = 4 s segments, R = 8, global tokens, built without contrastive heads as retrieval.py
 * does); `sync-base-heads` the same with the constructor's default heads (a checkpoint trained
 * with heads). `sync-tiny` is the `tiny` CPU model on 96-row (0.96 s) segments with the Sync
 * tokens, for the AV-digits demo. λc is the research recipe's 0.1 (spec 8.4).
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
    img_size: 64,
    audio_length: 96,
    embed_dim: 128,
    modality_specific_depth: 3,
    shared_depth: 1,
    num_heads: 4,
    decoder_embed_dim: 64,
    decoder_depth: 1,
    decoder_num_heads: 4,
    norm_pix_loss: true,
    num_register_tokens: 4,
    cls_token: true,
    contrastive_heads: false,
    total_frame: 16,
    contrast_loss_weight: 0.1,
  },
  'sync-tiny-ft': {
    model: 'cavmae-sync-ft',
    img_size: 64,
    audio_length: 96,
    embed_dim: 128,
    modality_specific_depth: 3,
    shared_depth: 1,
    num_heads: 4,
    num_register_tokens: 4,
    cls_token: true,
    total_frame: 16,
    label_dim: 10,
    aggregate: 'self_attention_cls',
    mode: 'multimodal',
  },
};

/** Segment lengths (rows) the Sync code uses (spec 8.2): 0.96 s research default ... 10.24 s. */
export const SYNC_SEGMENT_LENGTHS = [96, 192, 304, 416, 512, 624, 720, 1024] as const;

/**
 * The Sync pretraining recipe (spec 8.4/8.5, research branch), for `cavmae pretrain`:
 * per-iteration linear warm-up over the first 10% of all iterations, then cosine from lr down
 * to 0.1·lr; losses averaged (mean) over replicas; λc 0.1; IN-initial weights with the audio
 * position tables recomputed (`adaptToSyncGrid`).
 */
export const SYNC_RECIPE = {
  contrast_loss_weight: 0.1,
  mae_loss_weight: 1,
  mask_ratio: 0.75,
  mask_mode: 'unstructured',
  norm_pix_loss: true,
  lr: 2e-4,
  batch_size: 512,
  epochs: 25,
  schedule: 'cosine',
  warmup_fraction: 0.1,
  min_lr_ratio: 0.1,
  betas: [0.95, 0.999],
  weight_decay: 5e-7,
  loss_reduction: 'mean',
  total_frame: 16,
  segment_length: 96,
  /** No mixup, SpecAugment or noise/roll in the Sync loader (spec 8.2). */
  audio_augmentation: false,
} as const;
