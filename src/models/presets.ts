/**
 * The named model configs (presets) of the family: partial configs completed by resolveConfig.
 * PRESETS are the CAV-MAE layouts, SYNC_PRESETS the CAV-MAE Sync ones; `presetConfig`,
 * `readConfigArg` and `inferConfigFromShapes` look in both.
 */
import type { CavmaeConfig } from './config.js';

/** Presets. `base` is the paper's (recipe values: 1024 frames, norm_pix_loss True). */
export const PRESETS: Record<string, Partial<CavmaeConfig>> = {
  base: { model: 'cavmae', norm_pix_loss: true },
  'base-ft': { model: 'cavmae-ft', label_dim: 527 },
  /**
   * tiny: what learned on two CPU cores (docs/model.md): a
   * shallower, wider encoder (3 modality-specific + 1 shared layer of width 128, 4 heads), a
   * 64-wide one-layer decoder, 64x64 images (16 patches) and 128 frames (1.28 s, 64 patches).
   */
  tiny: {
    model: 'cavmae',
    img_size: 64,
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
    img_size: 64,
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

/** Segment lengths (rows) the Sync code uses: 0.96 s (the research default) ... 10.24 s. */
export const SYNC_SEGMENT_LENGTHS = [96, 192, 304, 416, 512, 624, 720, 1024] as const;

export function presetNames(): string[] {
  return [...Object.keys(PRESETS), ...Object.keys(SYNC_PRESETS)];
}

/** A preset's partial config (CAV-MAE or Sync), or undefined. */
export function presetPartial(name: string): Partial<CavmaeConfig> | undefined {
  if (Object.prototype.hasOwnProperty.call(PRESETS, name)) return PRESETS[name];
  if (Object.prototype.hasOwnProperty.call(SYNC_PRESETS, name)) return SYNC_PRESETS[name];
  return undefined;
}
