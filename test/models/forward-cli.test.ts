/**
 * `cavmae forward` end to end (child process through the real CLI entry): every golden tensor
 * of test/fixtures/official/model_small through the .pth and the .safetensors checkpoints, the
 * fine-tuning modes, and one-line errors for bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsF32, writeSafetensors } from '../../src/io/safetensors.js';
import { assertClose, fixture, hasOfficialFixtures, runCli, type CliResult } from '../helpers.js';

const skip = !hasOfficialFixtures();
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-forward-'));

const cli = (args: string[]): CliResult => runCli(args, { env: { CAVMAE_QUIET_FALLBACK: '1' } });

function run(args: string[]): string {
  const r = cli(args);
  assert.equal(r.status, 0, `cavmae ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function writeInputs(
  path: string,
  io: Map<string, { shape: number[]; data: Float32Array }>,
  names: Record<string, string>,
): void {
  const t = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const [to, from] of Object.entries(names)) t.set(to, { dtype: 'F32', ...io.get(from)! });
  writeSafetensors(path, t);
}

const GRADS = [
  'patch_embed_a.proj.weight',
  'blocks_v.0.attn.qkv.weight',
  'blocks_u.0.norm1_a.weight',
  'mask_token',
  'decoder_pred_v.weight',
];

for (const format of ['pth', 'safetensors'] as const) {
  test(
    `cavmae forward --task pretrain reproduces every golden output and gradient (${format})`,
    { skip },
    () => {
      const io = readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
      const inputs = join(tmp, `in-${format}.safetensors`);
      writeInputs(inputs, io, {
        audio: 'input.audio',
        image: 'input.image',
        noise_a: 'mask_a.noise',
        noise_v: 'mask_v.noise',
      });
      const out = join(tmp, `out-${format}.safetensors`);
      const args = [
        'forward',
        '--model',
        fixture('model_small', `cavmae_small.${format}`),
        '--inputs',
        inputs,
        '--out',
        out,
        '--grads',
        GRADS.join(','),
      ];
      // The released .pth format carries no config; the fixture's JSON summary (constructor arguments) serves.
      if (format === 'pth') args.push('--config', fixture('model_small', 'cavmae_small_io.json'));
      run(args);
      const got = readSafetensorsF32(out);
      for (const k of ['loss', 'loss_mae', 'loss_mae_a', 'loss_mae_v', 'loss_c'])
        assertClose(got.get(k)!.data, io.get(`out.${k}`)!.data, { rtol: 1e-5, what: k });
      assert.equal(got.get('c_acc')!.data[0], io.get('out.c_acc')!.data[0]);
      for (const k of ['mask_a', 'mask_v'])
        assert.deepEqual(Array.from(got.get(k)!.data), Array.from(io.get(`out.${k}`)!.data), k);
      for (const k of ['pred_a', 'pred_v']) {
        assert.deepEqual(got.get(k)!.shape, io.get(`out.${k}`)!.shape);
        assertClose(got.get(k)!.data, io.get(`out.${k}`)!.data, { rtol: 1e-4, what: k });
      }
      for (const g of GRADS)
        assertClose(got.get(`grad.${g}`)!.data, io.get(`grad.${g}`)!.data, { rtol: 1e-3, what: `grad.${g}` });
    },
  );
}

test('cavmae forward --task feat and --task ft (all modes)', { skip }, () => {
  const io = readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
  const inputs = join(tmp, 'in-feat.safetensors');
  writeInputs(inputs, io, { audio: 'input.audio', image: 'input.image' });
  const out = join(tmp, 'feat.safetensors');
  run([
    'forward',
    '--model',
    fixture('model_small', 'cavmae_small.safetensors'),
    '--inputs',
    inputs,
    '--out',
    out,
    '--task',
    'feat',
  ]);
  const f = readSafetensorsF32(out);
  assertClose(f.get('audio_tokens')!.data, io.get('feat.audio_tokens')!.data, {
    rtol: 1e-4,
    what: 'audio_tokens',
  });
  assertClose(f.get('video_tokens')!.data, io.get('feat.video_tokens')!.data, {
    rtol: 1e-4,
    what: 'video_tokens',
  });

  const ft = readSafetensorsF32(fixture('model_small', 'cavmaeft_small_io.safetensors'));
  const ftIn = join(tmp, 'in-ft.safetensors');
  writeInputs(ftIn, ft, { audio: 'input.audio', image: 'input.image' });
  for (const mode of ['multimodal', 'audioonly', 'videoonly', 'missingaudioonly', 'missingvideoonly']) {
    const o = join(tmp, `ft-${mode}.safetensors`);
    run([
      'forward',
      '--model',
      fixture('model_small', 'cavmaeft_small.safetensors'),
      '--inputs',
      ftIn,
      '--out',
      o,
      '--mode',
      mode,
    ]);
    assertClose(readSafetensorsF32(o).get('logits')!.data, ft.get(`logits.${mode}`)!.data, {
      rtol: 1e-4,
      what: `logits ${mode}`,
    });
  }
});

test('cavmae forward: bad input gives one line naming the problem, non-zero exit', { skip }, () => {
  const io = readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
  const inputs = join(tmp, 'in-err.safetensors');
  writeInputs(inputs, io, { audio: 'input.audio', image: 'input.image' });
  const model = fixture('model_small', 'cavmae_small.safetensors');
  const expectError = (args: string[], pattern: RegExp): void => {
    const r = cli(['forward', ...args, '--out', join(tmp, 'never.safetensors')]);
    assert.notEqual(r.status, 0, `cavmae forward ${args.join(' ')} should fail`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
    assert.match(lines[0], pattern);
  };
  expectError(['--model', join(tmp, 'missing.pth'), '--inputs', inputs], /missing\.pth/);
  const noConfig = join(tmp, 'no-config.safetensors');
  writeSafetensors(noConfig, { modality_a: { dtype: 'F32', shape: [1, 1, 40], data: new Float32Array(40) } });
  expectError(
    ['--model', noConfig, '--inputs', inputs],
    /no-config\.safetensors: carries no model config and matches no preset; pass --config/,
  );
  expectError(
    ['--model', model, '--inputs', inputs, '--grads', 'nope.weight'],
    /--grads: no parameter named nope\.weight/,
  );
  expectError(['--model', model, '--inputs', inputs, '--config', 'base'], /size mismatch|does not fit/);
  expectError(['--model', model, '--inputs', inputs, '--task', 'ft'], /--task ft needs a fine-tuning/);
  const bad = join(tmp, 'bad-shape.safetensors');
  writeSafetensors(bad, {
    audio: { dtype: 'F32', shape: [1, 100, 128], data: new Float32Array(12800) },
    image: { dtype: 'F32', shape: [1, 3, 64, 64], data: new Float32Array(12288) },
  });
  expectError(
    ['--model', model, '--inputs', bad],
    /"audio" has shape \[1,100,128\], expected \[B, 128, 128\]/,
  );
  const notJson = join(tmp, 'cfg.json');
  writeFileSync(notJson, '{ nope');
  expectError(['--model', model, '--inputs', inputs, '--config', notJson], /cfg\.json: not valid JSON/);
});
