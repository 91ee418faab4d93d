/**
 * Progress display for long loops (training, evaluation, indexing).
 *
 * On a terminal: a cli-progress bar with the latest scalars (loss, ...), steps/s, samples/s
 * and ETA. When the stream is not a TTY (CI, redirected logs) no bar is drawn: one compact line
 * is printed every `intervalSec` seconds (and at the end), so logs stay readable and small.
 * Rates are measured over the steps done in THIS process (a resumed run does not count the
 * restored steps), smoothed over a sliding window of recent updates.
 */
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  /** Total steps (including steps done before a resume). */
  total: number;
  /** Steps already done when this process started (resume). */
  start?: number;
  label?: string;
  /** Samples per step, for samples/s (the batch size). */
  samplesPerStep?: number;
  stream?: NodeJS.WriteStream;
  /** Force bar (true) or line mode (false); default: bar only on a TTY outside CI. */
  tty?: boolean;
  /** Line mode: seconds between lines (default 30). */
  intervalSec?: number;
  /** Clock (tests). */
  now?: () => number;
}

export interface ProgressSnapshot {
  step: number;
  total: number;
  stepsPerSec: number;
  samplesPerSec: number;
  etaSec: number;
}

const WINDOW = 50;

export class Progress {
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly stream: NodeJS.WriteStream;
  private readonly now: () => number;
  private readonly label: string;
  private readonly intervalMs: number;
  private readonly samplesPerStep: number;
  private readonly total: number;
  private readonly times: number[] = [];
  private readonly steps: number[] = [];
  private lastLine = 0;
  private step: number;
  private values: Record<string, number> = {};
  private stopped = false;

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.step = opts.start ?? 0;
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? (() => performance.now());
    this.label = opts.label ?? 'train';
    this.intervalMs = (opts.intervalSec ?? 30) * 1000;
    this.samplesPerStep = opts.samplesPerStep ?? 0;
    const tty = opts.tty ?? (Boolean(this.stream.isTTY) && !process.env.CI);
    this.times.push(this.now());
    this.steps.push(this.step);
    this.lastLine = this.times[0];
    if (tty) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream,
          format: `${this.label} [{bar}] {value}/{total}{metrics} | {rate} | ETA {etaText}`,
          barsize: 24,
          hideCursor: true,
          fps: 5,
          etaBuffer: WINDOW,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.total, this.step, this.payload());
    }
  }

  /** Records that `step` steps are done, with the latest scalars to show. */
  update(step: number, values: Record<string, number> = {}): void {
    if (this.stopped) return;
    this.step = step;
    this.values = values;
    const t = this.now();
    this.times.push(t);
    this.steps.push(step);
    if (this.times.length > WINDOW + 1) {
      this.times.shift();
      this.steps.shift();
    }
    if (this.bar) this.bar.update(step, this.payload());
    else if (t - this.lastLine >= this.intervalMs) {
      this.lastLine = t;
      this.stream.write(this.line() + '\n');
    }
  }

  snapshot(): ProgressSnapshot {
    const n = this.times.length;
    const dt = (this.times[n - 1] - this.times[0]) / 1000;
    const ds = this.steps[n - 1] - this.steps[0];
    const stepsPerSec = dt > 0 ? ds / dt : 0;
    const remaining = Math.max(0, this.total - this.step);
    return {
      step: this.step,
      total: this.total,
      stepsPerSec,
      samplesPerSec: stepsPerSec * this.samplesPerStep,
      etaSec: stepsPerSec > 0 ? remaining / stepsPerSec : Infinity,
    };
  }

  /** The compact one-line form (line mode, and the final line). */
  line(): string {
    const s = this.snapshot();
    const pct = this.total > 0 ? ((100 * s.step) / this.total).toFixed(1) : '0.0';
    return `${this.label} ${s.step}/${this.total} (${pct}%) ${formatMetrics(this.values)} | ${formatRate(s)} | ETA ${formatDuration(s.etaSec)}`.replace(
      / {2,}/g,
      ' ',
    );
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.bar) {
      this.bar.update(this.step, this.payload());
      this.bar.stop();
    } else {
      this.stream.write(this.line() + '\n');
    }
  }

  private payload(): Record<string, string> {
    const s = this.snapshot();
    const metrics = formatMetrics(this.values);
    return { metrics: metrics ? ` ${metrics}` : '', rate: formatRate(s), etaText: formatDuration(s.etaSec) };
  }
}

export function formatMetrics(values: Record<string, number>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k} ${formatNumber(v)}`)
    .join(' ');
}

function formatNumber(v: number): string {
  // Counts (added, skipped, failed, ...) are integers: "added 6", not "added 6.000".
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toPrecision(4);
}

function formatRate(s: ProgressSnapshot): string {
  const steps = s.stepsPerSec >= 10 ? s.stepsPerSec.toFixed(1) : s.stepsPerSec.toFixed(3);
  return s.samplesPerSec > 0
    ? `${steps} steps/s ${s.samplesPerSec.toFixed(1)} samples/s`
    : `${steps} steps/s`;
}

/** 3725 -> "1h02m05s"; Infinity -> "--". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '--';
  const t = Math.round(sec);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}
