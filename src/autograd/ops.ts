/**
 * Every differentiable op of the models: the one import point (`import * as ops`). The ops live
 * by job in primitives.ts (each with its derivative rule next to its forward), fused.ts (the
 * GEMM-based ops with hand-written backward passes: linear layers with fused epilogues,
 * LayerNorm fused into the next GEMM, attention) and losses.ts.
 */
export * from './primitives.js';
export * from './fused.js';
export * from './losses.js';
