import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adaptMaeCheckpoint, adaptMaeStateDict, NOT_FROM_MAE } from '../../src/io/adapt-mae.js';
import { compareKeys, loadStateDict } from '../../src/io/checkpoint.js';
import { cavmaeLayout } from '../../src/io/layouts.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { repoRoot } from '../helpers.js';

const local = (name: string) => join(repoRoot(), 'test', 'fixtures', name);
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-adapt-'));

// The tiny MAE (scripts/golden/make_mae_like.py): embed 8, 12 blocks, decoder 4 x 2, patch 16.
const TINY = {
  img_size: 224,
  audio_length: 1024,
  patch_size: 16,
  in_chans: 3,
  embed_dim: 8,
  modality_specific_depth: 11,
  decoder_embed_dim: 4,
  decoder_depth: 2,
  mlp_ratio: 4,
};

test('adapt-mae matches the torch implementation of docs/reference.md#imagenet-initialisation exactly', () => {
  const out = join(tmp, 'IN-initial.safetensors');
  const r = adaptMaeCheckpoint(local('mae_tiny.pth'), out, { modalitySpecificDepth: 11 });
  assert.deepEqual(r.dropped, ['cls_token']);
  assert.equal(r.maeDepth, 12);
  const ours = readSafetensors(out);
  const ref = readSafetensors(local('mae_tiny_adapted.safetensors'));
  assert.deepEqual([...ours.tensors.keys()].sort(), [...ref.tensors.keys()].sort());
  for (const [k, t] of ref.tensors) {
    const u = ours.tensors.get(k)!;
    assert.deepEqual(u.shape, t.shape, k);
    // Copies and slices are exact; the RGB sum is three float32 adds in channel order, as torch does.
    assert.deepEqual(
      Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength),
      Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      k,
    );
  }
  assert.deepEqual(ours.tensors.get('patch_embed_a.proj.weight')!.shape, [8, 1, 16, 16]);
  assert.deepEqual(ours.tensors.get('decoder_pred_a.weight')!.shape, [256, 4]);
  assert.deepEqual(ours.tensors.get('pos_embed_v')!.shape, [1, 196, 8]);
  assert.equal(JSON.parse(ours.metadata['cavmae.adapt_mae']).modality_specific_depth, 11);

  // Against the official CAVMAE layout: only the documented keys are left to the model.
  const report = compareKeys(cavmaeLayout(TINY), new Map([...ours.tensors].map(([k, t]) => [k, t.shape])));
  assert.deepEqual(report.unexpected, []);
  assert.deepEqual(report.shapeMismatch, []);
  const unusedNorms = report.missing.filter((k) =>
    /^(blocks_[av]|decoder_blocks)\.\d+\.norm[12]_[av]\./.test(k),
  );
  assert.deepEqual(report.missing.filter((k) => !unusedNorms.includes(k)).sort(), [...NOT_FROM_MAE].sort());
  assert.equal(unusedNorms.length, (11 + 11 + 2) * 8);
  // Output follows the official state-dict order (the layout's order restricted to produced keys).
  const layoutOrder = [...cavmaeLayout(TINY).keys()].filter((k) => ours.tensors.has(k));
  assert.deepEqual([...ours.tensors.keys()].sort(), [...layoutOrder].sort());
});

test('adapt-mae keeps official order and supports other depths', () => {
  const { tensors } = loadStateDict(local('mae_tiny.pth'));
  const r = adaptMaeStateDict(tensors, { modalitySpecificDepth: 11 });
  const layoutOrder = [...cavmaeLayout(TINY).keys()].filter((k) => r.tensors.has(k));
  assert.deepEqual([...r.tensors.keys()], layoutOrder);
  const r9 = adaptMaeStateDict(tensors, { modalitySpecificDepth: 9 });
  assert.ok(r9.tensors.has('blocks_u.2.norm2_v.bias'));
  assert.ok(!r9.tensors.has('blocks_a.9.norm1.weight'));
  assert.deepEqual(
    Array.from(r9.tensors.get('blocks_u.2.norm2_v.bias')!.data),
    Array.from(tensors.get('blocks.11.norm2.bias')!.data),
  );
  assert.throws(
    () => adaptMaeStateDict(tensors, { modalitySpecificDepth: 12 }, 'm.pth'),
    /m\.pth: modality-specific depth 12 must be an integer in 0\.\.11/,
  );
  const noPatch = new Map(tensors);
  noPatch.delete('patch_embed.proj.weight');
  assert.throws(
    () => adaptMaeStateDict(noPatch, {}, 'm.pth'),
    (e: unknown) =>
      e instanceof UserError &&
      /not an MAE state dict: key "patch_embed\.proj\.weight" is missing/.test(e.message),
  );
});
