/**
 * The audio-visual encoder shared by CAVMAE and CAVMAEFT (spec 3.1-3.7):
 * patch_embed_a/v → + pos_embed_a/v → + modality_a/v → blocks_a / blocks_v (modality-specific,
 * joint LayerNorms) → blocks_u (shared) with one of three LayerNorm pairs → norm / norm_a / norm_v.
 *
 * Parameters are declared under the official names; the owning model puts them in PyTorch's
 * state-dict order (torchStateDictOrder). Which parts exist depends on the variant:
 * audio-mae has only the audio side (and norm_a), visual-mae only the visual side (and norm_v).
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
import { MEL_BINS, modelDims, type CavmaeConfig } from './config.js';
import { sincosTable2d } from './pos-embed.js';

export class AVEncoder {
  readonly dims: ReturnType<typeof modelDims>;
  readonly patch_embed_a?: PatchEmbed;
  readonly patch_embed_v?: PatchEmbed;
  readonly modality_a?: Param;
  readonly modality_v?: Param;
  readonly pos_embed_a?: Param;
  readonly pos_embed_v?: Param;
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
    const single = cfg.variant === 'audio-mae' || cfg.variant === 'visual-mae';
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
    for (let i = 0; i < cfg.modality_specific_depth; i++) {
      if (d.hasAudio) this.blocks_a.push(block('blocks_a', i));
    }
    for (let i = 0; i < cfg.modality_specific_depth; i++) {
      if (d.hasVideo) this.blocks_v.push(block('blocks_v', i));
    }
    for (let i = 0; i < cfg.shared_depth; i++) this.blocks_u.push(block('blocks_u', i));
    if (d.hasAudio) this.norm_a = new LayerNorm(pb.scope('norm_a'), D);
    if (d.hasVideo) this.norm_v = new LayerNorm(pb.scope('norm_v'), D);
    if (!single) this.norm = new LayerNorm(pb.scope('norm'), D);
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

  /** The shared layers chained with one LayerNorm pair, then the matching final norm. */
  sharedStream(tp: Tape, x: Tensor, modality?: Modality): Tensor {
    x = runBlocks(tp, this.blocks_u, x, modality);
    const norm = modality === 'a' ? this.norm_a : modality === 'v' ? this.norm_v : this.norm;
    return norm!.forward(tp, x);
  }

  /**
   * The contrastive stream of CAVMAE.forward_encoder. The reference's loop
   * `for blk in blocks_u: ca = blk(a, 'a')` applies every shared layer to the SAME input and
   * keeps the last result (spec 9.1 item 7); `chain` runs them in sequence instead. Both agree
   * when there is one shared layer.
   */
  contrastStream(tp: Tape, x: Tensor, modality: Modality, chain: boolean): Tensor {
    if (chain || this.blocks_u.length <= 1) return this.sharedStream(tp, x, modality);
    // Only the last layer's output reaches the loss; the earlier applications are dead code
    // in the reference (they cost time but change nothing), so they are skipped here.
    const last = this.blocks_u[this.blocks_u.length - 1].forward(tp, x, modality);
    const norm = modality === 'a' ? this.norm_a : this.norm_v;
    return norm!.forward(tp, last);
  }

  /** Checks user inputs and wraps them; throws a UserError naming the problem. */
  checkInputs(
    audio: Tensor | undefined,
    image: Tensor | undefined,
    what = 'inputs',
    need: { audio: boolean; video: boolean } = { audio: this.dims.hasAudio, video: this.dims.hasVideo },
  ): number {
    const hasAudio = need.audio;
    const hasVideo = need.video;
    let B = -1;
    if (hasAudio) {
      if (!audio)
        throw new UserError(`${what}: this model needs "audio" [B, ${this.cfg.audio_length}, ${MEL_BINS}]`);
      if (
        audio.shape.length !== 3 ||
        audio.shape[1] !== this.cfg.audio_length ||
        audio.shape[2] !== MEL_BINS
      ) {
        throw new UserError(
          `${what}: "audio" has shape ${shapeStr(audio.shape)}, expected [B, ${this.cfg.audio_length}, ${MEL_BINS}] (audio_length ${this.cfg.audio_length})`,
        );
      }
      B = audio.shape[0];
    }
    if (hasVideo) {
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
