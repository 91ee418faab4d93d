/** The queue's pure parts: queue URLs, path prefix maps, job results checked before commit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseQueueUrl } from '../../src/queue/location.js';
import { PathMap } from '../../src/queue/paths.js';
import {
  decodeJobResult,
  encodeVector,
  validateJobData,
  PROTOCOL_VERSION,
  type EmbedJobData,
} from '../../src/queue/protocol.js';

test('queue URLs: host, port, database, credentials, queue name; bad ones named', () => {
  const l = parseQueueUrl('redis://10.0.0.5:6380/3');
  assert.deepEqual(
    [l.host, l.port, l.db, l.tls, l.name, l.display],
    ['10.0.0.5', 6380, 3, false, 'index', 'redis://10.0.0.5:6380/3'],
  );
  const s = parseQueueUrl('rediss://me:s%40cret@redis.example:6379/0?queue=photos');
  assert.deepEqual([s.username, s.password, s.tls, s.name], ['me', 's@cret', true, 'photos']);
  assert.ok(!s.display.includes('cret'), 'the password never appears in messages');
  assert.equal(parseQueueUrl('redis://h').port, 6379);
  assert.equal(parseQueueUrl('redis://h').db, 0);
  assert.throws(() => parseQueueUrl('http://h:1/0'), /scheme must be redis/);
  assert.throws(() => parseQueueUrl('redis://h:1/abc'), /database number/);
  assert.throws(() => parseQueueUrl('not a url'), /not a URL/);
  assert.throws(() => parseQueueUrl('redis://h/0?queue=a:b'), /queue name/);
});

test('path maps: longest prefix, whole segments only', () => {
  const m = new PathMap(['/data=/mnt/data', '/data/media=/srv/m', '/=/root-here']);
  assert.equal(m.local('/data/media/a.mp4'), '/srv/m/a.mp4');
  assert.equal(m.local('/data/other/b.wav'), '/mnt/data/other/b.wav');
  assert.equal(m.local('/data/mediafile.wav'), '/mnt/data/mediafile.wav', 'not a segment of /data/media');
  assert.equal(m.local('/elsewhere/x.png'), '/root-here/elsewhere/x.png');
  assert.equal(new PathMap([]).local('/a/b'), '/a/b');
  assert.equal(new PathMap(['/a/=/b/']).local('/a/c'), '/b/c');
  assert.throws(() => new PathMap(['relative=/x']), /absolute/);
  assert.throws(() => new PathMap(['/x']), /FROM=TO/);
});

const data: EmbedJobData = {
  v: PROTOCOL_VERSION,
  run: 'r',
  index: '/idx',
  thumbnails: true,
  model: { id: 'm1', name: 'tiny', dim: 3, path: '/m.safetensors' },
  files: [
    { path: '/a.wav', mtimeMs: 1, size: 2 },
    { path: '/b.png', mtimeMs: 3, size: 4 },
  ],
};

test('job results are checked against their job before anything is committed', () => {
  const good = {
    v: PROTOCOL_VERSION,
    worker: 'w',
    model: 'm1',
    ms: 5,
    items: [
      {
        ok: true,
        modality: 'audio',
        audio: encodeVector(Float32Array.of(1, 2, 3)),
        thumb: { ext: 'png', data: Buffer.from('x').toString('base64') },
      },
      { ok: false, error: '/b.png: not a supported image' },
    ],
  };
  const { items } = decodeJobResult(data, good, 'job 1');
  assert.deepEqual(Array.from(items[0].embedding!.audio!), [1, 2, 3]);
  assert.equal(items[0].file.path, '/a.wav');
  assert.deepEqual([items[1].ok, items[1].error], [false, '/b.png: not a supported image']);
  assert.throws(
    () => decodeJobResult(data, { ...good, items: good.items.slice(0, 1) }, 'job 1'),
    /1 results for 2 files/,
  );
  const wide = {
    ...good,
    items: [{ ok: true, modality: 'audio', audio: encodeVector(new Float32Array(4)) }, good.items[1]],
  };
  assert.throws(() => decodeJobResult(data, wide, 'job 1'), /4 values, the index holds 3/);
  const badKind = { ...good, items: [{ ok: true, modality: 'hologram' }, good.items[1]] };
  assert.throws(() => decodeJobResult(data, badKind, 'job 1'), /unknown modality/);
  assert.throws(() => decodeJobResult(data, null, 'job 1'), /malformed result/);
  assert.throws(() => validateJobData({ ...data, v: 99 }), /protocol version 99/);
  assert.throws(
    () => validateJobData({ ...data, files: [{ path: 'relative.wav', mtimeMs: 0, size: 0 }] }),
    /file entry/,
  );
});
