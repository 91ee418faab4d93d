/**
 * Safetensors we write must load in Python: with the `safetensors` package when the interpreter
 * has it, else with a struct + json + torch.frombuffer reader (scripts/golden/check_safetensors.py).
 * Interpreters: /usr/bin/python3 (Debian torch) and, if set, $CAVMAE_PYTHON_EXTRA (e.g. a venv
 * with torch 2.x + safetensors). Skips when no interpreter has torch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint } from '../../src/io/checkpoint.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { randomArray, repoRoot } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-py-'));
const script = join(repoRoot(), 'scripts', 'golden', 'check_safetensors.py');

function hasTorch(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import torch'], { timeout: 60_000 });
  return r.status === 0;
}

const interpreters = ['/usr/bin/python3', process.env.CAVMAE_PYTHON_EXTRA].filter(
  (p): p is string => !!p && hasTorch(p),
);

for (const python of interpreters.length ? interpreters : ['(none)']) {
  test(
    `safetensors written here load in Python (${python})`,
    { skip: interpreters.length === 0 ? 'no Python with torch' : false, timeout: 120_000 },
    () => {
      const path = join(tmp, `x-${interpreters.indexOf(python)}.safetensors`);
      const tensors = {
        weight: { shape: [3, 4], data: randomArray(12, 7) },
        scalar: { shape: [], data: Float32Array.from([-2.5]) },
        empty: { shape: [0, 2], data: new Float32Array(0) },
        bf16: { dtype: 'BF16' as const, shape: [3], data: Uint16Array.from([0x3f80, 0xbfc0, 0x4049]) },
        f16: { dtype: 'F16' as const, shape: [2], data: Uint16Array.from([0x3c00, 0x8001]) },
        ids: { shape: [2], data: BigInt64Array.from([-7n, 2n ** 50n]) },
        i32: { shape: [2], data: Int32Array.from([3, -4]) },
        u8: { shape: [2], data: Uint8Array.from([0, 200]) },
        mask: { dtype: 'BOOL' as const, shape: [2], data: Uint8Array.from([0, 1]) },
        f64: { shape: [1], data: Float64Array.from([1 / 3]) },
      };
      writeSafetensors(path, tensors, { hello: 'world' });
      const r = spawnSync(python, [script, path], {
        encoding: 'utf8',
        timeout: 120_000,
        maxBuffer: 64 << 20,
      });
      assert.equal(r.status, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      assert.equal(got.metadata.hello, 'world');
      const expectValues: Record<string, number[]> = {
        weight: Array.from(tensors.weight.data),
        scalar: [-2.5],
        empty: [],
        bf16: [1, -1.5, 3.140625],
        f16: [1, -(2 ** -24)],
        ids: [-7, 2 ** 50],
        i32: [3, -4],
        u8: [0, 200],
        mask: [0, 1],
        f64: [1 / 3],
      };
      assert.deepEqual(Object.keys(got.tensors).sort(), Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const g = got.tensors[name];
        assert.deepEqual(g.shape, t.shape, name);
        assert.equal(
          g.dtype,
          (t as { dtype?: string }).dtype ??
            { weight: 'F32', scalar: 'F32', empty: 'F32', ids: 'I64', i32: 'I32', u8: 'U8', f64: 'F64' }[
              name
            ],
          name,
        );
        assert.deepEqual(g.values, expectValues[name], `${name} values (exact)`);
      }
      // A model checkpoint with our metadata keys loads too.
      const ckpt = join(tmp, `ckpt-${interpreters.indexOf(python)}.safetensors`);
      saveCheckpoint(
        ckpt,
        { w: { shape: [2], data: Float32Array.from([1, 2]) } },
        { config: { embed_dim: 2 } },
      );
      const r2 = spawnSync(python, [script, ckpt], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r2.status, 0, r2.stderr);
      const meta = JSON.parse(r2.stdout).metadata;
      assert.deepEqual(JSON.parse(meta['cavmae.config']), { embed_dim: 2 });
      assert.equal(JSON.parse(meta['cavmae.preprocess']).audio.targetLength, 1024);
    },
  );
}
