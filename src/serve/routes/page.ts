/** The web page: `/` (and `/?token=` setting the cookie) and its files under `/static/`. */
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../util/errors.js';
import { HttpError, SECURITY_HEADERS, sendBody } from '../http.js';
import type { Route, RouteTable, ServerContext } from '../router.js';
import { COOKIE, tokenMatches } from '../security.js';

interface PageFile {
  body: Buffer;
  type: string;
}

/** The page's files, read once. Found next to this module or, from dist/, in the source tree. */
function loadPage(): Map<string, PageFile> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'page'), resolve(here, '../../../../src/serve/page')];
  const dir = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!dir) throw new UserError(`the web page files are missing (looked in ${candidates.join(', ')})`);
  const types: Record<string, string> = {
    html: 'text/html; charset=utf-8',
    js: 'text/javascript; charset=utf-8',
    css: 'text/css; charset=utf-8',
    svg: 'image/svg+xml',
  };
  const files = new Map<string, PageFile>();
  for (const name of ['index.html', 'app.js', 'style.css', 'favicon.svg']) {
    const p = join(dir, name);
    if (existsSync(p)) files.set(name, { body: readFileSync(p), type: types[name.split('.').pop()!] });
  }
  return files;
}

const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function sendFile(
  res: ServerResponse,
  method: string,
  f: PageFile,
  headers: Record<string, string> = {},
): number {
  sendBody(res, 200, f.type, f.body, { ...headers, 'Cache-Control': 'no-cache' }, method === 'HEAD');
  return 200;
}

export function pageRoutes(ctx: ServerContext): RouteTable {
  const page = loadPage();
  const index: Route = {
    method: 'GET',
    auth: false,
    handle: async (req, res, url) => {
      const given = url.searchParams.get('token');
      if (given !== null && ctx.tokenDigest) {
        if (!tokenMatches(given, ctx.tokenDigest)) throw new HttpError(401, 'unauthorized', 'wrong token');
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          Location: '/',
          'Set-Cookie': `${COOKIE}=${given}; HttpOnly; SameSite=Strict; Path=/`,
          'Cache-Control': 'no-store',
        });
        res.end();
        return 303;
      }
      return sendFile(res, req.method!, page.get('index.html')!, { 'Content-Security-Policy': PAGE_CSP });
    },
  };
  const routes: RouteTable = { '/': index, '/index.html': index };
  for (const [name, f] of page)
    if (name !== 'index.html')
      routes[`/static/${name}`] = {
        method: 'GET',
        auth: false,
        handle: async (req, res) => sendFile(res, req.method!, f),
      };
  return routes;
}
