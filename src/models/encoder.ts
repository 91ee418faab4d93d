/**
 * The audio-visual encoder of the family, shared by the pretraining and fine-tuning models
 * (cav_mae.py: CAVMAE.__init__ / forward_encoder; cav_mae_sync.py adds the special tokens):
 * patch_embed_a/v → + pos_embed_a/v → + modality_a/v → [global token, patches, registers] →
 * blocks_a / blocks_v (modality-specific, joint LayerNorms) → blocks_u (shared) with one of three
 * LayerNorm pairs → norm / norm_a / norm_v.
 *
 * Parameters are declared under the official names; the owning model puts them in PyTorch's
 * state-dict order (torchStateDictOrder). Which parts exist follows the config: one-modality
 * variants have one side (and no joint `norm`); Sync kinds add `register_tokens` [2R, D] (rows
 * 0..R-1 audio, R..2R-1 visual; N(0, 1), torch.randn, never re-initialised) and, with cls_token,
 * `cls_token_a/_v` (declared by the model through `declareGlobalTokens`, after its decoder, as
 * the release does). Global tokens and registers get no position or modality embedding.
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import { Block, runBlocks, type Modality } from '../nn/block.js';
import { normal, table } from '../nn/init.js';
import { LayerNorm } from '../nn/layer-norm.js';
import { PatchEmbed } from '../nn/patch-embed.js';
import type { Param, ParamBuilder } from '../tensor/arena.js';
import { Tensor, shapeStr } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { MEL_BINS, modelDims, type CavmaeConfig, type ModelDims } from './config.js';
import { sincosTable2d } from './pos-embed.js';

export class AVEncoder {
  readonly dims: ModelDims;
  readonly patch_embed_a?: PatchEmbed;
  readonly patch_embed_v?: PatchEmbed;
  readonly modality_a?: Param;
  readonly modality_v?: Param;
  readonly pos_embed_a?: Param;
  readonly pos_embed_v?: Param;
  readonly register_tokens?: Param;
  cls_token_a?: Param;
  cls_token_v?: Param;
  readonly blocks_a: Block[] = [];
  readonly blocks_v: Block[] = [];
  readonly blocks_u: Block[] = [];
  readonly norm_a?: LayerNorm;
  readonly norm_v?: LayerNorm;
  readonly norm?: LayerNorm;

  constructor(
    pb: ParamBuilder,
    readonly cfg: CavmaeConfig,
  ) {
    const d = (this.dims = modelDims(cfg));
    const D = cfg.embed_dim;
    if (d.hasAudio) this.patch_embed_a = new PatchEmbed(pb.scope('patch_embed_a'), 1, D, cfg.patch_size);
    if (d.hasVideo)
      this.patch_embed_v = new PatchEmbed(pb.scope('patch_embed_v'), cfg.in_chans, D, cfg.patch_size);
    if (d.hasAudio) this.modality_a = pb.param('modality_a', [1, 1, D], normal(0.02));
    if (d.hasVideo) this.modality_v = pb.param('modality_v', [1, 1, D], normal(0.02));
    const trainablePos = { requiresGrad: cfg.tr_pos };
    if (d.hasAudio)
      this.pos_embed_a = pb.param(
        'pos_embed_a',
        [1, d.La, D],
        table(sincosTable2d(D, d.fRows, d.tCols)),
        trainablePos,
      );
    if (d.hasVideo)
      this.pos_embed_v = pb.param(
        'pos_embed_v',
        [1, d.Lv, D],
        table(sincosTable2d(D, d.vGrid, d.vGrid)),
        trainablePos,
      );
    const block = (scope: string, i: number): Block =>
      new Block(pb.scope(scope).scope(i), D, cfg.num_heads, cfg.mlp_ratio);
    for (let i = 0; i < cfg.modality_specific_depth; i++)
      if (d.hasAudio) this.blocks_a.push(block('blocks_a', i));
    for (let i = 0; i < cfg.modality_specific_depth; i++)
      if (d.hasVideo) this.blocks_v.push(block('blocks_v', i));
    for (let i = 0; i < cfg.shared_depth; i++) this.blocks_u.push(block('blocks_u', i));
    if (d.hasAudio) this.norm_a = new LayerNorm(pb.scope('norm_a'), D);
    if (d.hasVideo) this.norm_v = new LayerNorm(pb.scope('norm_v'), D);
    if (d.hasAudio && d.hasVideo) this.norm = new LayerNorm(pb.scope('norm'), D);
    if (d.registers > 0) this.register_tokens = pb.param('register_tokens', [2 * d.registers, D], normal(1));
  }

  /** The global tokens (cls_token): declared by the model where the release's state dict has them. */
  declareGlobalTokens(pb: ParamBuilder): void {
    if (this.dims.lead === 0) return;
    this.cls_token_a = pb.param('cls_token_a', [1, 1, this.cfg.embed_dim], normal(0.02));
    this.cls_token_v = pb.param('cls_token_v', [1, 1, this.cfg.embed_dim], normal(0.02));
  }

  /** Spectrogram [B, audio_length, 128] → tokens [B, La, D] with position and modality. */
  embedAudio(tp: Tape, audio: Tensor): Tensor {
    let a = this.patch_embed_a!.forwardAudio(tp, audio); // [B, La, D]
    a = ops.addBroadcast(tp, a, this.pos_embed_a!);
    return ops.addBroadcast(tp, a, this.modality_a!);
  }

  /** Image [B, 3, img, img] → tokens [B, Lv, D] with position and modality. */
  embedVideo(tp: Tape, image: Tensor): Tensor {
    let v = this.patch_embed_v!.forwardImage(tp, image); // [B, Lv, D]
    v = ops.addBroadcast(tp, v, this.pos_embed_v!);
    return ops.addBroadcast(tp, v, this.modality_v!);
  }

  /** The modality's input tokens, embedded: audio from batch.audio, visual from batch.image. */
  embed(tp: Tape, input: Tensor, m: Modality): Tensor {
    return m === 'a' ? this.embedAudio(tp, input) : this.embedVideo(tp, input);
  }

  /** [B, K, D] patches → [B, lead + K + R, D]: [global token, patches, registers]. */
  wrap(tp: Tape, x: Tensor, m: Modality): Tensor {
    const { lead, registers: R } = this.dims;
    if (lead === 0 && R === 0) return x;
    const [B, , D] = x.shape;
    const parts: Tensor[] = [];
    if (lead) parts.push(ops.broadcastTo(tp, m === 'a' ? this.cls_token_a! : this.cls_token_v!, [B, 1, D]));
    parts.push(x);
    if (R > 0) {
      const regs = ops.slice(tp, this.register_tokens!, m === 'a' ? 0 : R, m === 'a' ? R : 2 * R, 0); // [R, D]
      parts.push(ops.broadcastTo(tp, regs, [B, R, D]));
    }
    return ops.concat(tp, parts, 1);
  }

  /** Drops the trailing registers: [B, T, D] → [B, T - R, D]. */
  dropRegisters(tp: Tape, x: Tensor): Tensor {
    const R = this.dims.registers;
    return R > 0 ? ops.slice(tp, x, 0, x.shape[1] - R) : x;
  }

  /**
   * Tokens [B, K, D] (embedded, possibly masked) → the modality-specific blocks:
   * [global, tokens, registers] → blocks_a / blocks_v → registers dropped unless `keepRegisters`.
   */
  modalityStream(tp: Tape, x: Tensor, m: Modality, keepRegisters = false): Tensor {
    const y = runBlocks(tp, m === 'a' ? this.blocks_a : this.blocks_v, this.wrap(tp, x, m)); // [B, lead + K + R, D]
    return keepRegisters ? y : this.dropRegisters(tp, y);
  }

  /** The shared layers chained with one LayerNorm pair, then the matching final norm. */
  sharedStream(tp: Tape, x: Tensor, modality?: Modality): Tensor {
    x = runBlocks(tp, this.blocks_u, x, modality);
    return this.finalNorm(modality).forward(tp, x);
  }

  /** norm_a, norm_v, or the joint `norm`. */
  finalNorm(modality?: Modality): LayerNorm {
    return (modality === 'a' ? this.norm_a : modality === 'v' ? this.norm_v : this.norm)!;
  }

  /**
   * The shared layers of a contrastive stream (modality LayerNorms), before the final norm. The
   * references' loop `for blk in blocks_u: ca = blk(a, 'a')` (cav_mae.py: forward_encoder, and
   * cav_mae_sync.py likewise) applies every shared layer to the SAME input and keeps the last
   * result; `chain` runs them in sequence instead. Both agree with one shared layer. The earlier
   * applications cannot reach any output, so they are not computed.
   */
  contrastLayers(tp: Tape, x: Tensor, modality: Modality, chain: boolean): Tensor {
    const u = this.blocks_u;
    if (chain || u.length <= 1) return runBlocks(tp, u, x, modality);
    return u[u.length - 1].forward(tp, x, modality);
  }

  /** Checks user inputs and wraps them; throws a UserError naming the problem. */
  checkInputs(
    audio: Tensor | undefined,
    image: Tensor | undefined,
    what = 'inputs',
    need: { audio: boolean; video: boolean } = { audio: this.dims.hasAudio, video: this.dims.hasVideo },
  ): number {
    let B = -1;
    if (need.audio) {
      const T = this.cfg.audio_length;
      if (!audio) throw new UserError(`${what}: this model needs "audio" [B, ${T}, ${MEL_BINS}]`);
      if (audio.shape.length !== 3 || audio.shape[1] !== T || audio.shape[2] !== MEL_BINS) {
        throw new UserError(
          `${what}: "audio" has shape ${shapeStr(audio.shape)}, expected [B, ${T}, ${MEL_BINS}] (audio_length ${T})`,
        );
      }
      B = audio.shape[0];
    }
    if (need.video) {
      const s = this.cfg.img_size;
      if (!image) throw new UserError(`${what}: this model needs "image" [B, 3, ${s}, ${s}]`);
      if (image.shape.length !== 4 || image.shape[1] !== 3 || image.shape[2] !== s || image.shape[3] !== s) {
        throw new UserError(
          `${what}: "image" has shape ${shapeStr(image.shape)}, expected [B, 3, ${s}, ${s}] (img_size ${s})`,
        );
      }
      if (B >= 0 && image.shape[0] !== B)
        throw new UserError(`${what}: "audio" has batch ${B} but "image" has batch ${image.shape[0]}`);
      B = image.shape[0];
    }
    if (B < 1) throw new UserError(`${what}: empty batch`);
    return B;
  }
}

/**
 * PyTorch's state-dict order from declaration order: at every module, its own parameters
 * first (in declaration order), then its submodules (in the order they were first declared).
 */
export function torchStateDictOrder<T extends { name: string }>(params: readonly T[]): T[] {
  interface Node {
    leaves: T[];
    children: Map<string, Node>;
  }
  const root: Node = { leaves: [], children: new Map() };
  for (const p of params) {
    const parts = p.name.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      let c = node.children.get(parts[i]);
      if (!c) {
        c = { leaves: [], children: new Map() };
        node.children.set(parts[i], c);
      }
      node = c;
    }
    node.leaves.push(p);
  }
  const out: T[] = [];
  const walk = (n: Node): void => {
    out.push(...n.leaves);
    for (const c of n.children.values()) walk(c);
  };
  walk(root);
  return out;
}
