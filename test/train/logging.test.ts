// JSONL logs, the progress display (line mode and bar mode) and PNG training plots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { JsonlLogger, readJsonl, recordsUpTo } from '../../src/train/logger.js';
import { Progress, formatDuration } from '../../src/util/progress.js';
import { lineChartSvg, niceTicks, svgToPng, trainingPlots } from '../../src/train/plots.js';
import { UserError } from '../../src/util/errors.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'cavmae-log-'));
}

test('JsonlLogger appends one line per record; readJsonl skips a torn last line, rejects corrupt middle lines', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'run', 'log.jsonl');
    const log = new JsonlLogger(path);
    log.log({ kind: 'train', step: 1, loss: 2.5 });
    log.log({ kind: 'train', step: 2, loss: Number.NaN, time: 42 });
    // Visible on disk before close (written through, not buffered).
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 2);
    log.close();
    const again = new JsonlLogger(path); // append mode: keeps what is there
    again.log({ kind: 'eval', step: 2, mAP: 0.3 });
    again.close();
    appendFileSync(path, '{"kind":"train","step":3,"lo'); // a crash mid-write
    const recs = readJsonl(path);
    assert.equal(recs.length, 3);
    assert.equal(recs[1].loss, null, 'NaN is logged as null');
    assert.equal(recs[1].time, 42);
    assert.equal(typeof recs[0].time, 'number');
    assert.deepEqual(
      recordsUpTo(recs, 1).map((r) => r.step),
      [1],
    );
    writeFileSync(path, '{"step":1}\nnot json\n{"step":2}\n');
    assert.throws(
      () => readJsonl(path),
      (e: unknown) => e instanceof UserError && /line 2/.test((e as Error).message),
    );
    assert.throws(() => readJsonl(join(dir, 'missing.jsonl')), UserError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function fakeStream(isTTY: boolean) {
  const out: string[] = [];
  return {
    out,
    stream: {
      isTTY,
      columns: 160,
      write: (s: string) => (out.push(s), true),
    } as unknown as NodeJS.WriteStream,
  };
}

test('Progress line mode (no TTY): one compact line per interval with rate, samples/s and ETA', () => {
  const { out, stream } = fakeStream(false);
  let now = 0;
  const p = new Progress({
    total: 1000,
    start: 100,
    label: 'pretrain',
    samplesPerStep: 8,
    stream,
    intervalSec: 10,
    now: () => now,
  });
  for (let step = 101; step <= 300; step++) {
    now += 250; // 4 steps/s
    p.update(step, { loss: 1.2345, c_acc: 0.5 });
  }
  // 200 updates x 0.25 s = 50 s -> a line at 10, 20, 30, 40, 50 s.
  assert.equal(out.length, 5);
  const s = p.snapshot();
  assert.ok(Math.abs(s.stepsPerSec - 4) < 1e-9, `rate ${s.stepsPerSec}`);
  assert.ok(Math.abs(s.samplesPerSec - 32) < 1e-9);
  assert.ok(Math.abs(s.etaSec - 700 / 4) < 1e-6);
  assert.match(
    out[4],
    /^pretrain 300\/1000 \(30\.0%\) loss 1\.234 c_acc 0\.5000 \| 4\.000 steps\/s 32\.0 samples\/s \| ETA 2m55s\n$/,
  );
  p.stop();
  assert.equal(out.length, 6, 'a final line on stop');
  const counts = new Progress({ total: 10, label: 'index', stream, intervalSec: 0, now: () => now });
  counts.update(6, { added: 6, skipped: 0, failed: 1, loss: 2.5 });
  assert.match(
    out[out.length - 1],
    /^index 6\/10 \(60\.0%\) added 6 skipped 0 failed 1 loss 2\.500 \|/,
    'counts print as integers',
  );
  assert.equal(formatDuration(3725), '1h02m05s');
  assert.equal(formatDuration(Infinity), '--');
});

test('Progress bar mode on a TTY draws a cli-progress bar with the metrics', () => {
  const { out, stream } = fakeStream(true);
  let now = 0;
  const p = new Progress({ total: 10, stream, tty: true, now: () => now, label: 'ft' });
  for (let i = 1; i <= 10; i++) {
    now += 100;
    p.update(i, { loss: 0.5 });
  }
  p.stop();
  const text = out.join('');
  assert.match(text, /ft \[.*\] 10\/10 loss 0\.5000 \| 10\.0 steps\/s \| ETA 0s/);
});

test('plots: nice ticks, SVG with title/axes/legend, PNG rendered with visible text', () => {
  assert.deepEqual(niceTicks(0, 2.83, 6).ticks, [0, 0.5, 1, 1.5, 2, 2.5, 3]);
  assert.deepEqual(niceTicks(0, 3000, 7).ticks, [0, 500, 1000, 1500, 2000, 2500, 3000]);
  const plot = {
    title: 'demo losses',
    xLabel: 'step',
    yLabel: 'loss',
    series: [
      { name: 'train loss', x: [0, 1, 2, 3], y: [3, 2, null, 1] },
      { name: 'eval loss', x: [0, 3], y: [2.5, 1.5], dashed: true },
    ],
  };
  const svg = lineChartSvg(plot);
  for (const s of ['demo losses', '>step<', '>loss<', 'train loss', 'eval loss', 'stroke-dasharray'])
    assert.ok(svg.includes(s), `svg lacks ${s}`);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.ok(/M[\d.]+ [\d.]+L[\d.]+ [\d.]+M/.test(svg), 'a null value breaks the line');
  const png = svgToPng(svg);
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  const view = new DataView(png.buffer, png.byteOffset);
  assert.deepEqual([view.getUint32(16), view.getUint32(20)], [820, 480]);
  // Text really renders (a font was found): an SVG of just the title has dark pixels.
  const textOnly =
    '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="30" font-family="DejaVu Sans, sans-serif" font-size="20">Title</text></svg>';
  const fontFiles = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'];
  const px = new Resvg(textOnly, {
    background: 'white',
    font: { fontFiles, loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  }).render().pixels;
  let dark = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] < 128) dark++;
  assert.ok(dark > 50, `text rendered ${dark} dark pixels`);
});

test('trainingPlots writes the standard plot set from log records', () => {
  const dir = tmp();
  try {
    const recs = [];
    for (let s = 0; s <= 100; s += 10)
      recs.push({
        kind: 'train',
        step: s,
        loss: 3 - s / 50,
        loss_c: 0.1,
        c_acc: s / 100,
        lr: s < 50 ? 1e-4 : 5e-5,
      });
    recs.push(
      { kind: 'eval', step: 50, loss: 2, c_acc: 0.4, mAP: 0.2, mAUC: 0.8 },
      { kind: 'eval', step: 100, loss: 1.2, c_acc: 0.7, mAP: 0.3, mAUC: 0.9 },
    );
    recs.push({ kind: 'info', message: 'ignored' });
    const files = trainingPlots(recs, join(dir, 'plots'), 'unit');
    assert.deepEqual(
      files.map((f) => f.slice(dir.length + 7)),
      ['losses.png', 'c_acc.png', 'lr.png', 'eval.png'],
    );
    for (const f of files) assert.deepEqual([...readFileSync(f).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    assert.deepEqual(
      trainingPlots([{ kind: 'train', step: 1, loss: 1 }], join(dir, 'p2')).map((f) =>
        f.endsWith('losses.png'),
      ),
      [true],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
