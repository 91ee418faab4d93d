/**
 * Small real media files made with ffmpeg/sharp for the index and server tests, and a
 * deterministic test embedder (vectors derived from the file's bytes; no model involved).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import type { MediaEmbedder, MediaEmbedding, Modality } from '../../src/index/index.js';
import { rng } from '../helpers.js';

export function hasFfmpeg(): boolean {
  return spawnSync('ffmpeg', ['-version']).status === 0;
}

export function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr}`);
}

/** H.264 when this ffmpeg has it (browsers play it), else MPEG-4 part 2. */
function videoCodec(): string[] {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-encoders']);
  return r.stdout?.toString().includes('libx264')
    ? ['-c:v', 'libx264', '-preset', 'ultrafast']
    : ['-c:v', 'mpeg4'];
}

export interface TestMedia {
  wav: string;
  png: string;
  jpg: string;
  mp4: string;
  silentMp4: string;
  audioOnlyMp4: string;
  longWav: string;
  notMedia: string;
}

/** Writes a small set of media files into `dir`. */
export async function makeTestMedia(dir: string): Promise<TestMedia> {
  const m: TestMedia = {
    wav: join(dir, 'tone.wav'),
    png: join(dir, 'gradient.png'),
    jpg: join(dir, 'photo.jpg'),
    mp4: join(dir, 'clip.mp4'),
    silentMp4: join(dir, 'silent.mp4'),
    audioOnlyMp4: join(dir, 'voice.mp4'),
    longWav: join(dir, 'long.wav'),
    notMedia: join(dir, 'notes.mp4'),
  };
  // A chirp (rising tone) with a little noise: a spectrogram with visible structure.
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    "aevalsrc='0.6*sin(2*PI*(200+900*t)*t)+0.05*(random(0)-0.5)':s=16000:d=1",
    m.wav,
  ]);
  ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=220:duration=12', '-ar', '16000', m.longWav]);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=96x64:rate=10:duration=1',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=660:duration=1',
    '-shortest',
    ...videoCodec(),
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    m.mp4,
  ]);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=80x60:rate=10:duration=1',
    ...videoCodec(),
    '-pix_fmt',
    'yuv420p',
    m.silentMp4,
  ]);
  ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=330:duration=1', '-c:a', 'aac', m.audioOnlyMp4]);
  const w = 64;
  const h = 48;
  const px = new Uint8Array(w * h * 3); // [H, W, 3]
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x * 4, y * 5, 128], (y * w + x) * 3);
  writeFileSync(
    m.png,
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer(),
  );
  writeFileSync(
    m.jpg,
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .flop()
      .jpeg()
      .toBuffer(),
  );
  writeFileSync(m.notMedia, 'these are notes, not a video\n');
  return m;
}

/** A vector seeded by a string: deterministic, roughly isotropic. */
export function seededVector(seed: string, dim: number): Float32Array {
  const h = createHash('sha256').update(seed).digest();
  const r = rng(h.readUInt32LE(0));
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) v[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return v;
}

/** Embeds from the bytes: audio = f(bytes,'a'), visual = f(bytes,'v'); which ones by modality. */
export function embedBytes(data: Uint8Array, modality: Modality, dim: number): MediaEmbedding {
  const digest = createHash('sha256').update(data).digest('hex');
  return {
    ...(modality !== 'image' ? { audio: seededVector(`${digest}:a`, dim) } : {}),
    ...(modality !== 'audio' ? { visual: seededVector(`${digest}:v`, dim) } : {}),
  };
}

export class TestEmbedder implements MediaEmbedder {
  readonly modelName = 'test-embedder';
  calls: string[] = [];
  constructor(
    readonly dim = 16,
    readonly modelId = 'sha256:test-embedder-v1',
  ) {}
  async embedFile(path: string, modality: Modality): Promise<MediaEmbedding> {
    this.calls.push(path);
    return embedBytes(readFileSync(path), modality, this.dim);
  }
}
