/**
 * The loader: reference train/eval behaviour, determinism across worker counts, resume, failure
 * replacement, weighted sampling. Uses a small synthetic dataset (tones + coloured images) in a
 * temporary folder; the eval path is compared with the audio/vision modules' own functions.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { assertClose } from '../helpers.js';
import { loadDataset, type Dataset } from '../../src/data/datafile.js';
import { createLoader, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import { labelVector } from '../../src/data/augment.js';
import { encodeWavPcm16 } from '../../src/audio/wav.js';
import { loadAudioFeatures } from '../../src/audio/index.js';
import { loadImageTensor } from '../../src/vision/index.js';

let dir: string;
let manifest: string;
let official: string;
const N = 12;

function tone(freq: number, seconds: number): Float32Array {
  const n = Math.round(seconds * 16000);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++)
    out[i] = 0.3 * Math.sin((2 * Math.PI * freq * i) / 16000) + 0.01 * Math.sin(i * 0.37 * (1 + freq / 1000));
  return out;
}

async function png(path: string, r: number, g: number, b: number, size = 20): Promise<void> {
  const jpeg = path.endsWith('.jpg');
  const px = Buffer.alloc(size * size * 3);
  for (let p = 0; p < size * size; p++) {
    px[3 * p] = (r + p) & 255;
    px[3 * p + 1] = g;
    px[3 * p + 2] = (b * p) & 255;
  }
  const img = sharp(px, { raw: { width: size, height: size, channels: 3 } });
  writeFileSync(path, await (jpeg ? img.jpeg() : img.png()).toBuffer());
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cavmae-loader-'));
  const items = [];
  for (let i = 0; i < N; i++) {
    writeFileSync(join(dir, `a${i}.wav`), encodeWavPcm16(tone(200 + 150 * i, 0.4 + 0.05 * i)));
    await png(join(dir, `v${i}.png`), 20 * i, 255 - 20 * i, i + 1);
    items.push({ id: `s${i}`, audio: `a${i}.wav`, image: `v${i}.png`, label: `c${i % 3}` });
  }
  // Item 7's audio is not a WAV at all.
  writeFileSync(join(dir, 'a7.wav'), 'RIFF....this is not audio');
  manifest = join(dir, 'm.json');
  writeFileSync(manifest, JSON.stringify({ items }));

  // Official layout: 10 distinct frames per clip; clip 1 lacks frame_5, so eval steps down to 4.
  const data = [];
  for (let c = 0; c < 2; c++) {
    for (let f = 0; f < 10; f++) {
      if (c === 1 && f === 5) continue;
      mkdirSync(join(dir, 'frames', `frame_${f}`), { recursive: true });
      await png(join(dir, 'frames', `frame_${f}`, `clip${c}.jpg`), 25 * f, 40 * c, 3);
    }
    data.push({
      wav: join(dir, `a${c}.wav`),
      video_id: `clip${c}`,
      video_path: join(dir, 'frames'),
      labels: 'c0',
    });
  }
  official = join(dir, 'official.json');
  writeFileSync(official, JSON.stringify({ data }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

async function collect(
  ds: Dataset,
  opts: LoaderOptions,
  epoch = 0,
  startBatch = 0,
): Promise<{ batches: Batch[]; failures: string[] }> {
  const loader = createLoader(ds, { onFailure: () => undefined, ...opts });
  try {
    const batches: Batch[] = [];
    for await (const b of loader.batches(epoch, startBatch)) batches.push(b);
    return { batches, failures: loader.failures.map((f) => f.path) };
  } finally {
    await loader.close();
  }
}

const TRAIN: LoaderOptions = {
  batchSize: 4,
  train: true,
  targetLength: 48,
  imageSize: 32,
  seed: 11,
  mixup: 0.5,
  freqm: 24,
  timem: 12,
  noise: true,
  labelSmooth: 0.1,
  dropLast: false,
};

function sameBatches(a: Batch[], b: Batch[], what: string): void {
  assert.equal(a.length, b.length, `${what}: batch count`);
  a.forEach((x, i) => {
    const y = b[i];
    assert.deepEqual(x.ids, y.ids, `${what}: batch ${i} ids`);
    assert.deepEqual(x.indices, y.indices, `${what}: batch ${i} indices`);
    assertClose(x.audio, y.audio, { atol: 0, what: `${what}: batch ${i} audio` });
    assertClose(x.image, y.image, { atol: 0, what: `${what}: batch ${i} image` });
    assertClose(x.labels, y.labels, { atol: 0, what: `${what}: batch ${i} labels` });
  });
}

test('training batches are identical for 0, 1 and 2 workers; unreadable item replaced and reported', async () => {
  const ds = loadDataset(manifest);
  const r0 = await collect(ds, { ...TRAIN, workers: 0 });
  const r1 = await collect(ds, { ...TRAIN, workers: 1 });
  const r2 = await collect(ds, { ...TRAIN, workers: 2 });
  sameBatches(r0.batches, r1.batches, '0 vs 1 workers');
  sameBatches(r0.batches, r2.batches, '0 vs 2 workers');
  // Shapes, and the bad item (index 7) never appears; it is reported by path.
  const rows = r0.batches.reduce((s, b) => s + b.size, 0);
  assert.equal(rows, N);
  assert.deepEqual(
    r0.batches.map((b) => b.size),
    [4, 4, 4],
  );
  const b0 = r0.batches[0];
  assert.equal(b0.audio.length, 4 * 48 * 128);
  assert.equal(b0.image.length, 4 * 3 * 32 * 32);
  assert.equal(b0.labels.length, 4 * 3);
  for (const b of r0.batches) assert.ok(!b.indices.includes(7), 'unreadable item used');
  assert.deepEqual(r0.failures, [join(dir, 'a7.wav')]);
  assert.deepEqual(r2.failures, [join(dir, 'a7.wav')]);
  // Training randomness is real: a different seed gives different batches.
  const other = await collect(ds, { ...TRAIN, workers: 0, seed: 12 });
  assert.notDeepEqual(
    Array.from(other.batches[0].audio.subarray(0, 512)),
    Array.from(b0.audio.subarray(0, 512)),
  );
  // Label vectors: unmixed rows are the reference's assignment rule (positive 1-eps, others eps/K);
  // mixed rows of single-label items carry eps + λ(1-eps) + (1-λ)(1-eps) = 1 in total.
  for (const b of r0.batches)
    for (let i = 0; i < b.size; i++) {
      const row = b.labels.subarray(i * 3, i * 3 + 3);
      if (Number.isNaN(b.lambdas[i]))
        assertClose(row, labelVector(Int32Array.from([b.indices[i] % 3]), 3, 0.1), {
          atol: 0,
          what: 'unmixed labels',
        });
      else assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-6, `mixed row ${row} should sum to 1`);
    }
  assert.ok(
    r0.batches.some((b) => Array.from(b.lambdas).some((l) => !Number.isNaN(l))),
    'mixup happened',
  );
});

test('level and time-shift augmentation: deterministic for any worker count; the reference draws are unchanged', async () => {
  const ds = loadDataset(manifest);
  const plain = { ...TRAIN, mixup: 0, noise: false, freqm: 0, timem: 0 };
  const aug = { ...plain, gainDb: 6, timeShift: 8 };
  const a0 = await collect(ds, { ...aug, workers: 0 });
  const a2 = await collect(ds, { ...aug, workers: 2 });
  sameBatches(a0.batches, a2.batches, 'gain + shift, 0 vs 2 workers');
  const p0 = await collect(ds, { ...plain, workers: 0 });
  assert.deepEqual(
    a0.batches.map((b) => b.ids),
    p0.batches.map((b) => b.ids),
    'same order and items',
  );
  const differs = a0.batches.some((b, i) => b.audio.some((v, k) => v !== p0.batches[i].audio[k]));
  assert.ok(differs, 'the augmentation changes the audio');
  // Images (and every other draw) are those of the run without it.
  a0.batches.forEach((b, i) =>
    assertClose(b.image, p0.batches[i].image, { atol: 0, what: `batch ${i} image` }),
  );
  // Switched off (0) they are off: the reference recipe's batches bit for bit.
  const ref = await collect(ds, { ...TRAIN, workers: 0 });
  const again = await collect(ds, { ...TRAIN, gainDb: 0, timeShift: 0, workers: 0 });
  sameBatches(ref.batches, again.batches, 'off = reference');
  await assert.rejects(collect(ds, { ...plain, timeShift: 1.5 }), /time shift must be an integer/);
});

test('resuming at startBatch reproduces the rest of the epoch', async () => {
  const ds = loadDataset(manifest);
  const opts = { ...TRAIN, workers: 1, dropLast: true, mixup: 0 };
  const full = await collect(ds, opts, 3);
  const tail = await collect(ds, opts, 3, 1);
  sameBatches(full.batches.slice(1), tail.batches, 'resume');
  const next = await collect(ds, opts, 4);
  assert.notDeepEqual(next.batches[0].ids, full.batches[0].ids, 'epochs are shuffled differently');
});

test('evaluation: file order, frame 5, no augmentation: equals the audio/vision pipeline', async () => {
  const ds = loadDataset(official);
  const { batches } = await collect(ds, {
    batchSize: 2,
    train: false,
    targetLength: 64,
    imageSize: 224,
    workers: 1,
    mixup: 0.5,
    noise: true,
    freqm: 48,
  });
  assert.equal(batches.length, 1);
  const b = batches[0];
  assert.deepEqual(b.ids, ['clip0', 'clip1']);
  for (let i = 0; i < 2; i++) {
    const a = await loadAudioFeatures(join(dir, `a${i}.wav`), { targetLength: 64 });
    assertClose(b.audio.subarray(i * 64 * 128, (i + 1) * 64 * 128), a.audio, { atol: 0, what: `audio ${i}` });
  }
  const img0 = await loadImageTensor(join(dir, 'frames', 'frame_5', 'clip0.jpg'));
  assertClose(b.image.subarray(0, 3 * 224 * 224), img0, { atol: 0, what: 'frame 5 of clip0' });
  // clip1 has no frame_5: the reference steps down to frame_4.
  const img1 = await loadImageTensor(join(dir, 'frames', 'frame_4', 'clip1.jpg'));
  assertClose(b.image.subarray(3 * 224 * 224), img1, { atol: 0, what: 'frame 4 of clip1' });
  assertClose(b.labels, [1, 1], { atol: 0, what: 'labels' });
  // frameUse picks another frame.
  const f2 = await collect(ds, { batchSize: 2, train: false, targetLength: 64, workers: 0, frameUse: 2 });
  assertClose(
    f2.batches[0].image.subarray(0, 3 * 224 * 224),
    await loadImageTensor(join(dir, 'frames', 'frame_2', 'clip0.jpg')),
    { atol: 0, what: 'frame 2' },
  );
});

test('weighted sampling draws only items with weight and follows the weights', async () => {
  const ds = loadDataset(manifest);
  const weights = new Array(N).fill(0);
  weights[2] = 1;
  weights[5] = 3;
  const loader = createLoader(ds, { batchSize: 4, train: true, weights, seed: 3, workers: 0 });
  let c2 = 0;
  let c5 = 0;
  for (let e = 0; e < 200; e++) {
    for (const i of loader.order(e)) {
      if (i === 2) c2++;
      else if (i === 5) c5++;
      else assert.fail(`drew item ${i} with weight 0`);
    }
  }
  await loader.close();
  // P(5) = 0.75 over 2400 draws: sd 0.0088; tolerance 5 sd.
  assert.ok(Math.abs(c5 / (c2 + c5) - 0.75) < 0.045, `share of item 5: ${c5 / (c2 + c5)}`);
});

test('an all-unreadable dataset stops with a clear error instead of looping', async () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(
    bad,
    JSON.stringify({
      items: [
        { id: 'x', audio: 'nope.wav', image: 'v0.png' },
        { id: 'y', audio: 'a7.wav', image: 'v1.png' },
      ],
    }),
  );
  await assert.rejects(
    collect(loadDataset(bad), { batchSize: 1, train: false, workers: 0, onUnreadable: 'replace' }),
    /gave up after \d+ unreadable samples/,
  );
  // 'error' stops at the first one, naming the file.
  await assert.rejects(
    collect(loadDataset(bad), { batchSize: 1, train: false, workers: 0, onUnreadable: 'error' }),
    /nope\.wav: /,
  );
});

test('a manifest "video" folder of frame images: frame i of 10 is file floor(i·n/10) in natural order', async () => {
  const frames = join(dir, 'framefolder');
  mkdirSync(frames, { recursive: true });
  for (let k = 1; k <= 10; k++) await png(join(frames, `f${k}.png`), 10 * k, 7, 9);
  const m = join(dir, 'video-folder.json');
  writeFileSync(
    m,
    JSON.stringify({ items: [{ id: 'v', audio: 'a0.wav', video: 'framefolder', label: 'x' }] }),
  );
  const { batches } = await collect(loadDataset(m), {
    batchSize: 1,
    train: false,
    targetLength: 32,
    imageSize: 64,
    workers: 0,
  });
  // Frame 5 of 10 -> the sixth file in natural order: f6.png (not f5, and not "f10" by plain sorting).
  const { decodeImage, imageToTensor } = await import('../../src/vision/index.js');
  const expected = imageToTensor(await decodeImage(join(frames, 'f6.png')), { size: 64 });
  assertClose(batches[0].image, expected, { atol: 0, what: 'frame folder' });
});

test('the decoded-media cache never changes a batch: cold pass = warm pass = no cache', async () => {
  const ds = loadDataset(manifest);
  const opts: LoaderOptions = { ...TRAIN, workers: 1, mixup: 0.3, onFailure: () => undefined };
  const loader = createLoader(ds, opts);
  const pass = async (): Promise<Batch[]> => {
    const out: Batch[] = [];
    for await (const b of loader.batches(2)) out.push(b);
    return out;
  };
  try {
    const cold = await pass();
    const warm = await pass();
    sameBatches(cold, warm, 'cold vs warm');
    const none = await collect(ds, { ...opts, cacheMB: 0 }, 2);
    sameBatches(cold, none.batches, 'cache vs no cache');
  } finally {
    await loader.close();
  }
});

test('ByteLru evicts least recently used entries beyond its byte budget', async () => {
  const { ByteLru } = await import('../../src/data/cache.js');
  const c = new ByteLru<string>(10);
  c.set('a', 'A', 4);
  c.set('b', 'B', 4);
  assert.equal(c.get('a'), 'A'); // a is now most recent
  c.set('c', 'C', 4); // evicts b
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('a'), 'A');
  assert.equal(c.get('c'), 'C');
  assert.equal(c.bytes, 8);
  c.set('huge', 'H', 11); // larger than the budget: not stored
  assert.equal(c.get('huge'), undefined);
  assert.equal(c.size, 2);
});

test('evaluation leaves unreadable items out (default skip); replace fills the row with another item', async () => {
  mkdirSync(join(dir, 'emptyframes'), { recursive: true });
  const m = join(dir, 'empty-folder.json');
  writeFileSync(
    m,
    JSON.stringify({
      items: [
        { id: 'e', audio: 'a0.wav', video: 'emptyframes', label: 'x' },
        { id: 'ok', audio: 'a1.wav', image: 'v1.png', label: 'x' },
        { id: 'ok2', audio: 'a2.wav', image: 'v2.png', label: 'x' },
      ],
    }),
  );
  // An empty frame folder is an unreadable sample (reported by path), not a crash.
  const skip = await collect(loadDataset(m), {
    batchSize: 3,
    train: false,
    targetLength: 32,
    imageSize: 32,
    workers: 1,
  });
  assert.deepEqual(skip.batches[0].ids, ['ok', 'ok2']);
  assert.equal(skip.batches[0].size, 2);
  assert.equal(skip.batches[0].audio.length, 2 * 32 * 128);
  assert.deepEqual(skip.failures, [join(dir, 'emptyframes')]);
  const rep = await collect(loadDataset(m), {
    batchSize: 3,
    train: false,
    targetLength: 32,
    imageSize: 32,
    workers: 1,
    onUnreadable: 'replace',
  });
  assert.equal(rep.batches[0].size, 3);
  assert.ok(!rep.batches[0].ids.includes('e'));
});
