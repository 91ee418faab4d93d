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
  const type = 'application/json; charset=utf-8';
  sendBody(res, status, type, JSON.stringify(body), { 'Cache-Control': 'no-store', ...headers });
}

/** A whole body with the security headers; `head`: the headers only (a HEAD request). */
export function sendBody(
  res: ServerResponse,
  status: number,
  type: string,
  body: Uint8Array | string,
  headers: Record<string, string> = {},
  head = false,
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(head ? undefined : body);
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

/** The 400 of a query parameter that is not what it `must` be. */
function badParam(name: string, must: string, raw: string): HttpError {
  return new HttpError(
    400,
    'bad_parameter',
    `${name} must be ${must}, got ${JSON.stringify(raw.slice(0, 40))}`,
  );
}

/** An optional number query parameter within [lo, hi] (`dflt` when absent or empty). */
function numberIn(url: URL, name: string, dflt: number, lo: number, hi: number, integer: boolean): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const v = Number(raw);
  if (!((integer ? Number.isInteger(v) : Number.isFinite(v)) && v >= lo && v <= hi))
    throw badParam(name, `${integer ? 'an integer' : 'a number'} in ${lo}..${hi}`, raw);
  return v;
}

export function intParam(url: URL, name: string, dflt: number, lo: number, hi: number): number {
  return numberIn(url, name, dflt, lo, hi, true);
}

export function numberParam(url: URL, name: string, dflt: number, lo: number, hi: number): number {
  return numberIn(url, name, dflt, lo, hi, false);
}

export function enumParam<T extends string>(url: URL, name: string, dflt: T, allowed: readonly T[]): T {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  if (!allowed.includes(raw as T)) throw badParam(name, `one of ${allowed.join(', ')}`, raw);
  return raw as T;
}
