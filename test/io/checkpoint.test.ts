import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkpointConfig,
  checkpointPreprocess,
  compareKeys,
  DEFAULT_PREPROCESS,
  formatKeyReport,
  loadRawStateDict,
  loadStateDict,
  parseStateDictBytes,
  saveCheckpoint,
} from '../../src/io/checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, hasOfficialFixtures, repoRoot } from '../helpers.js';
import { f32Bytes, makeStateDictPth } from './builders.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-ckpt-'));
const local = (name: string) => join(repoRoot(), 'test', 'fixtures', name);

test(
  'loadStateDict: both formats of the official fixture give the same float32 tensors',
  { skip: !hasOfficialFixtures() },
  () => {
    const a = loadStateDict(fixture('model_small', 'cavmae_small.pth'));
    const b = loadStateDict(fixture('model_small', 'cavmae_small.safetensors'));
    assert.equal(a.format, 'pth');
    assert.equal(b.format, 'safetensors');
    assert.equal(b.metadata.class, 'CAVMAE');
    assert.equal(a.tensors.size, b.tensors.size);
    for (const [k, t] of a.tensors) {
      const u = b.tensors.get(k);
      assert.ok(u, k);
      assert.deepEqual(t.shape, u.shape);
      assert.ok(t.data instanceof Float32Array);
      assert.deepEqual(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength),
        k,
      );
    }
  },
);

test('loadStateDict strips module., converts dtypes, finds a nested "model"', () => {
  const v = loadStateDict(local('pth_views_torch2.pth'));
  assert.ok([...v.tensors.keys()].every((k) => !k.startsWith('module.')));
  assert.deepEqual(Array.from(v.tensors.get('long')!.data), [-3, 0, 2 ** 40, 7]);
  assert.deepEqual(Array.from(v.tensors.get('bool')!.data), [1, 0, 1]);
  const raw = loadRawStateDict(local('pth_views_torch2.pth'));
  assert.equal(raw.strippedModule, 17);
  assert.equal(raw.tensors.get('half')!.dtype, 'F16');
  const mae = loadRawStateDict(local('mae_tiny.pth'));
  assert.equal(mae.nestedKey, 'model');
  assert.ok(mae.tensors.has('blocks.11.mlp.fc2.bias'));
});

test('module. collisions and unknown formats are clear errors', () => {
  const data = f32Bytes([1]);
  const clash = makeStateDictPth({
    'module.w': { key: '0', numel: 1, size: [1], data },
    w: { key: '1', numel: 1, size: [1], data },
  });
  assert.throws(
    () => parseStateDictBytes(clash, 'c.pth'),
    /c\.pth: key "w" appears both with and without the "module\." prefix/,
  );
  assert.throws(
    () => parseStateDictBytes(Buffer.from('hello world, not a model'), 'x.bin'),
    (e: unknown) => e instanceof UserError && /x\.bin: not a checkpoint/.test(e.message),
  );
  assert.throws(() => parseStateDictBytes(new Uint8Array(0), 'empty.pth'), /empty\.pth: not a checkpoint/);
  const p = join(tmp, 'text.pth');
  writeFileSync(p, '{"a": 1}');
  assert.throws(
    () => loadStateDict(p),
    (e: unknown) => e instanceof UserError && e.message.startsWith(p),
  );
});

test('compareKeys / formatKeyReport follow PyTorch strict=False', () => {
  const expected = new Map<string, number[]>([
    ['a', [2, 3]],
    ['b', [4]],
    ['c', [1]],
  ]);
  const got = new Map<string, { shape: number[] }>([
    ['a', { shape: [3, 2] }],
    ['c', { shape: [1] }],
    ['cls_token', { shape: [1, 1, 4] }],
  ]);
  const r = compareKeys(expected, got);
  assert.deepEqual(r.missing, ['b']);
  assert.deepEqual(r.unexpected, ['cls_token']);
  assert.deepEqual(r.shapeMismatch, [{ key: 'a', expected: [2, 3], got: [3, 2] }]);
  assert.equal(
    formatKeyReport(r),
    "_IncompatibleKeys(missing_keys=['b'], unexpected_keys=['cls_token'])\n" +
      'size mismatch for a: copying a param with shape torch.Size([3, 2]) from checkpoint, the shape in current model is torch.Size([2, 3]).',
  );
  assert.equal(formatKeyReport(compareKeys(expected, expected)), '<All keys matched successfully>');
});

test('saveCheckpoint stores config and preprocessing constants; Python-style metadata', () => {
  const path = join(tmp, 'model.safetensors');
  const config = { model: 'cavmae', embed_dim: 48, modality_specific_depth: 11 };
  saveCheckpoint(path, new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }]]), {
    config,
    preprocess: { audio: { targetLength: 128 } },
    extra: { note: 'x' },
  });
  const back = loadStateDict(path);
  assert.deepEqual(checkpointConfig(back.metadata), config);
  const pre = checkpointPreprocess(back.metadata)!;
  assert.equal(pre.audio.targetLength, 128);
  assert.equal(pre.audio.mean, -5.081);
  assert.equal(pre.audio.std, 4.4849);
  assert.deepEqual(pre.image, DEFAULT_PREPROCESS.image);
  assert.equal(back.metadata.format, 'pt');
  assert.equal(back.metadata.note, 'x');
  assert.deepEqual(Array.from(back.tensors.get('w')!.data), [1, 2]);
  // Missing metadata is undefined; broken metadata is a UserError.
  assert.equal(checkpointConfig({}), undefined);
  assert.throws(
    () => checkpointConfig({ 'cavmae.config': '{' }, 'm.safetensors'),
    /m\.safetensors: metadata "cavmae\.config" is not valid JSON/,
  );
  assert.throws(
    () => checkpointPreprocess({ 'cavmae.preprocess': '{"audio": {}}' }, 'm'),
    /does not hold valid preprocessing constants/,
  );
  assert.ok(readFileSync(path).length > 0);
  assert.equal(readSafetensors(path).tensors.get('w')!.dtype, 'F32');
});

test('a safetensors header length whose low byte is 0x80 is not mistaken for a legacy pickle', () => {
  // Header lengths are padded to multiples of 8, so 1 in 32 of our own files starts with 0x80.
  let found = 0;
  for (let pad = 0; pad < 64 && found < 2; pad++) {
    const path = join(tmp, `hdr80-${pad}.safetensors`);
    saveCheckpoint(path, new Map([['w', { shape: [2], data: new Float32Array([1, 2]) }]]), {
      extra: { note: 'x'.repeat(pad * 8) },
    });
    const bytes = readFileSync(path);
    if (bytes[0] !== 0x80) continue;
    found++;
    const sd = loadStateDict(path);
    assert.equal(sd.format, 'safetensors');
    assert.deepEqual(Array.from(sd.tensors.get('w')!.data), [1, 2]);
  }
  assert.ok(found > 0, 'no header length with low byte 0x80 was produced');
});
