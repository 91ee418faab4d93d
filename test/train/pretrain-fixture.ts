// Shared fixtures of the training tests (not a test file): a small synthetic audio-visual set
// whose classes are easy (a tone pitch and a bright square's position), a tiny model config,
// and a way to run the real CLI from the compiled tests or under tsx.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodeWavPcm16 } from '../../src/audio/wav.js';
import { cliArgv, repoRoot, runCli, type CliResult } from '../helpers.js';

/** A model small enough for many steps per second: 32 wide, 1 + 1 layers, 32 px, 32 frames. */
export const TINY_TEST_CONFIG = {
  model: 'cavmae',
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
};

export interface SyntheticSet {
  dir: string;
  train: string;
  val: string;
  labels: string;
  config: string;
}

/**
 * `n` training and `nVal` validation items of `classes` classes: audio = 0.4 s of a tone whose
 * pitch encodes the class (+ a little noise), image = 32x32 grey with a bright 8x8 square at a
 * class-dependent position. Manifest format, label CSV, and the tiny config as JSON.
 */
export async function makeSyntheticSet(dir: string, n = 24, nVal = 12, classes = 4): Promise<SyntheticSet> {
  mkdirSync(join(dir, 'media'), { recursive: true });
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
  };
  const item = async (split: string, i: number): Promise<Record<string, unknown>> => {
    const c = i % classes;
    const sr = 16000;
    const len = Math.round(0.4 * sr);
    const wav = new Float32Array(len);
    const f = 300 * 2 ** (c / 1.5);
    for (let k = 0; k < len; k++) wav[k] = 0.5 * Math.sin((2 * Math.PI * f * k) / sr) + 0.02 * (rnd() - 0.5);
    const id = `${split}_${String(i).padStart(3, '0')}_${c}`;
    writeFileSync(join(dir, 'media', `${id}.wav`), encodeWavPcm16(wav));
    const S = 32;
    const rgb = Buffer.alloc(S * S * 3);
    for (let p = 0; p < S * S; p++)
      rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = 40 + Math.floor(30 * rnd());
    const x0 = (c % 2) * 16 + 4;
    const y0 = Math.floor(c / 2) * 16 + 4;
    for (let y = y0; y < y0 + 8; y++)
      for (let x = x0; x < x0 + 8; x++) rgb.fill(230, 3 * (y * S + x), 3 * (y * S + x) + 3);
    await sharp(rgb, { raw: { width: S, height: S, channels: 3 } })
      .png()
      .toFile(join(dir, 'media', `${id}.png`));
    return { id, audio: `media/${id}.wav`, image: `media/${id}.png`, label: `class${c}` };
  };
  const train = await Promise.all(Array.from({ length: n }, (_, i) => item('train', i)));
  const val = await Promise.all(Array.from({ length: nVal }, (_, i) => item('val', i)));
  const paths = {
    train: join(dir, 'train.json'),
    val: join(dir, 'val.json'),
    labels: join(dir, 'labels.csv'),
    config: join(dir, 'tiny-test.json'),
  };
  writeFileSync(paths.train, JSON.stringify({ items: train }));
  writeFileSync(paths.val, JSON.stringify({ items: val }));
  writeFileSync(
    paths.labels,
    [
      'index,mid,display_name',
      ...Array.from({ length: classes }, (_, c) => `${c},class${c},"class ${c}"`),
    ].join('\n') + '\n',
  );
  writeFileSync(paths.config, JSON.stringify(TINY_TEST_CONFIG));
  return { dir, ...paths };
}

export function cli(args: string[], timeoutMs = 120_000): CliResult {
  return runCli(args, { timeoutMs, env: { CI: '1' } });
}

export function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, cliArgv(args), {
    cwd: repoRoot(),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
}
