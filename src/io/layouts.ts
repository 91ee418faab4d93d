/**
 * The official state-dict layouts (docs/reference.md#state-dict): key -> shape, in the official module order, for
 * CAVMAE (pretraining, with decoder) and CAVMAEFT (encoder + classification head), built from the
 * official constructor arguments. Used to report missing / unexpected keys when converting or
 * inspecting a checkpoint without building a model, and to guess which class a checkpoint holds.
 */
export interface LayoutConfig {
  img_size: number;
  audio_length: number;
  patch_size: number;
  in_chans: number;
  embed_dim: number;
  modality_specific_depth: number;
  decoder_embed_dim: number;
  decoder_depth: number;
  mlp_ratio: number;
  /** CAVMAEFT only. */
  label_dim?: number;
}

export const BASE_LAYOUT: LayoutConfig = {
  img_size: 224,
  audio_length: 1024,
  patch_size: 16,
  in_chans: 3,
  embed_dim: 768,
  modality_specific_depth: 11,
  decoder_embed_dim: 512,
  decoder_depth: 8,
  mlp_ratio: 4,
};

const MEL_BINS = 128;

function blockShapes(out: Map<string, number[]>, prefix: string, d: number, mlpRatio: number): void {
  const hidden = Math.trunc(d * mlpRatio);
  const ln = (name: string) => {
    out.set(`${prefix}.${name}.weight`, [d]);
    out.set(`${prefix}.${name}.bias`, [d]);
  };
  ln('norm1');
  ln('norm1_a');
  ln('norm1_v');
  out.set(`${prefix}.attn.qkv.weight`, [3 * d, d]);
  out.set(`${prefix}.attn.qkv.bias`, [3 * d]);
  out.set(`${prefix}.attn.proj.weight`, [d, d]);
  out.set(`${prefix}.attn.proj.bias`, [d]);
  ln('norm2');
  ln('norm2_a');
  ln('norm2_v');
  out.set(`${prefix}.mlp.fc1.weight`, [hidden, d]);
  out.set(`${prefix}.mlp.fc1.bias`, [hidden]);
  out.set(`${prefix}.mlp.fc2.weight`, [d, hidden]);
  out.set(`${prefix}.mlp.fc2.bias`, [d]);
}

function patchCounts(c: LayoutConfig): { audio: number; visual: number } {
  const p = c.patch_size;
  return {
    audio: Math.trunc(MEL_BINS / p) * Math.trunc(c.audio_length / p),
    visual: Math.trunc(c.img_size / p) ** 2,
  };
}

function encoderShapes(out: Map<string, number[]>, c: LayoutConfig): void {
  const e = c.embed_dim;
  const p = c.patch_size;
  const unified = 12 - c.modality_specific_depth; // hard-wired in the official code
  out.set('patch_embed_a.proj.weight', [e, 1, p, p]);
  out.set('patch_embed_a.proj.bias', [e]);
  out.set('patch_embed_v.proj.weight', [e, c.in_chans, p, p]);
  out.set('patch_embed_v.proj.bias', [e]);
  for (let i = 0; i < c.modality_specific_depth; i++) blockShapes(out, `blocks_a.${i}`, e, c.mlp_ratio);
  for (let i = 0; i < c.modality_specific_depth; i++) blockShapes(out, `blocks_v.${i}`, e, c.mlp_ratio);
  for (let i = 0; i < unified; i++) blockShapes(out, `blocks_u.${i}`, e, c.mlp_ratio);
  for (const n of ['norm_a', 'norm_v', 'norm']) {
    out.set(`${n}.weight`, [e]);
    out.set(`${n}.bias`, [e]);
  }
}

/** CAVMAE (pretraining model) state-dict keys and shapes, official order. */
export function cavmaeLayout(c: LayoutConfig = BASE_LAYOUT): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const e = c.embed_dim;
  const dd = c.decoder_embed_dim;
  const n = patchCounts(c);
  out.set('modality_a', [1, 1, e]);
  out.set('modality_v', [1, 1, e]);
  out.set('pos_embed_a', [1, n.audio, e]);
  out.set('pos_embed_v', [1, n.visual, e]);
  out.set('mask_token', [1, 1, dd]);
  out.set('decoder_modality_a', [1, 1, dd]);
  out.set('decoder_modality_v', [1, 1, dd]);
  out.set('decoder_pos_embed_a', [1, n.audio, dd]);
  out.set('decoder_pos_embed_v', [1, n.visual, dd]);
  encoderShapes(out, c);
  out.set('decoder_embed.weight', [dd, e]);
  out.set('decoder_embed.bias', [dd]);
  for (let i = 0; i < c.decoder_depth; i++) blockShapes(out, `decoder_blocks.${i}`, dd, c.mlp_ratio);
  out.set('decoder_norm.weight', [dd]);
  out.set('decoder_norm.bias', [dd]);
  const pp = c.patch_size * c.patch_size;
  out.set('decoder_pred_a.weight', [pp, dd]);
  out.set('decoder_pred_a.bias', [pp]);
  out.set('decoder_pred_v.weight', [pp * c.in_chans, dd]);
  out.set('decoder_pred_v.bias', [pp * c.in_chans]);
  return out;
}

/** CAVMAEFT (fine-tuning model) state-dict keys and shapes, official order. */
export function cavmaeFtLayout(c: LayoutConfig = { ...BASE_LAYOUT, label_dim: 527 }): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const e = c.embed_dim;
  const n = patchCounts(c);
  out.set('modality_a', [1, 1, e]);
  out.set('modality_v', [1, 1, e]);
  out.set('pos_embed_a', [1, n.audio, e]);
  out.set('pos_embed_v', [1, n.visual, e]);
  encoderShapes(out, c);
  out.set('mlp_head.0.weight', [e]);
  out.set('mlp_head.0.bias', [e]);
  out.set('mlp_head.1.weight', [c.label_dim ?? 527, e]);
  out.set('mlp_head.1.bias', [c.label_dim ?? 527]);
  return out;
}

function countIndexed(keys: Iterable<string>, prefix: string): number {
  let n = 0;
  for (const k of keys) {
    const m = k.startsWith(prefix) ? /^(\d+)\./.exec(k.slice(prefix.length)) : null;
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/**
 * Guesses the class and constructor arguments a state dict was made with, from its shapes.
 * Undefined when the keys do not look like CAV-MAE at all.
 */
export function inferLayout(
  shapes: ReadonlyMap<string, readonly number[]>,
): { model: 'CAVMAE' | 'CAVMAEFT'; config: LayoutConfig } | undefined {
  const pe = shapes.get('patch_embed_v.proj.weight');
  const posA = shapes.get('pos_embed_a');
  const posV = shapes.get('pos_embed_v');
  if (!pe || pe.length !== 4 || !posA || posA.length !== 3 || !posV || posV.length !== 3) return undefined;
  const [e, inChans, p] = pe;
  const fc1 = shapes.get('blocks_a.0.mlp.fc1.weight') ?? shapes.get('blocks_u.0.mlp.fc1.weight');
  const config: LayoutConfig = {
    img_size: Math.round(Math.sqrt(posV[1])) * p,
    audio_length: (posA[1] / Math.trunc(MEL_BINS / p)) * p,
    patch_size: p,
    in_chans: inChans,
    embed_dim: e,
    modality_specific_depth: countIndexed(shapes.keys(), 'blocks_a.'),
    decoder_embed_dim: shapes.get('decoder_embed.weight')?.[0] ?? 0,
    decoder_depth: countIndexed(shapes.keys(), 'decoder_blocks.'),
    mlp_ratio: fc1 ? fc1[0] / e : 4,
  };
  const head = shapes.get('mlp_head.1.weight');
  if (head && !shapes.has('decoder_embed.weight'))
    return { model: 'CAVMAEFT', config: { ...config, label_dim: head[0] } };
  return { model: 'CAVMAE', config };
}
