/**
 * CAVMAESync: CAV-MAE Sync pretraining / retrieval model (spec 8.3, 8.4; behaviour decided in
 * docs/sync-reference.md and checked against scripts/golden/sync_reference.py).
 *
 * Design contract:
 * - Parameters carry the released names, shapes and state-dict order (the CAV-MAE ones plus
 *   `register_tokens` [2R, D], `cls_token_a/_v` [1,1,D] and the misspelled
 *   `constrative_head_audio/visual.{0,1}` Blocks), so `cav_mae_sync.pth` loads with `module.`
 *   stripped. Position tables are 2-D sin-cos on the SEGMENT grid: 8 × audio_length/16.
 * - Per modality the encoder sees [global token (cls_token), visible patches in shuffled order,
 *   R registers]; CLS and registers get no position or modality embedding. Masking runs on the
 *   patches before the special tokens are added, so masks replay from the same noise as CAV-MAE.
 * - The registers are dropped right after blocks_a / blocks_v (`keep_register_tokens` keeps
 *   them through the shared layer and heads and drops them afterwards). The reconstruction
 *   stream (joint LayerNorms → norm → decoder) never sees the global tokens; the contrastive
 *   streams (modality LayerNorms → optional heads → norm_a / norm_v) carry them.
 * - Contrastive input: the global tokens with `cls_token`, else the mean of the normalised
 *   visible patch tokens (CAV-MAE). `global_local_losses` (with CLS) averages the global NCE and
 *   the local-mean NCE. Weighted terms as the reference: loss_c = λc·NCE, loss = λmae·(La+Lv) + loss_c.
 * - Batch size 1 works (the release's `.squeeze()` does not): NCE 0, accuracy 1.
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks, type Modality } from '../nn/block.js';
import { normal, table } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { Linear } from '../nn/linear.js';
import {
  normalizePatches,
  patchifyAudio,
  patchifyImage,
  unpatchifyAudio,
  unpatchifyImage,
} from '../nn/patch-embed.js';
import { ParamArena, ParamBuilder, type Param } from '../tensor/arena.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import type { AVBatch, PretrainOptions, PretrainOutput } from './cavmae.js';
import { MEL_BINS, modelDims, type CavmaeConfig } from './config.js';
import { AVEncoder, torchStateDictOrder } from './encoder.js';
import { makeMasking, type Masking } from './masking.js';
import { sincosTable2d } from './pos-embed.js';
import { syncConfig, type SyncConfig } from './sync-config.js';

export interface SyncPretrainOutput extends PretrainOutput {
  /**
   * The NCE inputs [B, D] before L2 normalisation (what the reference returns as cls_a /
   * cls_v): the global tokens with cls_token, else the mean of the local tokens. Also
   * available as `audioRep` / `videoRep`.
   */
  clsA?: Tensor;
  clsV?: Tensor;
  /** Mean of the normalised local (visible patch) tokens [B, D]. */
  localMeanA?: Tensor;
  localMeanV?: Tensor;
  /** With cls_token + global_local_losses: λc·NCE(global) and λc·NCE(local mean). */
  lossCGlobal?: Tensor;
  lossCLocal?: Tensor;
  /** The ratios the masks used (drawn per call with multi_ratio_masking). */
  maskRatioA: number;
  maskRatioV: number;
}

export interface SyncFeatOutput {
  /** [B, La, D] patch tokens after norm_a (global token and registers removed). */
  audioTokens: Tensor;
  /** [B, Lv, D]. */
  videoTokens: Tensor;
  /** Global tokens [B, D] after norm_a / norm_v (cls_token only). */
  clsA?: Tensor;
  clsV?: Tensor;
}

/** The CAV-MAE decoder (spec 3.8), unchanged by Sync apart from the segment-sized audio table. */
class SyncDecoder {
  readonly decoder_embed: Linear;
  readonly mask_token: Param;
  readonly decoder_modality_a: Param;
  readonly decoder_modality_v: Param;
  readonly decoder_pos_embed_a: Param;
  readonly decoder_pos_embed_v: Param;
  readonly decoder_blocks: Block[] = [];
  readonly decoder_norm: LayerNorm;
  readonly decoder_pred_a: Linear;
  readonly decoder_pred_v: Linear;

  constructor(pb: ParamBuilder, c: CavmaeConfig) {
    const d = modelDims(c);
    const Dd = c.decoder_embed_dim;
    const p2 = c.patch_size * c.patch_size;
    this.decoder_embed = new Linear(pb.scope('decoder_embed'), c.embed_dim, Dd);
    this.mask_token = pb.param('mask_token', [1, 1, Dd], normal(0.02));
    this.decoder_modality_a = pb.param('decoder_modality_a', [1, 1, Dd], normal(0.02));
    this.decoder_modality_v = pb.param('decoder_modality_v', [1, 1, Dd], normal(0.02));
    const fixed = { requiresGrad: c.tr_pos };
    this.decoder_pos_embed_a = pb.param(
      'decoder_pos_embed_a',
      [1, d.La, Dd],
      table(sincosTable2d(Dd, d.fRows, d.tCols)),
      fixed,
    );
    this.decoder_pos_embed_v = pb.param(
      'decoder_pos_embed_v',
      [1, d.Lv, Dd],
      table(sincosTable2d(Dd, d.vGrid, d.vGrid)),
      fixed,
    );
    for (let i = 0; i < c.decoder_depth; i++)
      this.decoder_blocks.push(
        new Block(pb.scope('decoder_blocks').scope(i), Dd, c.decoder_num_heads, c.mlp_ratio),
      );
    this.decoder_norm = new LayerNorm(pb.scope('decoder_norm'), Dd);
    this.decoder_pred_a = new Linear(pb.scope('decoder_pred_a'), Dd, p2);
    this.decoder_pred_v = new Linear(pb.scope('decoder_pred_v'), Dd, p2 * c.in_chans);
  }

  /** Visible tokens [B, K, Dd] + mask tokens → [B, L, Dd] in position order, + position + modality. */
  private fill(tp: Tape, visible: Tensor, m: Masking, pos: Param, modality: Param): Tensor {
    const [B, K, Dd] = visible.shape;
    const masked = ops.broadcastTo(tp, this.mask_token, [B, m.L - K, Dd]);
    let x = ops.concat(tp, [visible, masked], 1); // [B, L, Dd], shuffled order
    x = ops.gatherTokens(tp, x, m.idsRestore, m.L); // [B, L, Dd], position order
    x = ops.addBroadcast(tp, x, pos);
    return ops.addBroadcast(tp, x, modality);
  }

  /** Joint latent [B, Ka+Kv, D] → pred_a [B, La, 256], pred_v [B, Lv, 768]. */
  forward(tp: Tape, x: Tensor, maskA: Masking, maskV: Masking): { predA: Tensor; predV: Tensor } {
    x = this.decoder_embed.forward(tp, x); // [B, Ka+Kv, Dd]
    const Ka = maskA.lenKeep;
    const a = this.fill(
      tp,
      ops.slice(tp, x, 0, Ka),
      maskA,
      this.decoder_pos_embed_a,
      this.decoder_modality_a,
    );
    const v = this.fill(
      tp,
      ops.slice(tp, x, Ka, x.shape[1]),
      maskV,
      this.decoder_pos_embed_v,
      this.decoder_modality_v,
    );
    let y = ops.concat(tp, [a, v], 1); // [B, La+Lv, Dd]
    y = runBlocks(tp, this.decoder_blocks, y);
    y = this.decoder_norm.forward(tp, y);
    const La = maskA.L;
    return {
      predA: this.decoder_pred_a.forward(tp, ops.slice(tp, y, 0, La)),
      predV: this.decoder_pred_v.forward(tp, ops.slice(tp, y, La, y.shape[1])),
    };
  }
}

/**
 * The Sync tokens shared by the pretraining and fine-tuning models: registers and global tokens,
 * declared under their released names, and the token bookkeeping around the modality encoders.
 */
export class SyncTokens {
  readonly register_tokens?: Param;
  cls_token_a?: Param;
  cls_token_v?: Param;
  readonly R: number;
  readonly cls: boolean;

  constructor(
    pb: ParamBuilder,
    readonly cfg: SyncConfig,
  ) {
    this.R = cfg.num_register_tokens;
    this.cls = cfg.cls_token;
    // torch.randn and never re-initialised: N(0, 1) (spec 8.3).
    if (this.R > 0)
      this.register_tokens = pb.param('register_tokens', [2 * this.R, cfg.embed_dim], normal(1));
  }

  /** Declared separately: their state-dict position is after the decoder's own parameters. */
  declareGlobalTokens(pb: ParamBuilder): void {
    if (!this.cls) return;
    this.cls_token_a = pb.param('cls_token_a', [1, 1, this.cfg.embed_dim], normal(0.02));
    this.cls_token_v = pb.param('cls_token_v', [1, 1, this.cfg.embed_dim], normal(0.02));
  }

  /** Leading tokens before the patches (1 with a global token). */
  get lead(): number {
    return this.cls ? 1 : 0;
  }

  /** [B, K, D] patches → [B, lead + K + R, D]: [global, patches, registers]. */
  wrap(tp: Tape, x: Tensor, m: Modality): Tensor {
    const [B, , D] = x.shape;
    const parts: Tensor[] = [];
    if (this.cls)
      parts.push(ops.broadcastTo(tp, m === 'a' ? this.cls_token_a! : this.cls_token_v!, [B, 1, D]));
    parts.push(x);
    if (this.R > 0) {
      const rows = m === 'a' ? [0, this.R] : [this.R, 2 * this.R];
      const regs = ops.slice(tp, this.register_tokens!, rows[0], rows[1], 0); // [R, D]
      parts.push(ops.broadcastTo(tp, regs, [B, this.R, D]));
    }
    return parts.length === 1 ? x : ops.concat(tp, parts, 1);
  }

  /** Drops the trailing R registers: [B, T, D] → [B, T - R, D]. */
  dropRegisters(tp: Tape, x: Tensor): Tensor {
    return this.R > 0 ? ops.slice(tp, x, 0, x.shape[1] - this.R) : x;
  }
}

/** Moves the parameters selected by `pick` (in their order) just before the first one named `anchor`. */
function moveBefore<T extends { name: string }>(list: T[], pick: (p: T) => boolean, anchor: string): T[] {
  const moved = list.filter(pick);
  if (moved.length === 0) return list;
  const rest = list.filter((p) => !pick(p));
  const at = rest.findIndex((p) => p.name === anchor);
  if (at < 0) throw new Error(`state-dict order: no parameter ${anchor}`);
  return [...rest.slice(0, at), ...moved, ...rest.slice(at)];
}

export const HEAD_AUDIO = 'constrative_head_audio';
export const HEAD_VISUAL = 'constrative_head_visual';

export class CAVMAESync {
  readonly arena: ParamArena;
  readonly encoder: AVEncoder;
  readonly decoder: SyncDecoder;
  readonly tokens: SyncTokens;
  readonly constrative_head_audio: Block[] = [];
  readonly constrative_head_visual: Block[] = [];
  readonly dims: ReturnType<typeof modelDims>;
  readonly config: SyncConfig;

  private constructor(config: CavmaeConfig, opts: { grad?: boolean; allocate?: boolean } = {}) {
    if (config.model !== 'cavmae-sync') throw new Error(`CAVMAESync built with a "${config.model}" config`);
    const c = (this.config = syncConfig(config));
    const pb = ParamBuilder.root();
    this.encoder = new AVEncoder(pb, c);
    this.dims = this.encoder.dims;
    this.tokens = new SyncTokens(pb, c);
    this.decoder = new SyncDecoder(pb, c);
    if (c.contrastive_heads) {
      for (const [scope, list] of [
        [HEAD_AUDIO, this.constrative_head_audio],
        [HEAD_VISUAL, this.constrative_head_visual],
      ] as const) {
        for (let i = 0; i < 2; i++)
          list.push(new Block(pb.scope(scope).scope(i), c.embed_dim, c.num_heads, c.mlp_ratio));
      }
    }
    this.tokens.declareGlobalTokens(pb);
    // Released order: the heads sit between blocks_u and norm_a (they are declared there).
    const order = moveBefore(
      torchStateDictOrder(pb.params),
      (p) => p.name.startsWith(`${HEAD_AUDIO}.`) || p.name.startsWith(`${HEAD_VISUAL}.`),
      'norm_a.weight',
    );
    this.arena = new ParamArena(order, opts);
  }

  /**
   * Builds the model. `seed` seeds the initialisation; `init: false` leaves zeros (a checkpoint
   * will be loaded); `grad: false` defers the gradient buffer; `allocate: false` builds the
   * parameter layout only (names, shapes, counts of the 190M-parameter released model).
   */
  static create(
    config: CavmaeConfig,
    opts: { seed?: number; init?: boolean; grad?: boolean; allocate?: boolean } = {},
  ): CAVMAESync {
    const m = new CAVMAESync(config, { grad: opts.grad, allocate: opts.allocate });
    if ((opts.init ?? true) && m.arena.allocated) m.arena.initialize(new Rng(opts.seed ?? 0));
    return m;
  }

  /** The pretraining forward pass with masking and losses (the released forward). */
  forward(tp: Tape, batch: AVBatch, opts: PretrainOptions = {}): SyncPretrainOutput {
    const c = this.config;
    const enc = this.encoder;
    const B = enc.checkInputs(batch.audio, batch.image);
    const maeW = opts.maeLossWeight ?? c.mae_loss_weight;
    const cW = opts.contrastLossWeight ?? c.contrast_loss_weight;
    const ratios = this.maskRatios(opts);
    const e = this.forwardEncoder(tp, batch, B, opts, ratios, { joint: maeW !== 0, contrast: cW !== 0 });
    const zero = (): Tensor => tp.zeros([1]);
    const out: SyncPretrainOutput = {
      loss: zero(),
      lossMae: zero(),
      lossMaeA: zero(),
      lossMaeV: zero(),
      lossC: zero(),
      cAcc: 0,
      maskA: e.maskA,
      maskV: e.maskV,
      latent: e.latent,
      maskRatioA: ratios.a,
      maskRatioV: ratios.v,
    };
    const terms: [Tensor, number][] = [];
    if (e.latent) {
      const { predA, predV } = this.decoder.forward(tp, e.latent, e.maskA, e.maskV);
      out.predA = predA;
      out.predV = predV;
      out.lossMaeA = this.maeLoss(tp, batch.audio!, predA, e.maskA, 'a');
      out.lossMaeV = this.maeLoss(tp, batch.image!, predV, e.maskV, 'v');
      out.lossMae = ops.weightedSum(tp, [
        [out.lossMaeA, maeW],
        [out.lossMaeV, maeW],
      ]);
      terms.push([out.lossMae, 1]);
    }
    if (e.streams) {
      const s = e.streams;
      out.latentCA = s.localA;
      out.latentCV = s.localV;
      out.localMeanA = ops.meanTokens(tp, s.localA); // [B, D]
      out.localMeanV = ops.meanTokens(tp, s.localV);
      out.clsA = out.audioRep = s.clsA ?? out.localMeanA;
      out.clsV = out.videoRep = s.clsV ?? out.localMeanV;
      const nceOpts = {
        bidirectional: opts.bidirectional ?? c.bidirect_contrast,
        groups: opts.contrastiveGroups ?? c.contrastive_groups,
      };
      const nce = ops.infoNce(tp, ops.l2Normalize(tp, out.clsA), ops.l2Normalize(tp, out.clsV), nceOpts);
      out.logits = nce.logits;
      if (c.cls_token && c.global_local_losses) {
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

  /**
   * forward_feat: no masking. Patch tokens after the contrastive streams and norm_a / norm_v
   * (global token and registers removed), and the global tokens with cls_token.
   */
  forwardFeat(tp: Tape, batch: AVBatch): SyncFeatOutput {
    const enc = this.encoder;
    enc.checkInputs(batch.audio, batch.image);
    const a = this.modalityEncoder(tp, enc.embedAudio(tp, batch.audio!), 'a');
    const v = this.modalityEncoder(tp, enc.embedVideo(tp, batch.image!), 'v');
    const s = this.contrastStreams(tp, a, v);
    return { audioTokens: s.localA, videoTokens: s.localV, clsA: s.clsA, clsV: s.clsV };
  }

  /**
   * Reconstructions for display, as the reference's recon_a / recon_v (NHWC): audio
   * [B, 128, L, 1] (frequency × time), image [B, H, W, 3]. Predictions are in target space
   * (per-patch normalised when norm_pix_loss).
   */
  reconstruct(predA: Tensor, predV: Tensor): { reconA: Float32Array; reconV: Float32Array } {
    const c = this.config;
    const p = c.patch_size;
    const B = predA.shape[0];
    const T = c.audio_length;
    const S = c.img_size;
    const audio = unpatchifyAudio(predA.data, B, T, MEL_BINS, p); // [B, T, 128]
    const reconA = new Float32Array(audio.length);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let f = 0; f < MEL_BINS; f++)
          reconA[(b * MEL_BINS + f) * T + t] = audio[(b * T + t) * MEL_BINS + f];
    const img = unpatchifyImage(predV.data, B, c.in_chans, S, S, p); // [B, 3, S, S]
    const reconV = new Float32Array(img.length);
    const C = c.in_chans;
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

  /** [global] + tokens + [registers] → the modality's blocks → registers dropped unless kept. */
  private modalityEncoder(tp: Tape, x: Tensor, m: Modality): Tensor {
    const blocks = m === 'a' ? this.encoder.blocks_a : this.encoder.blocks_v;
    const y = runBlocks(tp, blocks, this.tokens.wrap(tp, x, m)); // [B, lead + K + R, D]
    return this.config.keep_register_tokens ? y : this.tokens.dropRegisters(tp, y);
  }

  /**
   * The contrastive streams: shared layer(s) with the modality LayerNorms (the reference's
   * loop keeps only the last shared layer's output, spec 9.1 item 7, unless chain_shared_layers),
   * the optional heads (joint LayerNorms), kept registers dropped, then norm_a / norm_v split
   * into the global token and the local tokens.
   */
  private contrastStreams(
    tp: Tape,
    a: Tensor,
    v: Tensor,
  ): { localA: Tensor; localV: Tensor; clsA?: Tensor; clsV?: Tensor } {
    const one = (x: Tensor, m: Modality): { local: Tensor; cls?: Tensor } => {
      const u = this.encoder.blocks_u;
      let y = x;
      if (u.length > 0)
        y = this.config.chain_shared_layers ? runBlocks(tp, u, x, m) : u[u.length - 1].forward(tp, x, m);
      y = runBlocks(tp, m === 'a' ? this.constrative_head_audio : this.constrative_head_visual, y);
      if (this.config.keep_register_tokens) y = this.tokens.dropRegisters(tp, y);
      const n = (m === 'a' ? this.encoder.norm_a! : this.encoder.norm_v!).forward(tp, y); // [B, lead + K, D]
      if (!this.tokens.cls) return { local: n };
      const [B, T, D] = n.shape;
      return {
        cls: ops.reshape(tp, ops.slice(tp, n, 0, 1), [B, D]), // [B, D]
        local: ops.slice(tp, n, 1, T), // [B, K, D]
      };
    };
    const ra = one(a, 'a');
    const rv = one(v, 'v');
    return { localA: ra.local, localV: rv.local, clsA: ra.cls, clsV: rv.cls };
  }

  private forwardEncoder(
    tp: Tape,
    batch: AVBatch,
    B: number,
    opts: PretrainOptions,
    ratios: { a: number; v: number },
    want: { joint: boolean; contrast: boolean },
  ): {
    maskA: Masking;
    maskV: Masking;
    latent?: Tensor;
    streams?: { localA: Tensor; localV: Tensor; clsA?: Tensor; clsV?: Tensor };
  } {
    const c = this.config;
    const enc = this.encoder;
    const d = this.dims;
    const maskA = makeMasking({
      B,
      L: d.La,
      ratio: ratios.a,
      mode: opts.maskMode ?? c.mask_mode,
      grid: { f: d.fRows, t: d.tCols },
      noise: opts.noiseA,
      structured: opts.structured,
      idsShuffle: opts.idsShuffleA,
      rng: opts.rng,
    });
    // The visual branch is always unstructured.
    const maskV = makeMasking({
      B,
      L: d.Lv,
      ratio: ratios.v,
      noise: opts.noiseV,
      idsShuffle: opts.idsShuffleV,
      rng: opts.rng,
    });
    let a = enc.embedAudio(tp, batch.audio!); // [B, La, D]
    a = ops.gatherTokens(tp, a, maskA.idsKeep, maskA.lenKeep); // [B, Ka, D], shuffled order
    a = this.modalityEncoder(tp, a, 'a'); // [B, lead + Ka (+ R), D]
    let v = enc.embedVideo(tp, batch.image!); // [B, Lv, D]
    v = ops.gatherTokens(tp, v, maskV.idsKeep, maskV.lenKeep); // [B, Kv, D]
    v = this.modalityEncoder(tp, v, 'v'); // [B, lead + Kv (+ R), D]
    const out: ReturnType<CAVMAESync['forwardEncoder']> = { maskA, maskV };
    if (want.joint) {
      const lead = this.tokens.lead;
      const patches = (x: Tensor): Tensor => (lead ? ops.slice(tp, x, lead, x.shape[1]) : x);
      let x = enc.sharedStream(tp, ops.concat(tp, [patches(a), patches(v)], 1)); // [B, Ka (+R) + Kv (+R), D]
      if (c.keep_register_tokens && this.tokens.R > 0) {
        // Joint layout [audio patches, audio registers, visual patches, visual registers].
        const Ka = maskA.lenKeep;
        const Kv = maskV.lenKeep;
        const R = this.tokens.R;
        x = ops.concat(tp, [ops.slice(tp, x, 0, Ka), ops.slice(tp, x, Ka + R, Ka + R + Kv)], 1); // [B, Ka+Kv, D]
      }
      out.latent = x;
    }
    if (want.contrast) out.streams = this.contrastStreams(tp, a, v);
    return out;
  }
}
