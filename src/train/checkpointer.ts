/**
 * Resumable-training checkpoints in a run folder.
 *
 * Layout: <run>/checkpoints/step-<9-digit step>.safetensors and <run>/checkpoints/latest.json
 * ({"file", "step"}). One checkpoint file holds everything needed to resume:
 *   tensors  <param name>       the model parameters by name (F32), so the file also loads as a
 *                               plain state dict (`loadStateDict` sees two extra keys)
 *            optimizer.m / .v   Adam moments over the flat arena, [n] F32
 *   metadata "format": "pt", "cavmae.kind": "training-checkpoint",
 *            "cavmae.config": JSON of the model config (same key as io/checkpoint.ts),
 *            "cavmae.train_state": JSON of TrainState (data position, scheduler, RNG state,
 *            run config, metrics history, optimizer step count and hyper-parameters).
 *
 * Crash safety: the checkpoint is written atomically (temporary file, fsync, rename; see
 * io/atomic.ts) BEFORE latest.json is replaced atomically, so at every instant — including a
 * SIGKILL mid-write — latest.json names a complete file or is absent/stale. Loading validates the
 * file (the safetensors reader checks that the header and sizes tile the file exactly, then every
 * recorded tensor is checked for presence and length); if the newest file is truncated or
 * corrupt, the previous valid one is used and a message says so. Older files beyond `keepLast`
 * are deleted only after the new pointer is in place. Not detected: silent bit flips inside
 * tensor data of a structurally valid file (no checksum: hashing GBs per save costs seconds).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readSafetensors, writeSafetensors, type WritableTensor } from '../io/safetensors.js';
import { UserError, fileError } from '../util/errors.js';

export const CHECKPOINT_DIR = 'checkpoints';
export const LATEST_FILE = 'latest.json';
const KIND_KEY = 'cavmae.kind';
const KIND = 'training-checkpoint';
const STATE_KEY = 'cavmae.train_state';
const CONFIG_KEY = 'cavmae.config';
const OPT_M = 'optimizer.m';
const OPT_V = 'optimizer.v';
const NAME_RE = /^step-(\d{9,})\.safetensors$/;

/** Where training stands, plus anything JSON the run needs to continue exactly. */
export interface TrainState {
  /** 0-based epoch in progress. */
  epoch: number;
  /** Batches of `epoch` already done (0 at an epoch boundary). */
  batchInEpoch: number;
  /** Optimizer steps done in total (= the scheduler's iteration). */
  globalStep: number;
  /** Scheduler config (schedule.ts ScheduleConfig); the schedule is a pure function of (epoch, step). */
  schedule?: unknown;
  /** RNG state(s), e.g. { data: [...], mask: [...] }. */
  rng?: unknown;
  /** The run's configuration. */
  config?: unknown;
  /** Metrics history (per epoch evaluations, best score, ...). */
  history?: unknown;
  [key: string]: unknown;
}

export interface ParamTensor {
  shape: readonly number[];
  data: Float32Array;
}

export interface CheckpointPayload {
  params: ReadonlyMap<string, ParamTensor> | Readonly<Record<string, ParamTensor>>;
  optimizer?: { m: Float32Array; v: Float32Array; stepCount: number; hyper?: Record<string, unknown> };
  state: TrainState;
  /** The model config for "cavmae.config" (so the file also serves as a model checkpoint). */
  modelConfig?: unknown;
}

export interface LoadedCheckpoint {
  path: string;
  params: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer?: { m: Float32Array; v: Float32Array; stepCount: number; hyper?: Record<string, unknown> };
  state: TrainState;
  modelConfig?: unknown;
}

export interface CheckpointerOptions {
  /** Checkpoints to keep (newest first); default 3. */
  keepLast?: number;
  /** Save every N global steps (0 = only at epoch ends); default 0. */
  everySteps?: number;
  /** Save at the end of every epoch; default true. */
  everyEpoch?: boolean;
  /** Messages about fallbacks and cleanup (default: stderr). */
  log?: (msg: string) => void;
}

export class Checkpointer {
  readonly dir: string;
  readonly keepLast: number;
  readonly everySteps: number;
  readonly everyEpoch: boolean;
  private readonly log: (msg: string) => void;

  constructor(
    readonly runDir: string,
    opts: CheckpointerOptions = {},
  ) {
    this.dir = join(runDir, CHECKPOINT_DIR);
    this.keepLast = opts.keepLast ?? 3;
    this.everySteps = opts.everySteps ?? 0;
    this.everyEpoch = opts.everyEpoch ?? true;
    this.log = opts.log ?? ((m) => process.stderr.write(`cavmae: ${m}\n`));
    if (!Number.isInteger(this.keepLast) || this.keepLast < 1)
      throw new UserError(`checkpoints: keepLast must be >= 1 (got ${this.keepLast})`);
  }

  /** Whether the policy wants a checkpoint after `globalStep` steps (`endOfEpoch`: an epoch just finished). */
  due(globalStep: number, endOfEpoch: boolean): boolean {
    return (
      (endOfEpoch && this.everyEpoch) ||
      (this.everySteps > 0 && globalStep > 0 && globalStep % this.everySteps === 0)
    );
  }

  /** Writes a checkpoint, then the latest pointer, then prunes; returns the checkpoint path. */
  save(p: CheckpointPayload): string {
    mkdirSync(this.dir, { recursive: true });
    this.removeStaleTemporaries();
    const step = p.state.globalStep;
    if (!Number.isInteger(step) || step < 0) throw new Error(`checkpoints: invalid global step ${step}`);
    const file = checkpointName(step);
    const path = join(this.dir, file);
    const tensors = new Map<string, WritableTensor>();
    const entries: [string, ParamTensor][] =
      p.params instanceof Map
        ? [...p.params.entries()]
        : Object.entries(p.params as Record<string, ParamTensor>);
    const paramIndex: [string, number][] = [];
    for (const [name, t] of entries) {
      if (name === OPT_M || name === OPT_V)
        throw new Error(`checkpoints: parameter name '${name}' is reserved`);
      const n = t.shape.reduce((a: number, b: number) => a * b, 1);
      if (n !== t.data.length)
        throw new Error(
          `checkpoints: parameter '${name}' has shape [${t.shape}] but ${t.data.length} values`,
        );
      tensors.set(name, { dtype: 'F32', shape: [...t.shape], data: t.data });
      paramIndex.push([name, n]);
    }
    let optimizer: Record<string, unknown> | undefined;
    if (p.optimizer) {
      const { m, v, stepCount, hyper } = p.optimizer;
      if (m.length !== v.length) throw new Error('checkpoints: optimizer m and v differ in length');
      tensors.set(OPT_M, { dtype: 'F32', shape: [m.length], data: m });
      tensors.set(OPT_V, { dtype: 'F32', shape: [v.length], data: v });
      optimizer = { stepCount, size: m.length, hyper: hyper ?? {} };
    }
    const meta: Record<string, string> = {
      format: 'pt',
      [KIND_KEY]: KIND,
      [STATE_KEY]: JSON.stringify({ ...p.state, optimizer, params: paramIndex }),
    };
    if (p.modelConfig !== undefined) meta[CONFIG_KEY] = JSON.stringify(p.modelConfig);
    writeSafetensors(path, tensors, meta);
    writeFileAtomic(join(this.dir, LATEST_FILE), JSON.stringify({ file, step }) + '\n');
    this.prune(file);
    return path;
  }

  /** Checkpoint files, newest (highest step) first. */
  list(): { path: string; step: number; file: string }[] {
    if (!existsSync(this.dir)) return [];
    const out: { path: string; step: number; file: string }[] = [];
    for (const f of readdirSync(this.dir)) {
      const m = NAME_RE.exec(f);
      if (m) out.push({ path: join(this.dir, f), step: Number(m[1]), file: f });
    }
    return out.sort((a, b) => b.step - a.step);
  }

  /**
   * The newest valid checkpoint: the one latest.json names, else (missing, stale or invalid) the
   * newest file that loads. undefined when the folder holds no checkpoint at all; a UserError
   * when checkpoints exist but none is valid.
   */
  loadLatest(): LoadedCheckpoint | undefined {
    const files = this.list();
    const pointer = this.readPointer();
    const order = files.map((f) => f.file);
    if (pointer && order.includes(pointer)) {
      order.splice(order.indexOf(pointer), 1);
      order.unshift(pointer);
    } else if (pointer)
      this.log(
        `${join(this.dir, LATEST_FILE)} names ${pointer}, which does not exist; using the newest checkpoint file`,
      );
    const failures: string[] = [];
    for (const f of order) {
      const path = join(this.dir, f);
      try {
        const ck = loadCheckpoint(path);
        if (failures.length)
          this.log(`resuming from ${path} (newer checkpoint unusable: ${failures.join('; ')})`);
        return ck;
      } catch (e) {
        failures.push(`${f}: ${(e as Error).message}`);
      }
    }
    if (failures.length) throw new UserError(`${this.dir}: no valid checkpoint (${failures.join('; ')})`);
    return undefined;
  }

  private readPointer(): string | undefined {
    const p = join(this.dir, LATEST_FILE);
    if (!existsSync(p)) return undefined;
    try {
      if (statSync(p).size > 4096) throw new Error('too large');
      const v = JSON.parse(readFileSync(p, 'utf8')) as { file?: unknown };
      if (typeof v.file !== 'string' || !NAME_RE.test(v.file)) throw new Error('no valid "file"');
      return v.file;
    } catch (e) {
      this.log(`${p}: unreadable (${(e as Error).message}); using the newest checkpoint file`);
      return undefined;
    }
  }

  /**
   * Keeps `current` and the keepLast-1 newest older files. Files with a HIGHER step than the one
   * just saved belong to an abandoned continuation (the run resumed from an older checkpoint,
   * e.g. because the newest was corrupt) and are removed.
   */
  private prune(current: string): void {
    const step = Number(NAME_RE.exec(current)![1]);
    let kept = 0;
    for (const f of this.list()) {
      if (f.file === current) continue;
      let remove = false;
      if (f.step > step) {
        remove = true;
        this.log(`removing ${f.path}: newer than the resumed run's checkpoint at step ${step}`);
      } else if (kept < this.keepLast - 1) kept++;
      else remove = true;
      if (remove) {
        try {
          unlinkSync(f.path);
        } catch {
          /* already gone */
        }
      }
    }
  }

  /** Deletes temporary files that a killed writer left behind (its pid no longer runs). */
  private removeStaleTemporaries(): void {
    for (const f of readdirSync(this.dir)) {
      const m = /^\..+\.(\d+)\.\d+\.tmp$/.exec(f);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || isAlive(pid)) continue;
      try {
        unlinkSync(join(this.dir, f));
      } catch {
        /* raced with another cleaner */
      }
    }
  }
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, '0')}.safetensors`;
}

/** Loads and validates one training checkpoint; UserError "<path>: <problem>" when it is not usable. */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  const { tensors, metadata } = readSafetensors(path);
  if (metadata[KIND_KEY] !== KIND)
    throw fileError(path, 'not a cavmae training checkpoint (metadata cavmae.kind missing)');
  let st: TrainState & {
    optimizer?: { stepCount: number; size: number; hyper?: Record<string, unknown> };
    params?: [string, number][];
  };
  try {
    st = JSON.parse(metadata[STATE_KEY] ?? '') as typeof st;
  } catch {
    throw fileError(path, 'training state metadata is not valid JSON');
  }
  for (const k of ['epoch', 'batchInEpoch', 'globalStep'] as const) {
    if (!Number.isInteger(st[k]) || (st[k] as number) < 0)
      throw fileError(path, `training state has no valid ${k}`);
  }
  if (!Array.isArray(st.params)) throw fileError(path, 'training state lists no parameters');
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, n] of st.params) {
    const t = tensors.get(name);
    if (!t) throw fileError(path, `parameter '${name}' is missing`);
    if (t.dtype !== 'F32' || t.data.length !== n)
      throw fileError(path, `parameter '${name}' should hold ${n} F32 values`);
    params.set(name, { shape: t.shape, data: t.data as Float32Array });
  }
  let optimizer: LoadedCheckpoint['optimizer'];
  if (st.optimizer) {
    const m = tensors.get(OPT_M);
    const v = tensors.get(OPT_V);
    const size = st.optimizer.size;
    if (
      !m ||
      !v ||
      m.dtype !== 'F32' ||
      v.dtype !== 'F32' ||
      m.data.length !== size ||
      v.data.length !== size
    ) {
      throw fileError(
        path,
        `optimizer state incomplete (expected optimizer.m and optimizer.v of ${size} F32 values)`,
      );
    }
    optimizer = {
      m: m.data as Float32Array,
      v: v.data as Float32Array,
      stepCount: st.optimizer.stepCount,
      hyper: st.optimizer.hyper,
    };
  }
  let modelConfig: unknown;
  if (metadata[CONFIG_KEY] !== undefined) {
    try {
      modelConfig = JSON.parse(metadata[CONFIG_KEY]);
    } catch {
      throw fileError(path, 'model config metadata is not valid JSON');
    }
  }
  const { optimizer: _o, params: _p, ...state } = st;
  return { path, params, optimizer, state: state as TrainState, modelConfig };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
