/**
 * CAVMAE: the pretraining model of the family, CAV-MAE and CAV-MAE Sync, with the variants of the
 * paper's table 1 (cav_mae.py: CAVMAE; cav_mae_sync.py: CAVMAE; docs/model.md, docs/sync.md).
 *
 * Design contract:
 * - `CAVMAE.create(config, {seed})` declares every parameter under its official name, lays them
 *   out in ONE ParamArena in the release's state-dict order and initialises them.
 * - `forward(tp, batch, opts)` = forward_encoder → forward_decoder → losses, recorded on the tape;
 *   `tape.backward(out.loss)` fills `model.arena.grad`. Masks replay exactly from the noise the
 *   caller passes (or are drawn from a seeded Rng). `forwardFeat` (no masking) and
 *   `forwardInpaint` (predictions + unweighted losses) as the references.
 * - CAV-MAE is Sync with every Sync part off; the parts are switched on by a Sync kind's config
 *   (config.ts: SYNC_KEYS): register tokens (dropped after blocks_a / blocks_v unless
 *   keep_register_tokens, which keeps them through the shared layer and heads), global tokens
 *   (cls_token: the contrastive input instead of the mean of the visible patch tokens; the
 *   reconstruction stream never sees them), the contrastive heads (2 Blocks per modality after
 *   the shared layer, joint LayerNorms), global_local_losses (the mean of the global NCE and the
 *   local-mean NCE) and multi_ratio_masking (one ratio per modality per call in [0.6, 0.9)).
 *   Masking runs on the patches before the special tokens are added, so masks replay from the
 *   same noise for the whole family (test/models/family.test.ts checks the equality bit for bit).
 * - The two behaviours of the references that differ on purpose are explicit: which shared layers
 *   forward_feat runs (KIND_TRAITS.featStream), and the position of the Sync parameters in the
 *   state dict (register_tokens after the position tables, cls_token_a/_v after the decoder's own
 *   tensors, the misspelled `constrative_head_*` between blocks_u and norm_a).
 * - Variants: av-mae (λc = 0); cav (no decoder, contrastive only); vanilla-av-mae (one joint
 *   encoder, no contrastive streams); audio-mae / visual-mae (one modality: its blocks, the shared
 *   layers with its LayerNorms, its final norm, its half of the decoder). VARIANT_TRAITS says which.
 * - Weighted terms as the references: loss_c = λc·NCE, loss = λmae·(loss_mae_a + loss_mae_v) +
 *   loss_c. Batch size 1 works (NCE 0, accuracy 1).
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks, type Modality } from '../nn/block.js';
import { normal } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import {
  normalizePatches,
  patchifyAudio,
  patchifyImage,
  unpatchifyAudio,
  unpatchifyImage,
} from '../nn/patch-embed.js';
import { fused } from '../kernels/fused.js';
import { kernels } from '../kernels/index.js';
import { ParamArena, ParamBuilder, type Param, type QuantizeFn } from '../tensor/arena.js';
import { Rng } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { MEL_BINS, kindTraits, variantTraits, type CavmaeConfig, type ModelDims } from './config.js';
import { AVEncoder, modalityEmbeddings, torchStateDictOrder } from './encoder.js';
import { makeMasking, type Masking, type MaskMode, type StructuredChoice } from './masking.js';

export interface AVBatch {
  /** Spectrogram [B, audio_length, 128] (time × mel); a Sync model's rows are one segment. */
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
  /** Draws whatever noise (and multi-ratio masking ratios) is not given. */
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
  /** The ratios the masks used (drawn per call with multi_ratio_masking). */
  maskRatioA: number;
  maskRatioV: number;
  /** [B, La, 256] and [B, Lv, 768] (undefined without a decoder). */
  predA?: Tensor;
  predV?: Tensor;
  /** Encoder intermediates: the joint tokens after `norm`, the contrastive streams' patch tokens. */
  latent?: Tensor;
  latentCA?: Tensor;
  latentCV?: Tensor;
  /**
   * The NCE inputs [B, D] before L2 normalisation (cls_a / cls_v of the Sync reference): the
   * global tokens with cls_token, else the mean of the visible patch tokens. `clsA` = `audioRep`.
   */
  audioRep?: Tensor;
  videoRep?: Tensor;
  clsA?: Tensor;
  clsV?: Tensor;
  /** Mean of the normalised visible patch tokens [B, D]. */
  localMeanA?: Tensor;
  localMeanV?: Tensor;
  /** With cls_token + global_local_losses: λc·NCE(global) and λc·NCE(local mean). */
  lossCGlobal?: Tensor;
  lossCLocal?: Tensor;
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
  /** [B, La, D] patch tokens after the audio stream's final norm (global token and registers removed). */
  audioTokens?: Tensor;
  /** [B, Lv, D]. */
  videoTokens?: Tensor;
  /** Global tokens [B, D] after norm_a / norm_v (cls_token only). */
  clsA?: Tensor;
  clsV?: Tensor;
}

/** A contrastive stream's output: the patch tokens after the final norm, and the global token. */
interface Stream {
  local: Tensor;
  cls?: Tensor;
}

/** The decoder (cav_mae.py: forward_decoder); one-modality variants have their half only. */
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

  constructor(pb: ParamBuilder, c: CavmaeConfig, d: ModelDims) {
    const Dd = c.decoder_embed_dim;
    const p2 = c.patch_size * c.patch_size;
    this.decoder_embed = new Linear(pb.scope('decoder_embed'), c.embed_dim, Dd);
    this.mask_token = pb.param('mask_token', [1, 1, Dd], normal(0.02));
    ({
      modality_a: this.decoder_modality_a,
      modality_v: this.decoder_modality_v,
      pos_embed_a: this.decoder_pos_embed_a,
      pos_embed_v: this.decoder_pos_embed_v,
    } = modalityEmbeddings(pb, 'decoder_', Dd, d, c.tr_pos));
    for (let i = 0; i < c.decoder_depth; i++)
      this.decoder_blocks.push(
        new Block(pb.scope('decoder_blocks').scope(i), Dd, c.decoder_num_heads, c.mlp_ratio),
      );
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

  /** Joint tokens [B, Ka+Kv, D] → pred_a [B, La, p²], pred_v [B, Lv, p²·3]. */
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

/** The released names of the contrastive heads (misspelled as released). */
export const HEAD_AUDIO = 'constrative_head_audio';
export const HEAD_VISUAL = 'constrative_head_visual';

export type CreateOptions = {
  seed?: number;
  init?: boolean;
  grad?: boolean;
  allocate?: boolean;
  int8?: boolean;
};

/** Row-major int8 values of the weight being packed: one buffer, reused weight after weight. */
let packScratch = new Int8Array(0);

/**
 * quantizeWeightsInt8 of the selected kernels (what an int8 tape would make of the fp32 weight).
 * Where the backend's GEMM reads packed weights, only the packed layout is kept: holding the
 * row-major values too would add the int8 model's size again to the peak RSS.
 */
const quantizeInt8: QuantizeFn = (w, n, k, out) => {
  const f = fused(kernels());
  if (!f.packsInt8Weights(n, k)) {
    out.q ??= new Int8Array(n * k);
    f.quantizeWeightsInt8(w, n, k, out.q, out.scale, out.comp);
    out.packed = null;
    return;
  }
  if (packScratch.length < n * k) packScratch = new Int8Array(n * k);
  const q = packScratch.subarray(0, n * k);
  f.quantizeWeightsInt8(w, n, k, q, out.scale, out.comp);
  out.packed ??= new Uint8Array(n * k);
  f.packWeightsInt8(q, n, k, out.packed);
  out.q = null;
};

/**
 * Lays out a model's parameters and initialises them: `seed` seeds the initialisation; `init:
 * false` leaves zeros (a checkpoint will be loaded); `grad: false` defers the gradient buffer
 * (inference); `allocate: false` builds the layout only (names, shapes, counts); `int8: true`
 * builds an int8 inference model: every linear layer's and patch embedding's weight held only as
 * its int8 quantisation (ParamArena's contract), usable on int8 tapes only.
 */
export function arenaFor(params: readonly Param[], opts: CreateOptions): ParamArena {
  const arena = new ParamArena(params, {
    grad: opts.int8 ? false : opts.grad,
    allocate: opts.allocate,
    int8: opts.int8 ? quantizeInt8 : undefined,
  });
  if ((opts.init ?? true) && arena.allocated) arena.initialize(new Rng(opts.seed ?? 0));
  return arena;
}

export class CAVMAE {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly decoder?: Decoder;
  readonly constrative_head_audio: Block[] = [];
  readonly constrative_head_visual: Block[] = [];
  readonly dims: ModelDims;

  private constructor(
    readonly config: CavmaeConfig,
    opts: CreateOptions,
  ) {
    if (kindTraits(config).task !== 'pretrain')
      throw new Error(`CAVMAE built with a "${config.model}" config`);
    const c = config;
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, c);
    const d = (this.dims = this.encoder.dims);
    if (d.hasDecoder) this.decoder = new Decoder(pb, c, d);
    if (c.contrastive_heads) {
      for (const [scope, list] of [
        [HEAD_AUDIO, this.constrative_head_audio],
        [HEAD_VISUAL, this.constrative_head_visual],
      ] as const)
        for (let i = 0; i < 2; i++)
          list.push(new Block(pb.scope(scope).scope(i), c.embed_dim, c.num_heads, c.mlp_ratio));
    }
    this.encoder.declareGlobalTokens(pb);
    let order = torchStateDictOrder(pb.params);
    if (this.constrative_head_audio.length > 0) {
      // The release declares the heads between blocks_u and norm_a.
      const isHead = (p: Param): boolean =>
        p.name.startsWith(`${HEAD_AUDIO}.`) || p.name.startsWith(`${HEAD_VISUAL}.`);
      const rest = order.filter((p) => !isHead(p));
      const at = rest.findIndex((p) => p.name === 'norm_a.weight');
      order = [...rest.slice(0, at), ...order.filter(isHead), ...rest.slice(at)];
    }
    this.arena = arenaFor(order, opts);
  }

  /** Builds the model (see `arenaFor` for the options). */
  static create(config: CavmaeConfig, opts: CreateOptions = {}): CAVMAE {
    return new CAVMAE(config, opts);
  }

  /** The forward pass with masking and losses (the references' forward). */
  forward(tp: Tape, batch: AVBatch, opts: PretrainOptions = {}): PretrainOutput {
    const c = this.config;
    const B = this.encoder.checkInputs(batch.audio, batch.image);
    const maeW = opts.maeLossWeight ?? c.mae_loss_weight;
    const cW = opts.contrastLossWeight ?? c.contrast_loss_weight;
    if (maeW !== 0 && !this.decoder)
      throw new UserError(`variant "${c.variant}" has no decoder: the MAE loss weight must be 0`);
    if (cW !== 0 && !variantTraits(c).contrastive)
      throw new UserError(
        `variant "${c.variant}" has no contrastive streams: the contrastive loss weight must be 0`,
      );
    const ratios = this.maskRatios(opts);
    const e = this.forwardEncoder(tp, batch, B, opts, ratios, {
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
      maskRatioA: ratios.a,
      maskRatioV: ratios.v,
      latent: e.latent,
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
    if (e.a && e.v) {
      const [a, v] = [e.a, e.v];
      out.latentCA = a.local;
      out.latentCV = v.local;
      out.localMeanA = ops.meanTokens(tp, a.local); // [B, D], over the visible tokens
      out.localMeanV = ops.meanTokens(tp, v.local);
      out.clsA = out.audioRep = a.cls ?? out.localMeanA;
      out.clsV = out.videoRep = v.cls ?? out.localMeanV;
      const nceOpts = {
        bidirectional: opts.bidirectional ?? c.bidirect_contrast,
        groups: opts.contrastiveGroups ?? c.contrastive_groups,
      };
      const nce = ops.infoNce(tp, ops.l2Normalize(tp, out.clsA), ops.l2Normalize(tp, out.clsV), nceOpts);
      out.logits = nce.logits;
      if (this.dims.lead && c.global_local_losses) {
        const local = ops.infoNce(
          tp,
          ops.l2Normalize(tp, out.localMeanA),
          ops.l2Normalize(tp, out.localMeanV),
          nceOpts,
        );
        out.lossCGlobal = ops.scale(tp, nce.loss, cW);
        out.lossCLocal = ops.scale(tp, local.loss, cW);
        out.lossC = ops.weightedSum(tp, [
          [nce.loss, cW / 2],
          [local.loss, cW / 2],
        ]);
        out.cAcc = (nce.accuracy + local.accuracy) / 2;
      } else {
        out.lossC = ops.scale(tp, nce.loss, cW);
        out.cAcc = nce.accuracy;
      }
      terms.push([out.lossC, 1]);
    }
    if (terms.length > 0) out.loss = ops.weightedSum(tp, terms);
    return out;
  }

  /** forward_inpaint: encoder + decoder, predictions, masks and the unweighted MAE losses. */
  forwardInpaint(tp: Tape, batch: AVBatch, opts: PretrainOptions = {}): InpaintOutput {
    if (!this.decoder) throw new Error(`variant "${this.config.variant}" has no decoder`);
    const B = this.encoder.checkInputs(batch.audio, batch.image);
    const e = this.forwardEncoder(tp, batch, B, opts, this.maskRatios(opts), {
      joint: true,
      contrast: false,
    });
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
   * forward_feat: every token, no masking, each modality on its own. CAV-MAE ('chained'): the
   * modality's blocks → every shared layer with its LayerNorms → norm_a / norm_v; variants that
   * never train the modality LayerNorms (av-mae, vanilla-av-mae) use the joint ones and `norm`.
   * Sync ('contrastive'): the contrastive stream (global token and registers removed from the
   * patch tokens; the global tokens returned with cls_token). `only` runs one modality (the
   * streams do not interact here): the inference API embeds audio and pictures on their own.
   */
  forwardFeat(tp: Tape, batch: AVBatch, only?: Modality): FeatOutput {
    const enc = this.encoder;
    const runs = (m: Modality): boolean =>
      (m === 'a' ? this.dims.hasAudio : this.dims.hasVideo) && (only === undefined || only === m);
    enc.checkInputs(batch.audio, batch.image, 'inputs', { audio: runs('a'), video: runs('v') });
    const contrastive = kindTraits(this.config).featStream === 'contrastive';
    const joint = variantTraits(this.config).jointFeat;
    const out: FeatOutput = {};
    for (const m of ['a', 'v'] as const) {
      const input = m === 'a' ? batch.audio : batch.image;
      if (!runs(m)) continue;
      const x = enc.modalityStream(tp, enc.embed(tp, input!, m), m, this.config.keep_register_tokens);
      const s: Stream = contrastive
        ? this.contrastStream(tp, x, m)
        : { local: enc.sharedStream(tp, x, joint ? undefined : m) };
      if (m === 'a') [out.audioTokens, out.clsA] = [s.local, s.cls];
      else [out.videoTokens, out.clsV] = [s.local, s.cls];
    }
    return out;
  }

  /**
   * Reconstructions for display, as the Sync reference's recon_a / recon_v (NHWC): audio
   * [B, 128, T, 1] (frequency × time), image [B, H, W, 3]. Predictions are in target space
   * (per-patch normalised when norm_pix_loss).
   */
  reconstruct(predA: Tensor, predV: Tensor): { reconA: Float32Array; reconV: Float32Array } {
    const c = this.config;
    const p = c.patch_size;
    const B = predA.shape[0];
    const T = c.audio_length;
    const S = c.img_size;
    const C = c.in_chans;
    const audio = unpatchifyAudio(predA.data, B, T, MEL_BINS, p); // [B, T, 128]
    const reconA = new Float32Array(audio.length);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let f = 0; f < MEL_BINS; f++)
          reconA[(b * MEL_BINS + f) * T + t] = audio[(b * T + t) * MEL_BINS + f];
    const img = unpatchifyImage(predV.data, B, C, S, S, p); // [B, 3, S, S]
    const reconV = new Float32Array(img.length);
    for (let b = 0; b < B; b++)
      for (let ch = 0; ch < C; ch++)
        for (let i = 0; i < S * S; i++) reconV[(b * S * S + i) * C + ch] = img[(b * C + ch) * S * S + i];
    return { reconA, reconV };
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

  /** Explicit ratios win; multi_ratio_masking draws one per modality in [0.6, 0.9) per call. */
  private maskRatios(opts: PretrainOptions): { a: number; v: number } {
    const c = this.config;
    if (c.multi_ratio_masking && (opts.maskRatioA === undefined || opts.maskRatioV === undefined)) {
      if (!opts.rng)
        throw new UserError('multi_ratio_masking draws the mask ratios: pass a random generator (rng)');
      return {
        a: opts.maskRatioA ?? 0.6 + 0.3 * opts.rng.uniform(),
        v: opts.maskRatioV ?? 0.6 + 0.3 * opts.rng.uniform(),
      };
    }
    return { a: opts.maskRatioA ?? c.mask_ratio_a, v: opts.maskRatioV ?? c.mask_ratio_v };
  }

  /**
   * A contrastive stream: the shared layer(s) with the modality LayerNorms (encoder.contrastLayers),
   * the optional heads (joint LayerNorms), kept registers dropped, norm_a / norm_v, then split
   * into the global token and the patch tokens.
   */
  private contrastStream(tp: Tape, x: Tensor, m: Modality): Stream {
    const enc = this.encoder;
    let y = enc.contrastLayers(tp, x, m, this.config.chain_shared_layers);
    y = runBlocks(tp, m === 'a' ? this.constrative_head_audio : this.constrative_head_visual, y);
    if (this.config.keep_register_tokens) y = enc.dropRegisters(tp, y);
    const n = enc.finalNorm(m).forward(tp, y); // [B, lead + K, D]
    if (!this.dims.lead) return { local: n };
    const [B, T, D] = n.shape;
    return { cls: ops.reshape(tp, ops.slice(tp, n, 0, 1), [B, D]), local: ops.slice(tp, n, 1, T) };
  }

  /** forward_encoder: embed, mask, modality blocks, the joint stream and the contrastive streams. */
  private forwardEncoder(
    tp: Tape,
    batch: AVBatch,
    B: number,
    opts: PretrainOptions,
    ratios: { a: number; v: number },
    want: { joint: boolean; contrast: boolean },
  ): { maskA?: Masking; maskV?: Masking; latent?: Tensor; a?: Stream; v?: Stream } {
    const c = this.config;
    const enc = this.encoder;
    const d = this.dims;
    const keep = c.keep_register_tokens ?? false;
    const masked = (m: Modality, mask: Masking): Tensor => {
      const x = enc.embed(tp, m === 'a' ? batch.audio! : batch.image!, m); // [B, L, D]
      const visible = ops.gatherTokens(tp, x, mask.idsKeep, mask.lenKeep); // [B, K, D], shuffled order
      return enc.modalityStream(tp, visible, m, keep); // [B, lead + K (+ R), D]
    };
    const common = { B, rng: opts.rng };
    // The visual branch is always unstructured.
    const maskA = d.hasAudio
      ? makeMasking({
          ...common,
          L: d.La,
          ratio: ratios.a,
          mode: opts.maskMode ?? c.mask_mode,
          grid: { f: d.fRows, t: d.tCols },
          noise: opts.noiseA,
          structured: opts.structured,
          idsShuffle: opts.idsShuffleA,
        })
      : undefined;
    const maskV = d.hasVideo
      ? makeMasking({ ...common, L: d.Lv, ratio: ratios.v, noise: opts.noiseV, idsShuffle: opts.idsShuffleV })
      : undefined;
    const a = maskA && masked('a', maskA);
    const v = maskV && masked('v', maskV);
    if (!v) return { maskA, latent: enc.sharedStream(tp, a!, 'a') };
    if (!a) return { maskV, latent: enc.sharedStream(tp, v, 'v') };
    const out: ReturnType<CAVMAE['forwardEncoder']> = { maskA, maskV };
    if (want.joint) {
      // The reconstruction stream never sees the global tokens.
      const patches = (x: Tensor): Tensor => (d.lead ? ops.slice(tp, x, d.lead, x.shape[1]) : x);
      let x = enc.sharedStream(tp, ops.concat(tp, [patches(a), patches(v)], 1)); // [B, Ka (+R) + Kv (+R), D]
      if (keep && d.registers > 0) {
        // Joint layout [audio patches, audio registers, visual patches, visual registers].
        const [Ka, Kv, R] = [maskA!.lenKeep, maskV!.lenKeep, d.registers];
        x = ops.concat(tp, [ops.slice(tp, x, 0, Ka), ops.slice(tp, x, Ka + R, Ka + R + Kv)], 1); // [B, Ka+Kv, D]
      }
      out.latent = x;
    }
    if (want.contrast && variantTraits(c).contrastive) {
      out.a = this.contrastStream(tp, a, 'a');
      out.v = this.contrastStream(tp, v, 'v');
    }
    return out;
  }
}
