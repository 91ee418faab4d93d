/**
 * The client side of the load test (a second process): fires `total` requests, `concurrency`
 * at a time, cycling through valid and malformed uploads, and prints one JSON summary line.
 * Usage: load-client <baseUrl> <mediaJson> <total> <concurrency>
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';

const [base, mediaJson, totalArg, concArg] = process.argv.slice(2);
const media = JSON.parse(mediaJson) as Record<string, string>;
const total = Number(totalArg);
const concurrency = Number(concArg);
const url = new URL(base);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const BOUNDARY = '----cavmaeLoad7MA4YWxkTrZu0gW';

function multipart(parts: { field: string; name: string; data: Buffer }[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.field}"; filename="${p.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
    );
    chunks.push(p.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

interface Case {
  name: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Accepted statuses. */
  expect: number[];
}

const wav = readFileSync(media.wav);
const png = readFileSync(media.png);
const jpg = readFileSync(media.jpg);
const mp = { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` };
const torn = multipart([{ field: 'file', name: 'a.wav', data: wav }]).subarray(0, 1500);

const CASES: Case[] = [
  {
    name: 'embed wav',
    method: 'POST',
    path: '/api/embed',
    headers: mp,
    body: multipart([{ field: 'file', name: 'a.wav', data: wav }]),
    expect: [200],
  },
  {
    name: 'search png',
    method: 'POST',
    path: '/api/search?k=5',
    headers: mp,
    body: multipart([{ field: 'file', name: 'b.png', data: png }]),
    expect: [200],
  },
  {
    name: 'classify jpg',
    method: 'POST',
    path: '/api/classify?top=3',
    headers: mp,
    body: multipart([{ field: 'image', name: 'c.jpg', data: jpg }]),
    expect: [200],
  },
  {
    name: 'localize pair',
    method: 'POST',
    path: '/api/localize',
    headers: mp,
    body: multipart([
      { field: 'image', name: 'd.jpg', data: jpg },
      { field: 'audio', name: 'd.wav', data: wav },
    ]),
    expect: [200],
  },
  { name: 'torn multipart', method: 'POST', path: '/api/embed', headers: mp, body: torn, expect: [400] },
  {
    name: 'not media',
    method: 'POST',
    path: '/api/embed',
    headers: mp,
    body: multipart([{ field: 'file', name: 'x.mp4', data: Buffer.from('not a video at all\n'.repeat(20)) }]),
    expect: [415],
  },
  {
    name: 'oversized',
    method: 'POST',
    path: '/api/embed',
    headers: mp,
    body: multipart([
      { field: 'file', name: 'big.wav', data: Buffer.concat([wav.subarray(0, 44), randomBytes(2 << 20)]) },
    ]),
    expect: [413],
  },
  {
    name: 'bad k',
    method: 'POST',
    path: '/api/search?k=-1',
    headers: mp,
    body: multipart([{ field: 'file', name: 'a.wav', data: wav }]),
    expect: [400],
  },
  {
    name: 'traversal',
    method: 'GET',
    path: '/media/..%2f..%2f..%2fetc%2fpasswd',
    headers: {},
    expect: [404],
  },
  {
    name: 'json body',
    method: 'POST',
    path: '/api/embed',
    headers: { 'Content-Type': 'application/json' },
    body: Buffer.from('{"file": "x"}'),
    expect: [415],
  },
];

function send(c: Case): Promise<{ status: number; ms: number; error?: string }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: c.method,
        path: c.path,
        agent,
        timeout: 30_000,
        headers: { ...c.headers, ...(c.body ? { 'Content-Length': String(c.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let error: string | undefined;
          if (res.statusCode !== 200) {
            try {
              const j = JSON.parse(text);
              if (!j.error || typeof j.error.code !== 'string') error = 'error without {error: {code}}';
            } catch {
              error = 'non-JSON error body';
            }
          }
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, ...(error ? { error } : {}) });
        });
        res.on('error', (e) => resolve({ status: 0, ms: performance.now() - t0, error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, ms: performance.now() - t0, error: e.message }));
    req.end(c.body);
  });
}

const results: { name: string; status: number; ms: number; ok: boolean; error?: string }[] = [];
let next = 0;
const t0 = performance.now();
async function worker(): Promise<void> {
  for (;;) {
    const i = next++;
    if (i >= total) return;
    // A fixed permutation so that kinds interleave differently across workers.
    const c = CASES[(i * 7) % CASES.length];
    const r = await send(c);
    results.push({ name: c.name, ...r, ok: c.expect.includes(r.status) && !r.error });
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const byStatus: Record<string, number> = {};
for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
const ms = results.map((r) => r.ms).sort((a, b) => a - b);
const summary = {
  total: results.length,
  answered: results.filter((r) => r.status > 0).length,
  unexpected: results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.status} ${r.error ?? ''}`),
  byStatus,
  wallMs: Math.round(performance.now() - t0),
  p50Ms: Math.round(ms[Math.floor(ms.length / 2)]),
  p99Ms: Math.round(ms[Math.floor(ms.length * 0.99)]),
  maxMs: Math.round(ms[ms.length - 1]),
};
agent.destroy();
process.stdout.write(JSON.stringify(summary) + '\n');
