/**
 * PyTorch `.pth` import: the zip format torch.save has written since 1.6 (released CAV-MAE and
 * MAE checkpoints). Legacy (pre-1.6 pickle-stream) files are refused with a clear message.
 *
 * Archive layout: `<prefix>/data.pkl` (the pickled object), `<prefix>/data/<key>` (one record
 * per storage), optional `<prefix>/byteorder` (torch >= 2.1). The prefix is whatever folder holds
 * data.pkl (torch uses the file's base name at save time; released files use other names).
 *
 * The pickle is decoded by the restricted unpickler (./pickle.ts) with an allow-list of exactly
 * what state dicts contain: collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
 * _rebuild_parameter / _rebuild_parameter_with_state, the typed storage classes (and
 * torch.storage.UntypedStorage, torch 2.x), and argparse.Namespace as an inert record (training
 * scripts save their args next to the model). Tensors honour storage offset, size and stride
 * (non-contiguous views are materialised; storages shared by several tensors are read once).
 * Storage records are read only for the tensors of the selected state dict, so optimizer state
 * in a full training checkpoint costs nothing.
 */
import { withFile, type ByteSource } from './bytes.js';
import { allocTyped, ITEM_SIZE, typedView, type Dtype, type RawTensor, type TensorData } from './dtypes.js';
import {
  unpickle,
  describeValue,
  PyDict,
  PyGlobal,
  PyTuple,
  type CallContext,
  type GlobalHandler,
  type PyExtension,
  type PyValue,
} from './pickle.js';
import { looksLikeZip, ZipArchive } from './zip.js';
import { fileError } from '../util/errors.js';

const MAX_RANK = 64;
const MAX_ELEMENTS = 2 ** 31 - 1;

/** torch storage class -> our dtype; null = a real torch type we do not import. The writer's table. */
export const STORAGE_DTYPES: Record<string, Dtype | null> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  ShortStorage: null,
  CharStorage: null,
  ComplexFloatStorage: null,
  ComplexDoubleStorage: null,
};

export interface PthStorage extends PyExtension {
  readonly pyKind: 'storage';
  readonly key: string;
  readonly dtype: Dtype | null;
  readonly typeName: string;
  readonly numel: number;
  readonly location: string;
}

export interface PthTensor extends PyExtension {
  readonly pyKind: 'tensor';
  readonly storage: PthStorage;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
  readonly numel: number;
}

function isTensor(v: PyValue): v is PthTensor {
  return typeof v === 'object' && v !== null && (v as PyExtension).pyKind === 'tensor';
}

function intArg(v: PyValue, ctx: CallContext, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    ctx.fail(`${what} must be a non-negative integer, got ${describeValue(v)} ${String(v)}`);
  return v as number;
}

function intTuple(v: PyValue, ctx: CallContext, what: string): number[] {
  if (!(v instanceof PyTuple)) ctx.fail(`${what} must be a tuple, got ${describeValue(v)}`);
  const items = (v as PyTuple).items;
  if (items.length > MAX_RANK) ctx.fail(`${what} has ${items.length} dimensions (more than ${MAX_RANK})`);
  return items.map((x, i) => intArg(x, ctx, `${what}[${i}]`));
}

/** Storage classes are only named inside persistent ids; they are never called. */
const STORAGE_TYPE: GlobalHandler = {};

/** The allow-list: every global a state-dict pickle may name, with what calling it does. */
function makeGlobals(): Map<string, GlobalHandler> {
  const globals = new Map<string, GlobalHandler>();
  globals.set('collections.OrderedDict', {
    call(args, ctx) {
      if (args.length !== 0) ctx.fail('collections.OrderedDict is only accepted with no arguments');
      return new PyDict('collections.OrderedDict');
    },
  });
  const rebuildTensor: GlobalHandler = {
    call(args, ctx) {
      // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.length < 6 || args.length > 7)
        ctx.fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
      const storage = args[0] as PthStorage;
      if (typeof storage !== 'object' || storage === null || (storage as PyExtension).pyKind !== 'storage')
        ctx.fail(`_rebuild_tensor_v2: first argument is a ${describeValue(args[0])}, not a storage`);
      const offset = intArg(args[1], ctx, 'storage offset');
      const shape = intTuple(args[2], ctx, 'size');
      const stride = intTuple(args[3], ctx, 'stride');
      if (shape.length !== stride.length)
        ctx.fail(`size has ${shape.length} dimensions but stride has ${stride.length}`);
      let numel = 1;
      for (const d of shape)
        numel = d === 0 || numel === 0 ? 0 : Math.min(numel * d, Number.MAX_SAFE_INTEGER);
      if (numel > 0) {
        if (numel > MAX_ELEMENTS)
          ctx.fail(`tensor of shape [${shape.join(', ')}] has more than ${MAX_ELEMENTS} elements`);
        // Stride-0 views may legitimately be larger than their storage, but not unboundedly so.
        if (numel > Math.max(storage.numel * 64, 1 << 20))
          ctx.fail(
            `tensor of shape [${shape.join(', ')}] is far larger than its ${storage.numel}-element storage`,
          );
        // Each step is checked on its own, so the sum cannot overflow into a false pass.
        let last = offset;
        for (let i = 0; i < shape.length && last < storage.numel; i++) {
          const reach = (shape[i] - 1) * stride[i];
          last = reach > storage.numel ? Infinity : last + reach;
        }
        if (last >= storage.numel)
          ctx.fail(
            `tensor view (offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}]) reaches outside its ${storage.numel}-element storage`,
          );
      }
      if (typeof args[4] !== 'boolean') ctx.fail('requires_grad must be a bool');
      const t: PthTensor = { pyKind: 'tensor', storage, offset, shape, stride, numel };
      return t;
    },
  };
  globals.set('torch._utils._rebuild_tensor_v2', rebuildTensor);
  const rebuildParameter = (n: number): GlobalHandler => ({
    call(args, ctx) {
      // _rebuild_parameter(data, requires_grad, backward_hooks[, state])
      if (args.length !== n) ctx.fail(`expected ${n} arguments, got ${args.length}`);
      if (!isTensor(args[0])) ctx.fail(`parameter data is a ${describeValue(args[0])}, not a tensor`);
      return args[0];
    },
  });
  globals.set('torch._utils._rebuild_parameter', rebuildParameter(3));
  globals.set('torch._utils._rebuild_parameter_with_state', rebuildParameter(4));
  for (const typeName of Object.keys(STORAGE_DTYPES)) globals.set(`torch.${typeName}`, STORAGE_TYPE);
  globals.set('torch.storage.UntypedStorage', STORAGE_TYPE);
  globals.set('torch.UntypedStorage', STORAGE_TYPE);
  globals.set('argparse.Namespace', { inertRecord: true });
  return globals;
}

function persistentLoader(): (pid: PyValue, ctx: CallContext) => PyValue {
  const seen = new Map<string, PthStorage>();
  return (pid, ctx) => {
    // ('storage', storage_type, key, location, numel)
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage')
      ctx.fail('persistent id is not a (storage, type, key, location, numel) tuple');
    const [, type, key, location, numelV] = (pid as PyTuple).items;
    if (!(type instanceof PyGlobal) || (type.module !== 'torch' && type.module !== 'torch.storage'))
      ctx.fail(`persistent id names ${describeValue(type)}, not a storage type`);
    const typeName = (type as PyGlobal).name;
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key))
      ctx.fail(`storage key ${JSON.stringify(key)} is not a plain name`);
    if (typeof location !== 'string') ctx.fail('storage location is not a string');
    const numel = intArg(numelV, ctx, 'storage size');
    const dtype = typeName === 'UntypedStorage' ? 'U8' : (STORAGE_DTYPES[typeName] ?? null);
    const prev = seen.get(key as string);
    if (prev) {
      if (prev.typeName !== typeName || prev.numel !== numel)
        ctx.fail(`storage "${key}" is declared twice with different types or sizes`);
      return prev;
    }
    const s: PthStorage = {
      pyKind: 'storage',
      key: key as string,
      dtype,
      typeName,
      numel,
      location: location as string,
    };
    seen.set(key as string, s);
    return s;
  };
}

export interface PthArchive {
  what: string;
  prefix: string;
  root: PyValue;
  /** Reads the tensors (materialised, contiguous, in their own dtype). */
  materialize(tensors: Map<string, PthTensor>): Map<string, RawTensor>;
}

/** Opens the archive, decodes data.pkl (no tensor data read yet) and calls fn. */
export function withPthArchive<T>(src: ByteSource, fn: (archive: PthArchive) => T): T {
  const what = src.what;
  const head = src.read(0, Math.min(4, src.size), 'file signature');
  if (!looksLikeZip(head)) {
    if (head[0] === 0x80)
      throw fileError(
        what,
        'legacy torch.save format (PyTorch < 1.6 or _use_new_zipfile_serialization=False) is not supported; re-save it with torch.save(obj, path) in PyTorch >= 1.6',
      );
    throw fileError(what, 'not a PyTorch checkpoint (no zip signature)');
  }
  const zip = new ZipArchive(src);
  const pkls = [...zip.entries.keys()].filter((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw fileError(
      what,
      pkls.length
        ? `several data.pkl records (${pkls.join(', ')})`
        : 'no data.pkl record: not a torch.save archive',
    );
  const prefix = pkls[0].slice(0, -'data.pkl'.length); // "name/" or ""
  if (zip.entries.has(`${prefix}constants.pkl`))
    throw fileError(what, 'this is a TorchScript archive (torch.jit.save), not a state dict');
  if (zip.entries.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little')
      throw fileError(what, `byte order "${order.slice(0, 20)}" is not supported (only little-endian)`);
  }
  const root = unpickle(zip.read(`${prefix}data.pkl`), {
    what: `${what} (${prefix}data.pkl)`,
    globals: makeGlobals(),
    persistentLoad: persistentLoader(),
  });

  const materialize = (tensors: Map<string, PthTensor>): Map<string, RawTensor> => {
    const users = new Map<string, number>();
    for (const t of tensors.values()) users.set(t.storage.key, (users.get(t.storage.key) ?? 0) + 1);
    const cache = new Map<string, TensorData>();
    const load = (s: PthStorage, dtype: Dtype): TensorData => {
      let data = cache.get(s.key);
      if (!data) {
        const record = `${prefix}data/${s.key}`;
        const bytes = zip.read(record);
        const need = s.numel * ITEM_SIZE[dtype];
        if (bytes.byteLength < need)
          throw fileError(what, `record ${record} has ${bytes.byteLength} bytes, its storage needs ${need}`);
        data = typedView(dtype, bytes.buffer as ArrayBuffer, bytes.byteOffset, s.numel);
        cache.set(s.key, data);
      }
      return data;
    };
    const out = new Map<string, RawTensor>();
    for (const [name, t] of tensors) {
      const dtype = t.storage.dtype;
      if (!dtype)
        throw fileError(
          what,
          `tensor "${name}" has storage type ${t.storage.typeName}, which is not supported`,
        );
      if (t.numel === 0) {
        out.set(name, { dtype, shape: t.shape, data: allocTyped(dtype, 0) });
        continue;
      }
      const storage = load(t.storage, dtype);
      out.set(name, {
        dtype,
        shape: t.shape,
        data: viewToContiguous(storage, t, users.get(t.storage.key) === 1),
      });
    }
    return out;
  };
  return fn({ what, prefix: prefix.replace(/\/$/, ''), root, materialize });
}

/** The tensor's elements in row-major order; shares the storage only when that is safe. */
function viewToContiguous(storage: TensorData, t: PthTensor, soleUser: boolean): TensorData {
  const { shape, stride, offset, numel } = t;
  let contiguous = true;
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) contiguous = false;
    expect *= shape[i];
  }
  if (contiguous) {
    if (soleUser && offset === 0 && numel === storage.length) return storage;
    return storage.slice(offset, offset + numel);
  }
  // Strided gather, odometer over the dimensions.
  const out = new (storage.constructor as { new (n: number): TensorData })(numel);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let src = offset;
  const dst = out as unknown as { [i: number]: number | bigint };
  const from = storage as unknown as { [i: number]: number | bigint };
  for (let i = 0; i < numel; i++) {
    dst[i] = from[src];
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      src += stride[d];
      if (index[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

/** The state dict in a decoded checkpoint: the root dict, or its "state_dict" / "model" entry. */
export function findStateDict(
  root: PyValue,
  what: string,
): { dict: Map<string, PthTensor>; nestedKey?: string } {
  const tensorsOf = (d: PyDict): Map<string, PthTensor> | undefined => {
    const out = new Map<string, PthTensor>();
    for (const [k, v] of d.map) {
      if (typeof k !== 'string' || !isTensor(v)) return undefined;
      out.set(k, v);
    }
    return out;
  };
  if (!(root instanceof PyDict))
    throw fileError(what, `the checkpoint holds a ${describeValue(root)}, not a state dict`);
  const direct = tensorsOf(root);
  if (direct && direct.size > 0) return { dict: direct };
  for (const key of ['state_dict', 'model']) {
    const inner = root.map.get(key);
    if (inner instanceof PyDict) {
      const dict = tensorsOf(inner);
      if (dict) return { dict, nestedKey: key };
    }
  }
  if (direct) return { dict: direct }; // an empty state dict
  const bad = [...root.map.entries()].find(([k, v]) => typeof k !== 'string' || !isTensor(v));
  const keys = [...root.map.keys()]
    .slice(0, 8)
    .map((k) => JSON.stringify(k))
    .join(', ');
  throw fileError(
    what,
    `not a state dict: entry ${JSON.stringify(bad?.[0])} is a ${describeValue(bad?.[1] ?? null)} (top-level keys: ${keys}); expected name -> tensor, or a dict with a "model" or "state_dict" entry holding one`,
  );
}

export interface PthStateDict {
  tensors: Map<string, RawTensor>;
  /** The archive's inner folder name. */
  prefix: string;
  /** "model" or "state_dict" when the state dict was nested in a training checkpoint. */
  nestedKey?: string;
}

export function parsePth(src: ByteSource): PthStateDict {
  return withPthArchive(src, (archive) => {
    const { dict, nestedKey } = findStateDict(archive.root, archive.what);
    return { tensors: archive.materialize(dict), prefix: archive.prefix, nestedKey };
  });
}

/** Reads the state dict of a torch.save zip checkpoint (tensors in their own dtype, row-major). */
export function readPth(path: string): PthStateDict {
  return withFile(path, parsePth);
}
