// The package entry point (src/index.ts) exposes the public API and it works through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cavmae from '../../src/index.js';
import { writeTestModels } from './models.js';

test('the entry point re-exports the inference API, models, index and server', async () => {
  for (const name of [
    'CavMae',
    'createEngine',
    'rankBySimilarity',
    'localizeTokens',
    'composePanel',
    'evaluateRetrieval',
    'CAVMAE',
    'CAVMAEFT',
    'loadModel',
    'saveModel',
    'presetConfig',
    'MediaIndex',
    'addMedia',
    'startServer',
    'decodeAudio',
    'decodeImage',
    'UserError',
    'kernelStatus',
  ])
    assert.equal(typeof (cavmae as Record<string, unknown>)[name], 'function', name);
  const models = writeTestModels(mkdtempSync(join(tmpdir(), 'cavmae-entry-')));
  const m = await cavmae.CavMae.load(models.tiny);
  const e = await m.embedImage(new Float32Array(3 * 64 * 64));
  assert.equal(e.pooled.length, 128);
  assert.ok(Math.abs(Math.hypot(...e.pooled) - 1) < 1e-6, 'unit norm (1e-6)');
});
