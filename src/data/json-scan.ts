/**
 * Streaming-style reader for big list files: `{"key": [entry, entry, ...], other keys...}`.
 *
 * Contract: the top level must be an object. Entries of the list under one of `listKeys` are
 * returned as separately parsed values, so a 1 GB datafile never becomes one giant JavaScript
 * string (V8 caps strings near 512 MB) and a syntax error is reported with its entry index.
 * Other top-level values are skipped by a bracket/string-aware scan and not interpreted.
 * Nothing is executed; the only allocation proportional to the input is the byte buffer itself.
 */
import { UserError } from '../util/errors.js';

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export interface ScannedList {
  key: string;
  entries: unknown[];
  /** Small scalar top-level values (strings, numbers, booleans), e.g. a manifest's "name". */
  scalars: Record<string, unknown>;
}

export function scanJsonList(buf: Uint8Array, listKeys: readonly string[], what: string): ScannedList {
  const fail = (pos: number, msg: string): never => {
    throw new UserError(`${what}: invalid JSON at byte ${pos}: ${msg}`);
  };
  let pos = 0;
  const n = buf.length;
  // A UTF-8 byte-order mark is tolerated.
  if (n >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3;
  const skipWs = (): void => {
    while (pos < n && isWs(buf[pos])) pos++;
  };
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const text = (a: number, b: number): string => bytes.toString('utf8', a, b);

  /** Returns the index just past the closing quote of the string starting at `p` (a '"'). */
  const skipString = (p: number): number => {
    p++;
    for (;;) {
      const q = bytes.indexOf(0x22, p);
      if (q < 0) return fail(p, 'unterminated string');
      // The quote is escaped when an odd number of backslashes precede it.
      let k = q - 1;
      while (k >= p && buf[k] === 0x5c) k--;
      if ((q - 1 - k) % 2 === 0) return q + 1;
      p = q + 1;
    }
  };

  /** Returns the index just past the JSON value starting at `p`. */
  const skipValue = (p: number): number => {
    const c = buf[p];
    if (c === 0x22) return skipString(p);
    if (c === 0x7b || c === 0x5b) {
      const stack: number[] = [c];
      p++;
      while (p < n) {
        const d = buf[p];
        if (d === 0x22) {
          p = skipString(p);
          continue;
        }
        if (d === 0x7b || d === 0x5b) stack.push(d);
        else if (d === 0x7d || d === 0x5d) {
          const open = stack.pop();
          if ((d === 0x7d && open !== 0x7b) || (d === 0x5d && open !== 0x5b)) fail(p, 'mismatched bracket');
          if (stack.length === 0) return p + 1;
        }
        p++;
      }
      return fail(p, 'unterminated object or array');
    }
    // Scalar: runs until a delimiter.
    const start = p;
    while (p < n && !isWs(buf[p]) && buf[p] !== 0x2c && buf[p] !== 0x7d && buf[p] !== 0x5d) p++;
    if (p === start) fail(p, `unexpected character ${JSON.stringify(String.fromCharCode(c ?? 0))}`);
    return p;
  };

  skipWs();
  if (buf[pos] !== 0x7b) fail(pos, 'the file must hold a JSON object ({...})');
  pos++;
  let found: { key: string; entries: unknown[] } | undefined;
  const scalars: Record<string, unknown> = {};
  skipWs();
  if (buf[pos] === 0x7d) pos++;
  else {
    for (;;) {
      skipWs();
      if (buf[pos] !== 0x22) fail(pos, 'expected a key string');
      const keyEnd = skipString(pos);
      let key: string;
      try {
        key = JSON.parse(text(pos, keyEnd)) as string;
      } catch {
        return fail(pos, 'bad key string');
      }
      pos = keyEnd;
      skipWs();
      if (buf[pos] !== 0x3a) fail(pos, "expected ':'");
      pos++;
      skipWs();
      if (listKeys.includes(key) && buf[pos] === 0x5b) {
        if (found) throw new UserError(`${what}: holds both "${found.key}" and "${key}" lists; expected one`);
        const entries: unknown[] = [];
        pos++;
        skipWs();
        if (buf[pos] === 0x5d) pos++;
        else {
          for (;;) {
            skipWs();
            const start = pos;
            if (pos >= n) fail(pos, `unterminated "${key}" list`);
            const end = skipValue(pos);
            try {
              entries.push(JSON.parse(text(start, end)));
            } catch (e) {
              throw new UserError(
                `${what}: ${key} entry ${entries.length}: invalid JSON (${(e as Error).message})`,
              );
            }
            pos = end;
            skipWs();
            if (buf[pos] === 0x2c) {
              pos++;
              continue;
            }
            if (buf[pos] === 0x5d) {
              pos++;
              break;
            }
            fail(pos, `expected ',' or ']' after ${key} entry ${entries.length - 1}`);
          }
        }
        found = { key, entries };
      } else {
        const end = skipValue(pos);
        if (end - pos < 4096 && buf[pos] !== 0x7b && buf[pos] !== 0x5b) {
          try {
            scalars[key] = JSON.parse(text(pos, end));
          } catch {
            fail(pos, `invalid value for key "${key}"`);
          }
        }
        pos = end;
      }
      skipWs();
      if (buf[pos] === 0x2c) {
        pos++;
        continue;
      }
      if (buf[pos] === 0x7d) {
        pos++;
        break;
      }
      fail(pos, "expected ',' or '}'");
    }
  }
  skipWs();
  if (pos < n) fail(pos, 'unexpected content after the top-level object');
  if (!found) {
    const list = listKeys.map((k) => `"${k}"`).join(' or ');
    throw new UserError(`${what}: no ${list} list at the top level`);
  }
  return { key: found.key, entries: found.entries, scalars };
}
