/** Tensors, flat parameter arenas, the activation pool and the seeded Rng. */
export {
  Tensor,
  ShapeError,
  numel,
  shapeStr,
  sameShape,
  expectShape,
  expectRank,
  type Shape,
} from './tensor.js';
export { Param, ParamArena, ParamBuilder, type InitFn, type Range, type LoadReport } from './arena.js';
export { ActivationPool } from './pool.js';
export { Rng } from './rng.js';
