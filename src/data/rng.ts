/**
 * Seeded random numbers for the data pipeline.
 *
 * Contract: a generator is a pure function of its seed words. `Rng.derive(seed, epoch, position)`
 * gives every sample its own stream, so a batch does not depend on which worker thread decoded
 * which sample or in which order. Generator: xoshiro128** (32-bit state words, fast with Math.imul);
 * seeding: SplitMix32-style mixing of the seed words so that nearby seeds give unrelated streams.
 * Distributions: uniform [0,1) with 53 random bits, integers without modulo bias, normal by
 * Box-Muller, Gamma by Marsaglia-Tsang (2000), Beta as X/(X+Y) of two Gammas.
 */
import { Xoshiro128 } from '../tensor/rng.js';

/** Mixes a 32-bit word (the finaliser of MurmurHash3 / SplitMix32). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Hashes any number of integer words (each taken modulo 2^32, plus its high part) into one u32. */
export function hashWords(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    const lo = w >>> 0;
    const hi = Math.floor(w / 4294967296) >>> 0;
    h = mix32((h ^ lo) + 0x7f4a7c15);
    h = mix32((h ^ hi) + 0x632be5ab);
  }
  return h;
}

export class Rng extends Xoshiro128 {
  /** Seeds from one or more integer words (e.g. seed, epoch, position). */
  constructor(...seedWords: number[]) {
    super();
    let h = hashWords(...(seedWords.length ? seedWords : [0]));
    const next = (): number => {
      h = (h + 0x9e3779b9) >>> 0;
      return mix32(h);
    };
    this.setState(next(), next(), next(), next());
  }

  /** A generator for one (seed, epoch, position, ...) tuple. */
  static derive(...words: number[]): Rng {
    return new Rng(...words);
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [0, 1) with 24 random bits (the granularity of torch.rand in float32); one draw. */
  uniform24(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Uniform integer in [0, n), n <= 2^32, without modulo bias (rejection sampling). */
  int(n: number): number {
    if (!(n >= 1) || n > 4294967296 || !Number.isInteger(n)) throw new RangeError(`Rng.int: bad range ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform integer in [lo, hi) (numpy.random.randint semantics). */
  intRange(lo: number, hi: number): number {
    return lo + this.int(hi - lo);
  }

  /** Gamma(shape, 1) by Marsaglia & Tsang; shape < 1 via the boost Gamma(a+1)·U^(1/a). */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`Rng.gamma: shape must be > 0, got ${shape}`);
    if (shape < 1) {
      let u = 0;
      while (u === 0) u = this.uniform();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(arr: T[] | Int32Array | Uint32Array): typeof arr {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}
