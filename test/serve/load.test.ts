/**
 * Load test from a second process on loopback: the server runs in one child process (test
 * engine, real HTTP stack), a client process fires 200 requests, 16 at a time, a mix of valid
 * uploads and malformed ones. Asserted: every request answered, each with its expected status
 * (valid 200, malformed 4xx with a JSON error), the server still healthy afterwards, its peak
 * RSS bounded (VmHWM < 400 MB), the whole run under 60 s, and a clean SIGTERM shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MediaIndex, addMedia } from '../../src/index/index.js';
import { hasFfmpeg, makeTestMedia, TestEmbedder } from '../index/test-media.js';
import { repoRoot } from '../helpers.js';

const skip = hasFfmpeg() ? false : 'ffmpeg is not installed';

function script(name: string): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return ['--import', 'tsx', join(repoRoot(), 'test/serve', `${name}.ts`)];
  return [here.replace(/load\.test\.js$/, `${name}.js`)];
}

function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

function waitForLine(child: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line) {
        child.stdout!.off('data', onData);
        resolve(line.slice(prefix.length).trim());
      }
    };
    child.stdout!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before "${prefix}"`)));
  });
}

test('200 mixed requests, 16 concurrent, from a second process', { skip, timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'cavmae-load-'));
  let server: ChildProcess | undefined;
  try {
    const media = await makeTestMedia(root);
    const embedder = new TestEmbedder(16);
    const idx = MediaIndex.create(join(root, 'index'), {
      modelId: embedder.modelId,
      modelName: embedder.modelName,
      dim: 16,
    });
    await addMedia(idx, [media.wav, media.png, media.mp4], embedder);
    idx.close();

    let serverErr = '';
    server = spawn(process.execPath, [...script('serve-child'), join(root, 'index')], {
      cwd: repoRoot(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stderr!.on('data', (c) => (serverErr += c));
    const url = await waitForLine(server, 'LISTENING ');
    const before = memoryMb(server.pid!);

    const client = spawn(
      process.execPath,
      [...script('load-client'), url, JSON.stringify(media), '200', '16'],
      { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    client.stdout!.on('data', (c) => (out += c));
    client.stderr!.on('data', (c) => (err += c));
    let peakDuring = before.rss;
    const sampler = setInterval(() => {
      try {
        peakDuring = Math.max(peakDuring, memoryMb(server!.pid!).rss);
      } catch {
        /* exited */
      }
    }, 100);
    const code = await new Promise<number | null>((r) => client.on('exit', r));
    clearInterval(sampler);
    assert.equal(code, 0, `load client failed: ${err}`);
    const summary = JSON.parse(out.trim().split('\n').pop()!);
    const after = memoryMb(server.pid!);
    console.log(
      `# load: ${JSON.stringify(summary.byStatus)} in ${summary.wallMs} ms (p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms, max ${summary.maxMs} ms); ` +
        `server RSS ${before.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MB, peak ${after.peak.toFixed(0)} MB`,
    );

    assert.equal(summary.total, 200);
    assert.equal(summary.answered, 200, 'every request answered');
    assert.deepEqual(summary.unexpected, [], 'every request got its expected status and a JSON error body');
    for (const s of Object.keys(summary.byStatus))
      assert.ok(['200', '400', '404', '413', '415'].includes(s), `status ${s}`);
    assert.ok(summary.wallMs < 60_000, `bounded time: ${summary.wallMs} ms`);
    assert.ok(after.peak < 400, `server peak RSS ${after.peak.toFixed(0)} MB < 400 MB`);

    const health = (await (await fetch(new URL('/api/health', url))).json()) as {
      status: string;
      queue: { admitted: number };
    };
    assert.equal(health.status, 'ok', 'the server survived');
    assert.equal(health.queue.admitted, 0, 'no request left in the queue');
    server.kill('SIGTERM');
    const exit = await new Promise<number | null>((r) => server!.on('exit', r));
    assert.equal(exit, 0, `graceful shutdown (stderr: ${serverErr.slice(0, 500)})`);
    server = undefined;
  } finally {
    server?.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});
