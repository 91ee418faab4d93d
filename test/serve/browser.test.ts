/**
 * Browser test of the web page: Debian's chromium driven by playwright-core (no browser
 * download), started by the test. Loads the page, uploads a video, then an image + audio pair,
 * and checks that retrieval cards with thumbnails and players, the classes, the heat map (canvas
 * pixels vary) with its overlay, and the reconstruction panel render, with no console errors
 * (CSP violations included). Screenshots are kept in test-artifacts/serve/.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- page-side code runs in the browser, typed without DOM lib */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { MediaIndex, addMedia } from '../../src/index/index.js';
import { startServer } from '../../src/serve/index.js';
import { hasFfmpeg, makeTestMedia, TestEmbedder } from '../index/test-media.js';
import { TestEngine } from './test-engine.js';
import { chromiumMissing, openHeadless } from './headless.js';
import { repoRoot } from '../helpers.js';

const skip = chromiumMissing ?? (!hasFfmpeg() ? 'ffmpeg is not installed' : false);

const DONE = () => /Done/.test((globalThis as any).document.getElementById('status').textContent);

async function renderedChecks(page: Page, what: string): Promise<void> {
  await page.waitForSelector('#section-localize:not([hidden]) #heatmap[data-rendered="true"]', {
    timeout: 30_000,
  });
  await page.waitForSelector('#section-reconstruct:not([hidden])', { timeout: 30_000 });
  await page.waitForFunction(DONE, undefined, { timeout: 30_000 });
  // Browser-side code: this project compiles without DOM typings, hence `any`; no named inner
  // functions (tsx would wrap them in a helper the page does not have).
  const facts = await page.evaluate(() => {
    const doc = (globalThis as any).document;
    const canvas = doc.getElementById('heatmap');
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < px.length; i += 4) {
      lo = Math.min(lo, px[i]);
      hi = Math.max(hi, px[i]);
    }
    const thumbs: any[] = [...doc.querySelectorAll('#search-lists img.thumb')];
    return {
      cards: doc.querySelectorAll('#search-lists .card').length as number,
      lists: doc.querySelectorAll('#search-lists .list').length as number,
      thumbs: thumbs.length,
      thumbsLoaded: thumbs.filter((t) => t.complete && t.naturalWidth > 0).length,
      players: doc.querySelectorAll('#search-lists audio, #search-lists video').length as number,
      labels: doc.querySelectorAll('#labels li').length as number,
      heatRange: hi - lo,
      overlay: doc.getElementById('overlay').naturalWidth as number,
      panel: doc.getElementById('panel').naturalWidth as number,
      status: doc.getElementById('status').className as string,
    };
  });
  assert.ok(facts.lists >= 2, `${what}: result lists ${facts.lists}`);
  assert.ok(facts.cards >= 4, `${what}: result cards ${facts.cards}`);
  assert.ok(
    facts.thumbs > 0 && facts.thumbsLoaded === facts.thumbs,
    `${what}: thumbnails loaded ${facts.thumbsLoaded}/${facts.thumbs}`,
  );
  assert.ok(facts.players > 0, `${what}: audio/video players`);
  assert.equal(facts.labels, 5, `${what}: classes`);
  assert.ok(facts.heatRange > 100, `${what}: heat map pixels vary (red range ${facts.heatRange})`);
  assert.equal(facts.overlay, 224, `${what}: overlay image decoded`);
  assert.ok(facts.panel > 0, `${what}: reconstruction panel decoded`);
  assert.doesNotMatch(facts.status, /error/);
}

test(
  'the page uploads files and renders results, heat map and reconstruction',
  { skip, timeout: 180_000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'cavmae-browser-'));
    const artifacts = join(repoRoot(), 'test-artifacts', 'serve');
    mkdirSync(artifacts, { recursive: true });
    const media = await makeTestMedia(root);
    const embedder = new TestEmbedder(16);
    const idx = MediaIndex.create(join(root, 'index'), {
      modelId: embedder.modelId,
      modelName: embedder.modelName,
      dim: 16,
    });
    await addMedia(
      idx,
      [media.wav, media.png, media.jpg, media.mp4, media.silentMp4, media.audioOnlyMp4],
      embedder,
    );
    idx.close();
    const index = MediaIndex.open(join(root, 'index'));
    const server = await startServer({ engine: new TestEngine({ index }), port: 0 });
    const browser = await openHeadless();
    try {
      const { page, problems } = browser;
      await page.goto(server.url);
      await page.waitForFunction(() =>
        /items/.test((globalThis as any).document.getElementById('fact-index').textContent),
      );
      assert.match((await page.textContent('#fact-index')) ?? '', /^6 items/);
      await page.screenshot({ path: join(artifacts, 'page-empty.png') });

      // 1. One video: search, classes, heat map and reconstruction from the same file.
      await page.setInputFiles('#file-main', media.mp4);
      await renderedChecks(page, 'video');
      await page.screenshot({ path: join(artifacts, 'page-video.png'), fullPage: true });

      // 2. An image with an audio file in the second drop zone.
      await page.setInputFiles('#file-main', media.jpg);
      await page.waitForFunction(DONE, undefined, { timeout: 30_000 });
      await page.setInputFiles('#file-second', media.wav);
      await renderedChecks(page, 'image+audio');
      await page.screenshot({ path: join(artifacts, 'page-image-audio.png'), fullPage: true });

      // 3. A file that is not media: a readable error, no crash.
      await page.setInputFiles('#file-second', []);
      await page.setInputFiles('#file-main', {
        name: 'notes.mp4',
        mimeType: 'video/mp4',
        buffer: Buffer.from('not a video\n'),
      });
      await page.waitForSelector('#status.error', { timeout: 30_000 });
      assert.match((await page.textContent('#status')) ?? '', /not a supported image, audio or video file/);
      await page.screenshot({ path: join(artifacts, 'page-error.png') });
      problems.splice(
        0,
        problems.length,
        ...problems.filter(
          (p) => !/Failed to load resource: the server responded with a status of 415/.test(p),
        ),
      );
      assert.deepEqual(problems, [], 'no console errors (CSP violations included)');
    } finally {
      await browser.close();
      await server.close();
      rmSync(root, { recursive: true, force: true });
    }
  },
);
