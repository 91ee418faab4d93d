/**
 * Who may ask: loopback Host names only on a loopback bind (DNS rebinding), the token (header
 * or cookie) on every /api and /media request when the server has one, no cross-site POSTs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http.js';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The cookie set by opening `/?token=<token>`. */
export const COOKIE = 'cavmae_token';

export function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Whether `given` is the token (compared in constant time via digests). */
export function tokenMatches(given: string, tokenDigest: Buffer): boolean {
  return timingSafeEqual(digest(given), tokenDigest);
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

export function authorized(req: IncomingMessage, tokenDigest: Buffer | undefined): boolean {
  if (!tokenDigest) return true;
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  const given = m ? m[1] : parseCookies(req.headers.cookie)[COOKIE];
  return given !== undefined && tokenMatches(given, tokenDigest);
}

/** On a loopback bind, only loopback Host names are answered (DNS rebinding). */
export function checkHost(req: IncomingMessage, host: string): void {
  if (!isLoopback(host)) return;
  const h = (req.headers.host ?? '')
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  if (!isLoopback(h))
    throw new HttpError(
      403,
      'forbidden_host',
      `this server answers only loopback host names, not ${JSON.stringify(h.slice(0, 60))}`,
    );
}

export function checkSameOrigin(req: IncomingMessage): void {
  if (req.headers['sec-fetch-site'] === 'cross-site')
    throw new HttpError(403, 'cross_site', 'cross-site requests are refused');
  const origin = req.headers.origin;
  if (origin && origin !== 'null') {
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      throw new HttpError(403, 'cross_site', 'malformed Origin header');
    }
    if (o.host !== req.headers.host)
      throw new HttpError(403, 'cross_site', `requests from ${o.origin} are refused`);
  }
}
