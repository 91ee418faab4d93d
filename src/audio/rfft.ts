/**
 * Real FFT in float32 arithmetic, evaluated in the same order as torch.fft.rfft on CPU (torch
 * 1.13 without MKL uses pocketfft, whose real transform is FFTPACK's mixed-radix rfftf), so that
 * the rounding errors of our power spectrum are the reference's own, not merely of the same size.
 * That matters where the spectrum is tiny next to the frame's peak (the log-mel values near the
 * floor in high bands of band-limited audio): an exact float64 FFT differs from torch there by up
 * to ~2e-3 in log-mel, this one by ~1e-5 (docs/audio.md).
 *
 * Contract: power-of-two lengths n >= 4 (Kaldi rounds the window up to a power of two), factor
 * order as FFTPACK chooses it (a radix-2 pass, then radix-4 passes); every intermediate value is
 * rounded to float32 (Math.fround on values in double is exact float32 arithmetic for + - *,
 * since doubles hold twice float's precision plus two bits). Twiddles are float32-rounded
 * cos/sin of 2*pi*k/n, as the library computes them (in double, then rounded).
 * Output in FFTPACK "halfcomplex" order: [r0, r1, i1, r2, i2, ..., r(n/2)].
 */

const f32 = Math.fround;
/** float32(1/sqrt(2)), the radix-4 pass's constant. */
const HSQT2 = f32(Math.SQRT1_2);

interface Pass {
  radix: 2 | 4;
  ido: number;
  l1: number;
  /** Twiddles of this pass: (radix - 1) groups of (ido - 1) values, cos/sin interleaved. */
  tw: Float32Array;
}

export class RealFftF32 {
  readonly n: number;
  private readonly passes: Pass[]; // in execution order
  private readonly a: Float32Array;
  private readonly b: Float32Array;

  constructor(n: number) {
    if (!(n >= 4 && (n & (n - 1)) === 0))
      throw new Error(`RealFftF32: length ${n} is not a power of two >= 4`);
    this.n = n;
    // FFTPACK factorisation: 4s while divisible, then a 2, which is moved to the front.
    const factors: number[] = [];
    let len = n;
    while (len % 4 === 0) {
      factors.push(4);
      len /= 4;
    }
    if (len % 2 === 0) {
      factors.push(2);
      [factors[0], factors[factors.length - 1]] = [factors[factors.length - 1], factors[0]];
    }
    // Twiddles per factor, in factorisation order (l1 grows from 1).
    const tws: Float32Array[] = [];
    let l1 = 1;
    for (let k = 0; k < factors.length; k++) {
      const ip = factors[k];
      const ido = n / (l1 * ip);
      const tw = new Float32Array(Math.max((ip - 1) * (ido - 1), 0));
      if (k < factors.length - 1) {
        for (let j = 1; j < ip; j++) {
          for (let i = 1; i <= (ido - 1) >> 1; i++) {
            const angle = (2 * Math.PI * j * l1 * i) / n;
            tw[(j - 1) * (ido - 1) + 2 * i - 2] = Math.cos(angle);
            tw[(j - 1) * (ido - 1) + 2 * i - 1] = Math.sin(angle);
          }
        }
      }
      tws.push(tw);
      l1 *= ip;
    }
    // The forward transform runs the factors from last to first.
    this.passes = [];
    l1 = n;
    for (let k = factors.length - 1; k >= 0; k--) {
      const ip = factors[k] as 2 | 4;
      const ido = n / l1;
      l1 /= ip;
      this.passes.push({ radix: ip, ido, l1, tw: tws[k] });
    }
    this.a = new Float32Array(n);
    this.b = new Float32Array(n);
  }

  /** Forward transform of `input` (length n, float32 values) into `out` (halfcomplex, length n). */
  forward(input: ArrayLike<number>, out: Float32Array): void {
    let src = this.a;
    let dst = this.b;
    for (let i = 0; i < this.n; i++) src[i] = input[i];
    for (const p of this.passes) {
      if (p.radix === 4) radix4(p.ido, p.l1, src, dst, p.tw);
      else radix2(p.ido, p.l1, src, dst, p.tw);
      const t = src;
      src = dst;
      dst = t;
    }
    out.set(src);
  }
}

/** One radix-2 pass. In: cc[a + ido*(b + l1*c)]; out: ch[a + ido*(b + 2*c)]. */
function radix2(ido: number, l1: number, cc: Float32Array, ch: Float32Array, wa: Float32Array): void {
  for (let k = 0; k < l1; k++) {
    const x0 = cc[ido * k];
    const x1 = cc[ido * (k + l1)];
    ch[ido * 2 * k] = x0 + x1;
    ch[ido - 1 + ido * (1 + 2 * k)] = x0 - x1;
  }
  if ((ido & 1) === 0) {
    for (let k = 0; k < l1; k++) {
      ch[ido * (1 + 2 * k)] = -cc[ido - 1 + ido * (k + l1)];
      ch[ido - 1 + ido * 2 * k] = cc[ido - 1 + ido * k];
    }
  }
  if (ido <= 2) return;
  for (let k = 0; k < l1; k++) {
    const in0 = ido * k; // cc(., k, 0)
    const in1 = ido * (k + l1); // cc(., k, 1)
    const out0 = ido * 2 * k; // ch(., 0, k)
    const out1 = ido * (1 + 2 * k); // ch(., 1, k)
    for (let i = 2; i < ido; i += 2) {
      const ic = ido - i;
      const wr = wa[i - 2],
        wi = wa[i - 1];
      const xr = cc[in1 + i - 1],
        xi = cc[in1 + i];
      // conj(w) * x
      const tr = f32(f32(wr * xr) + f32(wi * xi));
      const ti = f32(f32(wr * xi) - f32(wi * xr));
      const ar = cc[in0 + i - 1],
        ai = cc[in0 + i];
      ch[out0 + i - 1] = ar + tr;
      ch[out1 + ic - 1] = ar - tr;
      ch[out0 + i] = ti + ai;
      ch[out1 + ic] = ti - ai;
    }
  }
}

/**
 * One radix-4 pass. In: cc[a + ido*(k + l1*c)] (c = 0..3); out: ch[a + ido*(b + 4*k)] (b = 0..3).
 */
function radix4(ido: number, l1: number, cc: Float32Array, ch: Float32Array, wa: Float32Array): void {
  const inStride = ido * l1; // between the four inputs c = 0..3
  for (let k = 0; k < l1; k++) {
    const p = ido * k;
    const x0 = cc[p],
      x1 = cc[p + inStride],
      x2 = cc[p + 2 * inStride],
      x3 = cc[p + 3 * inStride];
    const q = 4 * ido * k;
    const s13 = f32(x3 + x1);
    ch[q + 2 * ido] = x3 - x1;
    const s02 = f32(x0 + x2);
    ch[q + ido + ido - 1] = x0 - x2;
    ch[q] = s02 + s13;
    ch[q + 3 * ido + ido - 1] = s02 - s13;
  }
  if ((ido & 1) === 0) {
    const e = ido - 1;
    for (let k = 0; k < l1; k++) {
      const p = e + ido * k;
      const x0 = cc[p],
        x1 = cc[p + inStride],
        x2 = cc[p + 2 * inStride],
        x3 = cc[p + 3 * inStride];
      const ti1 = f32(-HSQT2 * f32(x1 + x3));
      const tr1 = f32(HSQT2 * f32(x1 - x3));
      const q = 4 * ido * k;
      ch[q + e] = x0 + tr1;
      ch[q + 2 * ido + e] = x0 - tr1;
      ch[q + 3 * ido] = ti1 + x2;
      ch[q + ido] = ti1 - x2;
    }
  }
  if (ido <= 2) return;
  const w2 = ido - 1,
    w3 = 2 * (ido - 1);
  for (let k = 0; k < l1; k++) {
    const p = ido * k;
    const q = 4 * ido * k;
    for (let i = 2; i < ido; i += 2) {
      const ic = ido - i;
      // c_j = conj(w_j) * x_j for j = 1, 2, 3
      let xr = cc[p + inStride + i - 1],
        xi = cc[p + inStride + i];
      let wr = wa[i - 2],
        wi = wa[i - 1];
      const cr2 = f32(f32(wr * xr) + f32(wi * xi));
      const ci2 = f32(f32(wr * xi) - f32(wi * xr));
      xr = cc[p + 2 * inStride + i - 1];
      xi = cc[p + 2 * inStride + i];
      wr = wa[w2 + i - 2];
      wi = wa[w2 + i - 1];
      const cr3 = f32(f32(wr * xr) + f32(wi * xi));
      const ci3 = f32(f32(wr * xi) - f32(wi * xr));
      xr = cc[p + 3 * inStride + i - 1];
      xi = cc[p + 3 * inStride + i];
      wr = wa[w3 + i - 2];
      wi = wa[w3 + i - 1];
      const cr4 = f32(f32(wr * xr) + f32(wi * xi));
      const ci4 = f32(f32(wr * xi) - f32(wi * xr));
      const tr1 = f32(cr4 + cr2),
        tr4 = f32(cr4 - cr2);
      const ti1 = f32(ci2 + ci4),
        ti4 = f32(ci2 - ci4);
      const x0r = cc[p + i - 1],
        x0i = cc[p + i];
      const tr2 = f32(x0r + cr3),
        tr3 = f32(x0r - cr3);
      const ti2 = f32(x0i + ci3),
        ti3 = f32(x0i - ci3);
      ch[q + i - 1] = tr2 + tr1; // ch(i-1, 0, k)
      ch[q + 3 * ido + ic - 1] = tr2 - tr1; // ch(ic-1, 3, k)
      ch[q + i] = ti1 + ti2; // ch(i, 0, k)
      ch[q + 3 * ido + ic] = ti1 - ti2; // ch(ic, 3, k)
      ch[q + 2 * ido + i - 1] = tr3 + ti4; // ch(i-1, 2, k)
      ch[q + ido + ic - 1] = tr3 - ti4; // ch(ic-1, 1, k)
      ch[q + 2 * ido + i] = tr4 + ti3; // ch(i, 2, k)
      ch[q + ido + ic] = tr4 - ti3; // ch(ic, 1, k)
    }
  }
}
