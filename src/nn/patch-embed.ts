/**
 * PatchEmbed: Conv2d(C, D, kernel p, stride p) computed as a GEMM over non-overlapping patches.
 *
 * The conv weight [D, C, p, p] is a Linear over patch vectors in (channel, row, column) order,
 * so patches are first gathered into [B, N, C·p·p] with a fixed index map (cached per shape),
 * then one linear op runs. Token order is row-major over the patch grid.
 *
 * Audio (docs/reference.md#spectrogram-patches): the input [B, T, F] is read as the image [B, 1, F, T] (height = frequency,
 * width = time), so token k = f·(T/p) + t and the patch vector is (frequency offset, time offset).
 *
 * This file also builds MAE targets (docs/reference.md#patchify), whose in-patch order is (row, column, channel)
 * with the channel innermost, unlike the conv layout.
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { Param, ParamBuilder } from '../tensor/arena.js';
import { ShapeError, Tensor, expectRank, shapeStr } from '../tensor/tensor.js';
import { uniform, xavierUniform } from './init.js';

const mapCache = new Map<string, Int32Array>();

function cached(key: string, build: () => Int32Array): Int32Array {
  let m = mapCache.get(key);
  if (!m) {
    if (mapCache.size > 64) mapCache.clear();
    m = build();
    mapCache.set(key, m);
  }
  return m;
}

function checkDivisible(what: string, shape: readonly number[], h: number, w: number, p: number): void {
  if (h % p !== 0 || w % p !== 0) {
    throw new ShapeError(
      `${what} ${shapeStr(shape)}: spatial size ${h}x${w} is not a multiple of the patch size ${p}`,
    );
  }
}

/**
 * Image patches in conv order: [B,C,H,W] → [B, (H/p)(W/p), C·p·p]. The map reads rows of p
 * contiguous pixels: out chunk ((b·N + n)·C + c)·p + r = in chunk ((b·C + c)·H + gy·p + r)·(W/p) + gx.
 */
export function imagePatches(tp: Tape, img: Tensor, p: number): Tensor {
  expectRank('imagePatches', 'image', img, 4);
  const [B, C, H, W] = img.shape;
  checkDivisible('image', img.shape, H, W, p);
  const gh = H / p;
  const gw = W / p;
  const N = gh * gw;
  const map = cached(`img:${B}:${C}:${H}:${W}:${p}`, () => {
    const m = new Int32Array(B * N * C * p);
    let i = 0;
    for (let b = 0; b < B; b++)
      for (let gy = 0; gy < gh; gy++)
        for (let gx = 0; gx < gw; gx++)
          for (let c = 0; c < C; c++)
            for (let r = 0; r < p; r++) m[i++] = ((b * C + c) * H + gy * p + r) * gw + gx;
    return m;
  });
  return ops.gatherChunks(tp, img, map, p, [B, N, C * p * p]);
}

/**
 * Spectrogram patches: [B,T,F] (time × mel) → [B, (F/p)(T/p), p·p], token f·(T/p) + t, vector
 * (frequency offset r, time offset q): out[(b·N + n)·p² + r·p + q] = in[(b·T + t·p + q)·F + f·p + r].
 */
export function audioPatches(tp: Tape, audio: Tensor, p: number): Tensor {
  expectRank('audioPatches', 'audio', audio, 3);
  const map = audioPatchMap(audio.shape[0], audio.shape[1], audio.shape[2], p);
  const [B, T, F] = audio.shape;
  return ops.gatherChunks(tp, audio, map, 1, [B, (T / p) * (F / p), p * p]);
}

function audioPatchMap(B: number, T: number, F: number, p: number): Int32Array {
  checkDivisible('audio', [B, T, F], T, F, p);
  const tw = T / p;
  const fh = F / p;
  return cached(`aud:${B}:${T}:${F}:${p}`, () => {
    const m = new Int32Array(B * T * F);
    let i = 0;
    for (let b = 0; b < B; b++)
      for (let f = 0; f < fh; f++)
        for (let t = 0; t < tw; t++)
          for (let r = 0; r < p; r++)
            for (let q = 0; q < p; q++) m[i++] = (b * T + t * p + q) * F + f * p + r;
    return m;
  });
}

/**
 * MAE target of an image (docs/reference.md#patchify patchify): [B,C,H,W] → [B, N, p·p·C] in (row, column,
 * channel) order, channel innermost.
 */
export function patchifyImage(
  img: Tensor,
  p: number,
  out: Float32Array = new Float32Array(img.size),
): Float32Array {
  expectRank('patchifyImage', 'image', img, 4);
  const [B, C, H, W] = img.shape;
  checkDivisible('image', img.shape, H, W, p);
  const gw = W / p;
  const N = (H / p) * gw;
  const d = img.data;
  let i = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++) {
      const y0 = Math.floor(n / gw) * p;
      const x0 = (n % gw) * p;
      for (let r = 0; r < p; r++)
        for (let q = 0; q < p; q++)
          for (let c = 0; c < C; c++) out[i++] = d[((b * C + c) * H + y0 + r) * W + x0 + q];
    }
  return out;
}

/** MAE target of a spectrogram [B,T,F]: with one channel it equals the patch-embedding order. */
export function patchifyAudio(
  audio: Tensor,
  p: number,
  out: Float32Array = new Float32Array(audio.size),
): Float32Array {
  expectRank('patchifyAudio', 'audio', audio, 3);
  const [B, T, F] = audio.shape;
  const map = audioPatchMap(B, T, F, p);
  for (let i = 0; i < map.length; i++) out[i] = audio.data[map[i]];
  return out;
}

/**
 * Inverse of patchifyImage (visualisation): [B, N, p·p·C] → [B, C, H, W] for an H×W image.
 */
export function unpatchifyImage(
  patches: Float32Array,
  B: number,
  C: number,
  H: number,
  W: number,
  p: number,
): Float32Array {
  const out = new Float32Array(B * C * H * W);
  const gw = W / p;
  const N = (H / p) * gw;
  let i = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++) {
      const y0 = Math.floor(n / gw) * p;
      const x0 = (n % gw) * p;
      for (let r = 0; r < p; r++)
        for (let q = 0; q < p; q++)
          for (let c = 0; c < C; c++) out[((b * C + c) * H + y0 + r) * W + x0 + q] = patches[i++];
    }
  return out;
}

/** Inverse of patchifyAudio: [B, N, p·p] → [B, T, F]. */
export function unpatchifyAudio(
  patches: Float32Array,
  B: number,
  T: number,
  F: number,
  p: number,
): Float32Array {
  const map = audioPatchMap(B, T, F, p);
  const out = new Float32Array(B * T * F);
  for (let i = 0; i < map.length; i++) out[map[i]] = patches[i];
  return out;
}

/**
 * Per-patch normalisation of MAE targets (norm_pix_loss): (x - mean) / sqrt(var + 1e-6) with the
 * UNBIASED variance (torch.var default), over each row of P values. In place.
 */
export function normalizePatches(target: Float32Array, rows: number, P: number, eps = 1e-6): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * P;
    let mean = 0;
    for (let i = 0; i < P; i++) mean += target[o + i];
    mean /= P;
    let ss = 0;
    for (let i = 0; i < P; i++) ss += (target[o + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(ss / (P - 1) + eps);
    for (let i = 0; i < P; i++) target[o + i] = (target[o + i] - mean) * inv;
  }
  return target;
}

export class PatchEmbed {
  /** proj.weight [D, C, p, p]: xavier_uniform on the [D, C·p·p] view. */
  readonly weight: Param;
  /** proj.bias [D]: PyTorch's default conv bias init, U(±1/√(C·p·p)). */
  readonly bias: Param;

  constructor(
    pb: ParamBuilder,
    readonly inChans: number,
    readonly dim: number,
    readonly patch = 16,
  ) {
    const fanIn = inChans * patch * patch;
    const proj = pb.scope('proj');
    this.weight = proj.param('weight', [dim, inChans, patch, patch], xavierUniform(fanIn, dim), {
      gemm: true,
    });
    this.bias = proj.param('bias', [dim], uniform(1 / Math.sqrt(fanIn)));
  }

  /** Image [B,C,H,W] → tokens [B, N, D]. */
  forwardImage(tp: Tape, img: Tensor): Tensor {
    if (img.shape[1] !== this.inChans)
      throw new ShapeError(`PatchEmbed: image has ${img.shape[1]} channels, expected ${this.inChans}`);
    return ops.linear(tp, imagePatches(tp, img, this.patch), this.weight, this.bias);
  }

  /** Spectrogram [B,T,F] → tokens [B, (F/p)(T/p), D] (frequency-major). */
  forwardAudio(tp: Tape, audio: Tensor): Tensor {
    if (this.inChans !== 1) throw new ShapeError('PatchEmbed: audio needs a one-channel patch embedding');
    return ops.linear(tp, audioPatches(tp, audio, this.patch), this.weight, this.bias);
  }
}
