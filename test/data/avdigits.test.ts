/**
 * AV-digits (src/data/avdigits.ts), both layouts of the one generator on tiny n: valid manifests
 * and media, splits by voice and MNIST image, every drawn condition recorded, determinism across
 * --jobs, rebuilding a set from its stored parameters, resume; the multi-digit (Sync) layout:
 * frames, speech at its pairs' segment centres, readable by the Sync clip loader. Runs espeak-ng,
 * flite and sox (a few seconds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset, loadLabelCsv, resolveLabels } from '../../src/data/datafile.js';
import {
  DIGIT_NAMES,
  SYNC_DEMO_SAMPLES,
  makeAvDigits,
  makeDemoData,
  makeSyncDemoData,
  pairDigitSlots,
  resolveParams,
  splitVoices,
  type SingleItem,
} from '../../src/data/avdigits.js';
import { decodeAudio, decodeWav } from '../../src/audio/index.js';
import { decodeImage } from '../../src/vision/index.js';
import { syncClipBatches } from '../../src/data/sync.js';
import { CLEAN_RECORDING, VARIED_RECORDING } from '../../src/audio/recording.js';

const has = (t: string) => spawnSync(t, t === 'flite' ? ['-lv'] : ['--version']).status === 0;
const hasTools = ['espeak-ng', 'sox', 'flite'].every(has);
const skip = !hasTools && 'needs espeak-ng, flite and sox (scripts/setup.sh)';

test('voice split: every 5th voice to test, disjoint, all used', () => {
  const v = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'];
  const s = splitVoices(v);
  assert.deepEqual(s.test, ['a', 'f', 'k']);
  assert.equal(s.train.length + s.test.length, v.length);
  assert.ok(s.train.every((x) => !s.test.includes(x)));
  assert.deepEqual(splitVoices(['only']), { train: ['only'], test: ['only'] });
});

test(
  'make-demo-data on 16 + 6 examples: manifests, media, splits, conditions, determinism, rebuild from params, resume',
  { skip },
  async () => {
    const a = mkdtempSync(join(tmpdir(), 'cavmae-avd-a-'));
    const b = mkdtempSync(join(tmpdir(), 'cavmae-avd-b-'));
    const c = mkdtempSync(join(tmpdir(), 'cavmae-avd-c-'));
    try {
      const s1 = await makeDemoData({ out: a, n: 16, testN: 6, seed: 5, jobs: 2, realTest: false });
      assert.equal(s1.generated, 22);
      assert.equal(s1.real, undefined);
      const train = loadDataset(s1.train);
      const test_ = loadDataset(s1.test);
      assert.equal(train.items.length, 16);
      assert.equal(test_.items.length, 6);
      const labels = loadLabelCsv(s1.labels);
      assert.deepEqual(labels.names, [...DIGIT_NAMES]);
      resolveLabels(train, labels).forEach((l, i) =>
        assert.deepEqual(Array.from(l), [i % 10], 'label = digit i % 10'),
      );

      const raw = (p: string) =>
        JSON.parse(readFileSync(p, 'utf8')) as { params: Record<string, unknown>; items: SingleItem[] };
      const tr = raw(s1.train).items;
      const te = raw(s1.test).items;
      const voiceKey = (x: SingleItem) => `${x.tts}:${x.voice}`;
      const trainVoices = new Set(tr.map(voiceKey));
      assert.ok(
        te.every((x) => !trainVoices.has(voiceKey(x))),
        'test voices are unseen in training',
      );
      assert.ok(
        tr.every((x) => x.mnist_index % 5 !== 0) && te.every((x) => x.mnist_index % 5 === 0),
        'MNIST split by index % 5',
      );
      const p = s1.params;
      for (const it of [...tr, ...te]) {
        assert.ok(['espeak-ng', 'flite'].includes(it.tts));
        assert.ok(
          it.speed_wpm >= p.speedMin &&
            it.speed_wpm <= p.speedMax &&
            it.pitch >= p.pitchMin &&
            it.pitch <= p.pitchMax,
        );
        assert.ok(it.snr_db >= p.recording.snrDb[0] && it.snr_db <= p.recording.snrDb[1], `snr ${it.snr_db}`);
        assert.ok(it.peak_dbfs >= p.recording.peakDb[0] && it.peak_dbfs <= p.recording.peakDb[1]);
        assert.ok(
          ['full', 'laptop', 'phone', '8k'].includes(it.mic) && ['none', 'ulaw', 'gsm'].includes(it.codec),
        );
        if (it.codec !== 'none') assert.equal(it.mic, 'phone', 'codecs only on the telephone channel');
        assert.ok(it.room === null || (it.room.reverberance >= 10 && it.room.reverberance <= 50));
        assert.ok(it.speech_dur_s > 0.1 && it.speech_offset_s + it.speech_dur_s <= 1.0 + 1e-9);
      }
      // 22 draws of the varied conditions: more than one kind of each.
      for (const k of ['tts', 'mic', 'noise'] as const)
        assert.ok(new Set([...tr, ...te].map((x) => x[k])).size > 1, `${k} varies`);
      const first = train.items[0];
      const audio = await decodeAudio(first.audioPath);
      assert.equal(audio.samples.length, 16000, '1.0 s at 16 kHz');
      const wavHeader = readFileSync(first.audioPath).subarray(0, 44);
      assert.equal(wavHeader.readUInt16LE(22), 1, 'mono');
      assert.equal(wavHeader.readUInt16LE(34), 16, 'PCM16');
      const img = await decodeImage(first.visual.kind === 'image' ? first.visual.path : '');
      assert.deepEqual([img.width, img.height], [28, 28]);
      // The drawn level: the clip's peak sits at peak_dbfs (PCM16 rounding: 0.05 dB), or at full scale when clipped.
      const peak = audio.samples.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const want = tr[0].clip_db > 0 ? 1 : 10 ** (tr[0].peak_dbfs / 20);
      assert.ok(Math.abs(20 * Math.log10(peak / want)) < 0.05, `peak ${peak} vs ${want}`);

      // Same seed, one job: byte-identical media and manifests.
      await makeDemoData({ out: b, n: 16, testN: 6, seed: 5, jobs: 1, realTest: false });
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
      // The stored parameters rebuild the set: the manifest's params and nothing else.
      await makeAvDigits({ out: c, params: raw(s1.train).params, n: 16, testN: 6, realTest: false });
      assert.equal(readFileSync(join(c, 'test.json'), 'utf8'), readFileSync(join(a, 'test.json'), 'utf8'));
      assert.ok(readFileSync(join(c, te[2].audio)).equals(readFileSync(join(a, te[2].audio))));

      // Resume: a lost file is made again, the rest is reused; other parameters are refused.
      unlinkSync(join(a, tr[3].audio));
      const s2 = await makeDemoData({ out: a, n: 16, testN: 6, seed: 5, realTest: false });
      assert.equal(s2.generated, 1);
      assert.equal(s2.reused, 21);
      assert.ok(readFileSync(join(a, tr[3].audio)).equals(readFileSync(join(b, tr[3].audio))));
      await assert.rejects(
        makeDemoData({ out: a, n: 16, testN: 6, seed: 6, realTest: false }),
        /made with other parameters/,
      );
      await assert.rejects(
        makeDemoData({
          out: c,
          n: 2,
          recording: { ...s1.params.recording, snrDb: [30, 20] },
          realTest: false,
        }),
        /recording\.snrDb must be \[min, max\]/,
      );
      await assert.rejects(
        makeDemoData({ out: c, n: 2, voices: ['no-such-voice'], realTest: false }),
        /unknown espeak-ng voice variant/,
      );
    } finally {
      for (const d of [a, b, c]) rmSync(d, { recursive: true, force: true });
    }
  },
);

test(
  'multi-digit layout (Sync): clips, frames, alignment, determinism, readable by the clip loader',
  { skip },
  async () => {
    const out = mkdtempSync(join(tmpdir(), 'cavmae-sync-demo-'));
    const again = mkdtempSync(join(tmpdir(), 'cavmae-sync-demo2-'));
    try {
      const opts = { n: 2, testN: 1, digitsPerClip: 4, seed: 5, jobs: 2, voices: ['f1', 'm3', 'm5'] };
      const s = await makeSyncDemoData({ out, ...opts });
      assert.deepEqual([s.trainCount, s.testCount], [2, 1]);
      assert.equal(s.params.layout, 'sequence');
      assert.deepEqual(pairDigitSlots(4), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
      const m = JSON.parse(readFileSync(s.train, 'utf8'));
      for (const it of m.items) {
        assert.equal(statSync(join(out, it.audio)).size, 44 + 2 * SYNC_DEMO_SAMPLES);
        const frames = readdirSync(join(out, it.video)).sort();
        assert.equal(frames.length, 16);
        assert.deepEqual(
          it.pair_digits,
          pairDigitSlots(4).map((j) => it.digits[j]),
        );
        // Frames of one digit position are the same image; labels are the digits present.
        const png = (k: number): Buffer => readFileSync(join(out, it.video, frames[k]));
        assert.deepEqual(png(4), png(7));
        assert.equal(it.labels.length, new Set(it.digits).size);
        assert.equal(it.mic, 'full', 'the multi-digit set is clean by default');
        // Speech sits at its pairs' segment centres (2.56 j + 0.96 s); the gaps hold only noise.
        const { samples } = decodeWav(readFileSync(join(out, it.audio)));
        const rms = (t0: number, t1: number): number => {
          let ss = 0;
          for (let t = Math.round(t0 * 16000); t < Math.round(t1 * 16000); t++) ss += samples[t] ** 2;
          return Math.sqrt(ss / Math.round((t1 - t0) * 16000));
        };
        for (let j = 0; j < 4; j++) {
          const c = 2.56 * j + 0.96;
          const speech = rms(c - 0.15, c + 0.15);
          const gap = rms(c + 1.0, c + 1.2);
          assert.ok(speech > 3 * gap, `clip ${it.id} digit ${j}: speech rms ${speech} vs gap ${gap}`);
        }
      }
      // Determinism: the same options give the same bytes.
      await makeSyncDemoData({ out: again, ...opts, jobs: 1 });
      const first = m.items[1];
      assert.deepEqual(readFileSync(join(again, first.audio)), readFileSync(join(out, first.audio)));
      // The Sync clip loader reads it: 16 pairs per clip.
      const ds = loadDataset(s.test);
      const batches = [];
      for await (const b of syncClipBatches(ds, { segmentLength: 96, imageSize: 32 })) batches.push(b);
      assert.equal(batches.length, 1);
      assert.equal(batches[0].n, 1);
      assert.equal(batches[0].image.length, 16 * 3 * 32 * 32);
      await assert.rejects(makeSyncDemoData({ out, n: 2, digitsPerClip: 3 }), /must divide 16/);
      await assert.rejects(
        makeSyncDemoData({ out, n: 2, duration: 2 }),
        /--duration does not apply to --sync/,
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
      rmSync(again, { recursive: true, force: true });
    }
  },
);

test(
  'recording chain: by name or partial ranges, in params (a manifest, --params) and as the option',
  { skip },
  async () => {
    const base = (await resolveParams({ out: '' })).recording;
    const of = async (o: Parameters<typeof resolveParams>[0]) => (await resolveParams(o)).recording;
    assert.deepEqual(await of({ out: '', params: { recording: 'clean' } }), CLEAN_RECORDING);
    assert.deepEqual(await of({ out: '', params: { recording: 'varied' } }), VARIED_RECORDING);
    // Ranges not given keep the layer below: the layout's defaults, then params, then the option.
    assert.deepEqual(await of({ out: '', params: { recording: { reverbProb: 0.9 } } }), {
      ...base,
      reverbProb: 0.9,
    });
    assert.deepEqual(await of({ out: '', params: { recording: 'varied' }, recording: { clipProb: 0 } }), {
      ...VARIED_RECORDING,
      clipProb: 0,
    });
    assert.deepEqual(
      await of({ out: '', params: { recording: 'varied' }, recording: 'clean' }),
      CLEAN_RECORDING,
    );
    await assert.rejects(
      of({ out: '', params: { recording: { reverbProb: 2 } } }),
      /recording\.reverbProb must be a probability in \[0, 1\], got 2/,
    );
  },
);
