/**
 * End-to-end: the commands run as a child process, through the real CLI entry (bin/cavmae.js
 * from dist/, or src/cli/main.ts under tsx), so flags, output, exit codes and one-line errors
 * are what a user sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readSafetensors } from '../../src/io/safetensors.js';
import { fixture, hasOfficialFixtures, repoRoot } from '../helpers.js';
import { makePth, PickleWriter } from './builders.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-cli-'));
const local = (name: string) => join(repoRoot(), 'test', 'fixtures', name);
const fromDist = fileURLToPath(import.meta.url).includes(`${join('dist', 'test')}`);

/** Under tsx there is no dist/: a two-line entry that runs src/cli/main.ts like bin/cavmae.js does. */
function tsRunner(): string {
  const path = join(tmp, 'run-cli.mjs');
  const main = pathToFileURL(join(repoRoot(), 'src', 'cli', 'main.ts')).href;
  writeFileSync(path, `const m = await import(${JSON.stringify(main)});\nawait m.main(process.argv);\n`);
  return path;
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const root = repoRoot();
  const argv = fromDist
    ? [join(root, 'bin', 'cavmae.js'), ...args]
    : ['--import', 'tsx', tsRunner(), ...args];
  const r = spawnSync(process.execPath, argv, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function run(args: string[]): Promise<string> {
  const r = cli(args);
  assert.equal(r.status, 0, `cavmae ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

test(
  'cavmae convert: official .pth -> safetensors, key report against the official layout',
  { skip: !hasOfficialFixtures() },
  async () => {
    const out = join(tmp, 'small.safetensors');
    const text = await run(['convert', fixture('model_small', 'cavmae_small.pth'), out]);
    assert.match(text, /-> .*small\.safetensors: 527 tensors/);
    assert.match(
      text,
      /compared with the official CAVMAE layout \(embed_dim 48, modality_specific_depth 11, decoder 32x2\):\n<All keys matched successfully>/,
    );
    const st = readSafetensors(out);
    assert.equal(st.tensors.size, 527);
    assert.equal(st.metadata['cavmae.source'], 'cavmae_small.pth');
    assert.ok(st.metadata['cavmae.preprocess']);
  },
);

test('cavmae convert: module. stripped, non-F32 dtypes listed and kept (or --f32)', async () => {
  const out = join(tmp, 'views.safetensors');
  const text = await run(['convert', local('pth_views_torch2.pth'), out]);
  assert.match(text, /17 tensors/);
  assert.match(text, /stripped "module\." from 17 keys/);
  assert.match(
    text,
    /non-F32 tensors: half \(F16\), bf16 \(BF16\), double \(F64\), long \(I64\), int \(I32\), byte \(U8\), bool \(BOOL\)/,
  );
  assert.match(text, /not a CAV-MAE layout/);
  assert.equal(readSafetensors(out).tensors.get('bf16')!.dtype, 'BF16');
  const json = JSON.parse(await run(['convert', '--f32', '--json', local('pth_views_torch2.pth'), out]));
  assert.equal(json.keys, 17);
  assert.ok([...readSafetensors(out).tensors.values()].every((t) => t.dtype === 'F32'));
});

test('cavmae convert refuses a hostile pickle and writes nothing', async () => {
  const evil = join(tmp, 'evil.pth');
  const marker = join(tmp, 'pwned');
  writeFileSync(
    evil,
    makePth(
      new PickleWriter()
        .proto(2)
        .global('os', 'system')
        .mark()
        .str(`touch ${marker}`)
        .tuple()
        .reduce()
        .stop()
        .bytes(),
    ),
  );
  const out = join(tmp, 'evil.safetensors');
  const r = cli(['convert', evil, out]);
  assert.notEqual(r.status, 0);
  assert.equal(r.stdout, '');
  // One line naming the file and the problem, no stack trace.
  assert.match(
    r.stderr,
    /^cavmae: .*evil\.pth \(archive\/data\.pkl\): pickle: refusing global os\.system: not on the allow-list .*\n$/,
  );
  assert.equal(r.stderr.split('\n').length, 2);
  assert.equal(existsSync(out), false);
  assert.equal(existsSync(marker), false);
});

test('cavmae inspect: text and --json, header only', async () => {
  const text = await run(['inspect', local('mae_tiny_adapted.safetensors')]);
  assert.match(text, /safetensors, \d+ tensors/);
  assert.match(text, /patch_embed_a\.proj\.weight\s+F32\s+\[8, 1, 16, 16\]/);
  assert.match(text, /generator: scripts\/golden\/make_mae_like\.py/);
  const json = JSON.parse(await run(['inspect', '--json', local('mae_tiny.pth')]));
  assert.equal(json.format, 'pth');
  assert.equal(json.nestedKey, 'model');
  assert.equal(json.tensors.length, 182);
  assert.deepEqual(json.tensors[0], { name: 'cls_token', dtype: 'F32', shape: [1, 1, 8] });
});

test('cavmae adapt-mae writes the adapted checkpoint and reports dropped keys', async () => {
  const out = join(tmp, 'in-initial.safetensors');
  const text = await run(['adapt-mae', '--mae', local('mae_tiny.pth'), '--out', out]);
  assert.match(text, /11 modality-specific \+ 1 unified blocks/);
  assert.match(text, /dropped MAE keys: cls_token/);
  assert.ok(readSafetensors(out).tensors.has('blocks_u.0.norm1_a.weight'));
  const bad = cli([
    'adapt-mae',
    '--mae',
    local('mae_tiny.pth'),
    '--out',
    out,
    '--modality-specific-depth',
    'x',
  ]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--modality-specific-depth must be an integer >= 0, got 'x'/);
});

test('cavmae sync-experiment: bad --arms is one line and creates nothing; --help names the contract flags', () => {
  const out = join(tmp, 'sync-exp-bad');
  const r = cli(['sync-experiment', '--out', out, '--arms', 'sync,video']);
  assert.notEqual(r.status, 0);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^cavmae: --arms must be sync or clip, got 'video'\n$/);
  assert.equal(existsSync(out), false);
  const help = cli(['sync-experiment', '--help']);
  assert.equal(help.status, 0);
  for (const flag of ['--out', '--steps', '--arms', '--seed', '--markdown'])
    assert.ok(help.stdout.includes(flag), flag);
});
