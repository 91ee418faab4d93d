/**
 * CAVMAEFT: the fine-tuning model of the family: the encoder (position tables trainable by
 * default, tr_pos True) and one of two heads (KIND_TRAITS.head). Logits are returned (no
 * sigmoid / softmax).
 *
 * 'mlp' (cav_mae.py: CAVMAEFT): mlp_head = LayerNorm(D) → Linear(D, label_dim) on a mean-pooled
 * vector of one clip. Modes:
 *   multimodal        blocks_a(a), blocks_v(v) → concat → shared layers (joint LNs) → norm → mean → head
 *   audioonly         blocks_a → shared ('a' LNs) → norm_a → mean → head
 *   videoonly         blocks_v → shared ('v' LNs) → norm_v → mean → head
 *   missingaudioonly  mean(norm(shared(a, joint))) and mean(norm_a(shared(a, 'a'))) averaged → head
 *   missingvideoonly  the same with the visual side
 *
 * 'aggregator' (CAV-MAE Sync, cav_mae_sync.py: CAVMAEFT with aggregate 'self_attention_cls';
 * docs/sync-reference.md): B clips × F = total_frame (segment, frame) pairs flattened to audio
 * [B·F, L, 128] and image [B·F, 3, S, S] (pair k of clip b at row b·F + k). The modalities are
 * fixed by the config's `mode`. Per-pair feature (width W):
 *   multimodal (W = 2D): [global, patches, registers] → blocks_a / blocks_v → registers dropped →
 *     concat(audio global token, visual global token), or the patch-token means without
 *     cls_token. The release also runs the joint layer here and discards its output; it cannot
 *     change the logits or any gradient, so it is not computed.
 *   audioonly / videoonly (W = D): the modality's tokens → blocks → registers dropped (unless
 *     kept) → shared layers with the JOINT LayerNorms → norm → mean over all tokens (the global
 *     token included, as released).
 * Aggregator: [B, F, W] → prepend cls_cls_token → classifier_layers (2 Blocks, joint LNs) →
 * classifier_norm → classifier_head on token 0. No position table: invariant to frame order.
 *
 * Parameter names and state-dict order are the releases'; the encoder part loads from a
 * pretraining checkpoint of the same family (the head stays fresh: `isHeadParam`).
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks } from '../nn/block.js';
import { normal } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { ParamBuilder, type ParamArena, type Param } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { arenaFor, type AVBatch, type CreateOptions, type FeatOutput } from './cavmae.js';
import { kindTraits, variantTraits, type CavmaeConfig, type ModelDims } from './config.js';
import { AVEncoder, torchStateDictOrder } from './encoder.js';

export type FtMode = 'multimodal' | 'audioonly' | 'videoonly' | 'missingaudioonly' | 'missingvideoonly';
export const FT_MODES: readonly FtMode[] = [
  'multimodal',
  'audioonly',
  'videoonly',
  'missingaudioonly',
  'missingvideoonly',
];

/** Names of the mlp head's parameters (the "mlp" Adam group of the fine-tuning recipe). */
export const HEAD_PARAM_PREFIX = 'mlp_head.';

/** The aggregator head's parameters. */
export function isSyncFtHead(name: string): boolean {
  return (
    name === 'cls_cls_token' ||
    name.startsWith('classifier_layers.') ||
    name.startsWith('classifier_norm.') ||
    name.startsWith('classifier_head.')
  );
}

/** Whether a parameter belongs to the fine-tuning head (fresh when fine-tuning starts), for either head. */
export function isHeadParam(name: string): boolean {
  return name.startsWith(HEAD_PARAM_PREFIX) || isSyncFtHead(name);
}

/** Modalities a mode reads. */
export function modeInputs(mode: FtMode): { audio: boolean; video: boolean } {
  return {
    audio: mode !== 'videoonly' && mode !== 'missingvideoonly',
    video: mode !== 'audioonly' && mode !== 'missingaudioonly',
  };
}

export class CAVMAEFT {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly dims: ModelDims;
  readonly head: 'mlp' | 'aggregator';
  /** mlp head: mlp_head.0 (LayerNorm) and mlp_head.1 (Linear). */
  readonly headNorm?: LayerNorm;
  readonly headLinear?: Linear;
  /** aggregator head. */
  readonly cls_cls_token?: Param;
  readonly classifier_layers: Block[] = [];
  readonly classifier_norm?: LayerNorm;
  readonly classifier_head?: Linear;
  /** Feature width of one pair for the aggregator: 2D (multimodal) or D. */
  readonly width: number;
  /** The mode forward uses when none is given (the aggregator's only mode). */
  readonly mode: FtMode;

  private constructor(
    readonly config: CavmaeConfig,
    opts: CreateOptions,
  ) {
    const kt = kindTraits(config);
    if (kt.task !== 'finetune' || config.label_dim === undefined)
      throw new Error(`CAVMAEFT needs a fine-tuning config with label_dim (got "${config.model}")`);
    const c = config;
    const K = c.label_dim!;
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, c);
    this.dims = this.encoder.dims;
    this.encoder.declareGlobalTokens(pb);
    this.head = kt.head!;
    this.mode = (c.mode as FtMode | undefined) ?? variantTraits(c).ftMode ?? 'multimodal';
    const W = (this.width =
      this.head === 'aggregator' && this.mode === 'multimodal' ? 2 * c.embed_dim : c.embed_dim);
    if (this.head === 'mlp') {
      const head = pb.scope('mlp_head');
      this.headNorm = new LayerNorm(head.scope(0), W);
      this.headLinear = new Linear(head.scope(1), W, K);
    } else {
      this.cls_cls_token = pb.param('cls_cls_token', [1, 1, W], normal(0.02));
      for (let i = 0; i < 2; i++)
        this.classifier_layers.push(
          new Block(pb.scope('classifier_layers').scope(i), W, c.num_heads, c.mlp_ratio),
        );
      this.classifier_norm = new LayerNorm(pb.scope('classifier_norm'), W);
      this.classifier_head = new Linear(pb.scope('classifier_head'), W, K);
    }
    this.arena = arenaFor(torchStateDictOrder(pb.params), opts);
  }

  /** Builds the model (see `arenaFor` for the options). */
  static create(config: CavmaeConfig, opts: CreateOptions = {}): CAVMAEFT {
    return new CAVMAEFT(config, opts);
  }

  /**
   * Logits [B, label_dim] (B clips; the aggregator takes B·F pairs). Only the inputs a mode uses
   * are required. The aggregator's mode is its config's.
   */
  forward(tp: Tape, batch: AVBatch, mode: FtMode = this.mode): Tensor {
    if (this.head === 'aggregator') {
      if (mode !== this.mode)
        throw new UserError(
          `this Sync fine-tuning model reads "${this.mode}" (its config's "mode"); mode ${mode} does not apply`,
        );
      return this.aggregate(tp, this.pairFeatures(tp, batch));
    }
    const enc = this.encoder;
    const ftMode = variantTraits(this.config).ftMode;
    if (ftMode && mode !== ftMode)
      throw new UserError(
        `a "${this.config.variant}" fine-tuning model has one modality: use mode ${ftMode}, not ${mode}`,
      );
    const need = modeInputs(mode);
    enc.checkInputs(batch.audio, batch.image, `mode ${mode}`, need);
    const a = need.audio ? enc.modalityStream(tp, enc.embedAudio(tp, batch.audio!), 'a') : undefined; // [B, La, D]
    const v = need.video ? enc.modalityStream(tp, enc.embedVideo(tp, batch.image!), 'v') : undefined; // [B, Lv, D]
    let pooled: Tensor; // [B, D]
    switch (mode) {
      case 'multimodal':
        pooled = ops.meanTokens(tp, enc.sharedStream(tp, ops.concat(tp, [a!, v!], 1)));
        break;
      case 'audioonly':
        pooled = ops.meanTokens(tp, enc.sharedStream(tp, a!, 'a'));
        break;
      case 'videoonly':
        pooled = ops.meanTokens(tp, enc.sharedStream(tp, v!, 'v'));
        break;
      case 'missingaudioonly':
      case 'missingvideoonly': {
        const x = mode === 'missingaudioonly' ? a! : v!;
        const u = ops.meanTokens(tp, enc.sharedStream(tp, x));
        const s = ops.meanTokens(tp, enc.sharedStream(tp, x, mode === 'missingaudioonly' ? 'a' : 'v'));
        pooled = ops.weightedSum(tp, [
          [u, 0.5],
          [s, 0.5],
        ]);
        break;
      }
      default:
        throw new UserError(`unknown fine-tuning mode "${mode as string}" (known: ${FT_MODES.join(', ')})`);
    }
    return this.headLinear!.forward(tp, this.headNorm!.forward(tp, pooled));
  }

  /** forward_feat(mode 'av' | 'a', default: 'av' when an image is given) of the mlp-head model: unpooled modality-specific features, as CAVMAE.forwardFeat. */
  forwardFeat(tp: Tape, batch: AVBatch, mode: 'av' | 'a' = batch.image ? 'av' : 'a'): FeatOutput {
    if (this.head === 'aggregator')
      throw new UserError('a Sync fine-tuning model gives logits of whole clips, not token features');
    const enc = this.encoder;
    const { hasAudio, hasVideo } = this.dims;
    if (!hasAudio && mode === 'a')
      throw new UserError('a "visual-mae" fine-tuning model has no audio features');
    enc.checkInputs(batch.audio, batch.image, `feat ${mode}`, {
      audio: hasAudio,
      video: hasVideo && mode === 'av',
    });
    const out: FeatOutput = {};
    if (hasAudio)
      out.audioTokens = enc.sharedStream(
        tp,
        enc.modalityStream(tp, enc.embedAudio(tp, batch.audio!), 'a'),
        'a',
      );
    if (hasVideo && mode === 'av')
      out.videoTokens = enc.sharedStream(
        tp,
        enc.modalityStream(tp, enc.embedVideo(tp, batch.image!), 'v'),
        'v',
      );
    return out;
  }

  /** The aggregator's per-pair features [B·F, W] (see the contract at the top). */
  pairFeatures(tp: Tape, batch: AVBatch): Tensor {
    const enc = this.encoder;
    const mode = this.mode;
    const N = enc.checkInputs(batch.audio, batch.image, `mode ${mode}`, modeInputs(mode));
    const F = this.dims.framesPerClip;
    if (N % F !== 0)
      throw new UserError(
        `mode ${mode}: ${N} (segment, frame) pairs are not whole clips of total_frame ${F} (rows b*${F} + k)`,
      );
    const keep = (this.config.keep_register_tokens ?? false) && mode !== 'multimodal';
    const run = (m: 'a' | 'v'): Tensor =>
      enc.modalityStream(tp, enc.embed(tp, m === 'a' ? batch.audio! : batch.image!, m), m, keep);
    if (mode === 'multimodal') {
      const pick = (x: Tensor): Tensor =>
        this.dims.lead
          ? ops.reshape(tp, ops.slice(tp, x, 0, 1), [x.shape[0], x.shape[2]])
          : ops.meanTokens(tp, x); // [N, D]
      const a = run('a'); // [N, lead + La, D]
      const v = run('v'); // [N, lead + Lv, D]
      return ops.concat(tp, [pick(a), pick(v)], 1); // [N, 2D]
    }
    return ops.meanTokens(tp, enc.sharedStream(tp, run(mode === 'audioonly' ? 'a' : 'v'))); // [N, D]
  }

  /** self_attention_cls: pair features [B·F, W] → logits [B, K]. */
  aggregate(tp: Tape, features: Tensor): Tensor {
    const F = this.dims.framesPerClip;
    const W = this.width;
    const B = features.shape[0] / F;
    let x = ops.reshape(tp, features, [B, F, W]); // [B, F, W]
    x = ops.concat(tp, [ops.broadcastTo(tp, this.cls_cls_token!, [B, 1, W]), x], 1); // [B, 1 + F, W]
    x = runBlocks(tp, this.classifier_layers, x);
    x = this.classifier_norm!.forward(tp, ops.slice(tp, x, 0, 1)); // [B, 1, W] (LayerNorm is per token)
    return this.classifier_head!.forward(tp, ops.reshape(tp, x, [B, W])); // [B, K]
  }
}
