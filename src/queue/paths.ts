/**
 * Path prefix mapping between the submitting machine and a worker: `--map /data/media=/mnt/media`
 * means a file the submitter calls /data/media/a.mp4 is /mnt/media/a.mp4 here. The longest
 * matching prefix wins; prefixes match whole path segments only (/data/m does not map /data/media).
 */
import { isAbsolute } from 'node:path';
import { UserError } from '../util/errors.js';

export class PathMap {
  private readonly rules: { from: string; to: string }[];

  constructor(specs: readonly string[] = []) {
    this.rules = specs.map((spec) => {
      const eq = spec.indexOf('=');
      if (eq <= 0 || eq === spec.length - 1)
        throw new UserError(`--map ${spec}: expected FROM=TO (two absolute path prefixes)`);
      const from = trimSlash(spec.slice(0, eq));
      const to = trimSlash(spec.slice(eq + 1));
      if (!isAbsolute(from) || !isAbsolute(to))
        throw new UserError(`--map ${spec}: both prefixes must be absolute paths`);
      return { from, to };
    });
    this.rules.sort((a, b) => b.from.length - a.from.length);
  }

  /** The local path of a submitter's path (unchanged when no rule matches). */
  local(path: string): string {
    for (const r of this.rules) {
      if (path === r.from) return r.to;
      const rest =
        r.from === '/' ? path : path.startsWith(`${r.from}/`) ? path.slice(r.from.length) : undefined;
      if (rest !== undefined) return r.to === '/' ? rest : r.to + rest; // rest starts with '/'
    }
    return path;
  }
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}
