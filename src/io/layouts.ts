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

/** A weight and its bias. */
function weightBias(out: Map<string, number[]>, name: string, weight: number[], bias: number[]): void {
  out.set(`${name}.weight`, weight);
  out.set(`${name}.bias`, bias);
}

function blockShapes(out: Map<string, number[]>, prefix: string, d: number, mlpRatio: number): void {
  const hidden = Math.trunc(d * mlpRatio);
  const norms = (n: string) =>
    ['', '_a', '_v'].forEach((m) => weightBias(out, `${prefix}.${n}${m}`, [d], [d]));
  norms('norm1');
  weightBias(out, `${prefix}.attn.qkv`, [3 * d, d], [3 * d]);
  weightBias(out, `${prefix}.attn.proj`, [d, d], [d]);
  norms('norm2');
  weightBias(out, `${prefix}.mlp.fc1`, [hidden, d], [hidden]);
  weightBias(out, `${prefix}.mlp.fc2`, [d, hidden], [d]);
}

function patchCounts(c: LayoutConfig): { audio: number; visual: number } {
  const p = c.patch_size;
  return {
    audio: Math.trunc(MEL_BINS / p) * Math.trunc(c.audio_length / p),
    visual: Math.trunc(c.img_size / p) ** 2,
  };
}

/** The modality and position embeddings both classes start with. */
function embeddingShapes(out: Map<string, number[]>, c: LayoutConfig, prefix: string, d: number): void {
  const n = patchCounts(c);
  out.set(`${prefix}modality_a`, [1, 1, d]);
  out.set(`${prefix}modality_v`, [1, 1, d]);
  out.set(`${prefix}pos_embed_a`, [1, n.audio, d]);
  out.set(`${prefix}pos_embed_v`, [1, n.visual, d]);
}

function encoderShapes(out: Map<string, number[]>, c: LayoutConfig): void {
  const e = c.embed_dim;
  const p = c.patch_size;
  const unified = 12 - c.modality_specific_depth; // hard-wired in the official code
  weightBias(out, 'patch_embed_a.proj', [e, 1, p, p], [e]);
  weightBias(out, 'patch_embed_v.proj', [e, c.in_chans, p, p], [e]);
  for (let i = 0; i < c.modality_specific_depth; i++) blockShapes(out, `blocks_a.${i}`, e, c.mlp_ratio);
  for (let i = 0; i < c.modality_specific_depth; i++) blockShapes(out, `blocks_v.${i}`, e, c.mlp_ratio);
  for (let i = 0; i < unified; i++) blockShapes(out, `blocks_u.${i}`, e, c.mlp_ratio);
  for (const n of ['norm_a', 'norm_v', 'norm']) weightBias(out, n, [e], [e]);
}

/** CAVMAE (pretraining model) state-dict keys and shapes, official order. */
export function cavmaeLayout(c: LayoutConfig = BASE_LAYOUT): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const e = c.embed_dim;
  const dd = c.decoder_embed_dim;
  embeddingShapes(out, c, '', e);
  out.set('mask_token', [1, 1, dd]);
  embeddingShapes(out, c, 'decoder_', dd);
  encoderShapes(out, c);
  weightBias(out, 'decoder_embed', [dd, e], [dd]);
  for (let i = 0; i < c.decoder_depth; i++) blockShapes(out, `decoder_blocks.${i}`, dd, c.mlp_ratio);
  weightBias(out, 'decoder_norm', [dd], [dd]);
  const pp = c.patch_size * c.patch_size;
  weightBias(out, 'decoder_pred_a', [pp, dd], [pp]);
  weightBias(out, 'decoder_pred_v', [pp * c.in_chans, dd], [pp * c.in_chans]);
  return out;
}

/** CAVMAEFT (fine-tuning model) state-dict keys and shapes, official order. */
export function cavmaeFtLayout(c: LayoutConfig = { ...BASE_LAYOUT, label_dim: 527 }): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const e = c.embed_dim;
  embeddingShapes(out, c, '', e);
  encoderShapes(out, c);
  weightBias(out, 'mlp_head.0', [e], [e]);
  weightBias(out, 'mlp_head.1', [c.label_dim ?? 527, e], [c.label_dim ?? 527]);
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
