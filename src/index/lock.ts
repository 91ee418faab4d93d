/**
 * The one-writer lock of an index folder: `write.lock` holding the writer's pid and host,
 * created exclusively. A lock whose process is gone (same host, pid not alive) is stale and
 * taken over; a lock held by a live process, or by another host, is refused with a message
 * naming it. Released on close and at process exit.
 */
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileError } from '../util/errors.js';

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<dir>/write.lock`; returns the release function (idempotent). */
export function acquireWriteLock(dir: string): () => void {
  const lock = join(dir, 'write.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(
        fd,
        JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }) + '\n',
      );
      fsyncSync(fd);
      closeSync(fd);
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        process.off('exit', release);
        try {
          unlinkSync(lock);
        } catch {
          /* already gone */
        }
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw fileError(lock, `cannot create the write lock (${(e as Error).message})`);
    }
    let holder: { pid?: number; host?: string } = {};
    try {
      holder = JSON.parse(readFileSync(lock, 'utf8'));
    } catch {
      /* empty or torn lock file: its writer died while creating it */
    }
    const alive =
      typeof holder.pid === 'number' && (holder.host !== hostname() || isProcessAlive(holder.pid));
    if (alive)
      throw fileError(
        dir,
        `is being written by process ${holder.pid}${holder.host && holder.host !== hostname() ? ` on ${holder.host}` : ''} (remove write.lock if that process is gone)`,
      );
    rmSync(lock, { force: true }); // stale: its process is gone
  }
  throw fileError(lock, 'cannot take the write lock');
}
