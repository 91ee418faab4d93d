/**
 * ImageNet MAE -> CAV-MAE initialisation (docs/reference.md#imagenet-initialisation, the official adapt_vmae_weights.py).
 *
 * Mapping, on state dicts (MAE keys on the left; `d` = modality-specific depth, default 11):
 *   blocks.i.*  (i < d)            -> blocks_a.i.*, blocks_v.i.*
 *   blocks.i.*  (i >= d)           -> blocks_u.(i-d).*, and norm1/norm2 also -> norm1_a/_v, norm2_a/_v
 *   norm.*                         -> norm.*, norm_a.*, norm_v.*
 *   patch_embed.proj.weight        -> patch_embed_v.proj.weight; patch_embed_a.proj.weight = sum
 *                                     over the RGB input channels ([E,3,p,p] -> [E,1,p,p])
 *   patch_embed.proj.bias          -> patch_embed_v.proj.bias, patch_embed_a.proj.bias
 *   pos_embed [1,1+N,E]            -> pos_embed_v = pos_embed[:, 1:]   (class slot dropped)
 *   decoder_pos_embed              -> decoder_pos_embed_v = decoder_pos_embed[:, 1:]
 *   decoder_pred.{weight,bias}     -> decoder_pred_v (copy), decoder_pred_a (first p*p = 256 rows)
 *   decoder_embed, mask_token, decoder_blocks.*, decoder_norm -> same names
 *   cls_token and anything else    -> dropped (reported)
 * Not produced, because MAE has nothing for them: modality_a/v, decoder_modality_a/v,
 * pos_embed_a, decoder_pos_embed_a, and the unused norm*_a/_v of blocks_a/blocks_v/
 * decoder_blocks. A model loading this file reports them missing (strict=False) and keeps its
 * own initialisation, as the official pretraining does (sin-cos tables, N(0, 0.02), LN 1/0).
 * Output keys follow the official CAVMAE state-dict order.
 */
import { basename } from 'node:path';
import { loadStateDict, saveCheckpoint } from './checkpoint.js';
import type { F32Tensor } from './dtypes.js';
import { cavmaeLayout } from './layouts.js';
import { shapeToString } from './safetensors.js';
import { fileError } from '../util/errors.js';

export interface AdaptMaeOptions {
  /** Number of modality-specific blocks (official: 11; the rest become blocks_u). */
  modalitySpecificDepth?: number;
}

export interface AdaptMaeResult {
  tensors: Map<string, F32Tensor>;
  /** MAE keys that have no CAV-MAE counterpart (cls_token, ...). */
  dropped: string[];
  /** MAE blocks found. */
  maeDepth: number;
}

/** CAV-MAE keys the adaptation never produces (the model keeps its own init for them). */
export const NOT_FROM_MAE = [
  'modality_a',
  'modality_v',
  'decoder_modality_a',
  'decoder_modality_v',
  'pos_embed_a',
  'decoder_pos_embed_a',
];

// The official registration order, of top-level modules and of a block's parts: the layout's.
const LAYOUT_KEYS = [...cavmaeLayout().keys()];
const TOP_ORDER = [...new Set(LAYOUT_KEYS.map((k) => k.split('.')[0]))];
const BLOCK_ORDER = [
  ...new Set(
    LAYOUT_KEYS.filter((k) => k.startsWith('blocks_a.0.')).map((k) =>
      k.slice('blocks_a.0.'.length).replace(/\.(weight|bias)$/, ''),
    ),
  ),
];

/** Sort key reproducing the official module registration order. */
function orderKey(key: string): [number, number, number, string] {
  const top = TOP_ORDER.indexOf(key.split('.')[0]);
  const m = /^(blocks_[auv]|decoder_blocks)\.(\d+)\.(.+)\.(weight|bias)$/.exec(key);
  if (m) {
    const inner = BLOCK_ORDER.indexOf(m[3]);
    return [top, Number(m[2]), inner < 0 ? 99 : inner, m[4] === 'weight' ? '0' : '1'];
  }
  return [top < 0 ? 99 : top, 0, 0, key.endsWith('.bias') ? '1' : '0'];
}

function compareOrder(a: string, b: string): number {
  const x = orderKey(a);
  const y = orderKey(b);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return x[3] < y[3] ? -1 : x[3] > y[3] ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

export function adaptMaeStateDict(
  mae: ReadonlyMap<string, F32Tensor>,
  opts: AdaptMaeOptions = {},
  what = 'MAE checkpoint',
): AdaptMaeResult {
  const depth = opts.modalitySpecificDepth ?? 11;
  const need = (key: string, rank: number): F32Tensor => {
    const t = mae.get(key);
    if (!t) throw fileError(what, `not an MAE state dict: key "${key}" is missing`);
    if (t.shape.length !== rank)
      throw fileError(
        what,
        `MAE key "${key}" has shape ${shapeToString(t.shape)}, expected ${rank} dimensions`,
      );
    return t;
  };
  const patchW = need('patch_embed.proj.weight', 4);
  const [embed, inChans, ph, pw] = patchW.shape;
  if (inChans !== 3)
    throw fileError(what, `MAE patch_embed.proj.weight has ${inChans} input channels, expected 3 (RGB)`);
  const pp = ph * pw;
  const posEmbed = need('pos_embed', 3);
  const decPos = need('decoder_pos_embed', 3);
  const decPred = need('decoder_pred.weight', 2);
  if (decPred.shape[0] < pp)
    throw fileError(
      what,
      `MAE decoder_pred.weight has ${decPred.shape[0]} rows, fewer than the ${pp} an audio patch needs`,
    );

  let maeDepth = 0;
  for (const k of mae.keys()) {
    const m = /^blocks\.(\d+)\./.exec(k);
    if (m) maeDepth = Math.max(maeDepth, Number(m[1]) + 1);
  }
  if (!Number.isInteger(depth) || depth < 0 || depth >= maeDepth) {
    throw fileError(
      what,
      `modality-specific depth ${depth} must be an integer in 0..${maeDepth - 1} (the MAE has ${maeDepth} blocks)`,
    );
  }

  const out = new Map<string, F32Tensor>();
  const dropped: string[] = [];
  const copy = (t: F32Tensor): F32Tensor => ({ shape: [...t.shape], data: t.data.slice() });
  const put = (key: string, t: F32Tensor) => {
    if (out.has(key)) throw fileError(what, `two MAE keys map to "${key}"`);
    out.set(key, t);
  };
  /** x[:, 1:, :] of a [1, 1+N, D] table: drops the class-token slot. */
  const dropClassSlot = (t: F32Tensor, key: string): F32Tensor => {
    const [b, n, d] = t.shape;
    if (b !== 1 || n < 2)
      throw fileError(what, `MAE key "${key}" has shape ${shapeToString(t.shape)}, expected [1, 1+N, D]`);
    return { shape: [1, n - 1, d], data: t.data.slice(d) }; // [1, N, D]
  };

  for (const [key, t] of mae) {
    const block = /^blocks\.(\d+)\.(.+)$/.exec(key);
    if (block) {
      const i = Number(block[1]);
      const rest = block[2];
      if (i < depth) {
        put(`blocks_a.${i}.${rest}`, copy(t));
        put(`blocks_v.${i}.${rest}`, copy(t));
      } else {
        const j = i - depth;
        put(`blocks_u.${j}.${rest}`, copy(t));
        const ln = /^(norm[12])\.(weight|bias)$/.exec(rest);
        if (ln) {
          put(`blocks_u.${j}.${ln[1]}_a.${ln[2]}`, copy(t));
          put(`blocks_u.${j}.${ln[1]}_v.${ln[2]}`, copy(t));
        }
      }
      continue;
    }
    if (key === 'norm.weight' || key === 'norm.bias') {
      const p = key.slice('norm.'.length);
      for (const n of ['norm', 'norm_a', 'norm_v']) put(`${n}.${p}`, copy(t));
    } else if (key === 'patch_embed.proj.weight') {
      put('patch_embed_v.proj.weight', copy(t));
      // Sum over the RGB input channels: [E, 3, p, p] -> [E, 1, p, p], summed in channel order in float32.
      const sum = new Float32Array(embed * pp);
      for (let e = 0; e < embed; e++) {
        const base = e * 3 * pp;
        for (let q = 0; q < pp; q++)
          sum[e * pp + q] = Math.fround(t.data[base + q] + t.data[base + pp + q]) + t.data[base + 2 * pp + q];
      }
      put('patch_embed_a.proj.weight', { shape: [embed, 1, ph, pw], data: sum });
    } else if (key === 'patch_embed.proj.bias') {
      put('patch_embed_v.proj.bias', copy(t));
      put('patch_embed_a.proj.bias', copy(t));
    } else if (key === 'pos_embed') {
      put('pos_embed_v', dropClassSlot(posEmbed, key));
    } else if (key === 'decoder_pos_embed') {
      put('decoder_pos_embed_v', dropClassSlot(decPos, key));
    } else if (key === 'decoder_pred.weight' || key === 'decoder_pred.bias') {
      const p = key.slice('decoder_pred.'.length);
      put(`decoder_pred_v.${p}`, copy(t));
      const cols = t.shape.length === 2 ? t.shape[1] : 1;
      const rows = Math.min(pp, t.shape[0]);
      // First p*p rows: the (p, q, c) layout makes this an arbitrary subset, exactly as the official script does.
      put(`decoder_pred_a.${p}`, {
        shape: t.shape.length === 2 ? [rows, cols] : [rows],
        data: t.data.slice(0, rows * cols),
      });
    } else if (/^(decoder_embed\.|decoder_blocks\.\d+\.|decoder_norm\.)/.test(key) || key === 'mask_token') {
      put(key, copy(t));
    } else {
      dropped.push(key);
    }
  }
  const sorted = new Map([...out.entries()].sort((a, b) => compareOrder(a[0], b[0])));
  return { tensors: sorted, dropped, maeDepth };
}

export interface AdaptMaeFileResult extends AdaptMaeResult {
  out: string;
}

/** Reads an MAE checkpoint (.pth with a "model" entry, or safetensors), adapts it, writes safetensors. */
export function adaptMaeCheckpoint(
  maePath: string,
  outPath: string,
  opts: AdaptMaeOptions = {},
): AdaptMaeFileResult {
  const { tensors } = loadStateDict(maePath);
  const result = adaptMaeStateDict(tensors, opts, maePath);
  saveCheckpoint(outPath, result.tensors, {
    extra: {
      'cavmae.source': 'adapt-mae',
      'cavmae.adapt_mae': JSON.stringify({
        mae: basename(maePath),
        modality_specific_depth: opts.modalitySpecificDepth ?? 11,
        dropped: result.dropped,
      }),
    },
  });
  return { ...result, out: outPath };
}
