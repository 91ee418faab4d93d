/** Reverse-mode autograd: the tape and the op table. */
export { Tape, type TapeOptions } from './tape.js';
export * as ops from './ops.js';
export type { ContrastiveOptions, ContrastiveResult } from './ops.js';
