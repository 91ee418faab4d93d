/**
 * `cavmae forward` with CAV-MAE Sync models end to end (child process through the real CLI):
 * every golden output and gradient of the three Sync cases (test/fixtures/sync/), a config of
 * official constructor names with `"model": "cavmae-sync"` plus `--contrast-weight`, `--task
 * feat` (patch tokens and global tokens), the Sync fine-tuning model with labels, and one-line
 * errors. Tolerances as test/models/sync-golden.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsF32, writeSafetensors } from '../../src/io/safetensors.js';
import { assertClose, repoRoot, runCli, type CliResult } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'sync');
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-cli-'));
type Ref = Map<string, { shape: number[]; data: Float32Array }>;

const cli = (args: string[]): CliResult => runCli(args, { env: { CAVMAE_QUIET_FALLBACK: '1' } });

function run(args: string[]): Ref {
  const out = join(tmp, `out-${Math.random().toString(36).slice(2)}.safetensors`);
  const r = cli(['forward', ...args, '--out', out]);
  assert.equal(r.status, 0, `cavmae forward ${args.join(' ')} failed: ${r.stderr}`);
  return readSafetensorsF32(out);
}

function writeInputs(path: string, io: Ref, names: Record<string, string>): string {
  const t = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const [to, from] of Object.entries(names)) t.set(to, { dtype: 'F32', ...io.get(from)! });
  writeSafetensors(path, t);
  return path;
}

function expectPretrain(got: Ref, io: Ref, grads: string[]): void {
  const keys = ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c'];
  if (io.has('out.loss_c_global')) keys.push('loss_c_global', 'loss_c_local');
  else assert.ok(!got.has('loss_c_global'), 'loss_c_global only with global_local_losses');
  for (const k of keys) assertClose(got.get(k)!.data, io.get(`out.${k}`)!.data, { rtol: 1e-5, what: k });
  assert.equal(got.get('c_acc')!.data[0], io.get('out.c_acc')!.data[0]);
  for (const k of ['mask_a', 'mask_v'])
    assert.deepEqual(Array.from(got.get(k)!.data), Array.from(io.get(`out.${k}`)!.data), k);
  for (const k of ['pred_a', 'pred_v', 'cls_a', 'cls_v']) {
    assert.deepEqual(got.get(k)!.shape, io.get(`out.${k}`)!.shape, k);
    assertClose(got.get(k)!.data, io.get(`out.${k}`)!.data, { rtol: 1e-4, what: k });
  }
  for (const g of grads)
    assertClose(got.get(`grad.${g}`)!.data, io.get(`grad.${g}`)!.data, { rtol: 1e-3, what: `grad.${g}` });
}

for (const name of ['cls_heads', 'global_local', 'no_cls'] as const) {
  test(`cavmae forward --task pretrain, Sync ${name}: every golden output and gradient`, () => {
    const io = readSafetensorsF32(join(dir, `sync_${name}_io.safetensors`));
    const inputs = writeInputs(join(tmp, `in-${name}.safetensors`), io, {
      audio: 'input.audio',
      image: 'input.image',
      noise_a: 'mask_a.noise',
      noise_v: 'mask_v.noise',
    });
    const grads = [...io.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
    // The checkpoint carries its config (λc 0.1 included).
    const got = run([
      '--model',
      join(dir, `sync_${name}.safetensors`),
      '--inputs',
      inputs,
      '--grads',
      grads.join(','),
    ]);
    expectPretrain(got, io, grads);
  });
}

test('cavmae forward with a config of official Sync names + --contrast-weight, and --task feat', () => {
  const io = readSafetensorsF32(join(dir, 'sync_global_local_io.safetensors'));
  const fx = JSON.parse(readFileSync(join(dir, 'sync_global_local.json'), 'utf8'));
  // The official constructor's argument names, plus our model kind and shared_depth.
  const config = join(tmp, 'sync-config.json');
  writeFileSync(config, JSON.stringify({ model: 'cavmae-sync', ...fx.config, shared_depth: 1 }));
  const inputs = writeInputs(join(tmp, 'in-gl.safetensors'), io, {
    audio: 'input.audio',
    image: 'input.image',
    noise_a: 'mask_a.noise',
    noise_v: 'mask_v.noise',
  });
  const model = join(dir, 'sync_global_local.safetensors');
  const grads = ['register_tokens', 'cls_token_a', 'norm_v.bias'];
  const args = ['--model', model, '--config', config, '--inputs', inputs, '--grads', grads.join(',')];
  expectPretrain(run([...args, '--contrast-weight', '0.1']), io, grads);
  // Without the flag the official default λc 0.01 applies: a tenth of the contrastive terms.
  const d = run(args);
  for (const k of ['loss_c', 'loss_c_global', 'loss_c_local'])
    assertClose(d.get(k)!.data, [io.get(`out.${k}`)!.data[0] / 10], { rtol: 1e-5, what: `${k} at 0.01` });

  for (const name of ['global_local', 'no_cls'] as const) {
    const fio = readSafetensorsF32(join(dir, `sync_${name}_io.safetensors`));
    const fin = writeInputs(join(tmp, `in-feat-${name}.safetensors`), fio, {
      audio: 'input.audio',
      image: 'input.image',
    });
    const f = run(['--model', join(dir, `sync_${name}.safetensors`), '--inputs', fin, '--task', 'feat']);
    const keys = ['audio_tokens', 'video_tokens', ...(name === 'no_cls' ? [] : ['cls_a', 'cls_v'])];
    assert.deepEqual([...f.keys()].sort(), [...keys].sort());
    for (const k of keys) {
      assert.deepEqual(f.get(k)!.shape, fio.get(`feat.${k}`)!.shape, k);
      assertClose(f.get(k)!.data, fio.get(`feat.${k}`)!.data, { rtol: 1e-4, what: `feat ${k}` });
    }
  }
});

test('cavmae forward --task ft with a Sync fine-tuning model: logits, loss, gradients', () => {
  const io = readSafetensorsF32(join(dir, 'sync_ft_mm_cls_io.safetensors'));
  const inputs = writeInputs(join(tmp, 'in-ft.safetensors'), io, {
    audio: 'input.audio',
    image: 'input.image',
    labels: 'input.labels',
  });
  const grads = [
    'cls_cls_token',
    'classifier_layers.1.attn.qkv.weight',
    'register_tokens',
    'blocks_v.0.mlp.fc1.bias',
  ];
  const got = run([
    '--model',
    join(dir, 'sync_ft_mm_cls.safetensors'),
    '--inputs',
    inputs,
    '--grads',
    grads.join(','),
  ]);
  assertClose(got.get('logits')!.data, io.get('out.logits')!.data, { rtol: 1e-4, what: 'logits' });
  assertClose(got.get('loss')!.data, io.get('out.loss')!.data, { rtol: 1e-5, what: 'loss' });
  for (const g of grads)
    assertClose(got.get(`grad.${g}`)!.data, io.get(`grad.${g}`)!.data, { rtol: 1e-3, what: `grad.${g}` });
});

test('cavmae forward with Sync models: bad input gives one line naming the problem', () => {
  const io = readSafetensorsF32(join(dir, 'sync_cls_heads_io.safetensors'));
  const inputs = writeInputs(join(tmp, 'in-err.safetensors'), io, {
    audio: 'input.audio',
    image: 'input.image',
  });
  const expectError = (args: string[], pattern: RegExp): void => {
    const r = cli(['forward', ...args, '--out', join(tmp, 'never.safetensors')]);
    assert.notEqual(r.status, 0, `cavmae forward ${args.join(' ')} should fail`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
    assert.match(lines[0], pattern);
  };
  const ft = join(dir, 'sync_ft_mm_cls.safetensors');
  expectError(['--model', ft, '--inputs', inputs, '--task', 'feat'], /--task feat needs a pretraining model/);
  expectError(['--model', ft, '--inputs', inputs, '--mode', 'audioonly'], /reads "multimodal"/);
  // A clip-length fbank fed to a segment model.
  const clip = join(tmp, 'clip.safetensors');
  writeSafetensors(clip, {
    audio: { dtype: 'F32', shape: [1, 1024, 128], data: new Float32Array(1024 * 128) },
    image: { dtype: 'F32', shape: [1, 3, 48, 48], data: new Float32Array(3 * 48 * 48) },
  });
  expectError(
    ['--model', join(dir, 'sync_cls_heads.safetensors'), '--inputs', clip],
    /"audio" has shape \[1,1024,128\], expected \[B, 48, 128\]/,
  );
  const cfg = join(tmp, 'bad-sync.json');
  writeFileSync(cfg, JSON.stringify({ model: 'cavmae-sync', num_register_tokens: 2, audio_length: 50 }));
  expectError(
    ['--model', join(dir, 'sync_cls_heads.safetensors'), '--inputs', inputs, '--config', cfg],
    /bad-sync\.json: "audio_length" must be a multiple of 16/,
  );
});
