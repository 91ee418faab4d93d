/**
 * Training logs as JSON Lines: one object per line, appended and written through to the file
 * with one write(2) per record, so a killed run keeps every line it logged (at most the line
 * being written is lost, and readers skip a truncated last line).
 *
 * Record convention (what plots.ts and resumption read): `kind` ('train' | 'eval' | 'epoch' |
 * 'info'), `step` (global optimizer steps done), `epoch` (0-based), `time` (unix ms, added when
 * absent), then scalar metrics by name (loss, loss_mae_a, loss_mae_v, loss_c, c_acc, lr, mAP, ...).
 * Non-finite numbers are written as null (JSON has no NaN), never silently dropped.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileError } from '../util/errors.js';

export type LogRecord = Record<string, unknown> & {
  kind?: string;
  step?: number;
  epoch?: number;
  time?: number;
};

export class JsonlLogger {
  private fd: number | undefined;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a');
  }

  log(record: LogRecord): void {
    if (this.fd === undefined) throw new Error(`logger: ${this.path} is closed`);
    const line = JSON.stringify(record.time === undefined ? { ...record, time: Date.now() } : record) + '\n';
    const buf = Buffer.from(line, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Max bytes readJsonl accepts (logs of very long runs are still far below). */
export const MAX_LOG_BYTES = 512 * 1024 * 1024;

/**
 * All records of a JSONL file. A truncated LAST line (a crash mid-write) is skipped; a corrupt
 * line elsewhere is an error naming the file and line.
 */
export function readJsonl(path: string, opts: { maxBytes?: number } = {}): LogRecord[] {
  if (!existsSync(path)) throw fileError(path, 'log file not found');
  const buf = readFileSync(path);
  if (buf.length > (opts.maxBytes ?? MAX_LOG_BYTES))
    throw fileError(path, `log is larger than ${opts.maxBytes ?? MAX_LOG_BYTES} bytes`);
  const lines = buf.toString('utf8').split('\n');
  const out: LogRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      out.push(v as LogRecord);
    } catch (e) {
      const last = lines.slice(i + 1).every((l) => !l.trim());
      if (last) break; // torn final write
      throw fileError(path, `line ${i + 1} is not a JSON object (${(e as Error).message})`);
    }
  }
  return out;
}

/**
 * Drops records past a resume point (step > `step`), so that a run resumed from an older
 * checkpoint does not plot the abandoned tail twice. Returns the kept records in order.
 */
export function recordsUpTo(records: readonly LogRecord[], step: number): LogRecord[] {
  return records.filter((r) => typeof r.step !== 'number' || r.step <= step);
}
