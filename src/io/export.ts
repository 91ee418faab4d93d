/**
 * Library side of `cavmae export`: one of our checkpoints -> a PyTorch state dict the official
 * code loads with `torch.load` + `load_state_dict(strict=True)`.
 *
 * Contract:
 * - The checkpoint is loaded as a model first (every key present, shapes checked against its
 *   config), so what is written is exactly the model's parameters: official names, official
 *   state-dict order (the order our models keep, `torchStateDictOrder`), float32, contiguous.
 * - `dataParallel` prefixes every key with `module.` (what the official training scripts save
 *   and load: they wrap the model in `torch.nn.DataParallel`).
 * - Pretrained (CAVMAE), fine-tuned (CAVMAEFT) and Sync (CAVMAESync, CAVMAESyncFT) models; the
 *   config does not travel in a .pth (the official code takes it from the command line), so the
 *   report lists the constructor arguments to use.
 * - The output is written atomically (temp + rename).
 */
import { statSync } from 'node:fs';
import { loadModel, officialClassName, type LoadModelOptions } from '../models/registry.js';
import type { CavmaeConfig } from '../models/config.js';
import { compareKeys, keyReportIsClean } from './checkpoint.js';
import { cavmaeFtLayout, cavmaeLayout } from './layouts.js';
import { writePth } from './pth-write.js';

/** Constructor arguments of each official class, in its order (our config keys have the same names). */
const ENCODER_ARGS = [
  'img_size',
  'audio_length',
  'patch_size',
  'in_chans',
  'embed_dim',
  'modality_specific_depth',
  'num_heads',
] as const;
const DECODER_ARGS = ['decoder_embed_dim', 'decoder_depth', 'decoder_num_heads'] as const;
const OFFICIAL_ARGS: Record<string, readonly (keyof CavmaeConfig)[]> = {
  CAVMAE: [...ENCODER_ARGS, ...DECODER_ARGS, 'mlp_ratio', 'norm_pix_loss', 'tr_pos'],
  CAVMAEFT: ['label_dim', ...ENCODER_ARGS, 'mlp_ratio', 'norm_pix_loss', 'tr_pos'],
  CAVMAESync: [
    ...ENCODER_ARGS,
    ...DECODER_ARGS,
    'num_register_tokens',
    'mlp_ratio',
    'norm_pix_loss',
    'tr_pos',
    'cls_token',
    'global_local_losses',
    'total_frame',
    'contrastive_heads',
    'multi_ratio_masking',
    'keep_register_tokens',
  ],
  CAVMAESyncFT: [
    'label_dim',
    'img_size',
    'audio_length',
    'embed_dim',
    'modality_specific_depth',
    'num_heads',
    'mlp_ratio',
    'tr_pos',
    'num_register_tokens',
    'cls_token',
    'total_frame',
    'keep_register_tokens',
    'mode',
  ],
};

/**
 * The official class's constructor arguments for a config. The official classes hard-wire
 * 12 - modality_specific_depth shared layers; a model with another count gets `shared_depth`
 * too (our PyTorch references take it; the released classes would need that one edit).
 */
export function officialArgs(config: CavmaeConfig): Record<string, unknown> {
  const cls = officialClassName(config);
  const out: Record<string, unknown> = {};
  for (const k of OFFICIAL_ARGS[cls]) if (config[k] !== undefined) out[k] = config[k];
  if (config.shared_depth !== 12 - config.modality_specific_depth) out.shared_depth = config.shared_depth;
  return out;
}

export interface ExportOptions {
  /** Prefix keys with `module.` (torch.nn.DataParallel). */
  dataParallel?: boolean;
  /** Config for checkpoints that carry none (preset, JSON file or object). */
  config?: LoadModelOptions['config'];
}

export interface ExportReport {
  input: string;
  output: string;
  /** Official class name (CAVMAE, CAVMAEFT, CAVMAESync, CAVMAESyncFT). */
  className: string;
  keys: number;
  parameters: number;
  bytes: number;
  dataParallel: boolean;
  /** Constructor arguments for the official class (`officialArgs`). */
  args: Record<string, unknown>;
  /** Why the released class may not load the file as it is (empty when it will). */
  warnings: string[];
}

export function exportPth(input: string, output: string, opts: ExportOptions = {}): ExportReport {
  const { model, config } = loadModel(input, { config: opts.config, strict: true });
  const prefix = opts.dataParallel ? 'module.' : '';
  const params = model.arena.params;
  const className = officialClassName(config);
  const warnings: string[] = [];
  if (className === 'CAVMAE' || className === 'CAVMAEFT') {
    // The released classes always build both towers, 12 - depth shared layers, a decoder (CAVMAE).
    const shapes = new Map(params.map((p) => [p.name, p.shape]));
    const official = className === 'CAVMAE' ? cavmaeLayout(config) : cavmaeFtLayout(config);
    const r = compareKeys(official, shapes);
    if (!keyReportIsClean(r))
      warnings.push(
        `the released ${className} class with these arguments expects other keys (${r.missing.length} missing, ${r.unexpected.length} unexpected, ${r.shapeMismatch.length} of another shape): variant ${config.variant}, ${config.shared_depth} shared layers`,
      );
  } else if (config.shared_depth !== 12 - config.modality_specific_depth) {
    warnings.push(
      `${config.shared_depth} shared layers: the released ${className} hard-wires 12 - modality_specific_depth`,
    );
  }
  writePth(
    output,
    params.map(
      (p) => [`${prefix}${p.name}`, { dtype: 'F32' as const, shape: p.shape, data: p.data }] as const,
    ),
  );
  return {
    input,
    output,
    className,
    keys: params.length,
    parameters: params.reduce((s, p) => s + p.size, 0),
    bytes: statSync(output).size,
    dataParallel: !!opts.dataParallel,
    args: officialArgs(config),
    warnings,
  };
}
