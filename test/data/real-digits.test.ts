/**
 * The held-out real-speech set (src/data/real-digits.ts), made from the Debian packages that
 * scripts/setup.sh installs: every source file is the recording the set was made from (checked
 * by SHA-256), 49 recordings of 4 speakers over 6 sources, each clip 1.0 s with the word
 * centred at its recorded level, paired with 3 unseen MNIST images each, deterministic, and
 * readable by the loader as a manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAudio } from '../../src/audio/index.js';
import { loadDataset } from '../../src/data/datafile.js';
import {
  makeRealDigits,
  missingRealPackages,
  REAL_PACKAGES,
  REAL_SOURCES,
  type RealItem,
} from '../../src/data/real-digits.js';

const missing = missingRealPackages();
const skip =
  missing.length > 0 && `needs the Debian packages ${missing.join(', ')} (scripts/setup.sh installs them)`;

test('the real-speech sources: 4 speakers, every digit spoken, packages listed for set-up', () => {
  assert.deepEqual(REAL_PACKAGES, [
    'asterisk-core-sounds-en-wav',
    'asterisk-core-sounds-en-g722',
    'asterisk-core-sounds-en-gsm',
    'saytime',
    'pocketsphinx-testdata',
  ]);
  const setup = readFileSync(new URL('../../../scripts/setup.sh', import.meta.url), 'utf8');
  for (const p of REAL_PACKAGES)
    assert.match(setup, new RegExp(`\\b${p}\\b`), `scripts/setup.sh installs ${p}`);
  const digits = new Set(REAL_SOURCES.flatMap((s) => s.clips.map((c) => c[0])));
  assert.equal(digits.size, 10);
  assert.equal(new Set(REAL_SOURCES.map((s) => s.speaker)).size, 4);
  for (const s of REAL_SOURCES)
    for (const c of s.clips)
      if (c[3] !== undefined) assert.ok(c[4]! > c[3] && c[4]! - c[3] < 1, `${s.id}: cut ${c[3]}-${c[4]}`);
});

test(
  'makeRealDigits: 49 recordings x 3 unseen images, 1.0 s clips at their recorded level, deterministic',
  { skip },
  async () => {
    const a = mkdtempSync(join(tmpdir(), 'cavmae-real-a-'));
    const b = mkdtempSync(join(tmpdir(), 'cavmae-real-b-'));
    try {
      const s = await makeRealDigits({ out: a, seed: 3 });
      assert.deepEqual([s.clips, s.items, s.speakers], [49, 147, 4]);
      const m = JSON.parse(readFileSync(s.path, 'utf8')) as {
        params: { packages: Record<string, string | null> };
        items: RealItem[];
      };
      assert.ok(
        Object.values(m.params.packages).every((v) => typeof v === 'string'),
        'package versions recorded',
      );
      const ds = loadDataset(s.path);
      assert.equal(ds.items.length, 147);
      for (const it of m.items) {
        assert.equal(it.mnist_index % 5, 0, 'MNIST test split only');
        assert.equal(
          it.label,
          ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'][it.digit],
        );
      }
      // Per recording: three different images, one audio file.
      const byAudio = new Map<string, RealItem[]>();
      for (const it of m.items) byAudio.set(it.audio, [...(byAudio.get(it.audio) ?? []), it]);
      assert.equal(byAudio.size, 49);
      for (const group of byAudio.values()) assert.equal(group.length, 3);
      const audio = (await decodeAudio(join(a, m.items[0].audio))).samples;
      assert.equal(audio.length, 16000);
      // Centred: the first and last 50 ms are the digital silence around the word.
      assert.ok(audio.subarray(0, 800).every((x) => x === 0) && audio.subarray(15200).every((x) => x === 0));
      assert.ok(
        audio.some((x) => Math.abs(x) > 0.05),
        'the word is there',
      );
      await makeRealDigits({ out: b, seed: 3 });
      assert.equal(
        readFileSync(join(b, 'real-test.json'), 'utf8').replaceAll(b, a),
        readFileSync(s.path, 'utf8'),
      );
      for (const it of m.items.slice(0, 12))
        assert.ok(readFileSync(join(a, it.audio)).equals(readFileSync(join(b, it.audio))));
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  },
);
