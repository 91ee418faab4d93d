/**
 * The route table and its dispatch: Host check, shutdown, URL, the route (exact path, then the
 * longest-listed prefix), the token, the method; then the route group's handler (./routes/).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from './engine.js';
import { HttpError } from './http.js';
import type { WorkQueue } from './queue.js';
import { authorized, checkHost } from './security.js';
import type { UploadLimits } from './upload.js';

/** What every handler may use: the engine, the limits, the queue and the server's settings. */
export interface ServerContext {
  engine: Engine;
  host: string;
  limits: UploadLimits;
  queue: WorkQueue;
  jobTimeoutMs: number;
  /** Parent of the per-request upload folders. */
  tmpRoot: string;
  tokenDigest?: Buffer;
  log: (line: string) => void;
}

export interface Route {
  /** GET answers HEAD too. */
  method: 'GET' | 'POST';
  /** Needs the token when the server has one. */
  auth: boolean;
  /** `rest`: the path after a prefix route's prefix. Resolves to the status sent. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, rest: string): Promise<number>;
}

/** Exact paths ('/api/info') and prefixes ending in '/' ('/media/'). */
export type RouteTable = Record<string, Route>;

/** Paths under these prefixes need the token even when no route matches (no probing). */
const PROTECTED = ['/api/', '/media/'];

export function createRouter(
  ctx: ServerContext,
  routes: RouteTable,
  closing: () => boolean,
): (req: IncomingMessage, res: ServerResponse) => Promise<number> {
  const prefixes = Object.keys(routes).filter((p) => p.endsWith('/') && p !== '/');
  return async (req, res) => {
    checkHost(req, ctx.host);
    if (closing())
      throw new HttpError(503, 'shutting_down', 'the server is shutting down', {
        'Retry-After': '30',
        Connection: 'close',
      });
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'bad_url', 'malformed request URL');
    }
    const path = url.pathname;
    const prefix = Object.hasOwn(routes, path) ? undefined : prefixes.find((p) => path.startsWith(p));
    const route = prefix ? routes[prefix] : Object.hasOwn(routes, path) ? routes[path] : undefined;
    const needsToken = route ? route.auth : PROTECTED.some((p) => path.startsWith(p));
    if (needsToken && !authorized(req, ctx.tokenDigest))
      throw new HttpError(401, 'unauthorized', 'missing or wrong token (Authorization: Bearer <token>)', {
        'WWW-Authenticate': 'Bearer',
      });
    if (!route) throw new HttpError(404, 'not_found', `no route ${path.slice(0, 80)}`);
    const method = req.method ?? 'GET';
    const allowed = route.method === 'GET' ? ['GET', 'HEAD'] : [route.method];
    if (!allowed.includes(method))
      throw new HttpError(405, 'method_not_allowed', `${method} is not allowed here`, {
        Allow: allowed.join(', '),
      });
    return route.handle(req, res, url, prefix ? path.slice(prefix.length) : '');
  };
}
