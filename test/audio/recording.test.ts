/**
 * Recording conditions (src/audio/recording.ts) and synthetic speech (src/audio/speech.ts):
 * drawing is deterministic and inside the ranges; the channels do what they claim, measured on
 * tones (the telephone band removes 6 kHz and 100 Hz and keeps 1 kHz; an 8 kHz recording keeps
 * nothing above 4 kHz; the codecs keep a 1 kHz tone recognisable); the level lands on the drawn
 * peak; the noise kinds have unit RMS; both speech engines speak.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  CLEAN_RECORDING,
  checkRecordingRanges,
  drawRecording,
  makeNoise,
  NOISE_KINDS,
  recordThrough,
  setLevel,
  VARIED_RECORDING,
  type Recording,
} from '../../src/audio/recording.js';
import { fliteVoices, synthesize } from '../../src/audio/speech.js';
import { Rng } from '../../src/data/rng.js';

const hasSox = spawnSync('sox', ['--version']).status === 0;
const hasTts = spawnSync('espeak-ng', ['--version']).status === 0 && spawnSync('flite', ['-lv']).status === 0;

const SR = 16000;
const tone = (hz: number, seconds = 0.5, amp = 0.5) =>
  Float32Array.from(
    { length: Math.round(seconds * SR) },
    (_, i) => amp * Math.sin((2 * Math.PI * hz * i) / SR),
  );
const rms = (x: Float32Array, from = 0.1, to = 0.9) => {
  const a = Math.round(from * x.length);
  const b = Math.round(to * x.length);
  let s = 0;
  for (let i = a; i < b; i++) s += x[i] * x[i];
  return Math.sqrt(s / (b - a));
};
const base: Recording = {
  room: null,
  noise: 'none',
  snr_db: 30,
  mic: 'full',
  codec: 'none',
  peak_dbfs: -6,
  clip_db: 0,
};

test('drawing conditions: a pure function of the generator, inside the ranges, every kind reachable', () => {
  const a = Array.from({ length: 400 }, (_, i) => drawRecording(Rng.derive(1, i), VARIED_RECORDING));
  const b = Array.from({ length: 400 }, (_, i) => drawRecording(Rng.derive(1, i), VARIED_RECORDING));
  assert.deepEqual(a, b);
  for (const c of a) {
    assert.ok(c.snr_db >= 25 && c.snr_db <= 50);
    assert.ok(c.peak_dbfs >= -20 && c.peak_dbfs <= -1);
    assert.ok(c.clip_db === 0 || (c.clip_db >= 1 && c.clip_db <= 6));
    if (c.mic !== 'phone') assert.equal(c.codec, 'none');
    if (c.mic === 'laptop')
      assert.ok(c.band_hz![0] >= 80 && c.band_hz![1] <= 7500 && Math.abs(c.resonance!.db) <= 8);
  }
  for (const k of ['full', 'laptop', 'phone', '8k'])
    assert.ok(
      a.some((c) => c.mic === k),
      `mic ${k}`,
    );
  for (const k of NOISE_KINDS)
    assert.ok(
      a.some((c) => c.noise === k),
      `noise ${k}`,
    );
  for (const k of ['ulaw', 'gsm'])
    assert.ok(
      a.some((c) => c.codec === k),
      `codec ${k}`,
    );
  const rooms = a.filter((c) => c.room).length;
  assert.ok(rooms > 80 && rooms < 160, `about 30 % in a room: ${rooms}`);
  const clean = Array.from({ length: 50 }, (_, i) => drawRecording(Rng.derive(2, i), CLEAN_RECORDING));
  assert.ok(
    clean.every(
      (c) =>
        c.mic === 'full' && c.room === null && c.codec === 'none' && c.clip_db === 0 && c.noise !== 'none',
    ),
  );
  assert.throws(
    () => checkRecordingRanges({ ...VARIED_RECORDING, mic: { tv: 1 } as never }),
    /recording\.mic must map/,
  );
  assert.throws(
    () => checkRecordingRanges({ ...VARIED_RECORDING, clipProb: 2 }),
    /recording\.clipProb must be a probability/,
  );
});

test('noise: unit RMS for every kind but none (zeros); deterministic', () => {
  for (const k of NOISE_KINDS) {
    const x = makeNoise(Rng.derive(3), k, 8000);
    assert.deepEqual(x, makeNoise(Rng.derive(3), k, 8000));
    const r = rms(x, 0, 1);
    if (k === 'none') assert.equal(r, 0);
    else assert.ok(Math.abs(r - 1) < 1e-4, `${k}: rms ${r}`);
  }
});

test(
  'channels: telephone band, 8 kHz recording, codecs, laptop microphone (sox)',
  { skip: !hasSox && 'needs sox' },
  async () => {
    const gain = async (hz: number, c: Recording) => rms(await recordThrough(tone(hz), c)) / rms(tone(hz));
    const phone = { ...base, mic: 'phone' as const, band_hz: [300, 3400] as [number, number] };
    assert.ok((await gain(1000, phone)) > 0.9, 'phone keeps 1 kHz');
    assert.ok((await gain(6000, phone)) < 0.01, 'phone removes 6 kHz');
    assert.ok((await gain(100, phone)) < 0.1, 'phone removes 100 Hz');
    const eight = { ...base, mic: '8k' as const };
    assert.ok(
      (await gain(1000, eight)) > 0.95 && (await gain(5000, eight)) < 0.01,
      '8 kHz sampling: nothing above 4 kHz',
    );
    for (const codec of ['ulaw', 'gsm'] as const) {
      const out = await recordThrough(tone(1000), { ...phone, codec });
      assert.equal(out.length, SR / 2, `${codec}: same length`);
      // the decoded tone correlates with the input (codec delay up to a few ms)
      let best = 0;
      const x = tone(1000);
      for (let lag = 0; lag < 80; lag++) {
        let dot = 0;
        for (let i = 2000; i < 6000; i++) dot += x[i] * out[i + lag];
        best = Math.max(
          best,
          dot /
            (rms(x, 2000 / 8000, 6000 / 8000) * rms(out, (2000 + lag) / 8000, (6000 + lag) / 8000) * 4000),
        );
      }
      assert.ok(best > 0.9, `${codec}: correlation ${best}`);
    }
    const laptop: Recording = {
      ...base,
      mic: 'laptop',
      band_hz: [300, 4000],
      resonance: { hz: 1500, db: 0 },
    };
    assert.ok(
      (await gain(50, laptop)) < 0.1 && (await gain(1000, laptop)) > 0.8,
      'laptop: high-pass and pass band',
    );
    assert.deepEqual(await recordThrough(tone(440), base), tone(440), 'full band: untouched');
  },
);

test('level: the peak lands on the drawn dBFS; clipping drives past full scale and saturates', () => {
  const x = tone(300, 0.2, 0.25);
  const out = setLevel(x, { ...base, peak_dbfs: -12 });
  const peak = out.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert.ok(Math.abs(20 * Math.log10(peak) + 12) < 1e-4, `peak ${peak}`);
  const clipped = setLevel(x, { ...base, peak_dbfs: -1, clip_db: 6 });
  const atRail = clipped.filter((v) => Math.abs(v) === 1).length;
  assert.ok(atRail > 0.2 * clipped.length, `clipped samples ${atRail}`);
});

test(
  'speech engines: espeak-ng and flite say a digit; the same request gives the same samples',
  { skip: !hasTts && 'needs espeak-ng and flite' },
  async () => {
    const voices = await fliteVoices();
    assert.ok(voices.includes('slt') && !voices.includes('awb_time'));
    const e = await synthesize('7', {
      voice: { engine: 'espeak-ng', name: 'f2', lang: 'en-us' },
      speed: 160,
      pitch: 50,
    });
    const f = await synthesize('seven', { voice: { engine: 'flite', name: 'slt' }, speed: 175, pitch: 60 });
    for (const [name, x] of [
      ['espeak', e],
      ['flite', f],
    ] as const) {
      assert.ok(x.length > 0.2 * SR && x.length < 1.2 * SR, `${name}: ${x.length} samples`);
      assert.ok(rms(x) > 0.01, `${name}: audible`);
    }
    assert.deepEqual(
      await synthesize('seven', { voice: { engine: 'flite', name: 'slt' }, speed: 175, pitch: 60 }),
      f,
    );
    // a room adds a reverberant tail
    const { roomEffects } = await import('../../src/audio/recording.js');
    const wet = await synthesize(
      'seven',
      { voice: { engine: 'flite', name: 'slt' }, speed: 175, pitch: 60 },
      roomEffects({ ...base, room: { reverberance: 70, damping: 50, room_scale: 80, pre_delay_ms: 10 } }),
    );
    assert.equal(wet.length, f.length + 0.25 * SR, 'the room adds 0.25 s for its tail');
    assert.ok(rms(wet.subarray(f.length), 0, 0.2) > 0.01 * rms(f), 'and the tail is not silent');
    await assert.rejects(
      synthesize('7', { voice: { engine: 'espeak-ng', name: 'f2', lang: 'xx-nope' }, speed: 160, pitch: 50 }),
      /espeak-ng/,
    );
  },
);
