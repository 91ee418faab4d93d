/**
 * Multi-digit AV-digits for Sync (src/data/sync-demo.ts): files and manifest, the digit shown by
 * each pair, speech placed at its pairs' segment centres, determinism, and that the Sync clip
 * loader reads the result (frame folders of 16 files). Runs espeak-ng + sox (a few seconds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeWav } from '../../src/audio/index.js';
import { loadDataset } from '../../src/data/datafile.js';
import { SYNC_DEMO_SAMPLES, makeSyncDemoData, pairDigitSlots } from '../../src/data/sync-demo.js';
import { syncClipBatches } from '../../src/data/sync.js';

test('multi-digit Sync demo: clips, frames, alignment, determinism, readable by the clip loader', async () => {
  const out = mkdtempSync(join(tmpdir(), 'cavmae-sync-demo-'));
  const again = mkdtempSync(join(tmpdir(), 'cavmae-sync-demo2-'));
  try {
    const opts = { n: 2, testN: 1, digitsPerClip: 4, seed: 5, jobs: 2, voices: ['f1', 'm3', 'm5'] };
    const s = await makeSyncDemoData({ out, ...opts });
    assert.deepEqual([s.trainCount, s.testCount], [2, 1]);
    assert.deepEqual(pairDigitSlots(4), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    const m = JSON.parse(readFileSync(s.train, 'utf8'));
    for (const it of m.items) {
      assert.equal(statSync(join(out, it.audio)).size, 44 + 2 * SYNC_DEMO_SAMPLES);
      const frames = readdirSync(join(out, it.video)).sort();
      assert.equal(frames.length, 16);
      assert.deepEqual(
        it.pair_digits,
        pairDigitSlots(4).map((j) => it.digits[j]),
      );
      // Frames of one digit position are the same image; labels are the digits present.
      const png = (k: number): Buffer => readFileSync(join(out, it.video, frames[k]));
      assert.deepEqual(png(4), png(7));
      assert.equal(it.labels.length, new Set(it.digits).size);
      // Speech sits at its pairs' segment centres (2.56 j + 0.96 s); the gaps hold only noise.
      const { samples } = decodeWav(readFileSync(join(out, it.audio)));
      const rms = (t0: number, t1: number): number => {
        let ss = 0;
        for (let t = Math.round(t0 * 16000); t < Math.round(t1 * 16000); t++) ss += samples[t] ** 2;
        return Math.sqrt(ss / Math.round((t1 - t0) * 16000));
      };
      for (let j = 0; j < 4; j++) {
        const c = 2.56 * j + 0.96;
        const speech = rms(c - 0.15, c + 0.15);
        const gap = rms(c + 1.0, c + 1.2);
        assert.ok(speech > 3 * gap, `clip ${it.id} digit ${j}: speech rms ${speech} vs gap ${gap}`);
      }
    }
    // Determinism: the same options give the same bytes.
    await makeSyncDemoData({ out: again, ...opts, jobs: 1 });
    const first = m.items[1];
    assert.deepEqual(readFileSync(join(again, first.audio)), readFileSync(join(out, first.audio)));
    // The Sync clip loader reads it: 16 pairs per clip.
    const ds = loadDataset(s.test);
    const batches = [];
    for await (const b of syncClipBatches(ds, { segmentLength: 96, imageSize: 32 })) batches.push(b);
    assert.equal(batches.length, 1);
    assert.equal(batches[0].n, 1);
    assert.equal(batches[0].image.length, 16 * 3 * 32 * 32);
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(again, { recursive: true, force: true });
  }
});
