// Shared fixtures of the Sync training tests (not a test file): a small synthetic set of
// 10.24 s clips whose 16 (segment, frame) pairs carry a class that changes along the clip, and
// a tiny Sync config.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeWavPcm16 } from '../../src/audio/wav.js';

/** Tiny Sync model: 32-row segments (8 x 2 audio patches), 32 px frames (4 patches), width 32. */
export const TINY_SYNC_CONFIG = {
  model: 'cavmae-sync',
  img_size: 32,
  audio_length: 32,
  embed_dim: 32,
  num_heads: 2,
  modality_specific_depth: 1,
  shared_depth: 1,
  decoder_embed_dim: 16,
  decoder_depth: 1,
  decoder_num_heads: 2,
  norm_pix_loss: true,
  num_register_tokens: 2,
  cls_token: true,
  contrastive_heads: false,
  total_frame: 16,
  contrast_loss_weight: 0.1,
};

/** The same layout as a clip-level CAV-MAE (1024-row clips). */
export const TINY_CLIP_CONFIG = {
  model: 'cavmae',
  img_size: 32,
  audio_length: 1024,
  embed_dim: 32,
  num_heads: 2,
  modality_specific_depth: 1,
  shared_depth: 1,
  decoder_embed_dim: 16,
  decoder_depth: 1,
  decoder_num_heads: 2,
  norm_pix_loss: true,
};

export interface SyncSet {
  dir: string;
  train: string;
  val: string;
  syncConfig: string;
  clipConfig: string;
  /** The fine-tuning config (sync-ft layout of TINY_SYNC_CONFIG, 4 classes). */
  ftConfig: string;
}

const SR = 16000;
const SAMPLES = 163840; // 10.24 s = the 1024 fbank rows the Sync loader pads to

/**
 * `n` training and `nVal` validation clips of `slots` segments of 16/slots pairs each: slot j of
 * a clip has a class c (0..3): a tone of pitch 300·2^(c/1.5) Hz over the slot's time, and the
 * frames of its pairs show a bright square at a class-dependent corner. Manifest format with
 * `pair_labels` and clip `labels` (the classes present); frame folders of 16 PNGs.
 */
export async function makeSyncSet(dir: string, n = 16, nVal = 8, slots = 4): Promise<SyncSet> {
  let seed = 987654;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
  };
  const per = 16 / slots;
  const frame = async (c: number): Promise<Buffer> => {
    const S = 32;
    const rgb = Buffer.alloc(S * S * 3);
    for (let p = 0; p < S * S; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = 40 + Math.floor(30 * rnd());
    const x0 = (c % 2) * 16 + 4;
    const y0 = Math.floor(c / 2) * 16 + 4;
    for (let y = y0; y < y0 + 8; y++) for (let x = x0; x < x0 + 8; x++) rgb[3 * (y * S + x)] = rgb[3 * (y * S + x) + 1] = rgb[3 * (y * S + x) + 2] = 230;
    return sharp(rgb, { raw: { width: S, height: S, channels: 3 } }).png().toBuffer();
  };
  const item = async (split: string, i: number): Promise<Record<string, unknown>> => {
    const id = `${split}_${String(i).padStart(3, '0')}`;
    const classes = Array.from({ length: slots }, (_, j) => (i + j * (1 + (i % 3))) % 4);
    const wav = new Float32Array(SAMPLES);
    const slotLen = SAMPLES / slots;
    for (let j = 0; j < slots; j++) {
      const f = 300 * 2 ** (classes[j] / 1.5);
      for (let k = 0; k < slotLen; k++) wav[j * slotLen + k] = 0.5 * Math.sin((2 * Math.PI * f * k) / SR) + 0.02 * (rnd() - 0.5);
    }
    mkdirSync(join(dir, 'media', id), { recursive: true });
    writeFileSync(join(dir, 'media', `${id}.wav`), encodeWavPcm16(wav));
    const pairLabels: number[] = [];
    for (let k = 0; k < 16; k++) {
      const c = classes[Math.floor(k / per)];
      pairLabels.push(c);
      writeFileSync(join(dir, 'media', id, `frame_${String(k).padStart(2, '0')}.png`), await frame(c));
    }
    return { id, audio: `media/${id}.wav`, video: `media/${id}`, labels: [...new Set(classes)].sort().map((c) => `class${c}`), pair_labels: pairLabels };
  };
  mkdirSync(join(dir, 'media'), { recursive: true });
  const write = async (split: string, count: number): Promise<string> => {
    const items = [];
    for (let i = 0; i < count; i++) items.push(await item(split, i));
    const path = join(dir, `${split}.json`);
    writeFileSync(path, JSON.stringify({ items }));
    return path;
  };
  const train = await write('train', n);
  const val = await write('val', nVal);
  const syncConfig = join(dir, 'sync.json');
  writeFileSync(syncConfig, JSON.stringify(TINY_SYNC_CONFIG));
  const clipConfig = join(dir, 'clip.json');
  writeFileSync(clipConfig, JSON.stringify(TINY_CLIP_CONFIG));
  const ftConfig = join(dir, 'sync-ft.json');
  const ft: Record<string, unknown> = { ...TINY_SYNC_CONFIG, model: 'cavmae-sync-ft', label_dim: 4 };
  for (const k of ['decoder_embed_dim', 'decoder_depth', 'decoder_num_heads', 'norm_pix_loss', 'contrastive_heads', 'contrast_loss_weight']) delete ft[k];
  writeFileSync(ftConfig, JSON.stringify(ft));
  return { dir, train, val, syncConfig, clipConfig, ftConfig };
}
