/** Datafile / manifest parsing, label CSVs and the balanced-sampling weight file (docs/reference.md#balanced-sampling, #data-files). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertClose } from '../helpers.js';
import {
  buildLabelMap,
  computeSampleWeights,
  defaultWeightPath,
  loadDataset,
  loadLabelCsv,
  naturalCompare,
  officialFramePath,
  parseCsv,
  readWeights,
  resolveLabels,
  writeLabelCsv,
  writeWeights,
} from '../../src/data/datafile.js';
import { UserError } from '../../src/util/errors.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'cavmae-data-'));
}

function throwsUser(f: () => unknown, re: RegExp): void {
  assert.throws(
    f,
    (e: unknown) => e instanceof UserError && re.test(e.message),
    `expected a UserError matching ${re}`,
  );
}

test('official datafile: fields, frame layout, comma-separated labels', () => {
  const dir = tmp();
  try {
    const f = join(dir, 'train.json');
    writeFileSync(
      f,
      JSON.stringify({
        data: [
          {
            video_id: 'abc',
            wav: '/data/audio/abc.flac',
            video_path: '/data/frames',
            labels: '/m/068hy,/m/07q6cd_',
          },
          { video_id: 'x{"]y', wav: 'rel/x.wav', video_path: 'frames', labels: '/m/09x0r' },
        ],
      }),
    );
    const ds = loadDataset(f);
    assert.equal(ds.format, 'datafile');
    assert.equal(ds.items.length, 2);
    const [a, b] = ds.items;
    assert.equal(a.id, 'abc');
    assert.equal(a.audioPath, '/data/audio/abc.flac');
    assert.deepEqual(a.labels, ['/m/068hy', '/m/07q6cd_']);
    assert.deepEqual(a.visual, { kind: 'frames', dir: '/data/frames', videoId: 'abc' });
    assert.equal(officialFramePath('/data/frames', 'abc', 7), '/data/frames/frame_7/abc.jpg');
    // Relative paths resolve against the datafile's folder; odd characters in strings survive the scanner.
    assert.equal(b.audioPath, join(dir, 'rel/x.wav'));
    assert.equal(b.id, 'x{"]y');
    assert.deepEqual(b.visual, { kind: 'frames', dir: join(dir, 'frames'), videoId: 'x{"]y' });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('manifest: relative paths, image or video, label or labels, ids', () => {
  const dir = tmp();
  try {
    const f = join(dir, 'sub', 'm.json');
    const items = [
      { id: 'a', audio: 'a.wav', image: 'img/a.png', label: 'seven' },
      { id: 7, audio: '/abs/b.wav', video: 'b.mp4', labels: ['x', 'y'] },
      { audio: 'c/cc.wav', video: 'frames_c', labels: 'p, q' },
      { id: 'd', audio: 'd.wav', image: 'd.png' },
    ];
    mkdirSync(join(dir, 'sub'));
    writeFileSync(f, JSON.stringify({ name: 'demo', params: { a: [1, 2, { b: '}' }] }, items }));
    const ds = loadDataset(f);
    assert.equal(ds.format, 'manifest');
    const base = join(dir, 'sub');
    assert.deepEqual(ds.items[0], {
      id: 'a',
      audioPath: join(base, 'a.wav'),
      visual: { kind: 'image', path: join(base, 'img/a.png') },
      labels: ['seven'],
    });
    assert.deepEqual(ds.items[1], {
      id: '7',
      audioPath: '/abs/b.wav',
      visual: { kind: 'video', path: join(base, 'b.mp4') },
      labels: ['x', 'y'],
    });
    assert.equal(ds.items[2].id, 'cc', 'id defaults to the audio file name');
    assert.deepEqual(ds.items[2].labels, ['p', 'q']);
    assert.deepEqual(ds.items[3].labels, [], 'unlabelled items are allowed');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('bad entries: errors name the file and the entry index', () => {
  const dir = tmp();
  try {
    const f = join(dir, 'bad.json');
    const cases: [unknown, RegExp][] = [
      [
        {
          data: [
            { video_id: 'a', wav: 'a.wav', video_path: 'v', labels: 'x' },
            { video_id: 'b', video_path: 'v', labels: 'x' },
          ],
        },
        /bad\.json: data entry 1: missing string field "wav"/,
      ],
      [
        { data: [{ video_id: 'a', wav: 'a.wav', video_path: 'v' }] },
        /data entry 0: missing string field "labels"/,
      ],
      [
        {
          items: [
            { id: 'a', audio: 'a.wav', image: 'a.png' },
            { id: 'b', audio: 'b.wav' },
          ],
        },
        /bad\.json: items entry 1: missing "image" or "video"/,
      ],
      [
        { items: [{ id: 'a', audio: 'a.wav', image: 'a.png', video: 'v.mp4' }] },
        /items entry 0: has both "image" and "video"/,
      ],
      [{ items: [{ id: 'a', image: 'a.png' }] }, /items entry 0: missing "audio"/],
      [
        {
          items: [
            { id: 'a', audio: 'a.wav', image: 'a.png' },
            { id: 'a', audio: 'b.wav', image: 'b.png' },
          ],
        },
        /items entry 1: duplicate id "a" \(also entry 0\)/,
      ],
      [
        { items: [{ id: 'a', audio: 'a.wav', image: 'a.png', label: 'x', labels: ['y'] }] },
        /has both "label" and "labels"/,
      ],
      [
        { items: [{ id: 'a', audio: 'a.wav', image: 'a.png', labels: [{}] }] },
        /items entry 0: label 0 must be a non-empty string/,
      ],
      [{ items: [3] }, /items entry 0: expected an object/],
      [{ entries: [] }, /no "data" or "items" list/],
      [[1, 2], /must hold a JSON object/],
    ];
    for (const [json, re] of cases) {
      writeFileSync(f, JSON.stringify(json));
      throwsUser(() => loadDataset(f), re);
    }
    writeFileSync(
      f,
      '{"items": [{"id": "a", "audio": "a.wav", "image": "a.png"}, {"id": "b", "audio": tru}]}',
    );
    throwsUser(() => loadDataset(f), /bad\.json: items entry 1: invalid JSON/);
    writeFileSync(f, '{"items": [{"id": "a"');
    throwsUser(() => loadDataset(f), /bad\.json: invalid JSON at byte \d+/);
    writeFileSync(f, '{"items": []} trailing');
    throwsUser(() => loadDataset(f), /unexpected content after the top-level object/);
    throwsUser(() => loadDataset(join(dir, 'missing.json')), /missing\.json: cannot read data file: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('label CSV: quoted names with commas and escaped quotes, CRLF, index order', () => {
  const dir = tmp();
  try {
    const f = join(dir, 'labels.csv');
    writeFileSync(
      f,
      '\uFEFFindex,mid,display_name\r\n' +
        '0,/m/09x0r,"Speech"\r\n' +
        '2,/m/0ytgt,"Child speech, kid speaking"\r\n' +
        '1,/m/01h8n0,"Say ""hi"""\r\n' +
        '3,vgg_3,plain name\r\n',
    );
    const m = loadLabelCsv(f);
    assert.equal(m.numLabels, 4);
    assert.deepEqual(m.mids, ['/m/09x0r', '/m/01h8n0', '/m/0ytgt', 'vgg_3']);
    assert.deepEqual(m.names, ['Speech', 'Say "hi"', 'Child speech, kid speaking', 'plain name']);
    // Round trip through our writer.
    const g = join(dir, 'out.csv');
    writeLabelCsv(g, m);
    assert.deepEqual(loadLabelCsv(g).names, m.names);
    assert.match(readFileSync(g, 'utf8'), /^index,mid,display_name\n0,\/m\/09x0r,"Speech"\n/);
    assert.deepEqual(parseCsv('a,"b\nc",d\n\ne,f,g', 'x'), [
      ['a', 'b\nc', 'd'],
      ['e', 'f', 'g'],
    ]);

    const bad: [string, RegExp][] = [
      ['idx,mid,name\n0,a,b\n', /expected the header "index,mid,display_name"/],
      ['index,mid,display_name\n0,a,b\n0,c,d\n', /row 2: index 0 appears twice/],
      ['index,mid,display_name\n0,a,b\n5,c,d\n', /row 2: index 5 is out of range for 2 labels/],
      ['index,mid,display_name\n0,a,b\n1,a,d\n', /row 2: mid "a" appears twice/],
      ['index,mid,display_name\n0,a\n', /row 1: expected 3 fields/],
      ['index,mid,display_name\n0,a,"open\n', /unterminated quoted field/],
      ['index,mid,display_name\nx,a,b\n', /row 1: index "x" is not a non-negative integer/],
    ];
    for (const [text, re] of bad) {
      writeFileSync(f, text);
      throwsUser(() => loadLabelCsv(f), re);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('labels resolve by mid or display name; unknown labels name the entry; built index is natural order', () => {
  const dir = tmp();
  try {
    const f = join(dir, 'm.json');
    writeFileSync(
      f,
      JSON.stringify({
        items: [
          { id: 'a', audio: 'a.wav', image: 'a.png', label: 'zero' },
          { id: 'b', audio: 'b.wav', image: 'b.png', labels: ['avd_1', 'zero'] },
        ],
      }),
    );
    const ds = loadDataset(f);
    const csv = join(dir, 'labels.csv');
    writeFileSync(csv, 'index,mid,display_name\n0,avd_0,zero\n1,avd_1,one\n');
    const idx = resolveLabels(ds, loadLabelCsv(csv));
    assert.deepEqual(
      idx.map((x) => Array.from(x)),
      [[0], [1, 0]],
    );
    writeFileSync(csv, 'index,mid,display_name\n0,avd_0,nil\n1,avd_1,one\n');
    throwsUser(
      () => resolveLabels(ds, loadLabelCsv(csv)),
      /m\.json: items entry 0 \(id "a"\): label "zero" is not in .*labels\.csv/,
    );

    const built = buildLabelMap({
      path: 'x',
      format: 'manifest',
      items: ['10', '9', 'b2', 'b10', 'a'].map((l) => ({
        id: l,
        audioPath: '',
        visual: { kind: 'image', path: '' },
        labels: [l],
      })),
    });
    assert.deepEqual(built.mids, ['9', '10', 'a', 'b2', 'b10']);
    assert.equal(built.source, 'data');
    assert.ok(naturalCompare('frame_2.jpg', 'frame_10.jpg') < 0);
    assert.ok(naturalCompare('x01', 'x1') > 0 && naturalCompare('x1', 'x01') < 0);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('balanced-sampling weights: 1000/(count+0.01) summed per sample, file round trip', () => {
  // Hand-computed example (3 classes): counts c0 = 3, c1 = 1, c2 = 0.
  const items = [Int32Array.from([0]), Int32Array.from([0, 1]), Int32Array.from([0]), Int32Array.from([])];
  const w = computeSampleWeights(items, 3);
  const w0 = 1000 / 3.01;
  const w1 = 1000 / 1.01;
  assertClose(w, [w0, w0 + w1, w0, 0], { rtol: 1e-15, what: 'weights' });

  const dir = tmp();
  try {
    const data = join(dir, 'train_set.json');
    const wf = defaultWeightPath(data);
    assert.equal(wf, join(dir, 'train_set_weight.csv'));
    writeWeights(wf, w);
    const back = readWeights(wf, 4);
    assert.deepEqual(Array.from(back), Array.from(w), 'exact round trip');
    // numpy.savetxt style is accepted too.
    writeFileSync(wf, '3.322259136212624e+02\n1.322325145913616e+03\n');
    assertClose(readWeights(wf), [332.2259136212624, 1322.325145913616], {
      rtol: 1e-15,
      what: 'numpy-style',
    });
    throwsUser(() => readWeights(wf, 3), /has 2 weights but the data file has 3 entries/);
    writeFileSync(wf, '1.0\nabc\n');
    throwsUser(() => readWeights(wf), /line 2: "abc" is not a non-negative number/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
