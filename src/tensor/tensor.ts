/**
 * Tensor: a shape plus a dense row-major Float32Array view, and the gradient buffer that
 * reverse-mode autograd fills.
 *
 * Design contract:
 * - A tensor never owns a layout other than dense row-major; views (`reshape`) share `data`.
 * - `data` of a parameter is a view into the ParamArena; `data` of an activation comes from the
 *   ActivationPool of the graph that produced it (valid until that pool is reset).
 * - `grad` is null until backward reaches the tensor. Parameters get their grad view from the
 *   arena, so gradients of all parameters land in one flat buffer.
 * - Shapes are checked at every op: a mismatch is a programming error (ShapeError), and the model
 *   entry points turn bad user inputs into UserError before any op sees them.
 */

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Throws a ShapeError naming the op unless `t` has exactly `shape` (-1 matches any size). */
export function expectShape(op: string, what: string, t: { shape: Shape }, shape: Shape): void {
  let ok = t.shape.length === shape.length;
  for (let i = 0; ok && i < shape.length; i++) ok = shape[i] === -1 || shape[i] === t.shape[i];
  if (!ok) throw new ShapeError(`${op}: ${what} has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
}

export function expectRank(op: string, what: string, t: { shape: Shape }, rank: number): void {
  if (t.shape.length !== rank) {
    throw new ShapeError(`${op}: ${what} has shape ${shapeStr(t.shape)}, expected rank ${rank}`);
  }
}

const UNBOUND = new Float32Array(0);

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  data: Float32Array;
  grad: Float32Array | null = null;
  /** True when backward should produce a gradient for this tensor. */
  requiresGrad: boolean;
  /** Optional label (parameter name, debugging). */
  name?: string;

  /**
   * `data` undefined allocates zeros; `null` leaves the tensor unbound (a parameter whose view
   * the arena assigns later).
   */
  constructor(shape: Shape, data?: Float32Array | null, requiresGrad = false) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape ${shapeStr(shape)}`);
    }
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    if (data && data.length !== this.size) {
      throw new ShapeError(`data of length ${data.length} does not fit shape ${shapeStr(shape)}`);
    }
    this.data = data === null ? UNBOUND : (data ?? new Float32Array(this.size));
    this.requiresGrad = requiresGrad;
  }

  /** Size of the last axis (the feature width of a [..., D] tensor). */
  get lastDim(): number {
    return this.shape[this.shape.length - 1];
  }

  /** Number of rows of width lastDim. */
  get rows(): number {
    return this.size / this.lastDim;
  }

  /** A scalar's value (shape [] or [1]). */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item() of a tensor with shape ${shapeStr(this.shape)}`);
    return this.data[0];
  }

  toString(): string {
    return `Tensor${shapeStr(this.shape)}${this.name ? ` ${this.name}` : ''}`;
  }

  /** A constant (no grad) tensor over a copy of `values`. */
  static from(shape: Shape, values: ArrayLike<number>): Tensor {
    const t = new Tensor(shape);
    if (values.length !== t.size) {
      throw new ShapeError(`${values.length} values do not fit shape ${shapeStr(shape)}`);
    }
    t.data.set(values);
    return t;
  }
}
