/** JSON errors and small HTTP helpers shared by the server's routes. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error with an HTTP status and a stable machine-readable code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** `{error: {code, message}}` with the error's status. */
export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
}

/** Reads and discards a request body (so a keep-alive connection stays usable), bounded. */
export function drain(req: IncomingMessage, maxBytes = 1 << 20): void {
  let seen = 0;
  req.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > maxBytes) req.destroy();
  });
  req.on('error', () => {});
  req.resume();
}

/** Parses an optional integer query parameter within [lo, hi]. */
export function intParam(url: URL, name: string, dflt: number, lo: number, hi: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const v = Number(raw);
  if (!(Number.isInteger(v) && v >= lo && v <= hi))
    throw new HttpError(
      400,
      'bad_parameter',
      `${name} must be an integer in ${lo}..${hi}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  return v;
}

export function numberParam(url: URL, name: string, dflt: number, lo: number, hi: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const v = Number(raw);
  if (!(Number.isFinite(v) && v >= lo && v <= hi))
    throw new HttpError(
      400,
      'bad_parameter',
      `${name} must be a number in ${lo}..${hi}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  return v;
}

export function enumParam<T extends string>(url: URL, name: string, dflt: T, allowed: readonly T[]): T {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  if (!allowed.includes(raw as T))
    throw new HttpError(
      400,
      'bad_parameter',
      `${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  return raw as T;
}
