/**
 * Finite-difference gradient checking for autograd ops.
 *
 * The op runs in float32 (that is what it is); the check contracts the output with a fixed
 * random cotangent r, L(x) = Σ r·f(x), accumulated in float64, and compares the analytic
 * gradient from the tape (seeded with r) with central differences (L(x+h) - L(x-h)) / 2h on
 * every coordinate of every input.
 */
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray, maxAbs } from '../helpers.js';
import assert from 'node:assert/strict';

export interface FdOptions {
  /** Step size (default 1e-2: float32 rounding noise / h dominates below that). */
  h?: number;
  /** Tolerance relative to max|analytic gradient| of each input (default 2e-3). */
  rtol?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  seed?: number;
}

/** Checks d/dinputs of f at the given inputs (each a Tensor with requiresGrad set as wanted). */
export function checkGradients(
  what: string,
  inputs: Tensor[],
  f: (tp: Tape, xs: Tensor[]) => Tensor,
  opts: FdOptions = {},
): { maxErr: number } {
  const { h = 1e-2, rtol = 2e-3, atol = 1e-5, seed = 99 } = opts;
  // Analytic.
  const tp = new Tape();
  const out = f(tp, inputs);
  const r = randomArray(out.size, seed);
  for (const x of inputs) x.grad = null;
  tp.backward(out, r);
  const analytic = inputs.map((x) =>
    x.requiresGrad ? Float64Array.from(x.grad ?? new Float32Array(x.size)) : null,
  );
  const evalL = (): number => {
    const t = new Tape({ grad: false });
    const o = f(t, inputs);
    let s = 0;
    for (let i = 0; i < o.size; i++) s += r[i] * o.data[i];
    return s;
  };
  let worst = 0;
  inputs.forEach((x, xi) => {
    const an = analytic[xi];
    if (!an) return;
    const num = new Float64Array(x.size);
    for (let i = 0; i < x.size; i++) {
      const orig = x.data[i];
      x.data[i] = orig + h;
      const lp = evalL();
      x.data[i] = orig - h;
      const lm = evalL();
      x.data[i] = orig;
      // The perturbation actually applied (float32 rounding of orig ± h).
      const up = Math.fround(orig + h) - orig;
      const dn = orig - Math.fround(orig - h);
      num[i] = (lp - lm) / (up + dn);
    }
    let err = 0;
    for (let i = 0; i < x.size; i++) err = Math.max(err, Math.abs(num[i] - an[i]));
    const bound = rtol * maxAbs(an) + atol;
    worst = Math.max(worst, err / Math.max(maxAbs(an), 1e-30));
    assert.ok(maxAbs(an) > 0 || maxAbs(num) < atol, `${what}: input ${xi} has an all-zero analytic gradient`);
    assert.ok(
      err <= bound,
      `${what}: input ${xi} max|fd - analytic| = ${err.toExponential(3)} > ${bound.toExponential(3)}`,
    );
  });
  if (process.env.FD_VERBOSE) console.log(`${what}: max rel err ${worst.toExponential(2)}`);
  return { maxErr: worst };
}

/** A leaf tensor of uniform values in [-scale, scale). */
export function leaf(shape: number[], seed: number, scale = 1, requiresGrad = true): Tensor {
  return new Tensor(
    shape,
    randomArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    requiresGrad,
  );
}
