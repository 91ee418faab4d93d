/**
 * Without the addon: one notice line on stderr (why, and what to install), CAVMAE_QUIET=1 hides
 * it, and kernelStatus() says which kernels run and why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const underTsx = fileURLToPath(import.meta.url).endsWith('.ts');
const entry = new URL(`../../src/index.${underTsx ? 'ts' : 'js'}`, import.meta.url).href;

function child(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const script =
    `const m = await import(${JSON.stringify(entry)});` +
    `const k = m.kernelStatus(); const again = m.kernelStatus();` +
    `console.log(JSON.stringify({ name: k.name, reason: k.reason, addon: k.addon ?? null }));`;
  const base = { ...process.env };
  delete base.CAVMAE_QUIET;
  delete base.CAVMAE_QUIET_FALLBACK;
  delete base.CAVMAE_KERNELS;
  const r = spawnSync(
    process.execPath,
    [...(underTsx ? ['--import', 'tsx'] : []), '--input-type=module', '-e', script],
    {
      env: { ...base, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('no addon: one stderr line with the reason and the fix, CAVMAE_QUIET=1 hides it, kernelStatus() explains', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-notice-'));
  try {
    const missing = join(dir, 'missing.node');
    const r = child({ CAVMAE_NATIVE_PATH: missing });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      name: 'ts',
      reason: `addon not built (${missing} is missing)`,
      addon: null,
    });
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 1, `exactly one line (once per process), got:\n${r.stderr}`);
    assert.match(lines[0], /^cavmae: native kernels unavailable \(addon not built/);
    assert.match(lines[0], /TypeScript reference kernels \(correct, but tens of times slower\)/);
    // In a git clone the fix is the set-up script; in an installed package, apt-get + npm rebuild.
    assert.match(lines[0], /npm run setup|npm rebuild cavmae/);
    assert.match(lines[0], /CAVMAE_QUIET=1 hides this line\.$/);
    const quiet = child({ CAVMAE_NATIVE_PATH: missing, CAVMAE_QUIET: '1' });
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    const asked = child({ CAVMAE_KERNELS: 'ts' });
    assert.equal(asked.stderr, '', 'no notice when the TypeScript kernels were asked for');
    assert.deepEqual(JSON.parse(asked.stdout), { name: 'ts', addon: null });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with the addon: kernelStatus() names the file and its ISA', () => {
  const r = child({});
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { name: string; addon: string | null };
  if (s.name === 'ts') return; // no addon on this machine: the first test covers it
  assert.equal(r.stderr, '');
  assert.match(s.addon ?? '', /cavmae_native(\.napi\.glibc)?\.node$/);
});
