/**
 * CAV-MAE Sync data: segment bounds and frame indices against the PyTorch reference's values
 * (test/fixtures/sync/segments.json, from the released map_frame_to_spectrogram rule), the
 * loader's Sync pairs (train: a random pair whose segment and frame agree; eval: the middle pair),
 * and whole retrieval clips (16 segments of one fbank, 16 frames, unreadable-frame rule).
 * Audio expectations come from the audio module's own loadAudioFeatures on 1024 rows.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadAudioFeatures } from '../../src/audio/index.js';
import { loadDataset, type Dataset } from '../../src/data/datafile.js';
import { createLoader } from '../../src/data/loader.js';
import { encodeWavPcm16 } from '../../src/audio/wav.js';
import {
  buildSyncClip,
  cropSegment,
  evalPair,
  segmentBounds,
  syncClipBatches,
  syncFrameIndices,
  syncLoaderOptions,
} from '../../src/data/sync.js';
import { assertClose, repoRoot } from '../helpers.js';

const seg = JSON.parse(readFileSync(join(repoRoot(), 'test', 'fixtures', 'sync', 'segments.json'), 'utf8'));
const L = 96;
const S = 32;
let dir: string;
let ds: Dataset;
const CLIPS = 3;

test('segment bounds equal the reference for every length and pair', () => {
  for (const [len, bounds] of Object.entries(seg.segments as Record<string, [number, number][]>)) {
    for (let i = 0; i < 16; i++)
      assert.deepEqual(segmentBounds(i, Number(len)), bounds[i], `L ${len}, pair ${i}`);
  }
  // Spec 8.2's worked examples (L = 416).
  const starts = Array.from({ length: 16 }, (_, i) => segmentBounds(i, 416)[0]);
  assert.deepEqual(starts.slice(0, 6), [0, 0, 0, 0, 48, 112]);
  assert.deepEqual(starts.slice(12), [560, 608, 608, 608]);
  assert.equal(evalPair(), 8);
  assert.throws(() => segmentBounds(16, 96), /pair index 16 is outside 0\.\.15/);
  assert.throws(() => segmentBounds(0, 1025), /segment length must be an integer in 1\.\.1024/);
});

test('frame indices equal np.linspace(0, n-1, 16).astype(int)', () => {
  for (const [n, idx] of Object.entries(seg.frame_indices as Record<string, number[]>))
    assert.deepEqual(syncFrameIndices(Number(n)), idx, `n = ${n}`);
});

test('cropSegment takes the rows of the pair, copies, and refuses other lengths', () => {
  const fb = Float32Array.from({ length: 1024 * 128 }, (_, i) => Math.floor(i / 128)); // value = row
  for (const i of [0, 5, 15]) {
    const s = cropSegment(fb, i, 304);
    const [start] = segmentBounds(i, 304);
    assert.equal(s.length, 304 * 128);
    assert.equal(s[0], start);
    assert.equal(s[s.length - 1], start + 303);
  }
  assert.throws(() => cropSegment(new Float32Array(1000 * 128), 0, 96), /1024-row/);
});

/** A 10.24 s clip whose spectrum changes over time (so every segment differs). */
function chirp(c: number): Float32Array {
  const n = 163840;
  const out = new Float32Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const f = 200 + (3000 * i) / n + 300 * c;
    phase += (2 * Math.PI * f) / 16000;
    out[i] = 0.3 * Math.sin(phase) * (0.5 + 0.5 * Math.sin(i / 4000 + c));
  }
  return out;
}

async function jpg(path: string, r: number, g: number, b: number): Promise<void> {
  const px = Buffer.alloc(40 * 40 * 3);
  for (let p = 0; p < 40 * 40; p++) {
    px[3 * p] = (r + p) & 255;
    px[3 * p + 1] = g;
    px[3 * p + 2] = (b * p) & 255;
  }
  writeFileSync(
    path,
    await sharp(px, { raw: { width: 40, height: 40, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cavmae-sync-data-'));
  const data = [];
  for (let c = 0; c < CLIPS; c++) {
    writeFileSync(join(dir, `a${c}.wav`), encodeWavPcm16(chirp(c)));
    for (let f = 0; f < 16; f++) {
      if (c === 1 && (f === 0 || f === 7)) continue; // clip 1 lacks frames 0 and 7
      mkdirSync(join(dir, 'frames', `frame_${f}`), { recursive: true });
      await jpg(join(dir, 'frames', `frame_${f}`, `clip${c}.jpg`), 15 * f, 60 * c, f + 1);
    }
    data.push({
      wav: join(dir, `a${c}.wav`),
      video_id: `clip${c}`,
      video_path: join(dir, 'frames'),
      labels: 'x',
    });
  }
  // Clip 3: its audio file does not exist.
  data.push({
    wav: join(dir, 'missing.wav'),
    video_id: 'clip0',
    video_path: join(dir, 'frames'),
    labels: 'x',
  });
  writeFileSync(join(dir, 'data.json'), JSON.stringify({ data }));
  ds = loadDataset(join(dir, 'data.json'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

async function expectedSegments(c: number): Promise<Float32Array> {
  return (await loadAudioFeatures(join(dir, `a${c}.wav`), { targetLength: 1024 })).audio;
}

test('loader pairs: eval takes the middle pair, train a random pair whose segment and frame agree', async () => {
  const clean: Dataset = { ...ds, items: [ds.items[0], ds.items[2]] };
  const clips = [
    await buildSyncClip(clean.items[0], { segmentLength: L, imageSize: S }),
    await buildSyncClip(clean.items[1], { segmentLength: L, imageSize: S }),
  ];
  const A = L * 128;
  const V = 3 * S * S;
  // Clip audio pair k = rows of the 1024-row normalised fbank (audio module) at the reference bounds.
  for (const [r, c] of [
    [0, 0],
    [1, 2],
  ] as const) {
    const full = await expectedSegments(c);
    for (const k of [0, 8, 15]) {
      const [s, e] = seg.segments[String(L)][k];
      assertClose(clips[r].audio.subarray(k * A, (k + 1) * A), full.subarray(s * 128, e * 128), {
        rtol: 1e-6,
        what: `clip ${c} segment ${k}`,
      });
    }
  }
  const evalLoader = createLoader(
    clean,
    syncLoaderOptions({ batchSize: 2, train: false, imageSize: S, workers: 0 }, L),
  );
  try {
    const batches = [];
    for await (const x of evalLoader.batches(0)) batches.push(x);
    const [b] = batches;
    assert.equal(b.audio.length, 2 * A);
    for (let r = 0; r < 2; r++) {
      assertClose(b.audio.subarray(r * A, (r + 1) * A), clips[r].audio.subarray(8 * A, 9 * A), {
        atol: 0,
        what: `eval row ${r} audio = pair 8`,
      });
      assertClose(b.image.subarray(r * V, (r + 1) * V), clips[r].image.subarray(8 * V, 9 * V), {
        atol: 0,
        what: `eval row ${r} image = frame 8`,
      });
    }
  } finally {
    await evalLoader.close();
  }
  const trainLoader = createLoader(
    clean,
    syncLoaderOptions({ batchSize: 2, train: true, imageSize: S, workers: 1, seed: 3 }, L),
  );
  const seen = new Set<number>();
  try {
    for (let epoch = 0; epoch < 4; epoch++) {
      for await (const b of trainLoader.batches(epoch)) {
        for (let r = 0; r < b.size; r++) {
          const clip = clips[b.indices[r]];
          const audio = b.audio.subarray(r * A, (r + 1) * A);
          const k = [...Array(16).keys()].find((j) =>
            clip.audio.subarray(j * A, (j + 1) * A).every((x, i) => x === audio[i]),
          );
          assert.ok(k !== undefined, 'the training segment is one of the clip segments');
          // Early pairs share segment rows (clamped at 0); their frames still tell them apart.
          const pairs = [...Array(16).keys()].filter((j) =>
            clip.audio.subarray(j * A, (j + 1) * A).every((x, i) => x === audio[i]),
          );
          const image = b.image.subarray(r * V, (r + 1) * V);
          assert.ok(
            pairs.some((j) => clip.image.subarray(j * V, (j + 1) * V).every((x, i) => x === image[i])),
            `frame of the same pair (segment candidates ${pairs.join(',')})`,
          );
          pairs.forEach((j) => seen.add(j));
        }
      }
    }
  } finally {
    await trainLoader.close();
  }
  assert.ok(seen.size >= 4, `random pairs over epochs (${[...seen].join(',')})`);
});

test('retrieval clips: 16 segments and frames; unreadable frames take the previous one; bad clips left out', async () => {
  const c1 = await buildSyncClip(ds.items[1], { segmentLength: L, imageSize: S });
  // frame_7 missing: the official layout's step-down rule already reads frame_6 (counted as read);
  // frame_0 is never stepped down from, so it is replaced.
  assert.deepEqual(c1.replacedFrames, [0]);
  const V = 3 * S * S;
  const frame = (k: number): Float32Array => c1.image.subarray(k * V, (k + 1) * V);
  assert.deepEqual(frame(0), frame(1), 'frame 0 missing: the first readable frame');
  assert.deepEqual(frame(7), frame(6), 'frame 7 missing: the previous frame');
  assert.notDeepEqual(frame(8), frame(6));
  const failures: string[] = [];
  const batches = [];
  for await (const b of syncClipBatches(ds, {
    segmentLength: L,
    imageSize: S,
    clipsPerBatch: 3,
    onFailure: (f) => failures.push(f.id),
  }))
    batches.push(b);
  assert.deepEqual(
    batches.map((b) => b.indices),
    [[0, 1, 2]],
  );
  assert.equal(failures.length, 1);
  assert.equal(batches[0].audio.length, 3 * 16 * L * 128);
  assert.deepEqual(batches[0].image.subarray(V * 16, V * 32), c1.image);
  await assert.rejects(buildSyncClip(ds.items[3], { segmentLength: L }), /missing\.wav/);
  // A given order (e.g. a shuffle for fine-tuning), in batches of two.
  const ordered = [];
  for await (const b of syncClipBatches(ds, {
    segmentLength: L,
    imageSize: S,
    clipsPerBatch: 2,
    order: [2, 0, 1],
    onFailure: () => undefined,
  }))
    ordered.push(b.indices);
  assert.deepEqual(ordered, [[2, 0], [1]]);
});
