/** `make-demo-data` (AV-digits) on a tiny n: valid manifests and media, splits, determinism, resume. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, loadLabelCsv, resolveLabels } from '../../src/data/datafile.js';
import { DIGIT_NAMES, makeDemoData, splitVoices, type DemoItem } from '../../src/data/demo.js';
import { decodeAudio } from '../../src/audio/index.js';
import { decodeImage } from '../../src/vision/index.js';

const hasTools = ['espeak-ng', 'sox'].every((t) => spawnSync(t, ['--version']).status === 0);

test('voice split: every 5th variant to test, disjoint, all used', () => {
  const v = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'];
  const s = splitVoices(v);
  assert.deepEqual(s.test, ['a', 'f', 'k']);
  assert.equal(s.train.length + s.test.length, v.length);
  assert.ok(s.train.every((x) => !s.test.includes(x)));
  assert.deepEqual(splitVoices(['only']), { train: ['only'], test: ['only'] });
});

test(
  'make-demo-data on 12 + 4 examples: manifests, media, splits, determinism, resume',
  { skip: !hasTools && 'needs espeak-ng and sox' },
  async () => {
    const a = mkdtempSync(join(tmpdir(), 'cavmae-demo-a-'));
    const b = mkdtempSync(join(tmpdir(), 'cavmae-demo-b-'));
    try {
      const s1 = await makeDemoData({ out: a, n: 12, testN: 4, seed: 5, jobs: 2 });
      assert.equal(s1.generated, 16);
      const train = loadDataset(s1.train);
      const test_ = loadDataset(s1.test);
      assert.equal(train.items.length, 12);
      assert.equal(test_.items.length, 4);
      const labels = loadLabelCsv(s1.labels);
      assert.deepEqual(labels.names, [...DIGIT_NAMES]);
      const idx = resolveLabels(train, labels);
      idx.forEach((l, i) => assert.deepEqual(Array.from(l), [i % 10], 'label = digit i % 10'));

      const raw = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as { items: DemoItem[] };
      const tr = raw(s1.train).items;
      const te = raw(s1.test).items;
      const trainVoices = new Set(tr.map((x) => x.voice_variant));
      assert.ok(
        te.every((x) => !trainVoices.has(x.voice_variant)),
        'test voices are unseen in training',
      );
      assert.ok(
        tr.every((x) => x.mnist_index % 5 !== 0) && te.every((x) => x.mnist_index % 5 === 0),
        'MNIST split by index % 5',
      );
      for (const it of [...tr, ...te]) {
        assert.ok(it.snr_db >= 20 && it.snr_db <= 40, `snr ${it.snr_db}`);
        assert.ok(it.speech_dur_s > 0.1 && it.speech_offset_s + it.speech_dur_s <= 1.0 + 1e-9);
      }
      const first = train.items[0];
      const audio = await decodeAudio(first.audioPath);
      assert.equal(audio.samples.length, 16000, '1.0 s at 16 kHz');
      const wavHeader = readFileSync(first.audioPath).subarray(0, 44);
      assert.equal(wavHeader.readUInt16LE(22), 1, 'mono');
      assert.equal(wavHeader.readUInt16LE(34), 16, 'PCM16');
      assert.equal(first.visual.kind, 'image');
      const img = await decodeImage(first.visual.kind === 'image' ? first.visual.path : '');
      assert.deepEqual([img.width, img.height], [28, 28]);

      // Same seed, one job: byte-identical media.
      await makeDemoData({ out: b, n: 12, testN: 4, seed: 5, jobs: 1 });
      for (const it of [...tr, ...te]) {
        assert.ok(
          readFileSync(join(a, it.audio)).equals(readFileSync(join(b, it.audio))),
          `${it.audio} differs`,
        );
        assert.ok(
          readFileSync(join(a, it.image)).equals(readFileSync(join(b, it.image))),
          `${it.image} differs`,
        );
      }
      assert.equal(readFileSync(join(a, 'train.json'), 'utf8'), readFileSync(join(b, 'train.json'), 'utf8'));

      // Resume: a lost file is made again, the rest is reused; other parameters are refused.
      unlinkSync(join(a, tr[3].audio));
      const s2 = await makeDemoData({ out: a, n: 12, testN: 4, seed: 5 });
      assert.equal(s2.generated, 1);
      assert.equal(s2.reused, 15);
      assert.ok(readFileSync(join(a, tr[3].audio)).equals(readFileSync(join(b, tr[3].audio))));
      await assert.rejects(makeDemoData({ out: a, n: 12, testN: 4, seed: 6 }), /made with other parameters/);
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  },
);
