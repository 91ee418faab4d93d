import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cavmaeFtLayout, cavmaeLayout, inferLayout, BASE_LAYOUT } from '../../src/io/layouts.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { checkLayout } from '../../src/io/tools.js';
import { fixture, hasOfficialFixtures } from '../helpers.js';

test(
  'official layouts match the PyTorch state dicts (keys, order, shapes)',
  { skip: !hasOfficialFixtures() },
  () => {
    const params = JSON.parse(readFileSync(fixture('model_base', 'cavmae_base_params.json'), 'utf8'));
    assert.deepEqual([...cavmaeLayout(BASE_LAYOUT)], params.CAVMAE.state_dict);
    assert.deepEqual(
      [...cavmaeFtLayout({ ...BASE_LAYOUT, label_dim: 527 })],
      params.CAVMAEFT_label527.state_dict,
    );
    const total = [...cavmaeLayout()].reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
    assert.equal(total, 191_036_160);
  },
);

test(
  'inferLayout recovers the constructor arguments of the small fixtures',
  { skip: !hasOfficialFixtures() },
  () => {
    for (const [file, model] of [
      ['cavmae_small.safetensors', 'CAVMAE'],
      ['cavmaeft_small.safetensors', 'CAVMAEFT'],
    ] as const) {
      const st = readSafetensors(fixture('model_small', file));
      const shapes = new Map([...st.tensors].map(([k, t]) => [k, t.shape]));
      const guess = inferLayout(shapes)!;
      assert.equal(guess.model, model);
      const official = JSON.parse(st.metadata.config ?? '{}');
      for (const key of [
        'img_size',
        'audio_length',
        'embed_dim',
        'modality_specific_depth',
        'patch_size',
      ] as const) {
        if (official[key] !== undefined) assert.equal(guess.config[key], official[key], `${file} ${key}`);
      }
      const check = checkLayout(shapes)!;
      assert.deepEqual(check.report, { missing: [], unexpected: [], shapeMismatch: [] }, file);
    }
  },
);
