/**
 * `/media/<id>` and `/media/<id>/thumb`: files named by the index manifest, looked up by a
 * validated id (no path from the URL reaches the file system), with byte ranges.
 */
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename } from 'node:path';
import { readHead, sniffBytes } from '../../index/media.js';
import { ID_PATTERN } from '../../index/store.js';
import { HttpError, SECURITY_HEADERS, sendBody } from '../http.js';
import type { RouteTable, ServerContext } from '../router.js';

/** Stored files are private, cached briefly and never run as a page. */
const FILE_HEADERS = {
  'Cache-Control': 'private, max-age=60',
  'Content-Security-Policy': "default-src 'none'; sandbox",
};

async function serveFile(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  type: string,
  extra: Record<string, string> = {},
): Promise<void> {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new HttpError(404, 'media_missing', 'the indexed file is no longer on disk');
  }
  if (!st.isFile()) throw new HttpError(404, 'media_missing', 'the indexed file is no longer a regular file');
  const size = st.size;
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === '' && m[2] === ''))
      throw new HttpError(416, 'bad_range', 'unsupported Range header', {
        'Content-Range': `bytes */${size}`,
      });
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start > end || start >= size)
      throw new HttpError(416, 'bad_range', 'range not satisfiable', { 'Content-Range': `bytes */${size}` });
    status = 206;
  }
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': end - start + 1,
    ...FILE_HEADERS,
    'Accept-Ranges': 'bytes',
    ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
    ...extra,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((ok) => {
    const s = createReadStream(path, { start, end });
    s.on('error', () => {
      res.destroy();
      ok();
    });
    res.on('close', () => {
      s.destroy();
      ok();
    });
    s.pipe(res);
  });
}

/** A small stored file (a LanceDB index's thumbnail) with the headers of `serveFile`. */
function serveBytes(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, type: string): void {
  sendBody(res, 200, type, bytes, FILE_HEADERS, req.method === 'HEAD');
}

export function mediaRoutes(ctx: ServerContext): RouteTable {
  const mediaTypes = new Map<string, string>(); // id -> sniffed Content-Type
  const handle = async (req: IncomingMessage, res: ServerResponse, parts: string[]): Promise<void> => {
    const index = ctx.engine.index;
    if (!index) throw new HttpError(404, 'no_index', 'the server was started without an index');
    const [id, sub] = parts;
    if (!ID_PATTERN.test(id ?? '') || parts.length > 2 || (sub !== undefined && sub !== 'thumb'))
      throw new HttpError(404, 'not_found', 'no such media');
    await index.refresh();
    const entry = index.get(id);
    if (!entry) throw new HttpError(404, 'not_found', 'no such media');
    if (sub === 'thumb') {
      // entry.thumb matched thumbs/<16 hex>.(jpg|png) when the manifest was read.
      const thumb = entry.thumb ? await index.thumbnailOf(entry) : undefined;
      if (!thumb) throw new HttpError(404, 'not_found', 'this item has no thumbnail');
      const type = entry.thumb!.endsWith('.png') ? 'image/png' : 'image/jpeg';
      if ('path' in thumb) await serveFile(req, res, thumb.path, type);
      else serveBytes(req, res, thumb.bytes, type); // LanceDB keeps thumbnails in its table
      return;
    }
    let type = mediaTypes.get(`${id}:${entry.row}`);
    if (!type) {
      try {
        type = (await sniffBytes(readHead(entry.path)))?.mime ?? 'application/octet-stream';
      } catch {
        throw new HttpError(404, 'media_missing', 'the indexed file is no longer readable');
      }
      if (mediaTypes.size > 10_000) mediaTypes.clear();
      mediaTypes.set(`${id}:${entry.row}`, type);
    }
    const name = basename(entry.path).replace(/[^\w.\- ]/g, '_');
    const download = { 'Content-Disposition': `attachment; filename="${name}"` };
    await serveFile(req, res, entry.path, type, type === 'application/octet-stream' ? download : {});
  };
  return {
    '/media/': {
      method: 'GET',
      auth: true,
      handle: async (req, res, _url, rest) => {
        await handle(req, res, rest.split('/'));
        return res.statusCode;
      },
    },
  };
}
