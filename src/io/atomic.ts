/**
 * Atomic file output: write to a temporary file in the same folder, fsync, then rename over the
 * target. A crash (even SIGKILL) mid-write leaves either the old file or the new one, never a
 * truncated mix.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(
  path: string,
  chunks: Uint8Array | string | readonly (Uint8Array | string)[],
): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const list = Array.isArray(chunks) ? chunks : [chunks];
  const fd = openSync(tmp, 'w');
  try {
    for (const c of list as (Uint8Array | string)[]) {
      if (typeof c === 'string') writeSync(fd, c);
      else {
        let off = 0;
        while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dir); // makes the rename itself durable
}

/** Makes a folder's entries (files created, renamed, removed) durable. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    fsyncSync(fd);
    closeSync(fd);
  } catch {
    /* some filesystems refuse fsync on directories */
  }
}
