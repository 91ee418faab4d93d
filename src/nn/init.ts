/**
 * Parameter initialisers (docs/reference.md#initialisation): xavier_uniform on the [out, in] view of every Linear
 * (and of the patch-embedding conv), zero biases, LayerNorm 1/0, normal(0, 0.02) for the
 * modality and mask tokens, PyTorch's default uniform(±1/√fan_in) for conv biases, and fixed
 * tables (sin-cos positions). Values come from the arena's seeded Rng.
 */
import type { InitFn } from '../tensor/arena.js';

export const zeros = (): InitFn => (out) => void out.fill(0);

export const ones = (): InitFn => (out) => void out.fill(1);

export const normal =
  (std: number, mean = 0): InitFn =>
  (out, rng) =>
    void rng.fillNormal(out, mean, std);

export const uniform =
  (bound: number): InitFn =>
  (out, rng) =>
    void rng.fillUniform(out, -bound, bound);

/** torch.nn.init.xavier_uniform_: U(±√(6 / (fan_in + fan_out))). */
export const xavierUniform = (fanIn: number, fanOut: number): InitFn =>
  uniform(Math.sqrt(6 / (fanIn + fanOut)));

/** A fixed table (copied). */
export const table =
  (values: Float32Array): InitFn =>
  (out) => {
    if (values.length !== out.length)
      throw new Error(`init table: ${values.length} values for ${out.length}`);
    out.set(values);
  };
