/**
 * The compute-kernel contract. Two implementations exist with exactly these signatures:
 * `ts/` (plain TypeScript, the reference and the fallback) and the native N-API addon
 * (`native/`, oneDNN GEMM + hand-written AVX-512 loops). Tests compare the two.
 *
 * Conventions (llm.c style):
 * - Every buffer is a dense, row-major Float32Array (bf16 values live in Uint16Array,
 *   index lists in Int32Array). Sizes are passed explicitly; views made with `subarray`
 *   are zero-copy, so offsets are never passed.
 * - Forward kernels overwrite their outputs.
 * - Backward kernels ACCUMULATE (`+=`) into every gradient they write, so a tensor used
 *   twice (residual branches, the joint layer run three times) just receives two calls.
 * - A kernel never allocates in its steady state and never keeps a reference to a buffer.
 */
export type F32 = Float32Array;
export type BF16 = Uint16Array;
export type I32 = Int32Array;

export interface Kernels {
  /** 'native' (the addon) or 'ts' (the reference implementation). */
  readonly name: 'native' | 'ts';

  /** Threads used by every multi-threaded kernel (GEMM included). */
  setThreads(n: number): void;
  getThreads(): number;

  /**
   * C = alpha * op(A) · op(B) + beta * C, with C [m,n].
   * op(A) is [m,k]: A is stored [m,k], or [k,m] when transA.
   * op(B) is [k,n]: B is stored [k,n], or [n,k] when transB.
   * bf16: inputs are rounded to bf16 (round-to-nearest-even), products accumulate in fp32.
   * beta = 0 means C is not read (may hold NaN).
   */
  matmul(
    a: F32,
    b: F32,
    c: F32,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    alpha: number,
    beta: number,
    bf16: boolean,
  ): void;

  /**
   * `batch` independent matmuls; matrix i of A starts at i*strideA (elements), etc.
   * Each matrix is dense with the same layout rules as `matmul`.
   */
  matmulBatched(
    a: F32,
    b: F32,
    c: F32,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    beta: number,
    bf16: boolean,
  ): void;

  /** out[r,:] = (inp[r,:] - mean_r) * rstd_r * weight + bias; writes mean[rows], rstd[rows]. */
  layerNormForward(
    out: F32,
    mean: F32,
    rstd: F32,
    inp: F32,
    weight: F32,
    bias: F32,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** Accumulates dinp, dweight, dbias from dout, using the saved mean/rstd. */
  layerNormBackward(
    dinp: F32,
    dweight: F32,
    dbias: F32,
    dout: F32,
    inp: F32,
    weight: F32,
    mean: F32,
    rstd: F32,
    rows: number,
    cols: number,
  ): void;

  /** Exact GELU: out = x * 0.5 * (1 + erf(x / sqrt(2))). `out` may alias `inp`. */
  geluForward(out: F32, inp: F32, n: number): void;
  /** dinp += dout * gelu'(inp). */
  geluBackward(dinp: F32, inp: F32, dout: F32, n: number): void;

  /** out[r,:] = softmax(scale * inp[r,:]) (max-subtracted). `out` may alias `inp`. */
  softmaxForward(out: F32, inp: F32, rows: number, cols: number, scale: number): void;
  /** Given out = softmax(scale*x): dinp += scale * out * (dout - sum(dout*out)). */
  softmaxBackward(dinp: F32, out: F32, dout: F32, rows: number, cols: number, scale: number): void;

  /** x[r,c] += bias[c], in place. */
  biasAdd(x: F32, bias: F32, rows: number, cols: number): void;
  /** dbias[c] += sum_r dout[r,c]. */
  biasBackward(dbias: F32, dout: F32, rows: number, cols: number): void;
  /** out = a + b elementwise (out may alias a or b). */
  add(out: F32, a: F32, b: F32, n: number): void;
  /** y += alpha * x (gradient accumulation, scaling). */
  axpy(y: F32, x: F32, alpha: number, n: number): void;

  /**
   * Multi-head self-attention core over a packed qkv, as timm 0.4.5 Attention:
   * qkv [B,T,3C] with q = cols 0..C-1, k = C..2C-1, v = 2C..3C-1, head h = cols h*hd..(h+1)*hd-1
   * inside each (hd = C/H). Writes out [B,T,C] (heads concatenated, before `proj`) and the
   * attention probabilities att [B,H,T,T] = softmax(scale * q·kᵀ), saved for backward.
   */
  attentionForward(
    out: F32,
    att: F32,
    qkv: F32,
    B: number,
    T: number,
    C: number,
    H: number,
    scale: number,
    bf16: boolean,
  ): void;
  /**
   * Accumulates dqkv [B,T,3C] from dout [B,T,C], given qkv and the saved att.
   * scratch: at least B*H*T*T floats, overwritten.
   */
  attentionBackward(
    dqkv: F32,
    scratch: F32,
    dout: F32,
    qkv: F32,
    att: F32,
    B: number,
    T: number,
    C: number,
    H: number,
    scale: number,
    bf16: boolean,
  ): void;

  /** out[i,:] = inp[index[i],:] for i < nIndex (rows of width cols). */
  gatherRows(out: F32, inp: F32, index: I32, nIndex: number, cols: number): void;
  /** out[index[i],:] += inp[i,:] (the backward of gatherRows). */
  scatterAddRows(out: F32, inp: F32, index: I32, nIndex: number, cols: number): void;

  /** out[b,:] = mean over t of inp[b,t,:], inp [B,T,D]. */
  meanPool(out: F32, inp: F32, B: number, T: number, D: number): void;
  /** dinp[b,t,:] += dout[b,:] / T. */
  meanPoolBackward(dinp: F32, dout: F32, B: number, T: number, D: number): void;

  /** out[r,:] = inp[r,:] / max(||inp[r,:]||, eps); writes norms[r] = ||inp[r,:]||. */
  l2Normalize(out: F32, norms: F32, inp: F32, rows: number, cols: number, eps: number): void;
  /** Accumulates dinp given out (the normalised rows), norms and dout. */
  l2NormalizeBackward(
    dinp: F32,
    dout: F32,
    out: F32,
    norms: F32,
    rows: number,
    cols: number,
    eps: number,
  ): void;

  /**
   * One Adam step over a flat buffer, as torch.optim.Adam / AdamW (step is 1-based):
   * decoupled=false (Adam, L2):   g = grad + wd * p
   * decoupled=true  (AdamW):      p *= 1 - lr * wd
   * m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g²;
   * p -= (lr / (1-b1^step)) * m / (sqrt(v) / sqrt(1-b2^step) + eps)
   * in exactly PyTorch's order of float32 operations (the TS reference matches torch to 0 ulp).
   */
  adamUpdate(
    param: F32,
    grad: F32,
    m: F32,
    v: F32,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    decoupled: boolean,
  ): void;

  /** Round-to-nearest-even fp32 -> bf16 (NaN stays NaN). */
  f32ToBf16(out: BF16, inp: F32, n: number): void;
  bf16ToF32(out: F32, inp: BF16, n: number): void;
}
