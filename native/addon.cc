// N-API surface of the native kernels: exactly the functions of the `Kernels` interface in
// src/kernels/api.ts (same names, same positional arguments), plus info(), gemmInfo(), copy()
// and peakProbe() for the benchmark. Bindings only: argument checking and the call; the
// kernels live in gemm.cc, attention*.cc, kernels_impl.h, their scratch in scratch.cc and the
// benchmark's probes in probe.cc.
//
// Contract: typed arrays are used in place (zero-copy); every argument is checked before any
// memory is touched: a wrong type throws TypeError, a size that is not a non-negative integer or
// a buffer shorter than its sizes require throws RangeError, and an out-of-range row index throws
// RangeError. Buffers longer than required are fine (views into arenas). Argument parsing uses the
// raw N-API calls (one napi_get_typedarray_info per array) to keep the per-call overhead well
// under a microsecond.
#include <napi.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <cmath>
#include <string>

#include "attention.h"
#include "attention_int8.h"
#include "gemm.h"
#include "gemm_int8.h"
#include "kernels.h"
#include "pool.h"
#include "probe.h"

namespace {

constexpr double kMaxSize = 1099511627776.0;  // 2^40: far beyond any buffer, far below 2^53

class Args {
 public:
  Args(napi_env env, napi_callback_info cb) : env_(env), fn_("") {
    argc_ = 16;
    napi_get_cb_info(env_, cb, &argc_, argv_, nullptr, nullptr);
  }
  // Names the function for messages and checks the argument count.
  void expect(const char* fn, size_t expected) {
    fn_ = fn;
    if (argc_ < expected)
      throw Napi::TypeError::New(env_, std::string(fn_) + ": expected " + std::to_string(expected) +
                                           " arguments, got " + std::to_string(argc_));
  }

  double number(size_t i, const char* name) const {
    double x;
    if (napi_get_value_double(env_, argv_[i], &x) != napi_ok)
      throw Napi::TypeError::New(env_, prefix(name) + " must be a number");
    return x;
  }

  long size(size_t i, const char* name) const {
    double x = number(i, name);
    if (!(x >= 0 && x <= kMaxSize) || std::floor(x) != x)
      throw Napi::RangeError::New(env_, prefix(name) + " must be a non-negative integer, got " + fmt(x));
    return (long)x;
  }

  bool boolean(size_t i, const char* name) const {
    bool b;
    if (napi_get_value_bool(env_, argv_[i], &b) != napi_ok)
      throw Napi::TypeError::New(env_, prefix(name) + " must be a boolean");
    return b;
  }

  // A typed array of the given type holding at least `need` elements.
  void* array(size_t i, const char* name, napi_typedarray_type want, double need) const {
    napi_typedarray_type t;
    size_t len;
    void* data;
    bool ok = napi_get_typedarray_info(env_, argv_[i], &t, &len, &data, nullptr, nullptr) == napi_ok;
    if (!ok || t != want) throw Napi::TypeError::New(env_, prefix(name) + " must be a " + type_name(want));
    if ((double)len < need)
      throw Napi::RangeError::New(env_, prefix(name) + " has " + std::to_string(len) + " elements, the sizes need " +
                                            fmt(need));
    return data;
  }
  float* f32(size_t i, const char* name, double need) const {
    return static_cast<float*>(array(i, name, napi_float32_array, need));
  }
  uint16_t* u16(size_t i, const char* name, double need) const {
    return static_cast<uint16_t*>(array(i, name, napi_uint16_array, need));
  }
  uint8_t* u8(size_t i, const char* name, double need) const {
    return static_cast<uint8_t*>(array(i, name, napi_uint8_array, need));
  }
  int32_t* i32(size_t i, const char* name, double need, size_t* len_out) const {
    napi_typedarray_type t;
    size_t len;
    void* data;
    bool ok = napi_get_typedarray_info(env_, argv_[i], &t, &len, &data, nullptr, nullptr) == napi_ok;
    if (!ok || t != napi_int32_array) throw Napi::TypeError::New(env_, prefix(name) + " must be an Int32Array");
    if ((double)len < need)
      throw Napi::RangeError::New(env_, prefix(name) + " has " + std::to_string(len) + " elements, needs " + fmt(need));
    *len_out = len;
    return static_cast<int32_t*>(data);
  }
  // Length (elements) of a typed array already checked by array().
  size_t length(size_t i) const {
    size_t len = 0;
    napi_get_typedarray_info(env_, argv_[i], nullptr, &len, nullptr, nullptr, nullptr);
    return len;
  }

  Napi::Env env() const { return Napi::Env(env_); }
  napi_value raw(size_t i) const { return argv_[i]; }

  [[noreturn]] void type_error(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
  }

  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
  }

 private:
  std::string prefix(const char* name) const { return std::string(fn_) + ": " + name; }
  static std::string fmt(double x) {
    if (std::floor(x) == x && std::fabs(x) < 1e15) return std::to_string((long long)x);
    return std::to_string(x);
  }
  static const char* type_name(napi_typedarray_type t) {
    switch (t) {
      case napi_float32_array: return "Float32Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_int32_array: return "Int32Array";
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      default: return "typed array";
    }
  }
  napi_env env_;
  const char* fn_;
  size_t argc_;
  napi_value argv_[16];
};

const KernelTable& K() { return select_kernels(); }

// Runs a body; a C++ failure (oneDNN error, bad_alloc) propagates to entry() as std::exception.
template <class F>
napi_value guarded(F body) {
  body();
  return nullptr;
}

// Asynchronous signals (SIGCHLD when a child process ends, SIGINT, ...) are blocked on the calling
// thread while a kernel runs, so the kernel delivers them to another thread of the process (libuv's
// handlers only write to a pipe, from any thread). Without this, the sync-e2e test process (media
// decoded by ffmpeg children while the model runs) aborted now and then with glibc's "corrupted
// size vs. prev_size": AddressSanitizer caught libuv's SIGCHLD handler writing its stack frame
// into heap memory while the main thread was inside a oneDNN kernel, and the corrupted words were
// a signal frame's saved AVX-512 state (opmasks 0xffff, 0x0f0f, 0xf0f0; vector registers).
// Synchronous signals (faults, abort) stay deliverable here.
class AsyncSignalsBlocked {
 public:
  AsyncSignalsBlocked() { pthread_sigmask(SIG_BLOCK, &async_signals(), &saved_); }
  ~AsyncSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  // Built once: every kernel call goes through here.
  static const sigset_t& async_signals() {
    static const sigset_t set = [] {
      sigset_t s;
      sigfillset(&s);
      for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&s, sig);
      return s;
    }();
    return set;
  }
  sigset_t saved_;
};

// The N-API callback for a kernel: parses the arguments, runs it, and turns every C++ exception
// into a pending JS exception (nothing ever unwinds into V8).
template <napi_value (*Fn)(Args&)>
napi_value entry(napi_env env, napi_callback_info cb) {
  AsyncSignalsBlocked quiet;
  try {
    Args a(env, cb);
    return Fn(a);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("cavmae native: ") + e.what()).c_str());
  }
  return nullptr;
}

// ---------------- threads ----------------

napi_value SetThreads(Args& a) {
  a.expect("setThreads", 1);
  long n = a.size(0, "n");
  if (n < 1 || n > 1024) a.range_error("n must be between 1 and 1024");
  cavmae_set_threads((int)n);
  return nullptr;
}

napi_value GetThreads(Args& a) { return Napi::Number::New(a.env(), cavmae_threads()); }

// ---------------- GEMM ----------------

napi_value Matmul(Args& a) {
  a.expect("matmul", 11);
  long m = a.size(3, "m"), n = a.size(4, "n"), k = a.size(5, "k");
  bool ta = a.boolean(6, "transA"), tb = a.boolean(7, "transB");
  float alpha = (float)a.number(8, "alpha"), beta = (float)a.number(9, "beta");
  bool bf16 = a.boolean(10, "bf16");
  const float* A = a.f32(0, "a", (double)m * k);
  const float* B = a.f32(1, "b", (double)k * n);
  float* C = a.f32(2, "c", (double)m * n);
  return guarded([&] { matmul_batched(A, B, C, 1, m, n, k, ta, tb, 0, 0, 0, alpha, beta, bf16); });
}

// A Float32Array, or (when bf16 is allowed) a Uint16Array of bf16 values, of at least `need` elements.
const void* f32_or_bf16(Args& a, size_t i, const char* name, double need, bool allow_bf16, bool* is_bf16) {
  napi_typedarray_type t;
  size_t len;
  void* data;
  napi_env env = a.env();
  bool ok = napi_get_typedarray_info(env, a.raw(i), &t, &len, &data, nullptr, nullptr) == napi_ok;
  if (ok && t == napi_uint16_array && !allow_bf16) a.type_error(std::string(name) + " is a Uint16Array (bf16) but bf16 is false");
  if (!ok || (t != napi_float32_array && t != napi_uint16_array))
    a.type_error(std::string(name) + " must be a Float32Array (or a Uint16Array of bf16 values)");
  if ((double)len < need) a.range_error(std::string(name) + " has " + std::to_string(len) + " elements, the sizes need " + std::to_string((long long)need));
  *is_bf16 = t == napi_uint16_array;
  return data;
}

bool is_nullish(Args& a, size_t i) {
  napi_valuetype vt;
  napi_typeof(a.env(), a.raw(i), &vt);
  return vt == napi_null || vt == napi_undefined;
}

// A Float32Array of at least `need` elements, or null/undefined (returns nullptr).
float* optional_f32(Args& a, size_t i, const char* name, double need) {
  return is_nullish(a, i) ? nullptr : a.f32(i, name, need);
}

napi_value GemmEx(Args& a) {
  a.expect("gemmEx", 14);
  long m = a.size(3, "m"), n = a.size(4, "n"), k = a.size(5, "k");
  bool ta = a.boolean(6, "transA"), tb = a.boolean(7, "transB");
  float alpha = (float)a.number(8, "alpha"), beta = (float)a.number(9, "beta");
  bool bf16 = a.boolean(10, "bf16");
  long kind = a.size(12, "epilogue");
  if (kind > 2) a.range_error("epilogue must be 0 (none), 1 (GELU) or 2 (add)");
  bool a16, b16;
  const void* A = f32_or_bf16(a, 0, "a", (double)m * k, bf16, &a16);
  const void* B = f32_or_bf16(a, 1, "b", (double)k * n, bf16, &b16);
  // out16 (optional): the result rounded to bf16 as well; with c null, only that.
  uint16_t* out16 = is_nullish(a, 14) ? nullptr : a.u16(14, "out16", (double)m * n);
  float* C = nullptr;
  if (is_nullish(a, 2)) {
    if (!out16) a.type_error("c is null: then out16 (a Uint16Array) must be given");
    if (beta != 0.0f) a.range_error("c is null: beta must be 0");
  } else {
    C = a.f32(2, "c", (double)m * n);
  }
  const float* bias = optional_f32(a, 11, "bias", (double)n);
  float* aux = optional_f32(a, 13, "aux", (double)m * n);
  if (kind == 2 && !aux) a.range_error("epilogue 2 (add) needs aux");
  GemmEpilogue epi{bias, (int)kind, aux, n};
  epi.out16 = out16;
  epi.ldout16 = n;
  bool any = bias || kind != 0 || out16;
  return guarded([&] { matmul_ex(A, a16, B, b16, C, m, n, k, ta, tb, alpha, beta, bf16, any ? &epi : nullptr); });
}

napi_value QuantizeWeightsInt8(Args& a) {
  a.expect("quantizeWeightsInt8", 6);
  long n = a.size(1, "n"), k = a.size(2, "k");
  const float* w = a.f32(0, "w", (double)n * k);
  int8_t* wq = static_cast<int8_t*>(a.array(3, "wq", napi_int8_array, (double)n * k));
  float* scale = a.f32(4, "scale", (double)n);
  int32_t* comp = static_cast<int32_t*>(a.array(5, "comp", napi_int32_array, (double)n));
  quantize_weights(w, n, k, wq, scale, comp);
  return nullptr;
}

napi_value GemmInt8(Args& a) {
  a.expect("gemmInt8", 11);
  long m = a.size(5, "m"), n = a.size(6, "n"), k = a.size(7, "k");
  long kind = a.size(9, "epilogue");
  if (kind > 2) a.range_error("epilogue must be 0 (none), 1 (GELU) or 2 (add)");
  // Optional (11, 12): x already quantised per row (u8 + 128, scales); then x may be null.
  const uint8_t* xq = is_nullish(a, 11) ? nullptr : a.u8(11, "xq", (double)m * k);
  const float* xs = xq ? a.f32(12, "xScale", (double)m) : nullptr;
  const float* x = xq && is_nullish(a, 0) ? nullptr : a.f32(0, "x", (double)m * k);
  // Optional (15): the weights in the packed layout as well (packWeightsInt8); wq may then be null.
  const uint8_t* wp = is_nullish(a, 15) ? nullptr : a.u8(15, "wPacked", (double)n * k);
  const int8_t* wq =
      wp && is_nullish(a, 1) ? nullptr : static_cast<const int8_t*>(a.array(1, "wq", napi_int8_array, (double)n * k));
  const float* ws = a.f32(2, "wScale", (double)n);
  const int32_t* wc = static_cast<const int32_t*>(a.array(3, "wComp", napi_int32_array, (double)n));
  // Optional (13, 14): the result quantised per row as well; then c may be null.
  uint8_t* out8 = is_nullish(a, 13) ? nullptr : a.u8(13, "out8", (double)m * n);
  float* out8s = out8 ? a.f32(14, "out8Scale", (double)m) : nullptr;
  float* c = out8 && is_nullish(a, 4) ? nullptr : a.f32(4, "c", (double)m * n);
  const float* bias = optional_f32(a, 8, "bias", (double)n);
  float* aux = optional_f32(a, 10, "aux", (double)m * n);
  if (kind == 2 && !aux) a.range_error("epilogue 2 (add) needs aux");
  return guarded([&] { matmul_int8(x, xq, xs, wq, ws, wc, c, m, n, k, bias, (int)kind, aux, out8, out8s, wp); });
}

napi_value PackWeightsInt8(Args& a) {
  a.expect("packWeightsInt8", 4);
  long n = a.size(1, "n"), k = a.size(2, "k");
  const int8_t* wq = static_cast<const int8_t*>(a.array(0, "wq", napi_int8_array, (double)n * k));
  uint8_t* out = a.u8(3, "out", (double)n * k);
  return guarded([&] { pack_weights_int8(wq, n, k, out); });
}

// Whether gemmInt8 of this shape runs our packed VNNI kernel when given packed weights.
napi_value PacksInt8Weights(Args& a) {
  a.expect("packsInt8Weights", 2);
  long n = a.size(0, "n"), k = a.size(1, "k");
  return Napi::Boolean::New(a.env(), int8_gemm_reads_packed(n, k));
}

double span(long batch, long stride, double per) { return batch == 0 || per == 0 ? 0 : (batch - 1) * (double)stride + per; }

napi_value MatmulBatched(Args& a) {
  a.expect("matmulBatched", 15);
  long batch = a.size(3, "batch"), m = a.size(4, "m"), n = a.size(5, "n"), k = a.size(6, "k");
  bool ta = a.boolean(7, "transA"), tb = a.boolean(8, "transB");
  long sa = a.size(9, "strideA"), sb = a.size(10, "strideB"), sc = a.size(11, "strideC");
  float alpha = (float)a.number(12, "alpha"), beta = (float)a.number(13, "beta");
  bool bf16 = a.boolean(14, "bf16");
  const float* A = a.f32(0, "a", span(batch, sa, (double)m * k));
  const float* B = a.f32(1, "b", span(batch, sb, (double)k * n));
  float* C = a.f32(2, "c", span(batch, sc, (double)m * n));
  return guarded([&] { matmul_batched(A, B, C, batch, m, n, k, ta, tb, sa, sb, sc, alpha, beta, bf16); });
}

// ---------------- LayerNorm ----------------

// What every LayerNorm forward takes after its output(s), from argument i on: mean, rstd, inp,
// weight, bias, rows, cols, eps.
struct LayerNormArgs {
  long rows, cols;
  double rc;  // rows * cols
  float eps;
  float *mean, *rstd;
  const float *inp, *w, *b;
};

LayerNormArgs layer_norm_args(Args& a, size_t i) {
  LayerNormArgs l;
  l.rows = a.size(i + 5, "rows");
  l.cols = a.size(i + 6, "cols");
  l.eps = (float)a.number(i + 7, "eps");
  l.rc = (double)l.rows * l.cols;
  l.mean = a.f32(i, "mean", l.rows);
  l.rstd = a.f32(i + 1, "rstd", l.rows);
  l.inp = a.f32(i + 2, "inp", l.rc);
  l.w = a.f32(i + 3, "weight", l.cols);
  l.b = a.f32(i + 4, "bias", l.cols);
  if (l.rows > 0 && l.cols == 0) a.range_error("cols must be positive");
  return l;
}

napi_value LayerNormForward(Args& a) {
  a.expect("layerNormForward", 9);
  LayerNormArgs l = layer_norm_args(a, 1);
  float* out = a.f32(0, "out", l.rc);
  K().layernorm_forward(out, l.mean, l.rstd, l.inp, l.w, l.b, l.rows, l.cols, l.eps);
  return nullptr;
}

napi_value LayerNormBackward(Args& a) {
  a.expect("layerNormBackward", 10);
  long rows = a.size(8, "rows"), cols = a.size(9, "cols");
  double rc = (double)rows * cols;
  float* dinp = a.f32(0, "dinp", rc);
  float* dw = a.f32(1, "dweight", cols);
  float* db = a.f32(2, "dbias", cols);
  const float* dout = a.f32(3, "dout", rc);
  const float* inp = a.f32(4, "inp", rc);
  const float* w = a.f32(5, "weight", cols);
  const float* mean = a.f32(6, "mean", rows);
  const float* rstd = a.f32(7, "rstd", rows);
  if (rows > 0 && cols == 0) a.range_error("cols must be positive");
  return guarded([&] { K().layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, rows, cols); });
}

// layerNormForward with the output quantised per row to u8 (+128) and scales (int8 GEMM input).
napi_value LayerNormForwardInt8(Args& a) {
  a.expect("layerNormForwardInt8", 10);
  LayerNormArgs l = layer_norm_args(a, 2);
  uint8_t* q = a.u8(0, "q", l.rc);
  float* qs = a.f32(1, "qScale", l.rows);
  K().layernorm_forward_u8(q, qs, l.mean, l.rstd, l.inp, l.w, l.b, l.rows, l.cols, l.eps);
  return nullptr;
}

// layerNormForward with the output rounded to bf16 (the operand of a bf16 GEMM).
napi_value LayerNormForwardBf16(Args& a) {
  a.expect("layerNormForwardBf16", 9);
  LayerNormArgs l = layer_norm_args(a, 1);
  uint16_t* out16 = a.u16(0, "out16", l.rc);
  K().layernorm_forward_bf16(out16, l.mean, l.rstd, l.inp, l.w, l.b, l.rows, l.cols, l.eps);
  return nullptr;
}

// ---------------- GELU ----------------

napi_value GeluForward(Args& a) {
  a.expect("geluForward", 3);
  long n = a.size(2, "n");
  float* out = a.f32(0, "out", n);
  const float* inp = a.f32(1, "inp", n);
  K().gelu_forward(out, inp, n);
  return nullptr;
}

napi_value GeluForwardBf16(Args& a) {
  a.expect("geluForwardBf16", 3);
  long n = a.size(2, "n");
  uint16_t* out16 = a.u16(0, "out16", n);
  const float* inp = a.f32(1, "inp", n);
  K().gelu_forward_bf16(out16, inp, n);
  return nullptr;
}

napi_value GeluBackward(Args& a) {
  a.expect("geluBackward", 4);
  long n = a.size(3, "n");
  float* dinp = a.f32(0, "dinp", n);
  const float* inp = a.f32(1, "inp", n);
  const float* dout = a.f32(2, "dout", n);
  K().gelu_backward(dinp, inp, dout, n);
  return nullptr;
}

// ---------------- softmax ----------------

napi_value SoftmaxForward(Args& a) {
  a.expect("softmaxForward", 5);
  long rows = a.size(2, "rows"), cols = a.size(3, "cols");
  float scale = (float)a.number(4, "scale");
  float* out = a.f32(0, "out", (double)rows * cols);
  const float* inp = a.f32(1, "inp", (double)rows * cols);
  if (cols > 0) K().softmax_forward(out, inp, rows, cols, scale);
  return nullptr;
}

napi_value SoftmaxBackward(Args& a) {
  a.expect("softmaxBackward", 6);
  long rows = a.size(3, "rows"), cols = a.size(4, "cols");
  float scale = (float)a.number(5, "scale");
  double rc = (double)rows * cols;
  float* dinp = a.f32(0, "dinp", rc);
  const float* out = a.f32(1, "out", rc);
  const float* dout = a.f32(2, "dout", rc);
  if (cols > 0) K().softmax_backward(dinp, out, dout, rows, cols, scale, true);
  return nullptr;
}

// ---------------- bias, residual ----------------

napi_value BiasAdd(Args& a) {
  a.expect("biasAdd", 4);
  long rows = a.size(2, "rows"), cols = a.size(3, "cols");
  float* x = a.f32(0, "x", (double)rows * cols);
  const float* b = a.f32(1, "bias", cols);
  K().bias_add(x, b, rows, cols);
  return nullptr;
}

napi_value BiasBackward(Args& a) {
  a.expect("biasBackward", 4);
  long rows = a.size(2, "rows"), cols = a.size(3, "cols");
  float* db = a.f32(0, "dbias", cols);
  const float* dout = a.f32(1, "dout", (double)rows * cols);
  K().bias_backward(db, dout, rows, cols);
  return nullptr;
}

napi_value Add(Args& a) {
  a.expect("add", 4);
  long n = a.size(3, "n");
  float* out = a.f32(0, "out", n);
  const float* x = a.f32(1, "a", n);
  const float* y = a.f32(2, "b", n);
  K().add(out, x, y, n);
  return nullptr;
}

napi_value Axpy(Args& a) {
  a.expect("axpy", 4);
  float alpha = (float)a.number(2, "alpha");
  long n = a.size(3, "n");
  float* y = a.f32(0, "y", n);
  const float* x = a.f32(1, "x", n);
  K().axpy(y, x, alpha, n);
  return nullptr;
}

// ---------------- attention ----------------

void check_heads(const Args& a, long C, long H) {
  if (H < 1) a.range_error("H must be at least 1");
  if (C % H != 0) a.range_error("C (" + std::to_string(C) + ") must be a multiple of H (" + std::to_string(H) + ")");
}

napi_value AttentionForward(Args& a) {
  a.expect("attentionForward", 9);
  long B = a.size(3, "B"), T = a.size(4, "T"), C = a.size(5, "C"), H = a.size(6, "H");
  float scale = (float)a.number(7, "scale");
  bool bf16 = a.boolean(8, "bf16");
  check_heads(a, C, H);
  float* out = a.f32(0, "out", (double)B * T * C);
  // An empty att: the probabilities are not kept (the backward recomputes them).
  float* att = a.f32(1, "att", 0);
  att = a.length(1) == 0 && B * H * T > 0 ? nullptr : a.f32(1, "att", (double)B * H * T * T);
  const float* qkv = a.f32(2, "qkv", 3.0 * B * T * C);
  return guarded([&] { attention_forward(out, att, qkv, B, T, C, H, scale, bf16); });
}

napi_value AttentionBackward(Args& a) {
  a.expect("attentionBackward", 11);
  long B = a.size(5, "B"), T = a.size(6, "T"), C = a.size(7, "C"), H = a.size(8, "H");
  float scale = (float)a.number(9, "scale");
  bool bf16 = a.boolean(10, "bf16");
  check_heads(a, C, H);
  float* dqkv = a.f32(0, "dqkv", 3.0 * B * T * C);
  // The native backward works one head at a time in per-thread scratch: the argument is kept for
  // the interface (the TypeScript reference uses it) and may be any Float32Array, even empty.
  float* scratch = a.f32(1, "scratch", 0);
  const float* dout = a.f32(2, "dout", (double)B * T * C);
  const float* qkv = a.f32(3, "qkv", 3.0 * B * T * C);
  const float* att = a.f32(4, "att", 0);
  att = a.length(4) == 0 && B * H * T > 0 ? nullptr : a.f32(4, "att", (double)B * H * T * T);
  return guarded([&] { attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, H, scale, bf16); });
}

napi_value AttentionInference(Args& a) {
  a.expect("attentionInference", 8);
  long B = a.size(2, "B"), T = a.size(3, "T"), C = a.size(4, "C"), H = a.size(5, "H");
  float scale = (float)a.number(6, "scale");
  long precision = a.size(7, "precision");
  if (precision > 2) a.range_error("precision must be 0 (fp32), 1 (bf16) or 2 (int8)");
  check_heads(a, C, H);
  float* out = a.f32(0, "out", (double)B * T * C);
  const float* qkv = a.f32(1, "qkv", 3.0 * B * T * C);
  return guarded([&] { attention_inference(out, qkv, B, T, C, H, scale, (int)precision); });
}

// ---------------- gather / scatter ----------------

// Every index must name a row of a buffer holding `rows` rows.
void check_index(const Args& a, const int32_t* index, long n, long rows, const char* what) {
  for (long i = 0; i < n; i++) {
    if (index[i] < 0 || index[i] >= rows)
      a.range_error(std::string("index[") + std::to_string(i) + "] = " + std::to_string(index[i]) + " is outside " +
                    what + " (" + std::to_string(rows) + " rows)");
  }
}

napi_value GatherRows(Args& a) {
  a.expect("gatherRows", 5);
  long n = a.size(3, "nIndex"), cols = a.size(4, "cols");
  size_t ilen;
  float* out = a.f32(0, "out", (double)n * cols);
  const float* inp = a.f32(1, "inp", 0);
  const int32_t* index = a.i32(2, "index", n, &ilen);
  check_index(a, index, n, cols == 0 ? 0x7fffffffL : (long)(a.length(1) / cols), "inp");
  if (cols == 0) return nullptr;
  K().gather_rows(out, inp, index, n, cols);
  return nullptr;
}

napi_value ScatterAddRows(Args& a) {
  a.expect("scatterAddRows", 5);
  long n = a.size(3, "nIndex"), cols = a.size(4, "cols");
  size_t ilen;
  float* out = a.f32(0, "out", 0);
  const float* inp = a.f32(1, "inp", (double)n * cols);
  const int32_t* index = a.i32(2, "index", n, &ilen);
  check_index(a, index, n, cols == 0 ? 0x7fffffffL : (long)(a.length(0) / cols), "out");
  if (cols == 0) return nullptr;
  K().scatter_add_rows(out, inp, index, n, cols);
  return nullptr;
}

// ---------------- pooling, normalisation ----------------

napi_value MeanPool(Args& a) {
  a.expect("meanPool", 5);
  long B = a.size(2, "B"), T = a.size(3, "T"), D = a.size(4, "D");
  float* out = a.f32(0, "out", (double)B * D);
  const float* inp = a.f32(1, "inp", (double)B * T * D);
  K().mean_pool(out, inp, B, T, D);
  return nullptr;
}

napi_value MeanPoolBackward(Args& a) {
  a.expect("meanPoolBackward", 5);
  long B = a.size(2, "B"), T = a.size(3, "T"), D = a.size(4, "D");
  float* dinp = a.f32(0, "dinp", (double)B * T * D);
  const float* dout = a.f32(1, "dout", (double)B * D);
  K().mean_pool_backward(dinp, dout, B, T, D);
  return nullptr;
}

napi_value L2Normalize(Args& a) {
  a.expect("l2Normalize", 6);
  long rows = a.size(3, "rows"), cols = a.size(4, "cols");
  float eps = (float)a.number(5, "eps");
  float* out = a.f32(0, "out", (double)rows * cols);
  float* norms = a.f32(1, "norms", rows);
  const float* inp = a.f32(2, "inp", (double)rows * cols);
  K().l2_normalize(out, norms, inp, rows, cols, eps);
  return nullptr;
}

napi_value L2NormalizeBackward(Args& a) {
  a.expect("l2NormalizeBackward", 7);
  long rows = a.size(4, "rows"), cols = a.size(5, "cols");
  float eps = (float)a.number(6, "eps");
  double rc = (double)rows * cols;
  float* dinp = a.f32(0, "dinp", rc);
  const float* dout = a.f32(1, "dout", rc);
  const float* out = a.f32(2, "out", rc);
  const float* norms = a.f32(3, "norms", rows);
  K().l2_normalize_backward(dinp, dout, out, norms, rows, cols, eps);
  return nullptr;
}

// ---------------- optimiser ----------------

napi_value AdamUpdate(Args& a) {
  a.expect("adamUpdate", 12);
  long n = a.size(4, "n");
  double lr = a.number(5, "lr"), beta1 = a.number(6, "beta1"), beta2 = a.number(7, "beta2");
  double eps = a.number(8, "eps"), wd = a.number(9, "weightDecay");
  long step = a.size(10, "step");
  bool decoupled = a.boolean(11, "decoupled");
  if (step < 1) a.range_error("step is 1-based and must be at least 1");
  float* p = a.f32(0, "param", n);
  const float* g = a.f32(1, "grad", n);
  float* m = a.f32(2, "m", n);
  float* v = a.f32(3, "v", n);
  // As torch: scalars in double, then used as fp32.
  AdamScalars s;
  s.beta1 = (float)beta1;
  s.one_minus_beta1 = (float)(1.0 - beta1);
  s.beta2 = (float)beta2;
  s.one_minus_beta2 = (float)(1.0 - beta2);
  s.weight_decay = (float)wd;
  s.decay = (float)(1.0 - lr * wd);
  s.bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, (double)step));
  s.neg_step_size = (float)(-(lr / (1.0 - std::pow(beta1, (double)step))));
  s.eps = (float)eps;
  s.l2 = !decoupled && wd != 0.0;
  s.decoupled_decay = decoupled && wd != 0.0;
  K().adam_update(p, g, m, v, n, s);
  return nullptr;
}

// ---------------- bf16 ----------------

napi_value F32ToBf16(Args& a) {
  a.expect("f32ToBf16", 3);
  long n = a.size(2, "n");
  uint16_t* out = a.u16(0, "out", n);
  const float* inp = a.f32(1, "inp", n);
  K().f32_to_bf16(out, inp, n);
  return nullptr;
}

napi_value Bf16ToF32(Args& a) {
  a.expect("bf16ToF32", 3);
  long n = a.size(2, "n");
  float* out = a.f32(0, "out", n);
  const uint16_t* inp = a.u16(1, "inp", n);
  K().bf16_to_f32(out, inp, n);
  return nullptr;
}

// ---------------- diagnostics for the benchmark ----------------

napi_value Info(Args& a) {
  Napi::Env env = a.env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", K().isa);
  o.Set("dnnlVersion", dnnl_version_string());
  o.Set("dnnlIsa", dnnl_isa_string());
  o.Set("dnnlThreading", "openmp");
  o.Set("kernelThreading", "pool");
  o.Set("threads", cavmae_threads());
  o.Set("procs", omp_get_num_procs());
  o.Set("parallelMinBytes", (double)cavmae_parallel_min_bytes());
  o.Set("gemmMinFlops", cavmae_gemm_min_flops());
  o.Set("gemmThreading", gemm_threading_name());
  o.Set("int8Gemm", gemm_int8_path());
  o.Set("f32Gemm", gemm_f32_path());
  o.Set("bf16Gemm", gemm_bf16_path());
  o.Set("int8Attention", attn_int8_available());
  o.Set("compiler", "gcc " __VERSION__);
  return o;
}

// The implementation oneDNN picks for an (m, n, k) matmul, e.g. "brg:avx512_core".
napi_value GemmInfo(Args& a) {
  a.expect("gemmInfo", 6);
  long m = a.size(0, "m"), n = a.size(1, "n"), k = a.size(2, "k");
  bool ta = a.boolean(3, "transA"), tb = a.boolean(4, "transB"), bf16 = a.boolean(5, "bf16");
  GemmShape s{1, 1, m, n, k};
  return Napi::String::New(a.env(), gemm_impl_name(s, ta, tb, bf16));
}

// peakProbe(kind, threads, ms): the machine's raw arithmetic peak for the benchmark (probe.h).
// kind 0: fp32 FMA GFLOP/s, 1: bf16 vdpbf16ps GFLOP/s (0 without AVX512-BF16), 2: clock in GHz,
// 3: int8 vpdpbusd GOP/s (0 without AVX512-VNNI), 4: int8 AMX tdpbusd GOP/s, 5: bf16 AMX
// tdpbf16ps GFLOP/s (0 without AMX).
napi_value PeakProbe(Args& a) {
  a.expect("peakProbe", 3);
  long kind = a.size(0, "kind"), threads = a.size(1, "threads");
  double ms = a.number(2, "ms");
  if (kind > 5)
    a.range_error("kind must be 0 (fp32), 1 (bf16), 2 (clock), 3 (int8), 4 (int8 AMX) or 5 (bf16 AMX)");
  if (threads < 1 || threads > 1024) a.range_error("threads must be between 1 and 1024");
  if (!(ms > 0 && ms <= 60000)) a.range_error("ms must be in (0, 60000]");
  if (kind == 2) return Napi::Number::New(a.env(), probe_clock_ghz(ms));
  return Napi::Number::New(a.env(), probe_peak_gflops((int)kind, (int)threads, ms));
}

// dst = src (n floats), threaded like the kernels: the memory-bandwidth probe.
napi_value Copy(Args& a) {
  a.expect("copy", 3);
  long n = a.size(2, "n");
  float* dst = a.f32(0, "dst", n);
  const float* src = a.f32(1, "src", n);
  K().copy(dst, src, n);
  return nullptr;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  struct Fn {
    const char* name;
    napi_callback fn;
  };
  static const Fn fns[] = {
      {"setThreads", entry<SetThreads>},
      {"getThreads", entry<GetThreads>},
      {"matmul", entry<Matmul>},
      {"matmulBatched", entry<MatmulBatched>},
      {"gemmEx", entry<GemmEx>},
      {"gemmInt8", entry<GemmInt8>},
      {"packWeightsInt8", entry<PackWeightsInt8>},
      {"packsInt8Weights", entry<PacksInt8Weights>},
      {"quantizeWeightsInt8", entry<QuantizeWeightsInt8>},
      {"layerNormForward", entry<LayerNormForward>},
      {"layerNormBackward", entry<LayerNormBackward>},
      {"layerNormForwardInt8", entry<LayerNormForwardInt8>},
      {"layerNormForwardBf16", entry<LayerNormForwardBf16>},
      {"geluForward", entry<GeluForward>},
      {"geluForwardBf16", entry<GeluForwardBf16>},
      {"geluBackward", entry<GeluBackward>},
      {"softmaxForward", entry<SoftmaxForward>},
      {"softmaxBackward", entry<SoftmaxBackward>},
      {"biasAdd", entry<BiasAdd>},
      {"biasBackward", entry<BiasBackward>},
      {"add", entry<Add>},
      {"axpy", entry<Axpy>},
      {"attentionForward", entry<AttentionForward>},
      {"attentionBackward", entry<AttentionBackward>},
      {"attentionInference", entry<AttentionInference>},
      {"gatherRows", entry<GatherRows>},
      {"scatterAddRows", entry<ScatterAddRows>},
      {"meanPool", entry<MeanPool>},
      {"meanPoolBackward", entry<MeanPoolBackward>},
      {"l2Normalize", entry<L2Normalize>},
      {"l2NormalizeBackward", entry<L2NormalizeBackward>},
      {"adamUpdate", entry<AdamUpdate>},
      {"f32ToBf16", entry<F32ToBf16>},
      {"bf16ToF32", entry<Bf16ToF32>},
      {"info", entry<Info>},
      {"gemmInfo", entry<GemmInfo>},
      {"copy", entry<Copy>},
      {"peakProbe", entry<PeakProbe>},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    exports.Set(f.name, Napi::Value(env, fn));
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(cavmae_native, Init)
