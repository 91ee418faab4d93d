/**
 * Crash safety: a child process adding to the index is killed with SIGKILL at arbitrary moments;
 * after each kill the index opens consistent (whole commits only, every vector intact), the dead
 * writer's lock is taken over, and resuming completes the collection without duplicates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MediaIndex, mediaId } from '../../src/index/index.js';
import { crashItem } from './crash-items.js';
import { repoRoot } from '../helpers.js';

const N = 600;
const BATCH = 8;

function childCommand(): { cmd: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts'))
    return {
      cmd: process.execPath,
      args: ['--import', 'tsx', join(repoRoot(), 'test/index/crash-child.ts')],
    };
  return { cmd: process.execPath, args: [here.replace(/crash\.test\.js$/, 'crash-child.js')] };
}

/** Runs the child; kills it with SIGKILL after `killAfter` commit lines (or lets it finish). */
function runChild(dir: string, killAfter?: number): Promise<{ killed: boolean; commits: number }> {
  const { cmd, args } = childCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args, dir, String(N), String(BATCH)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: repoRoot(),
    });
    let commits = 0;
    let killed = false;
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.stdout.on('data', (c: Buffer) => {
      commits += (c.toString().match(/^commit /gm) ?? []).length;
      if (killAfter !== undefined && commits >= killAfter && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve({ killed: signal === 'SIGKILL', commits });
      else reject(new Error(`child exited with ${code}: ${err}`));
    });
  });
}

function assertConsistent(dir: string): number {
  const idx = MediaIndex.open(dir);
  const n = idx.count;
  assert.equal(n % BATCH, 0, `count ${n} is a whole number of commits of ${BATCH}`);
  assert.equal(idx.rows, n, 'no duplicate rows: resumed items were skipped');
  for (let i = 0; i < n; i++) {
    // Items are added in order, so exactly items 0..n-1 are present.
    const it = crashItem(i);
    const e = idx.get(mediaId(it.path));
    assert.ok(e, `item ${i} present`);
    for (const space of ['audio', 'visual'] as const) {
      const v = it.embedding[space];
      assert.equal(idx.has(space, e.row), !!v);
      if (!v) continue;
      const got = idx.vector(space, e.row);
      let ss = 0;
      for (const x of v) ss += x * x;
      const inv = 1 / Math.sqrt(ss);
      for (let j = 0; j < v.length; j++)
        assert.equal(got[j], Math.fround(v[j] * inv), `item ${i} ${space}[${j}] intact`);
    }
  }
  return n;
}

test('kill -9 during add leaves a consistent index; resume completes it', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-crash-'));
  try {
    let last = 0;
    for (const killAfter of [3, 11, 7]) {
      const r = await runChild(dir, killAfter);
      const n = assertConsistent(dir);
      assert.ok(n >= last, 'commits are never lost');
      last = n;
      if (!r.killed) break;
    }
    assert.ok(last > 0 && last < N, `killed part-way (${last} of ${N} committed)`);
    const done = await runChild(dir);
    assert.equal(done.killed, false);
    assert.equal(assertConsistent(dir), N);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
