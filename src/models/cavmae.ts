/**
 * CAVMAE: the pretraining model (spec 3.6-3.12) and the variants of the paper's table 1.
 *
 * Design contract:
 * - `CAVMAE.create(config, {seed})` declares every parameter under its official name, lays
 *   them out in ONE ParamArena in PyTorch's state-dict order and initialises them (spec 3.5).
 * - `forward(tape, batch, opts)` = forward_encoder → forward_decoder → losses, recorded on the
 *   tape; `tape.backward(out.loss)` fills `model.arena.grad`. Masks replay exactly from the
 *   noise the caller passes (or are drawn from a seeded Rng).
 * - `forwardFeat` (no masking) and `forwardInpaint` (pred + unweighted losses) as the reference.
 * - Variants: cavmae; av-mae (λc = 0: the contrastive streams are skipped); cav (no decoder,
 *   contrastive only; the joint stream is skipped); vanilla-av-mae (modality_specific_depth 0:
 *   the shared layers form one joint encoder); audio-mae / visual-mae (one modality: its blocks,
 *   the shared layers with its LayerNorms, its final norm, its half of the decoder).
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks, type Modality } from '../nn/block.js';
import { normal, table } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import { normalizePatches, patchifyAudio, patchifyImage } from '../nn/patch-embed.js';
import { ParamArena, ParamBuilder, type Param } from '../tensor/arena.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { modelDims, type CavmaeConfig } from './config.js';
import { UserError } from '../util/errors.js';
import { AVEncoder, torchStateDictOrder } from './encoder.js';
import { makeMasking, type Masking, type MaskMode, type StructuredChoice } from './masking.js';
import { sincosTable2d } from './pos-embed.js';

export interface AVBatch {
  /** Spectrogram [B, audio_length, 128] (time × mel). */
  audio?: Tensor;
  /** Image [B, 3, img_size, img_size]. */
  image?: Tensor;
}

export interface PretrainOptions {
  maskRatioA?: number;
  maskRatioV?: number;
  maskMode?: MaskMode;
  maeLossWeight?: number;
  contrastLossWeight?: number;
  bidirectional?: boolean;
  contrastiveGroups?: number;
  /** Uniform noise [B, La] / [B, Lv] to replay the reference's masks. */
  noiseA?: ArrayLike<number>;
  noiseV?: ArrayLike<number>;
  /** Structured audio masking: the chosen time columns / frequency rows per sample. */
  structured?: StructuredChoice;
  /** Explicit permutations (exact replay of PyTorch's tie order in 'tf' mode). */
  idsShuffleA?: Int32Array;
  idsShuffleV?: Int32Array;
  /** Draws whatever noise is not given. */
  rng?: Rng;
}

export interface PretrainOutput {
  /** loss = loss_mae + loss_c, shape [1]. */
  loss: Tensor;
  /** mae_loss_weight · (loss_mae_a + loss_mae_v). */
  lossMae: Tensor;
  lossMaeA: Tensor;
  lossMaeV: Tensor;
  /** contrast_loss_weight · NCE (already weighted, as the reference). */
  lossC: Tensor;
  cAcc: number;
  maskA?: Masking;
  maskV?: Masking;
  /** [B, La, 256] and [B, Lv, 768] (undefined without a decoder). */
  predA?: Tensor;
  predV?: Tensor;
  /** Encoder intermediates: the joint tokens after `norm`, the contrastive streams. */
  latent?: Tensor;
  latentCA?: Tensor;
  latentCV?: Tensor;
  /** Mean-pooled contrastive representations before normalisation, and the logits. */
  audioRep?: Tensor;
  videoRep?: Tensor;
  logits?: Float32Array[];
}

export interface InpaintOutput {
  predA?: Tensor;
  predV?: Tensor;
  maskA?: Masking;
  maskV?: Masking;
  lossPixelA: Tensor;
  lossPixelV: Tensor;
}

export interface FeatOutput {
  /** [B, La, D] after the audio stream's final norm. */
  audioTokens?: Tensor;
  /** [B, Lv, D]. */
  videoTokens?: Tensor;
}

class Decoder {
  readonly decoder_embed: Linear;
  readonly mask_token: Param;
  readonly decoder_modality_a?: Param;
  readonly decoder_modality_v?: Param;
  readonly decoder_pos_embed_a?: Param;
  readonly decoder_pos_embed_v?: Param;
  readonly decoder_blocks: Block[] = [];
  readonly decoder_norm: LayerNorm;
  readonly decoder_pred_a?: Linear;
  readonly decoder_pred_v?: Linear;

  constructor(pb: ParamBuilder, c: CavmaeConfig) {
    const d = modelDims(c);
    const Dd = c.decoder_embed_dim;
    const p2 = c.patch_size * c.patch_size;
    this.decoder_embed = new Linear(pb.scope('decoder_embed'), c.embed_dim, Dd);
    this.mask_token = pb.param('mask_token', [1, 1, Dd], normal(0.02));
    if (d.hasAudio) this.decoder_modality_a = pb.param('decoder_modality_a', [1, 1, Dd], normal(0.02));
    if (d.hasVideo) this.decoder_modality_v = pb.param('decoder_modality_v', [1, 1, Dd], normal(0.02));
    const fixed = { requiresGrad: c.tr_pos };
    if (d.hasAudio)
      this.decoder_pos_embed_a = pb.param(
        'decoder_pos_embed_a',
        [1, d.La, Dd],
        table(sincosTable2d(Dd, d.fRows, d.tCols)),
        fixed,
      );
    if (d.hasVideo)
      this.decoder_pos_embed_v = pb.param(
        'decoder_pos_embed_v',
        [1, d.Lv, Dd],
        table(sincosTable2d(Dd, d.vGrid, d.vGrid)),
        fixed,
      );
    for (let i = 0; i < c.decoder_depth; i++) {
      this.decoder_blocks.push(
        new Block(pb.scope('decoder_blocks').scope(i), Dd, c.decoder_num_heads, c.mlp_ratio),
      );
    }
    this.decoder_norm = new LayerNorm(pb.scope('decoder_norm'), Dd);
    if (d.hasAudio) this.decoder_pred_a = new Linear(pb.scope('decoder_pred_a'), Dd, p2);
    if (d.hasVideo) this.decoder_pred_v = new Linear(pb.scope('decoder_pred_v'), Dd, p2 * c.in_chans);
  }

  /**
   * Visible tokens of one modality [B, K, Dd] + mask tokens → [B, L, Dd] in position order
   * (gather with ids_restore), + decoder position table + decoder modality embedding.
   */
  private fill(tp: Tape, visible: Tensor, m: Masking, pos: Param, modality: Param): Tensor {
    const [B, K, Dd] = visible.shape;
    const masked = ops.broadcastTo(tp, this.mask_token, [B, m.L - K, Dd]);
    let x = ops.concat(tp, [visible, masked], 1); // [B, L, Dd], shuffled order
    x = ops.gatherTokens(tp, x, m.idsRestore, m.L); // [B, L, Dd], position order
    x = ops.addBroadcast(tp, x, pos);
    return ops.addBroadcast(tp, x, modality);
  }

  /** forward_decoder: joint tokens [B, Ka+Kv, D] → pred_a [B, La, p²], pred_v [B, Lv, p²·3]. */
  forward(
    tp: Tape,
    x: Tensor,
    maskA: Masking | undefined,
    maskV: Masking | undefined,
  ): { predA?: Tensor; predV?: Tensor } {
    x = this.decoder_embed.forward(tp, x); // [B, Ka+Kv, Dd]
    const Ka = maskA ? maskA.lenKeep : 0;
    const parts: Tensor[] = [];
    if (maskA)
      parts.push(
        this.fill(tp, ops.slice(tp, x, 0, Ka), maskA, this.decoder_pos_embed_a!, this.decoder_modality_a!),
      );
    if (maskV)
      parts.push(
        this.fill(
          tp,
          ops.slice(tp, x, Ka, x.shape[1]),
          maskV,
          this.decoder_pos_embed_v!,
          this.decoder_modality_v!,
        ),
      );
    let y = parts.length === 1 ? parts[0] : ops.concat(tp, parts, 1); // [B, La+Lv, Dd]
    y = runBlocks(tp, this.decoder_blocks, y);
    y = this.decoder_norm.forward(tp, y);
    const La = maskA ? maskA.L : 0;
    const predA = maskA ? this.decoder_pred_a!.forward(tp, maskV ? ops.slice(tp, y, 0, La) : y) : undefined;
    const predV = maskV
      ? this.decoder_pred_v!.forward(tp, maskA ? ops.slice(tp, y, La, y.shape[1]) : y)
      : undefined;
    return { predA, predV };
  }
}

export class CAVMAE {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly decoder?: Decoder;
  readonly dims: ReturnType<typeof modelDims>;

  private constructor(
    readonly config: CavmaeConfig,
    opts: { grad?: boolean; allocate?: boolean } = {},
  ) {
    if (config.model !== 'cavmae') throw new Error(`CAVMAE built with a "${config.model}" config`);
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, config);
    this.dims = this.encoder.dims;
    if (this.dims.hasDecoder) this.decoder = new Decoder(pb, config);
    this.arena = new ParamArena(torchStateDictOrder(pb.params), opts);
  }

  /** Builds the model with freshly initialised parameters (seeded). */
  /**
   * Builds the model. `seed` seeds the initialisation (spec 3.5); `init: false` leaves zeros
   * (a checkpoint will be loaded); `grad: false` defers the gradient buffer (inference);
   * `allocate: false` builds the parameter layout only (names, shapes, counts).
   */
  static create(
    config: CavmaeConfig,
    opts: { seed?: number; init?: boolean; grad?: boolean; allocate?: boolean } = {},
  ): CAVMAE {
    const m = new CAVMAE(config, { grad: opts.grad, allocate: opts.allocate });
    if ((opts.init ?? true) && m.arena.allocated) m.arena.initialize(new Rng(opts.seed ?? 0));
    return m;
  }

  /** The forward pass with masking and losses (CAVMAE.forward). */
  forward(tp: Tape, batch: AVBatch, opts: PretrainOptions = {}): PretrainOutput {
    const c = this.config;
    const enc = this.encoder;
    const B = enc.checkInputs(batch.audio, batch.image);
    const maeW = opts.maeLossWeight ?? c.mae_loss_weight;
    const cW = opts.contrastLossWeight ?? c.contrast_loss_weight;
    if (maeW !== 0 && !this.decoder)
      throw new UserError(`variant "${c.variant}" has no decoder: the MAE loss weight must be 0`);
    if (cW !== 0 && !['cavmae', 'av-mae', 'cav'].includes(c.variant)) {
      throw new UserError(
        `variant "${c.variant}" has no contrastive streams: the contrastive loss weight must be 0`,
      );
    }
    const e = this.forwardEncoder(tp, batch, B, opts, {
      joint: this.decoder !== undefined && maeW !== 0,
      contrast: cW !== 0,
    });
    const zero = (): Tensor => tp.zeros([1]);
    const out: PretrainOutput = {
      loss: zero(),
      lossMae: zero(),
      lossMaeA: zero(),
      lossMaeV: zero(),
      lossC: zero(),
      cAcc: 0,
      maskA: e.maskA,
      maskV: e.maskV,
      latent: e.latent,
      latentCA: e.ca,
      latentCV: e.cv,
    };
    const terms: [Tensor, number][] = [];
    if (e.latent && this.decoder) {
      const { predA, predV } = this.decoder.forward(tp, e.latent, e.maskA, e.maskV);
      out.predA = predA;
      out.predV = predV;
      if (predA) out.lossMaeA = this.maeLoss(tp, batch.audio!, predA, e.maskA!, 'a');
      if (predV) out.lossMaeV = this.maeLoss(tp, batch.image!, predV, e.maskV!, 'v');
      out.lossMae = ops.weightedSum(tp, [
        [out.lossMaeA, maeW],
        [out.lossMaeV, maeW],
      ]);
      terms.push([out.lossMae, 1]);
    }
    if (e.ca && e.cv) {
      out.audioRep = ops.meanTokens(tp, e.ca); // [B, D], over the visible tokens
      out.videoRep = ops.meanTokens(tp, e.cv);
      const nce = ops.infoNce(tp, ops.l2Normalize(tp, out.audioRep), ops.l2Normalize(tp, out.videoRep), {
        bidirectional: opts.bidirectional ?? c.bidirect_contrast,
        groups: opts.contrastiveGroups ?? c.contrastive_groups,
      });
      out.lossC = ops.scale(tp, nce.loss, cW);
      out.cAcc = nce.accuracy;
      out.logits = nce.logits;
      terms.push([out.lossC, 1]);
    }
    if (terms.length > 0) out.loss = ops.weightedSum(tp, terms);
    return out;
  }

  /** forward_inpaint: encoder + decoder, predictions, masks and the unweighted MAE losses. */
  forwardInpaint(tp: Tape, batch: AVBatch, opts: PretrainOptions = {}): InpaintOutput {
    if (!this.decoder) throw new Error(`variant "${this.config.variant}" has no decoder`);
    const B = this.encoder.checkInputs(batch.audio, batch.image);
    const e = this.forwardEncoder(tp, batch, B, opts, { joint: true, contrast: false });
    const { predA, predV } = this.decoder.forward(tp, e.latent!, e.maskA, e.maskV);
    return {
      predA,
      predV,
      maskA: e.maskA,
      maskV: e.maskV,
      lossPixelA: predA ? this.maeLoss(tp, batch.audio!, predA, e.maskA!, 'a') : tp.zeros([1]),
      lossPixelV: predV ? this.maeLoss(tp, batch.image!, predV, e.maskV!, 'v') : tp.zeros([1]),
    };
  }

  /**
   * forward_feat: every token, no masking. Audio: blocks_a → shared layers with the audio
   * LayerNorms → norm_a; visual likewise. Variants that never train the modality LayerNorms
   * (av-mae, vanilla-av-mae) use the joint LayerNorms and `norm` instead.
   */
  forwardFeat(tp: Tape, batch: AVBatch): FeatOutput {
    const enc = this.encoder;
    enc.checkInputs(batch.audio, batch.image);
    const joint = this.config.variant === 'av-mae' || this.config.variant === 'vanilla-av-mae';
    const out: FeatOutput = {};
    if (this.dims.hasAudio) {
      const a = runBlocks(tp, enc.blocks_a, enc.embedAudio(tp, batch.audio!));
      out.audioTokens = enc.sharedStream(tp, a, joint ? undefined : 'a');
    }
    if (this.dims.hasVideo) {
      const v = runBlocks(tp, enc.blocks_v, enc.embedVideo(tp, batch.image!));
      out.videoTokens = enc.sharedStream(tp, v, joint ? undefined : 'v');
    }
    return out;
  }

  /** Audio MAE targets [B, La, p²] / visual [B, Lv, p²·3], per-patch normalised if norm_pix_loss. */
  targets(input: Tensor, modality: Modality, out: Float32Array = new Float32Array(input.size)): Float32Array {
    const p = this.config.patch_size;
    const t = modality === 'a' ? patchifyAudio(input, p, out) : patchifyImage(input, p, out);
    const P = modality === 'a' ? p * p : p * p * this.config.in_chans;
    if (this.config.norm_pix_loss) normalizePatches(t, t.length / P, P);
    return t;
  }

  private maeLoss(tp: Tape, input: Tensor, pred: Tensor, m: Masking, modality: Modality): Tensor {
    return ops.maskedMse(tp, pred, this.targets(input, modality, tp.pool.alloc(input.size)), m.mask);
  }

  /** forward_encoder: embed, mask, modality blocks, joint stream and contrastive streams. */
  private forwardEncoder(
    tp: Tape,
    batch: AVBatch,
    B: number,
    opts: PretrainOptions,
    want: { joint: boolean; contrast: boolean },
  ): { maskA?: Masking; maskV?: Masking; latent?: Tensor; ca?: Tensor; cv?: Tensor } {
    const c = this.config;
    const enc = this.encoder;
    const d = this.dims;
    let a: Tensor | undefined;
    let v: Tensor | undefined;
    let maskA: Masking | undefined;
    let maskV: Masking | undefined;
    if (d.hasAudio) {
      a = enc.embedAudio(tp, batch.audio!); // [B, La, D]
      maskA = makeMasking({
        B,
        L: d.La,
        ratio: opts.maskRatioA ?? c.mask_ratio_a,
        mode: opts.maskMode ?? c.mask_mode,
        grid: { f: d.fRows, t: d.tCols },
        noise: opts.noiseA,
        structured: opts.structured,
        idsShuffle: opts.idsShuffleA,
        rng: opts.rng,
      });
      a = ops.gatherTokens(tp, a, maskA.idsKeep, maskA.lenKeep); // [B, Ka, D], shuffled order
      a = runBlocks(tp, enc.blocks_a, a);
    }
    if (d.hasVideo) {
      v = enc.embedVideo(tp, batch.image!); // [B, Lv, D]
      // The visual branch is always unstructured.
      maskV = makeMasking({
        B,
        L: d.Lv,
        ratio: opts.maskRatioV ?? c.mask_ratio_v,
        noise: opts.noiseV,
        idsShuffle: opts.idsShuffleV,
        rng: opts.rng,
      });
      v = ops.gatherTokens(tp, v, maskV.idsKeep, maskV.lenKeep); // [B, Kv, D]
      v = runBlocks(tp, enc.blocks_v, v);
    }
    if (c.variant === 'audio-mae') return { maskA, latent: enc.sharedStream(tp, a!, 'a') };
    if (c.variant === 'visual-mae') return { maskV, latent: enc.sharedStream(tp, v!, 'v') };
    const out: { maskA?: Masking; maskV?: Masking; latent?: Tensor; ca?: Tensor; cv?: Tensor } = {
      maskA,
      maskV,
    };
    if (want.joint) out.latent = enc.sharedStream(tp, ops.concat(tp, [a!, v!], 1)); // [B, Ka+Kv, D]
    if (want.contrast && c.variant !== 'vanilla-av-mae') {
      out.ca = enc.contrastStream(tp, a!, 'a', c.chain_shared_layers);
      out.cv = enc.contrastStream(tp, v!, 'v', c.chain_shared_layers);
    }
    return out;
  }
}
