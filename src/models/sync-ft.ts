/**
 * CAVMAESyncFT: CAV-MAE Sync fine-tuning / classification (spec 8.7, the research branch's
 * CAVMAEFT with aggregate 'self_attention_cls').
 *
 * Design contract:
 * - Input is grouped per clip: B clips × F = total_frame (segment, frame) pairs flattened to
 *   audio [B·F, L, 128] and image [B·F, 3, S, S] (pair k of clip b at row b·F + k). Output:
 *   logits [B, label_dim] (no sigmoid / softmax).
 * - Per-pair feature (width W):
 *   multimodal (W = 2D): [global, patches, registers] → blocks_a / blocks_v → registers dropped →
 *     concat(audio global token, visual global token), or concat(mean audio tokens, mean visual
 *     tokens) without cls_token. These are the modality-specific encoder outputs, before any
 *     final norm. The release also runs the joint layer here and discards its output; it cannot
 *     change the logits or any gradient, so it is not computed.
 *   audioonly / videoonly (W = D): the modality's tokens → blocks → registers dropped (unless
 *     kept) → shared layers with the JOINT LayerNorms → norm → mean over all tokens (the global
 *     token included, as released).
 * - Aggregator (self_attention_cls): [B, F, W] → prepend cls_cls_token [1,1,W] (N(0, 0.02)) →
 *   classifier_layers = 2 × Block(W, num_heads, mlp_ratio) (joint LayerNorms) → classifier_norm →
 *   classifier_head (Linear W → K) on token 0. No position table: the aggregator is invariant
 *   to the order of the frames.
 * - Parameter names and state-dict order are the release's; the encoder part loads from a Sync
 *   pretraining checkpoint (the head stays freshly initialised: `isSyncFtHead`).
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks } from '../nn/block.js';
import { normal } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { ParamArena, ParamBuilder, type Param } from '../tensor/arena.js';
import { Rng } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import type { AVBatch } from './cavmae.js';
import type { CavmaeConfig } from './config.js';
import { AVEncoder, torchStateDictOrder } from './encoder.js';
import { SyncTokens } from './sync.js';
import { syncConfig, type SyncConfig, type SyncFtMode } from './sync-config.js';

/** The fine-tuning head's parameters (fresh when fine-tuning starts; the "mlp" group of spec 4.4). */
export function isSyncFtHead(name: string): boolean {
  return (
    name === 'cls_cls_token' ||
    name.startsWith('classifier_layers.') ||
    name.startsWith('classifier_norm.') ||
    name.startsWith('classifier_head.')
  );
}

export class CAVMAESyncFT {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly tokens: SyncTokens;
  readonly cls_cls_token: Param;
  readonly classifier_layers: Block[] = [];
  readonly classifier_norm: LayerNorm;
  readonly classifier_head: Linear;
  readonly config: SyncConfig;
  /** Feature width of one pair: 2D (multimodal) or D. */
  readonly width: number;
  readonly mode: SyncFtMode;

  private constructor(config: CavmaeConfig, opts: { grad?: boolean; allocate?: boolean } = {}) {
    if (config.model !== 'cavmae-sync-ft' || config.label_dim === undefined)
      throw new Error('CAVMAESyncFT needs a "cavmae-sync-ft" config with label_dim');
    const c = (this.config = syncConfig(config));
    this.mode = c.mode ?? 'multimodal';
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, c);
    this.tokens = new SyncTokens(pb, c);
    this.tokens.declareGlobalTokens(pb);
    const W = (this.width = this.mode === 'multimodal' ? 2 * c.embed_dim : c.embed_dim);
    this.cls_cls_token = pb.param('cls_cls_token', [1, 1, W], normal(0.02));
    for (let i = 0; i < 2; i++)
      this.classifier_layers.push(
        new Block(pb.scope('classifier_layers').scope(i), W, c.num_heads, c.mlp_ratio),
      );
    this.classifier_norm = new LayerNorm(pb.scope('classifier_norm'), W);
    this.classifier_head = new Linear(pb.scope('classifier_head'), W, c.label_dim!);
    this.arena = new ParamArena(torchStateDictOrder(pb.params), opts);
  }

  static create(
    config: CavmaeConfig,
    opts: { seed?: number; init?: boolean; grad?: boolean; allocate?: boolean } = {},
  ): CAVMAESyncFT {
    const m = new CAVMAESyncFT(config, { grad: opts.grad, allocate: opts.allocate });
    if ((opts.init ?? true) && m.arena.allocated) m.arena.initialize(new Rng(opts.seed ?? 0));
    return m;
  }

  /** Logits [B, label_dim] for B clips of total_frame pairs each. */
  forward(tp: Tape, batch: AVBatch): Tensor {
    return this.aggregate(tp, this.pairFeatures(tp, batch));
  }

  /** Per-pair features [B·F, W] (see the contract at the top). */
  pairFeatures(tp: Tape, batch: AVBatch): Tensor {
    const enc = this.encoder;
    const needA = this.mode !== 'videoonly';
    const needV = this.mode !== 'audioonly';
    const N = enc.checkInputs(batch.audio, batch.image, `mode ${this.mode}`, { audio: needA, video: needV });
    const F = this.config.total_frame;
    if (N % F !== 0)
      throw new UserError(
        `mode ${this.mode}: ${N} (segment, frame) pairs are not whole clips of total_frame ${F} (rows b*${F} + k)`,
      );
    const run = (x: Tensor, m: 'a' | 'v'): Tensor => {
      const y = runBlocks(tp, m === 'a' ? enc.blocks_a : enc.blocks_v, this.tokens.wrap(tp, x, m));
      return this.config.keep_register_tokens && this.mode !== 'multimodal'
        ? y
        : this.tokens.dropRegisters(tp, y);
    };
    if (this.mode === 'multimodal') {
      const a = run(enc.embedAudio(tp, batch.audio!), 'a'); // [N, lead + La, D]
      const v = run(enc.embedVideo(tp, batch.image!), 'v'); // [N, lead + Lv, D]
      const pick = (x: Tensor): Tensor => {
        if (!this.tokens.cls) return ops.meanTokens(tp, x); // [N, D]
        return ops.reshape(tp, ops.slice(tp, x, 0, 1), [x.shape[0], x.shape[2]]); // [N, D]
      };
      return ops.concat(tp, [pick(a), pick(v)], 1); // [N, 2D]
    }
    const x =
      this.mode === 'audioonly'
        ? run(enc.embedAudio(tp, batch.audio!), 'a')
        : run(enc.embedVideo(tp, batch.image!), 'v');
    return ops.meanTokens(tp, enc.sharedStream(tp, x)); // [N, D]
  }

  /** self_attention_cls: pair features [B·F, W] → logits [B, K]. */
  aggregate(tp: Tape, features: Tensor): Tensor {
    const F = this.config.total_frame;
    const W = this.width;
    const B = features.shape[0] / F;
    let x = ops.reshape(tp, features, [B, F, W]); // [B, F, W]
    x = ops.concat(tp, [ops.broadcastTo(tp, this.cls_cls_token, [B, 1, W]), x], 1); // [B, 1 + F, W]
    x = runBlocks(tp, this.classifier_layers, x);
    x = this.classifier_norm.forward(tp, ops.slice(tp, x, 0, 1)); // [B, 1, W] (LayerNorm is per token)
    return this.classifier_head.forward(tp, ops.reshape(tp, x, [B, W])); // [B, K]
  }
}
