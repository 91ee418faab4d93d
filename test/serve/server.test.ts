/**
 * The HTTP API with the deterministic test engine: routes and status codes, upload limits,
 * content sniffing, malformed multipart, auth, Host/Origin checks, path traversal, the bounded
 * queue, timeouts, engine errors and graceful shutdown.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- JSON responses are checked field by field */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MediaIndex, addMedia, mediaId } from '../../src/index/index.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/index.js';
import { UserError } from '../../src/util/errors.js';
import { hasFfmpeg, makeTestMedia, TestEmbedder, type TestMedia } from '../index/test-media.js';
import { TestEngine } from './test-engine.js';

const skip = hasFfmpeg() ? false : 'ffmpeg is not installed';
let root = '';
let media: TestMedia;
let index: MediaIndex;

before(async () => {
  if (skip) return;
  root = mkdtempSync(join(tmpdir(), 'cavmae-serve-'));
  media = await makeTestMedia(join(root));
  const embedder = new TestEmbedder(16);
  const idx = MediaIndex.create(join(root, 'index'), {
    modelId: embedder.modelId,
    modelName: embedder.modelName,
    dim: 16,
  });
  await addMedia(idx, [media.wav, media.png, media.jpg, media.mp4, media.silentMp4], embedder, {
    batchSize: 2,
  });
  idx.close();
  index = MediaIndex.open(join(root, 'index'));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

async function withServer(
  opts: Partial<ServeOptions> & { engine?: TestEngine },
  fn: (s: RunningServer, engine: TestEngine) => Promise<void>,
): Promise<void> {
  const engine = opts.engine ?? new TestEngine({ index });
  const s = await startServer({ port: 0, ...opts, engine });
  try {
    await fn(s, engine);
  } finally {
    await s.close();
  }
}

function form(files: [field: string, path: string, name?: string][]): FormData {
  const fd = new FormData();
  for (const [field, path, name] of files)
    fd.append(field, new Blob([readFileSync(path)]), name ?? path.split('/').pop());
  return fd;
}

async function post(
  s: RunningServer,
  path: string,
  body: FormData | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(new URL(path, s.url), { method: 'POST', body, headers });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

/** A raw HTTP request (no URL normalisation, arbitrary bytes). */
function raw(
  s: RunningServer,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: s.port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: opts.headers,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

function assertError(r: { status: number; json: any }, status: number, code: string): void {
  assert.equal(
    r.status,
    status,
    `expected ${status} ${code}, got ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`,
  );
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
}

test('health, info, the page and static files; unknown routes and methods', { skip }, async () => {
  await withServer({}, async (s) => {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const health = (await (await fetch(new URL('/api/health', s.url))).json()) as any;
    assert.equal(health.status, 'ok');
    const info = (await (await fetch(new URL('/api/info', s.url))).json()) as any;
    assert.equal(info.engine.dim, 16);
    assert.equal(info.index.count, 5);
    assert.equal(info.index.dir, undefined, 'the server path is not disclosed');
    assert.deepEqual(info.limits, { maxUploadMb: 50, maxDurationSec: 60, maxFiles: 2 });
    const page = await fetch(s.url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
    assert.match(await page.text(), /<script src="\/static\/app\.js"/);
    for (const f of ['app.js', 'style.css', 'favicon.svg'])
      assert.equal((await fetch(new URL(`/static/${f}`, s.url))).status, 200, f);
    assertError(
      await raw(s, { path: '/nope' }).then((r) => ({ status: r.status, json: JSON.parse(r.body) })),
      404,
      'not_found',
    );
    assertError(
      await raw(s, { path: '/api/embed' }).then((r) => ({ status: r.status, json: JSON.parse(r.body) })),
      405,
      'method_not_allowed',
    );
    assertError(await post(s, '/api/info', 'x'), 405, 'method_not_allowed');
    assertError(await post(s, '/api/unknown', 'x'), 404, 'not_found');
  });
});

test(
  'embed, search, classify, localize and reconstruct answer with the engine results',
  { skip },
  async () => {
    await withServer({}, async (s) => {
      const wav = await post(s, '/api/embed', form([['file', media.wav]]));
      assert.equal(wav.status, 200);
      assert.equal(wav.json.kind, 'audio');
      assert.equal(wav.json.audio.length, 16);
      assert.equal(wav.json.visual, null);
      const clip = await post(s, '/api/embed', form([['file', media.mp4]]));
      assert.deepEqual([clip.json.kind, clip.json.audio.length, clip.json.visual.length], ['video', 16, 16]);
      const png = await post(s, '/api/embed', form([['image', media.png, 'renamed.wav']]));
      assert.deepEqual([png.json.kind, png.json.audio, png.json.visual.length], ['image', null, 16]);

      // The indexed wav finds itself (score 1) among audio embeddings; cross-modal list present.
      const found = await post(s, '/api/search?k=3', form([['file', media.wav]]));
      assert.equal(found.status, 200);
      const same = found.json.lists.find((l: any) => l.from === 'audio' && l.to === 'audio');
      assert.equal(same.hits[0].id, mediaId(media.wav));
      assert.ok(Math.abs(same.hits[0].score - 1) < 1e-6, 'self-similarity within 1e-6 of 1');
      assert.equal(same.hits[0].media, `/media/${mediaId(media.wav)}`);
      assert.equal(same.hits[0].thumb, `/media/${mediaId(media.wav)}/thumb`);
      const cross = found.json.lists.find((l: any) => l.from === 'audio' && l.to === 'visual');
      assert.equal(cross.hits.length, 3);
      for (let i = 1; i < cross.hits.length; i++) assert.ok(cross.hits[i - 1].score >= cross.hits[i].score);
      const crossOnly = await post(s, '/api/search?k=2&mode=cross', form([['file', media.mp4]]));
      assert.deepEqual(
        crossOnly.json.lists.map((l: any) => `${l.from}>${l.to}`),
        ['audio>visual', 'visual>audio'],
      );
      assert.equal(crossOnly.json.lists[0].hits.length, 2);
      const approx = await post(s, '/api/search?k=2&mode=same&approximate=1', form([['file', media.png]]));
      assert.equal(approx.json.lists[0].hits[0].id, mediaId(media.png));

      const cls = await post(s, '/api/classify?top=3', form([['file', media.jpg]]));
      assert.equal(cls.status, 200);
      assert.equal(cls.json.labels.length, 3);
      assert.ok(cls.json.labels[0].score >= cls.json.labels[1].score);

      const loc = await post(s, '/api/localize', form([['video', media.mp4]]));
      assert.equal(loc.status, 200, JSON.stringify(loc.json).slice(0, 200));
      assert.deepEqual([loc.json.width, loc.json.height, loc.json.heat.length], [14, 14, 196]);
      assert.ok(Math.min(...loc.json.heat) === 0 && Math.max(...loc.json.heat) === 1, 'min-max normalised');
      assert.match(loc.json.overlay, /^data:image\/png;base64,iVBORw0KGgo/);
      const pair = await post(
        s,
        '/api/localize',
        form([
          ['image', media.jpg],
          ['audio', media.wav],
        ]),
      );
      assert.equal(pair.status, 200);
      assertError(await post(s, '/api/localize', form([['image', media.jpg]])), 400, 'missing_file');
      assertError(await post(s, '/api/localize', form([['file', media.silentMp4]])), 400, 'missing_file');

      const rec = await post(s, '/api/reconstruct?ratio=0.5&mode=time', form([['file', media.mp4]]));
      assert.equal(rec.status, 200);
      assert.deepEqual([rec.json.ratio, rec.json.mode], [0.5, 'time']);
      assert.match(rec.json.panel, /^data:image\/png;base64,/);
    });
  },
);

test('bad parameters, limits and malformed uploads get 4xx JSON errors', { skip }, async () => {
  await withServer({ maxUploadMb: 0.05, maxDurationSec: 5 }, async (s) => {
    assertError(await post(s, '/api/search?k=0', form([['file', media.wav]])), 400, 'bad_parameter');
    assertError(await post(s, '/api/search?k=abc', form([['file', media.wav]])), 400, 'bad_parameter');
    assertError(
      await post(s, '/api/search?mode=sideways', form([['file', media.wav]])),
      400,
      'bad_parameter',
    );
    assertError(
      await post(s, '/api/reconstruct?ratio=1.5', form([['file', media.mp4]])),
      400,
      'bad_parameter',
    );
    assertError(
      await post(s, '/api/reconstruct?mode=zigzag', form([['file', media.mp4]])),
      400,
      'bad_parameter',
    );
    assertError(await post(s, '/api/classify?top=1000', form([['file', media.wav]])), 400, 'bad_parameter');
    // Size: the 12-second wav is 384 KB > 0.05 MB.
    assertError(await post(s, '/api/embed', form([['file', media.longWav]])), 413, 'size_limit');
    const declared = await raw(s, {
      method: 'POST',
      path: '/api/embed',
      headers: { 'Content-Type': 'multipart/form-data; boundary=x', 'Content-Length': String(1 << 30) },
      body: '',
    });
    assert.equal(declared.status, 413);
    // Content, not names.
    assertError(await post(s, '/api/embed', form([['file', media.notMedia]])), 415, 'unsupported_media');
    const empty = join(root, 'empty.wav');
    writeFileSync(empty, '');
    assertError(await post(s, '/api/embed', form([['file', empty]])), 400, 'empty_file');
    assertError(await post(s, '/api/embed', form([['image', media.wav]])), 415, 'wrong_kind');
    assertError(await post(s, '/api/embed', form([['video', media.png]])), 415, 'wrong_kind');
    assertError(
      await post(
        s,
        '/api/embed',
        form([
          ['file', media.wav],
          ['file', media.png],
          ['file', media.jpg],
        ]),
      ),
      413,
      'too_many_files',
    );
    assertError(
      await post(
        s,
        '/api/embed',
        form([
          ['file', media.wav],
          ['file', media.png],
        ]),
      ),
      400,
      'too_many_files',
    );
    assertError(await post(s, '/api/embed', form([['payload', media.wav]])), 400, 'unknown_field');
    assertError(await post(s, '/api/embed', new FormData()), 400, 'missing_file');
    assertError(
      await post(s, '/api/embed', '{"audio": "x"}', { 'Content-Type': 'application/json' }),
      415,
      'unsupported_content_type',
    );
    // Malformed multipart: no boundary; a body cut off in the middle of a part.
    const nob = await raw(s, {
      method: 'POST',
      path: '/api/embed',
      headers: { 'Content-Type': 'multipart/form-data' },
      body: 'garbage',
    });
    assert.equal(nob.status, 400);
    assert.equal(JSON.parse(nob.body).error.code, 'malformed_multipart');
    const cut = Buffer.concat([
      Buffer.from(
        '--BOUND\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n',
      ),
      readFileSync(media.wav).subarray(0, 2000),
    ]);
    const torn = await raw(s, {
      method: 'POST',
      path: '/api/embed',
      headers: {
        'Content-Type': 'multipart/form-data; boundary=BOUND',
        'Content-Length': String(cut.length),
      },
      body: cut,
    });
    assert.equal(torn.status, 400, torn.body);
    assert.equal(JSON.parse(torn.body).error.code, 'malformed_multipart');
    // An MP4 header followed by garbage: sniffed as video, rejected by ffprobe.
    const corrupt = join(root, 'corrupt.mp4');
    writeFileSync(
      corrupt,
      Buffer.concat([readFileSync(media.mp4).subarray(0, 32), Buffer.alloc(4000, 0xa5)]),
    );
    assertError(await post(s, '/api/embed', form([['file', corrupt]])), 422, 'undecodable');
  });
  await withServer({ maxDurationSec: 5 }, async (s) => {
    assertError(await post(s, '/api/embed', form([['file', media.longWav]])), 413, 'duration_limit');
    assert.equal(
      (await post(s, '/api/embed', form([['file', media.wav]]))).status,
      200,
      'a 1-second clip is within 5 s',
    );
  });
});

test(
  'engine errors: UserError -> 422 without temporary paths, a bug -> 500 without details, missing capability -> 501, no index -> 409',
  { skip },
  async () => {
    await withServer({}, async (s) => {
      const r = await post(s, '/api/embed', form([['file', media.wav, 'baddecode.wav']]));
      assertError(r, 422, 'unprocessable');
      assert.equal(r.json.error.message, 'baddecode.wav: cannot decode the audio stream');
      const bug = await post(s, '/api/embed', form([['file', media.wav, 'explode.wav']]));
      assertError(bug, 500, 'internal');
      assert.equal(bug.json.error.message, 'internal server error');
    });
    await withServer({ engine: new TestEngine({ capabilities: { classify: false } }) }, async (s) => {
      assertError(await post(s, '/api/classify', form([['file', media.wav]])), 501, 'not_supported');
      assertError(await post(s, '/api/search', form([['file', media.wav]])), 409, 'no_index');
      assert.equal((await raw(s, { path: `/media/${mediaId(media.wav)}` })).status, 404);
    });
  },
);

test('token authentication, loopback Host names and same-origin POSTs', { skip }, async () => {
  await assert.rejects(
    startServer({ engine: new TestEngine(), host: '0.0.0.0', port: 0 }),
    (e: unknown) => e instanceof UserError && /needs a token/.test(e.message),
  );
  await assert.rejects(
    startServer({ engine: new TestEngine(), port: 0, token: 'short' }),
    /at least 16 characters/,
  );
  const token = 'test-token-0123456789abcdef';
  await withServer({ token }, async (s) => {
    assert.equal((await fetch(new URL('/api/health', s.url))).status, 200, 'health is public');
    assert.equal((await fetch(s.url)).status, 200, 'the page shell is public (it holds no data)');
    assertError(await post(s, '/api/embed', form([['file', media.wav]])), 401, 'unauthorized');
    assertError(
      await post(s, '/api/embed', form([['file', media.wav]]), {
        Authorization: 'Bearer wrong-token-000000000',
      }),
      401,
      'unauthorized',
    );
    assert.equal(
      (await post(s, '/api/embed', form([['file', media.wav]]), { Authorization: `Bearer ${token}` })).status,
      200,
    );
    assert.equal((await raw(s, { path: `/media/${mediaId(media.wav)}` })).status, 401);
    const info = await fetch(new URL('/api/info', s.url), { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(info.status, 200);
    // Opening /?token=... sets an HttpOnly, SameSite=Strict cookie that then authorises.
    const login = await raw(s, { path: `/?token=${token}` });
    assert.equal(login.status, 303);
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /HttpOnly; SameSite=Strict/);
    const media1 = await raw(s, {
      path: `/media/${mediaId(media.wav)}`,
      headers: { Cookie: cookie.split(';')[0] },
    });
    assert.equal(media1.status, 200);
    assert.equal((await raw(s, { path: '/?token=wrong-token-000000000' })).status, 401);
  });
  await withServer({}, async (s) => {
    const rebinding = await raw(s, { path: '/api/info', headers: { Host: 'evil.example:8080' } });
    assert.equal(rebinding.status, 403);
    assert.equal(JSON.parse(rebinding.body).error.code, 'forbidden_host');
    assert.equal((await raw(s, { path: '/api/info', headers: { Host: `localhost:${s.port}` } })).status, 200);
    const csrf = await post(s, '/api/embed', form([['file', media.wav]]), { Origin: 'https://evil.example' });
    assertError(csrf, 403, 'cross_site');
    assertError(
      await post(s, '/api/embed', form([['file', media.wav]]), { 'Sec-Fetch-Site': 'cross-site' }),
      403,
      'cross_site',
    );
    assert.equal(
      (await post(s, '/api/embed', form([['file', media.wav]]), { Origin: `http://127.0.0.1:${s.port}` }))
        .status,
      200,
    );
  });
});

test('media and thumbnails by id only: no path traversal; Range requests', { skip }, async () => {
  await withServer({}, async (s) => {
    const id = mediaId(media.wav);
    const full = await fetch(new URL(`/media/${id}`, s.url));
    assert.equal(full.status, 200);
    assert.equal(full.headers.get('content-type'), 'audio/wav');
    assert.deepEqual(Buffer.from(await full.arrayBuffer()), readFileSync(media.wav));
    const part = await fetch(new URL(`/media/${id}`, s.url), { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-19/${readFileSync(media.wav).length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), readFileSync(media.wav).subarray(10, 20));
    assert.equal(
      (await fetch(new URL(`/media/${id}`, s.url), { headers: { Range: 'bytes=999999-' } })).status,
      416,
    );
    const thumb = await fetch(new URL(`/media/${id}/thumb`, s.url));
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get('content-type'), 'image/png');
    const vthumb = await fetch(new URL(`/media/${mediaId(media.mp4)}/thumb`, s.url));
    assert.equal(vthumb.headers.get('content-type'), 'image/jpeg');
    for (const path of [
      '/media/../../../../etc/passwd',
      '/media/..%2f..%2f..%2fetc%2fpasswd',
      `/media/${id}/../../../etc/passwd`,
      `/media/${id}/thumb/../../meta.json`,
      '/media/%2e%2e/%2e%2e/etc/passwd',
      '/media/0000000000000000',
      `/media/${id.toUpperCase()}`,
      `/media/${id}x`,
      '/static/../../package.json',
      '/static/..%2f..%2fpackage.json',
      '/media/',
      '/media//etc/passwd',
      `/media/${id}/meta`,
    ]) {
      const r = await raw(s, { path });
      assert.ok(r.status === 404, `${path}: ${r.status}`);
      assert.doesNotMatch(r.body, /root:|"format"|"name": "cavmae"/);
    }
  });
});

test('the bounded queue answers 503 with Retry-After when full; timeouts answer 504', { skip }, async () => {
  await withServer(
    { engine: new TestEngine({ index, delayMs: 400 }), concurrency: 1, queueLength: 1 },
    async (s, engine) => {
      const rs = await Promise.all(
        [0, 1, 2, 3, 4].map(() => post(s, '/api/embed', form([['file', media.wav]]))),
      );
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 503, 503, 503]);
      const busy = rs.find((r) => r.status === 503)!;
      assert.equal(busy.json.error.code, 'busy');
      assert.equal(busy.headers.get('retry-after'), '5');
      assert.equal(engine.calls, 2);
      assert.deepEqual(s.queue.stats().admitted, 0);
    },
  );
  await withServer({ engine: new TestEngine({ index, delayMs: 800 }), jobTimeoutMs: 150 }, async (s) => {
    assertError(await post(s, '/api/embed', form([['file', media.wav]])), 504, 'timeout');
  });
});

test(
  'graceful shutdown: a running job finishes, queued ones get 503, then the port closes',
  { skip },
  async () => {
    const engine = new TestEngine({ index, delayMs: 500 });
    const s = await startServer({ engine, port: 0, concurrency: 1 });
    const first = post(s, '/api/embed', form([['file', media.wav]]));
    while (engine.calls === 0) await new Promise((r) => setTimeout(r, 10)); // the first job is running
    const second = post(s, '/api/embed', form([['file', media.png]]));
    while (s.queue.stats().waiting === 0) await new Promise((r) => setTimeout(r, 10)); // the second waits
    const closing = s.close();
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status, 200);
    assertError(b, 503, 'shutting_down');
    await closing;
    assert.ok(engine.closed, 'engine closed');
    await assert.rejects(fetch(new URL('/api/health', s.url)));
  },
);
