/**
 * Tensor element types shared by the safetensors and .pth readers, named as safetensors names
 * them. Contract: raw storage of every dtype is one typed array (F16/BF16 as Uint16Array bit
 * patterns, BOOL as Uint8Array); `toFloat32` is the single place where other dtypes become F32.
 */
export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

export type TensorData = Float32Array | Int32Array | Uint8Array | Uint16Array | Float64Array | BigInt64Array;

export interface RawTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export const ITEM_SIZE: Record<Dtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  BOOL: 1,
};

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ITEM_SIZE, s);
}

/** The typed array holding each dtype's raw storage. */
const ARRAY_OF: Record<Dtype, new (buffer: ArrayBuffer, byteOffset: number, count: number) => TensorData> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** A typed array of `dtype` over `bytes` (which must be aligned to the item size). */
export function typedView(dtype: Dtype, buffer: ArrayBuffer, byteOffset: number, count: number): TensorData {
  return new ARRAY_OF[dtype](buffer, byteOffset, count);
}

export function allocTyped(dtype: Dtype, count: number): TensorData {
  return typedView(dtype, new ArrayBuffer(count * ITEM_SIZE[dtype]), 0, count);
}

/** The safetensors dtype a typed array holds unambiguously (Uint16Array needs an explicit F16/BF16). */
export function dtypeOfArray(data: ArrayBufferView): Dtype | undefined {
  const unambiguous: Dtype[] = ['F32', 'F64', 'I32', 'I64', 'U8'];
  return unambiguous.find((d) => data instanceof ARRAY_OF[d]);
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and zero)
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Every tensor as float32 (F32 data is used as read, without a copy). */
export function toF32Tensors(raw: ReadonlyMap<string, RawTensor>): Map<string, F32Tensor> {
  const out = new Map<string, F32Tensor>();
  for (const [name, t] of raw) out.set(name, { shape: t.shape, data: toFloat32(t.dtype, t.data) });
  return out;
}

/** Converts any supported dtype to a new Float32Array (F32 input is copied only if `copy`). */
export function toFloat32(dtype: Dtype, data: TensorData, copy = false): Float32Array {
  const n = data.length;
  switch (dtype) {
    case 'F32':
      return copy ? (data as Float32Array).slice() : (data as Float32Array);
    case 'BF16': {
      const src = data as Uint16Array;
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      const src = data as Uint16Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16ToF32(src[i]);
      return out;
    }
    case 'I64': {
      const src = data as BigInt64Array;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    default:
      // F64, I32, U8, BOOL: the typed-array constructor rounds to nearest like a C cast to float.
      return Float32Array.from(data as Float64Array | Int32Array | Uint8Array);
  }
}
