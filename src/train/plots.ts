/**
 * PNG line plots of training curves without a browser: the chart is written as SVG here
 * (axes, "nice" ticks, grid, title, axis labels, legend) and rasterised by @resvg/resvg-js
 * (Rust resvg, prebuilt per platform inside npm packages; no network at run time). Text uses
 * DejaVu Sans when installed (Debian fonts-dejavu-core, in scripts/setup.sh), else any system
 * sans-serif font.
 *
 * Contract: `lineChartSvg` is pure (same input, same SVG); gaps (null / non-finite y) break a
 * line rather than joining across them; `logY` plots on a log10 axis (learning rates) and drops
 * non-positive values; `trainingPlots` turns log records (logger.ts) into the standard set of
 * files and returns their paths.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { escapeXml as esc, renderSvg } from '../eval/reconstruct.js';
import type { LogRecord } from './logger.js';

export interface Series {
  name: string;
  x: readonly number[];
  y: readonly (number | null)[];
  dashed?: boolean;
}

export interface LinePlot {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  logY?: boolean;
  width?: number;
  height?: number;
}

/** Matplotlib's tab10 colours. */
const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const FONT = 'DejaVu Sans, sans-serif';

export function lineChartSvg(plot: LinePlot): string {
  const W = plot.width ?? 820;
  const H = plot.height ?? 480;
  const legendW = 190;
  const m = { left: 84, right: legendW + 20, top: 48, bottom: 62 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const logY = plot.logY ?? false;

  const pts = plot.series.map((s) =>
    s.x.map((x, i) => [x, s.y[i]] as [number, number | null]).filter(([x]) => Number.isFinite(x)),
  );
  const usable = (y: number | null): y is number => y !== null && Number.isFinite(y) && (!logY || y > 0);
  let xs: number[] = [];
  let ys: number[] = [];
  for (const p of pts)
    for (const [x, y] of p)
      if (usable(y)) {
        xs.push(x);
        ys.push(logY ? Math.log10(y) : y);
      }
  if (xs.length === 0) {
    xs = [0, 1];
    ys = [0, 1];
  }
  let [x0, x1] = extent(xs);
  let [y0, y1] = extent(ys);
  if (x0 === x1) {
    x0 -= 0.5;
    x1 += 0.5;
  }
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 0.5;
    y0 -= d;
    y1 += d;
  }
  const xt = niceTicks(x0, x1, 7);
  const yt = logY ? logTicks(y0, y1) : niceTicks(y0, y1, 6);
  x0 = Math.min(x0, xt.lo);
  x1 = Math.max(x1, xt.hi);
  y0 = Math.min(y0, yt.lo);
  y1 = Math.max(y1, yt.hi);
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;

  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">`,
  );
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(
    `<text x="${m.left + pw / 2}" y="${m.top - 18}" font-size="17" font-weight="bold" text-anchor="middle">${esc(plot.title)}</text>`,
  );
  // Grid and ticks.
  for (const t of xt.ticks) {
    const x = sx(t).toFixed(1);
    o.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#e6e6e6"/>`);
    o.push(`<line x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 5}" stroke="black"/>`);
    o.push(
      `<text x="${x}" y="${m.top + ph + 20}" font-size="12" text-anchor="middle">${esc(formatTick(t, xt.step))}</text>`,
    );
  }
  for (const t of yt.ticks) {
    const y = sy(t).toFixed(1);
    o.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e6e6e6"/>`);
    o.push(`<line x1="${m.left - 5}" y1="${y}" x2="${m.left}" y2="${y}" stroke="black"/>`);
    const label = logY
      ? formatTick(Number((10 ** t).toPrecision(6)), 10 ** Math.floor(t + 1e-9))
      : formatTick(t, yt.step);
    o.push(
      `<text x="${m.left - 8}" y="${(Number(y) + 4).toFixed(1)}" font-size="12" text-anchor="end">${esc(label)}</text>`,
    );
  }
  o.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  o.push(
    `<text x="${m.left + pw / 2}" y="${H - 16}" font-size="14" text-anchor="middle">${esc(plot.xLabel)}</text>`,
  );
  o.push(
    `<text transform="translate(20 ${m.top + ph / 2}) rotate(-90)" font-size="14" text-anchor="middle">${esc(plot.yLabel + (logY ? ' (log scale)' : ''))}</text>`,
  );
  // Lines (clipped to the plot area), with a dot for series of a single point.
  o.push(
    `<clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath><g clip-path="url(#plot)">`,
  );
  plot.series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    let d = '';
    let pen = false;
    let count = 0;
    let last: [number, number] | undefined;
    for (const [x, y] of pts[si]) {
      if (!usable(y)) {
        pen = false;
        continue;
      }
      const px = sx(x);
      const py = sy(logY ? Math.log10(y) : y);
      d += `${pen ? 'L' : 'M'}${px.toFixed(1)} ${py.toFixed(1)}`;
      pen = true;
      count++;
      last = [px, py];
    }
    if (d)
      o.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} stroke-linejoin="round"/>`,
      );
    if (count <= 2 && last)
      for (const [x, y] of pts[si]) {
        if (usable(y))
          o.push(
            `<circle cx="${sx(x).toFixed(1)}" cy="${sy(logY ? Math.log10(y) : y).toFixed(1)}" r="3.5" fill="${color}"/>`,
          );
      }
  });
  o.push('</g>');
  // Legend, right of the plot.
  const lx = m.left + pw + 16;
  plot.series.forEach((s, si) => {
    const ly = m.top + 10 + si * 22;
    const color = COLORS[si % COLORS.length];
    o.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${color}" stroke-width="3"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    const name = s.name.length > 22 ? s.name.slice(0, 21) + '…' : s.name;
    o.push(`<text x="${lx + 34}" y="${ly + 4}" font-size="13">${esc(name)}</text>`);
  });
  o.push('</svg>');
  return o.join('\n');
}

/** Rasterises an SVG to PNG bytes (the renderer and fonts of every picture: eval/reconstruct.ts). */
export const svgToPng = renderSvg;

export function writeLinePlot(path: string, plot: LinePlot): void {
  writeFileAtomic(path, svgToPng(lineChartSvg(plot)));
}

/**
 * The standard plot set from log records (logger.ts conventions), written into `outDir`:
 * losses.png (every train/eval `loss*` scalar vs step; eval dashed), c_acc.png, lr.png (log
 * scale), eval.png (other eval scalars: mAP, mAUC, acc, R@k ... vs step). Plots without data are
 * skipped. Returns the written paths.
 */
export function trainingPlots(records: readonly LogRecord[], outDir: string, title = 'training'): string[] {
  const train = records.filter((r) => r.kind === 'train' && typeof r.step === 'number');
  const evals = records.filter((r) => r.kind === 'eval' && typeof r.step === 'number');
  const keysOf = (rs: readonly LogRecord[], pred: (k: string) => boolean) => {
    const ks = new Set<string>();
    for (const r of rs)
      for (const [k, v] of Object.entries(r)) if (pred(k) && (typeof v === 'number' || v === null)) ks.add(k);
    return [...ks];
  };
  const series = (rs: readonly LogRecord[], key: string, name: string, dashed = false): Series => ({
    name,
    dashed,
    x: rs.map((r) => r.step as number),
    y: rs.map((r) => (typeof r[key] === 'number' ? (r[key] as number) : null)),
  });
  const skip = new Set(['step', 'epoch', 'time', 'kind']);
  const isLoss = (k: string) => k.startsWith('loss');
  const written: string[] = [];
  const emit = (file: string, plot: LinePlot) => {
    const s = plot.series.filter((x) => x.y.some((y) => y !== null && Number.isFinite(y)));
    if (!s.length) return;
    const p = join(outDir, file);
    writeLinePlot(p, { ...plot, series: s });
    written.push(p);
  };
  emit('losses.png', {
    title: `${title}: losses`,
    xLabel: 'step',
    yLabel: 'loss',
    series: [
      ...keysOf(train, isLoss).map((k) => series(train, k, `train ${k}`)),
      ...keysOf(evals, isLoss).map((k) => series(evals, k, `eval ${k}`, true)),
    ],
  });
  emit('c_acc.png', {
    title: `${title}: contrastive accuracy`,
    xLabel: 'step',
    yLabel: 'c_acc',
    series: [series(train, 'c_acc', 'train c_acc'), series(evals, 'c_acc', 'eval c_acc', true)],
  });
  emit('lr.png', {
    title: `${title}: learning rate`,
    xLabel: 'step',
    yLabel: 'lr',
    logY: true,
    series: [series(train, 'lr', 'lr (base group)')],
  });
  emit('eval.png', {
    title: `${title}: evaluation`,
    xLabel: 'step',
    yLabel: 'metric',
    series: keysOf(evals, (k) => !skip.has(k) && !isLoss(k) && k !== 'c_acc' && k !== 'lr').map((k) =>
      series(evals, k, k),
    ),
  });
  return written;
}

// ----------------------------------------------------------------- axis helpers

function extent(v: readonly number[]): [number, number] {
  let lo = Infinity,
    hi = -Infinity;
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/** Heckbert's nice numbers: ticks at 1, 2 or 5 x 10^k covering [lo, hi]. */
export function niceTicks(
  lo: number,
  hi: number,
  target: number,
): { ticks: number[]; step: number; lo: number; hi: number } {
  const step = niceNumber((hi - lo) / Math.max(1, target - 1), true);
  const first = Math.floor(lo / step) * step;
  const last = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i++) ticks.push(roundTo(first + i * step, step));
  return { ticks, step, lo: first, hi: last };
}

function niceNumber(x: number, round: boolean): number {
  const e = Math.floor(Math.log10(x));
  const f = x / 10 ** e;
  const nf = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) : f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** e;
}

/**
 * Log-axis ticks (in log10 units): every power of ten, plus 2x and 5x when the range spans at
 * most two decades (so a one-decade lr schedule still gets readable ticks).
 */
function logTicks(lo: number, hi: number): { ticks: number[]; step: number; lo: number; hi: number } {
  const a = Math.floor(lo + 1e-9);
  const b = Math.max(a + 1, Math.ceil(hi - 1e-9));
  const ticks: number[] = [];
  if (b - a <= 2) {
    for (let e = a; e <= b; e++)
      for (const mult of [1, 2, 5]) {
        const t = e + Math.log10(mult);
        if (t <= b + 1e-9) ticks.push(t);
      }
  } else {
    const every = Math.ceil((b - a) / 8);
    for (let t = a; t <= b; t += every) ticks.push(t);
  }
  return { ticks, step: 1, lo: a, hi: b };
}

function roundTo(x: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(x.toFixed(Math.min(20, digits)));
}

export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const s = v.toExponential(Math.max(0, Math.min(3, Math.ceil(-Math.log10(step / a)))));
    return s.replace(/\.?0+e/, 'e').replace('e+', 'e');
  }
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
  return v.toFixed(decimals);
}
