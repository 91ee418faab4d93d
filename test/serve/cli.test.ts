/**
 * `cavmae serve`, `cavmae index ...` and `cavmae search` through the real CLI entry (child
 * process): flags, one-line errors, exit codes, and the index maintenance commands that need no
 * model. Until the inference API (src/api/engine) exists, the model-backed commands must say
 * plainly that the engine is not available instead of faking results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { MediaIndex, mediaId } from '../../src/index/index.js';
import { repoRoot, runCavmae } from '../helpers.js';
import { seededVector } from '../index/test-media.js';

const fromDist = fileURLToPath(import.meta.url).includes(join('dist', 'test'));

function cli(tmp: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  return runCavmae(tmp, args, { env: { ...process.env, CAVMAE_QUIET_FALLBACK: '1' } });
}

function engineBuilt(): boolean {
  return existsSync(join(repoRoot(), fromDist ? 'dist/src/api/engine.js' : 'src/api/engine.ts'));
}

test('serve, index and search commands: errors, maintenance commands, no faked model', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'cavmae-serve-cli-'));
  try {
    const model = join(tmp, 'model.safetensors');
    writeFileSync(model, 'placeholder');
    let r = cli(tmp, ['serve', '--model', join(tmp, 'missing.safetensors')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing\.safetensors: model file not found/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one-line error');
    r = cli(tmp, ['serve', '--model', model, '--index', join(tmp, 'noindex')]);
    assert.match(r.stderr, /noindex: no media index here/);
    r = cli(tmp, ['serve', '--model', model, '--port', '70000']);
    assert.match(r.stderr, /--port must be an integer in 0\.\.65535/);
    if (!engineBuilt()) {
      r = cli(tmp, ['serve', '--model', model, '--port', '0']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /model engine not available yet/);
      r = cli(tmp, ['index', 'add', tmp, '--model', model, '--index', join(tmp, 'idx-new')]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /no media files found|model engine not available yet/);
    }

    // Maintenance commands on an index built here (no model needed).
    const dir = join(tmp, 'idx');
    const idx = MediaIndex.create(dir, { modelId: 'sha256:cli', modelName: 'cli-model', dim: 8 });
    idx.add(
      [0, 1, 2].map((i) => ({
        path: join(tmp, `m${i}.wav`),
        modality: 'audio' as const,
        mtimeMs: i,
        size: i,
        embedding: { audio: seededVector(`cli${i}`, 8) },
      })),
    );
    idx.close();
    r = cli(tmp, ['index', 'list', '--index', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 3);
    assert.match(r.stdout, new RegExp(`${mediaId(join(tmp, 'm1.wav'))}  audio a-  .*m1\\.wav`));
    r = cli(tmp, ['index', 'stats', '--index', dir]);
    assert.equal(JSON.parse(r.stdout).count, 3);
    r = cli(tmp, ['index', 'remove', join(tmp, 'm1.wav'), '--index', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /removed 1; 2 items left/);
    r = cli(tmp, ['index', 'remove', 'ffffffffffffffff', '--index', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /not in the index: ffffffffffffffff/);
    r = cli(tmp, ['index', 'compact', '--index', dir]);
    assert.match(r.stdout, /compacted 3 rows to 2/);
    r = cli(tmp, ['index', 'build-ann', '--index', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /audio: graph over 2 items/);

    // search: argument checks, and the model is taken from the index (not recorded here).
    const png = join(tmp, 'q.png');
    writeFileSync(
      png,
      await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 9, g: 99, b: 199 } } })
        .png()
        .toBuffer(),
    );
    r = cli(tmp, ['search', '--index', dir, '--audio', png, '--image', png]);
    assert.match(r.stderr, /exactly one of --audio, --image, --video/);
    r = cli(tmp, ['search', '--index', dir, '--audio', png]);
    assert.match(r.stderr, /q\.png: is an image, not audio \(--audio\)/);
    r = cli(tmp, ['search', '--index', dir, '--image', png]);
    assert.match(r.stderr, /does not record its model file; pass --model/);
    r = cli(tmp, ['search', '--index', dir, '--image', png, '--mode', 'diagonal']);
    assert.match(r.stderr, /--mode must be cross, same or all/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
