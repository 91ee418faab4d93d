/**
 * The pretraining recipes as data: the defaults a run starts from (every flag given explicitly
 * wins). `cavmae` is the reference AS-2M recipe (docs/training.md), `sync` the CAV-MAE Sync
 * research recipe (docs/sync-training.md): lr 2e-4, batch 512 pairs, 25 epochs, cosine per
 * optimizer step with a linear warm-up over the first 10% of all steps down to 0.1·lr, Adam
 * (0.95, 0.999), wd 5e-7, λc 0.1, norm_pix_loss, no audio augmentation. The default recipe
 * follows the model family.
 *
 * Loss reduction: the Sync recipe averages the replicas' losses (`mean`) where CAV-MAE summed
 * them. A single process has one replica, and the model's losses are batch means (the contrastive
 * groups' NCE is their mean), so both recipes train on the mean here.
 */
import { kindTraits, type ModelKind } from '../models/index.js';
import { OptionError, UserError } from '../util/errors.js';
import type { PretrainOptions } from './pretrain.js';
import type { RunDefaults } from './run.js';

/** The Sync pretraining recipe (the research branch's values), for `cavmae pretrain --recipe sync`. */
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
  /** No mixup, SpecAugment or noise/roll in the Sync loader (src/data/sync.ts). */
  audio_augmentation: false,
} as const;

export type RecipeName = 'cavmae' | 'sync' | 'tiny';
export const RECIPE_NAMES: readonly RecipeName[] = ['cavmae', 'sync', 'tiny'];

/** Loader augmentation of a CAV-MAE pretraining run (src/data/loader.ts); all off = the reference. */
export interface PretrainAugment {
  /** Probability of mixing a pair with another (waveforms and images, the same λ). */
  mixup: number;
  /** SpecAugment frequency and time mask widths (rows / bins). */
  freqm: number;
  timem: number;
  /** Random level change, ±dB. */
  gainDb: number;
  /** Random time shift without wrap-around, ±rows. */
  timeShift: number;
}
export const NO_AUGMENT: PretrainAugment = { mixup: 0, freqm: 0, timem: 0, gainDb: 0, timeShift: 0 };

/** A recipe: the run defaults (lr, batch, epochs, schedule, Adam; the multistep milestones are the task's) and the model-side ones. */
export interface PretrainDefaults extends Omit<RunDefaults, 'multistep'> {
  /** Noise + time-roll fbank augmentation. */
  noise: boolean;
  /** λc when neither the config nor --contrast-weight sets it (undefined: the config's default). */
  contrastWeight?: number;
  /** norm_pix_loss when the config does not set it. */
  normPixLoss?: boolean;
  /** Masking ratio of both modalities when the config does not set it. */
  maskRatio?: number;
  /** bf16 GEMM inputs (default false). */
  bf16?: boolean;
  /** Loader augmentation (default none). */
  augment?: PretrainAugment;
}

/** The reference's Adam (betas, L2 weight decay) and the cosine floor, shared by its recipes and fine-tuning. */
export const REFERENCE_ADAM = { minLrRatio: 0.1, beta1: 0.95, beta2: 0.999, weightDecay: 5e-7 } as const;

export const PRETRAIN_RECIPES: Record<RecipeName, PretrainDefaults> = {
  cavmae: {
    lr: 5e-5,
    batchSize: 48,
    epochs: 25,
    schedule: 'multistep',
    ...REFERENCE_ADAM,
    noise: true,
  },
  sync: {
    lr: SYNC_RECIPE.lr,
    batchSize: SYNC_RECIPE.batch_size,
    epochs: SYNC_RECIPE.epochs,
    schedule: SYNC_RECIPE.schedule,
    minLrRatio: SYNC_RECIPE.min_lr_ratio,
    beta1: SYNC_RECIPE.betas[0],
    beta2: SYNC_RECIPE.betas[1],
    weightDecay: SYNC_RECIPE.weight_decay,
    noise: SYNC_RECIPE.audio_augmentation,
    contrastWeight: SYNC_RECIPE.contrast_loss_weight,
    normPixLoss: SYNC_RECIPE.norm_pix_loss,
  },
  /**
   * The `tiny` preset's recipe: what makes a from-scratch tiny CAV-MAE learn alignment on two CPU
   * cores, and transfer from synthetic to real speech (docs/demo.md has the study). `cavmae demo`
   * is this recipe on `cavmae make-demo-data`'s defaults.
   */
  tiny: {
    lr: 1e-3,
    batchSize: 64,
    epochs: 54,
    schedule: 'cosine',
    warmupSteps: 30,
    ...REFERENCE_ADAM,
    noise: false,
    contrastWeight: 1,
    normPixLoss: true,
    maskRatio: 0.5,
    bf16: true,
    augment: { ...NO_AUGMENT },
  },
};

/** Presets that bring their own recipe (the default when --recipe is not given). */
const PRESET_RECIPES: Record<string, RecipeName> = { tiny: 'tiny' };

/** The recipe of a run: the one asked for, else the preset's (`tiny`), else the model family's own. */
export function recipeFor(asked: string | undefined, modelKind: ModelKind, config?: unknown): RecipeName {
  if (asked === undefined && typeof config === 'string' && Object.hasOwn(PRESET_RECIPES, config))
    return PRESET_RECIPES[config];
  if (asked === undefined) return kindTraits({ model: modelKind }).sync ? 'sync' : 'cavmae';
  if (!(RECIPE_NAMES as readonly string[]).includes(asked))
    throw new OptionError((n) => `${n('recipe')} must be one of ${RECIPE_NAMES.join(', ')}, got "${asked}"`);
  return asked as RecipeName;
}

/**
 * Model-config side of a pretraining run (in place on the partial config): Sync models take no
 * table-1 variant; the recipe fills λc and norm_pix_loss when neither the config nor a flag does.
 */
export function applyRecipeToConfig(
  partial: Record<string, unknown>,
  recipe: RecipeName,
  o: Pick<
    PretrainOptions,
    'variant' | 'contrastWeight' | 'normPixLoss' | 'maskRatio' | 'maskRatioA' | 'maskRatioV'
  >,
  where: string,
): void {
  if (
    kindTraits({ model: partial.model as ModelKind }).sync &&
    o.variant !== undefined &&
    o.variant !== 'cavmae'
  )
    throw new OptionError(
      (n) => `${n('variant')} ${o.variant}: ${where} is a CAV-MAE Sync model, which has no table-1 variants`,
    );
  const d = PRETRAIN_RECIPES[recipe];
  if (
    d.contrastWeight !== undefined &&
    o.contrastWeight === undefined &&
    partial.contrast_loss_weight === undefined
  )
    partial.contrast_loss_weight = d.contrastWeight;
  if (d.normPixLoss !== undefined && o.normPixLoss === undefined && partial.norm_pix_loss === undefined)
    partial.norm_pix_loss = d.normPixLoss;
  if (d.maskRatio !== undefined && o.maskRatio === undefined) {
    if (o.maskRatioA === undefined && partial.mask_ratio_a === undefined) partial.mask_ratio_a = d.maskRatio;
    if (o.maskRatioV === undefined && partial.mask_ratio_v === undefined) partial.mask_ratio_v = d.maskRatio;
  }
}

/** The noise setting of a run, refusing augmentation the Sync loader does not have. */
export function noiseFor(asked: boolean | undefined, recipe: RecipeName, sync: boolean): boolean {
  if (sync && asked === true)
    throw new UserError(
      'noise augmentation: the CAV-MAE Sync loader has no audio augmentation (src/data/sync.ts); leave it off',
    );
  return sync ? false : (asked ?? PRETRAIN_RECIPES[recipe].noise);
}
