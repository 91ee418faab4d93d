/**
 * CAVMAEFT: the fine-tuning model (spec 3.13): the CAV-MAE encoder (position tables trainable by
 * default, tr_pos True) and mlp_head = LayerNorm(D) → Linear(D, label_dim) on a mean-pooled
 * vector. Logits are returned (no sigmoid / softmax).
 *
 * Modes:
 *   multimodal        blocks_a(a), blocks_v(v) → concat → shared layers (joint LNs) → norm → mean → head
 *   audioonly         blocks_a → shared ('a' LNs) → norm_a → mean → head
 *   videoonly         blocks_v → shared ('v' LNs) → norm_v → mean → head
 *   missingaudioonly  mean(norm(shared(a, joint))) and mean(norm_a(shared(a, 'a'))) averaged → head
 *   missingvideoonly  the same with the visual side
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { runBlocks } from '../nn/block.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { ParamArena, ParamBuilder } from '../tensor/arena.js';
import { Rng } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import type { CavmaeConfig } from './config.js';
import type { AVBatch, FeatOutput } from './cavmae.js';
import { AVEncoder, torchStateDictOrder } from './encoder.js';

export type FtMode = 'multimodal' | 'audioonly' | 'videoonly' | 'missingaudioonly' | 'missingvideoonly';
export const FT_MODES: readonly FtMode[] = [
  'multimodal',
  'audioonly',
  'videoonly',
  'missingaudioonly',
  'missingvideoonly',
];

/** Names of the head's parameters (the "mlp" Adam group of spec 4.4). */
export const HEAD_PARAM_PREFIX = 'mlp_head.';

export class CAVMAEFT {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly headNorm: LayerNorm;
  readonly headLinear: Linear;

  private constructor(
    readonly config: CavmaeConfig,
    opts: { grad?: boolean; allocate?: boolean } = {},
  ) {
    if (config.model !== 'cavmae-ft' || config.label_dim === undefined)
      throw new Error('CAVMAEFT needs a "cavmae-ft" config with label_dim');
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, config);
    const head = pb.scope('mlp_head');
    this.headNorm = new LayerNorm(head.scope(0), config.embed_dim);
    this.headLinear = new Linear(head.scope(1), config.embed_dim, config.label_dim);
    this.arena = new ParamArena(torchStateDictOrder(pb.params), opts);
  }

  /**
   * Builds the model. `seed` seeds the initialisation (spec 3.5); `init: false` leaves zeros
   * (a checkpoint will be loaded); `grad: false` defers the gradient buffer (inference);
   * `allocate: false` builds the parameter layout only (names, shapes, counts).
   */
  static create(
    config: CavmaeConfig,
    opts: { seed?: number; init?: boolean; grad?: boolean; allocate?: boolean } = {},
  ): CAVMAEFT {
    const m = new CAVMAEFT(config, { grad: opts.grad, allocate: opts.allocate });
    if ((opts.init ?? true) && m.arena.allocated) m.arena.initialize(new Rng(opts.seed ?? 0));
    return m;
  }

  /** Logits [B, label_dim]. Only the inputs a mode uses are required. */
  forward(tp: Tape, batch: AVBatch, mode: FtMode = 'multimodal'): Tensor {
    const enc = this.encoder;
    const needA = mode !== 'videoonly' && mode !== 'missingvideoonly';
    const needV = mode !== 'audioonly' && mode !== 'missingaudioonly';
    const { variant } = this.config;
    if (
      (variant === 'audio-mae' && mode !== 'audioonly') ||
      (variant === 'visual-mae' && mode !== 'videoonly')
    ) {
      throw new UserError(
        `a "${variant}" fine-tuning model has one modality: use mode ${variant === 'audio-mae' ? 'audioonly' : 'videoonly'}, not ${mode}`,
      );
    }
    this.checkInputs(batch, needA, needV, mode);
    const a = needA ? runBlocks(tp, enc.blocks_a, enc.embedAudio(tp, batch.audio!)) : undefined; // [B, La, D]
    const v = needV ? runBlocks(tp, enc.blocks_v, enc.embedVideo(tp, batch.image!)) : undefined; // [B, Lv, D]
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
    return this.head(tp, pooled);
  }

  /** mlp_head: LayerNorm → Linear. */
  head(tp: Tape, pooled: Tensor): Tensor {
    return this.headLinear.forward(tp, this.headNorm.forward(tp, pooled));
  }

  /** forward_feat(mode 'av' | 'a'): unpooled modality-specific features, as CAVMAE.forwardFeat. */
  forwardFeat(tp: Tape, batch: AVBatch, mode: 'av' | 'a' = 'av'): FeatOutput {
    const enc = this.encoder;
    const { hasAudio, hasVideo } = enc.dims;
    if (!hasAudio && mode === 'a')
      throw new UserError('a "visual-mae" fine-tuning model has no audio features');
    this.checkInputs(batch, hasAudio, hasVideo && mode === 'av', `feat ${mode}`);
    const out: FeatOutput = {};
    if (hasAudio)
      out.audioTokens = enc.sharedStream(
        tp,
        runBlocks(tp, enc.blocks_a, enc.embedAudio(tp, batch.audio!)),
        'a',
      );
    if (hasVideo && mode === 'av')
      out.videoTokens = enc.sharedStream(
        tp,
        runBlocks(tp, enc.blocks_v, enc.embedVideo(tp, batch.image!)),
        'v',
      );
    return out;
  }

  private checkInputs(batch: AVBatch, needA: boolean, needV: boolean, mode: string): void {
    this.encoder.checkInputs(batch.audio, batch.image, `mode ${mode}`, { audio: needA, video: needV });
  }
}
