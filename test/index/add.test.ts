/**
 * `addMedia` on real files: content-based kinds, thumbnails, failures reported, resume skips
 * unchanged files, a changed file is re-embedded, cross-modal search finds the paired item.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  MediaIndex,
  addMedia,
  collectMediaFiles,
  detectMedia,
  sniffBytes,
  mediaId,
  THUMB_WIDTH,
  THUMB_HEIGHT,
} from '../../src/index/index.js';
import { hasFfmpeg, makeTestMedia, TestEmbedder, type TestMedia } from './test-media.js';

const skip = hasFfmpeg() ? false : 'ffmpeg is not installed';

test('content decides the media kind, not the file name', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-add-'));
  try {
    const m = await makeTestMedia(dir);
    assert.equal((await detectMedia(m.wav)).modality, 'audio');
    assert.equal((await detectMedia(m.png)).modality, 'image');
    assert.equal((await detectMedia(m.jpg)).modality, 'image');
    const clip = await detectMedia(m.mp4);
    assert.deepEqual([clip.modality, clip.hasAudio, clip.hasVideo], ['video', true, true]);
    const silent = await detectMedia(m.silentMp4);
    assert.deepEqual([silent.modality, silent.hasAudio], ['video', false]);
    assert.equal(
      (await detectMedia(m.audioOnlyMp4)).modality,
      'audio',
      'an mp4 without a video stream is audio',
    );
    await assert.rejects(detectMedia(m.notMedia), /notes\.mp4: not a supported image, audio or video file/);
    // A PNG renamed .wav is still an image.
    const disguised = join(dir, 'disguised.wav');
    copyFileSync(m.png, disguised);
    assert.equal((await detectMedia(disguised)).modality, 'image');
    assert.equal(await sniffBytes(new TextEncoder().encode('#!/bin/sh\nrm -rf /\n')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'addMedia indexes a folder with thumbnails, reports failures, resumes, re-embeds changed files',
  { skip },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'cavmae-add-'));
    try {
      const mediaDir = join(root, 'media');
      mkdirSync(mediaDir);
      const m: TestMedia = await makeTestMedia(mediaDir);
      const indexDir = join(root, 'media', 'idx'); // inside the collection: must not index itself
      const embedder = new TestEmbedder(16);
      const files = collectMediaFiles([mediaDir], { exclude: [indexDir] });
      assert.deepEqual(
        files.map((f) => f.slice(mediaDir.length + 1)),
        [
          'clip.mp4',
          'gradient.png',
          'long.wav',
          'notes.mp4',
          'photo.jpg',
          'silent.mp4',
          'tone.wav',
          'voice.mp4',
        ],
      );

      const idx = MediaIndex.openOrCreate(indexDir, {
        modelId: embedder.modelId,
        modelName: embedder.modelName,
        dim: embedder.dim,
      });
      const progress: number[] = [];
      const s1 = await addMedia(idx, files, embedder, {
        batchSize: 3,
        onProgress: (p) => progress.push(p.done),
      });
      assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(s1.added, 7);
      assert.equal(s1.skipped, 0);
      assert.equal(s1.failed.length, 1);
      assert.match(s1.failed[0].error, /notes\.mp4: not a supported image, audio or video file/);
      assert.deepEqual(s1.index.byModality, { audio: 3, image: 2, video: 2 });

      const clip = idx.get(mediaId(m.mp4))!;
      assert.deepEqual([clip.modality, clip.hasAudio, clip.hasVisual], ['video', true, true]);
      const silent = idx.get(mediaId(m.silentMp4))!;
      assert.deepEqual([silent.hasAudio, silent.hasVisual], [false, true]);
      const png = idx.get(mediaId(m.png))!;
      assert.deepEqual([png.hasAudio, png.hasVisual], [false, true]);
      for (const e of idx.list()) {
        assert.ok(e.thumb, `${e.path} has a thumbnail`);
        const meta = await sharp(readFileSync(join(indexDir, e.thumb!))).metadata();
        assert.deepEqual(
          [meta.width, meta.height, meta.format],
          [THUMB_WIDTH, THUMB_HEIGHT, e.modality === 'audio' ? 'png' : 'jpeg'],
        );
      }

      // Cross-modal search: the clip's own audio embedding finds the clip among visual embeddings
      // only by chance, but its visual embedding searched in the visual space ranks it first.
      const own = embedder.calls.length;
      const q = (await embedder.embedFile(m.mp4, 'video')).visual!;
      const hits = idx.search(q, { space: 'visual', k: 3 });
      assert.equal(hits[0].id, clip.id);
      assert.ok(Math.abs(hits[0].score - 1) < 1e-6, `self-similarity ${hits[0].score} within 1e-6 of 1`);
      embedder.calls.length = own;

      // Resume: nothing changed -> nothing embedded again (the failure is retried and fails again).
      embedder.calls = [];
      const s2 = await addMedia(idx, files, embedder);
      assert.equal(s2.added, 0);
      assert.equal(s2.skipped, 7);
      assert.equal(s2.failed.length, 1);
      assert.deepEqual(embedder.calls, []);

      // A touched file is re-embedded and replaces its entry (same id, new row).
      const t = new Date(Date.now() + 5000);
      utimesSync(m.wav, t, t);
      const s3 = await addMedia(idx, files, embedder);
      assert.equal(s3.added, 1);
      assert.deepEqual(embedder.calls, [m.wav]);
      assert.equal(idx.count, 7);
      assert.ok(idx.get(mediaId(m.wav))!.row > clip.row);
      idx.close();
      assert.ok(!existsSync(join(indexDir, 'write.lock')));

      // A different model refuses to add to this index.
      const other = new TestEmbedder(16, 'sha256:another-model');
      const w = MediaIndex.open(indexDir, { writable: true });
      await assert.rejects(addMedia(w, files, other), /was built with model test-embedder/);
      w.close();

      // An abort signal stops after the current item and commits what was done.
      const fresh = MediaIndex.create(join(root, 'idx2'), {
        modelId: embedder.modelId,
        modelName: embedder.modelName,
        dim: 16,
      });
      const ac = new AbortController();
      const s4 = await addMedia(fresh, files, embedder, {
        batchSize: 100,
        thumbnails: false,
        onProgress: (p) => p.done === 2 && ac.abort(),
        signal: ac.signal,
      });
      assert.equal(s4.interrupted, true);
      assert.equal(s4.added, 2);
      fresh.close();
      assert.equal(MediaIndex.open(join(root, 'idx2')).count, 2);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);
