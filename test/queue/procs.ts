/**
 * Processes for the queue tests: a private redis-server on a free loopback port with its data
 * in a temporary folder (AOF, fsync always, so a restart keeps every job), and `cavmae` child
 * processes (workers, submitters). Everything started here is tracked and killed by
 * `stopAll()` (and at process exit), so no process survives a test, failed or not.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { after } from 'node:test';
import { repoRoot } from '../helpers.js';
import { hasFfmpeg } from '../index/test-media.js';

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

/** Why a queue test cannot run here (redis-server and ffmpeg are needed), or false. */
export function queueSkip(): string | false {
  if (!hasRedis()) return 'redis-server is not installed (Debian: apt-get install redis-server)';
  return hasFfmpeg() ? false : 'ffmpeg is not installed';
}

/** A temporary folder for the test file, removed (after every process is stopped) when it ends. */
export function testRoot(prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  after(async () => {
    await stopAll();
    rmSync(root, { recursive: true, force: true });
  });
  return root;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once('exit', (code) => resolve(code)));
}

export async function kill(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  await exited(c);
  children.delete(c);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => kill(c)));
}

export class TestRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'cavmae-redis-'));
  private proc?: ChildProcess;
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  static async start(): Promise<TestRedis> {
    const r = new TestRedis(await freePort());
    await r.startProcess();
    return r;
  }

  async startProcess(): Promise<void> {
    const p = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--logfile',
        join(this.dir, 'redis.log'),
      ],
      { stdio: 'ignore' },
    );
    children.add(p);
    this.proc = p;
    const c = new Redis({
      port: this.port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on('error', () => {});
    for (let i = 0; i < 100; i++) {
      try {
        await c.connect();
        await c.ping();
        c.disconnect();
        return;
      } catch {
        c.disconnect();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  /** SIGKILL (a crash, not a clean shutdown). */
  async crash(): Promise<void> {
    if (this.proc) await kill(this.proc);
  }

  async stop(): Promise<void> {
    if (this.proc) await kill(this.proc, 'SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts `node bin/cavmae.js ARGS`, tracked; stdout lines go to `onLine`. */
export function cavmae(
  args: string[],
  onLine?: (line: string) => void,
): ChildProcess & { stderrText: () => string; stdoutText: () => string } {
  const p = spawn(process.execPath, [join(repoRoot(), 'bin', 'cavmae.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  children.add(p);
  let out = '';
  let err = '';
  let partial = '';
  p.stdout!.on('data', (d: Buffer) => {
    out += d;
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) onLine?.(l);
  });
  p.stderr!.on('data', (d: Buffer) => (err += d));
  return Object.assign(p, { stderrText: () => err, stdoutText: () => out });
}
