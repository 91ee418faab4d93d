/**
 * A restricted unpickler: enough of Python's pickle protocols 2-5 to read a PyTorch state dict,
 * and nothing that can run code.
 *
 * Contract:
 * - Only data opcodes are understood (containers, strings, bytes, ints, floats, bools, None,
 *   memo, marks). GLOBAL / STACK_GLOBAL resolve a name only through the caller's allow-list;
 *   REDUCE calls only allow-listed callables (implemented here in TypeScript, never by name
 *   lookup); NEWOBJ only instantiates allow-listed inert record classes; BUILD only sets the
 *   state of dicts and inert records; BINPERSID goes to the caller's persistentLoad.
 * - Every other opcode (INST, OBJ, EXT*, text-mode PUT/GET/INT/STRING, ...), every name off the
 *   allow-list, and every malformed or truncated stream is a UserError naming the file, the
 *   problem, the opcode and its byte offset.
 * - Sizes are bounded: strings and bytes by the bytes that remain, the stack, the mark stack and
 *   the memo by fixed limits; each opcode consumes at least one byte, so decoding is linear.
 * - Nothing here recurses over the decoded values, so hostile nesting cannot exhaust the stack.
 */
import { UserError } from '../util/errors.js';

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export type PyKey = string | number | bigint | boolean | null;

export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
  /** State given by BUILD (an OrderedDict's instance attributes, e.g. torch's `_metadata`). */
  state: PyValue = null;
  constructor(readonly className = 'dict') {}
}

/** A name resolved through the allow-list; callable only if its handler says so. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an allow-listed inert record class (e.g. argparse.Namespace): data only. */
export class PyRecord {
  state: PyValue = null;
  constructor(
    readonly cls: PyGlobal,
    readonly args: readonly PyValue[],
  ) {}
}

/** Values made by handlers (tensors, storages) carry a kind tag. */
export interface PyExtension {
  readonly pyKind: string;
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyTuple
  | PyValue[]
  | PyDict
  | PyGlobal
  | PyRecord
  | PyExtension;

export interface CallContext {
  what: string;
  offset: number;
  fail(problem: string): never;
}

export interface GlobalHandler {
  /** REDUCE: call with the argument tuple. Absent: the name may be referenced, not called. */
  call?(args: readonly PyValue[], ctx: CallContext): PyValue;
  /** NEWOBJ: make an inert record. Absent: NEWOBJ on this class is refused. */
  inertRecord?: boolean;
}

export interface UnpickleOptions {
  /** Used in error messages, e.g. "model.pth (archive/data.pkl)". */
  what: string;
  /** "module.name" -> handler. Anything else is refused. */
  globals: ReadonlyMap<string, GlobalHandler>;
  persistentLoad?(pid: PyValue, ctx: CallContext): PyValue;
  maxStack?: number;
  maxMarks?: number;
  maxMemo?: number;
}

/** The opcodes this reader decodes, by their names in pickletools; the writer emits a subset. */
export const OP = {
  PROTO: 0x80,
  FRAME: 0x95,
  STOP: 0x2e,
  MARK: 0x28,
  EMPTY_DICT: 0x7d,
  EMPTY_LIST: 0x5d,
  EMPTY_TUPLE: 0x29,
  DICT: 0x64,
  LIST: 0x6c,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  BINUNICODE: 0x58,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  BINBYTES8: 0x8e,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINFLOAT: 0x47,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  APPEND: 0x61,
  APPENDS: 0x65,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  MEMOIZE: 0x94,
  GLOBAL: 0x63,
  STACK_GLOBAL: 0x93,
  REDUCE: 0x52,
  BUILD: 0x62,
  NEWOBJ: 0x81,
  BINPERSID: 0x51,
} as const;

/** Opcodes that are refused, known so that errors can name them. */
const REFUSED = {
  INST: 0x69,
  OBJ: 0x6f,
  NEWOBJ_EX: 0x92,
  PERSID: 0x50,
  INT: 0x49,
  LONG: 0x4c,
  STRING: 0x53,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  UNICODE: 0x56,
  FLOAT: 0x46,
  PUT: 0x70,
  GET: 0x67,
  EXT1: 0x82,
  EXT2: 0x83,
  EXT4: 0x84,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
};

const OPCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries({ ...OP, ...REFUSED }).map(([name, code]) => [code, name]),
);

const MAX_LONG_BYTES = 64; // ints wider than 512 bits have no place in a state dict
const MAX_GLOBAL_LINE = 256;

function isKey(v: PyValue): v is PyKey {
  return (
    v === null ||
    typeof v === 'string' ||
    typeof v === 'number' ||
    typeof v === 'bigint' ||
    typeof v === 'boolean'
  );
}

export function describeValue(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyDict) return v.className;
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof PyRecord) return `${v.cls.qualifiedName} instance`;
  return (v as PyExtension).pyKind ?? 'object';
}

/** Decodes one pickle. Returns the value STOP leaves on the stack. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): PyValue {
  const { what, globals } = opts;
  const maxStack = opts.maxStack ?? 1_000_000;
  const maxMarks = opts.maxMarks ?? 10_000;
  const maxMemo = opts.maxMemo ?? 1_000_000;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });

  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let opPos = 0;
  let op = 0;

  const fail = (problem: string): never => {
    const name = OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
    throw new UserError(`${what}: pickle: ${problem} (opcode ${name} at byte ${opPos})`);
  };
  const ctx: CallContext = {
    what,
    get offset() {
      return opPos;
    },
    fail,
  };
  const need = (n: number): number => {
    if (n > bytes.length - pos) fail(`truncated: needs ${n} more bytes, ${bytes.length - pos} left`);
    const at = pos;
    pos += n;
    return at;
  };
  const push = (v: PyValue): void => {
    if (stack.length >= maxStack) fail(`stack grew past ${maxStack} items`);
    stack.push(v);
  };
  const pop = (): PyValue => popN(1)[0];
  /** The top n items, deepest first. */
  const popN = (n: number): PyValue[] => {
    if (stack.length < n) fail('stack underflow');
    return stack.splice(stack.length - n, n);
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    if (marks.length === 0) fail('no MARK to pop to');
    const items = stack;
    stack = marks.pop() as PyValue[];
    return items;
  };
  const readString = (n: number): string => {
    const at = need(n);
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const readBytes = (n: number): Uint8Array => {
    const at = need(n);
    return bytes.slice(at, at + n);
  };
  const readU64 = (): number => {
    const at = need(8);
    const v = view.getBigUint64(at, true);
    if (v > BigInt(bytes.length)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const readLong = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) fail(`integer of ${n} bytes is too wide`);
    const at = need(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]);
    if (bytes[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const readLine = (): string => {
    const start = pos;
    const limit = Math.min(bytes.length, pos + MAX_GLOBAL_LINE);
    while (pos < limit && bytes[pos] !== 0x0a) pos++;
    if (pos >= limit) fail('GLOBAL name is unterminated or too long');
    const line = String.fromCharCode(...bytes.subarray(start, pos));
    pos++; // newline
    return line;
  };
  const memoPut = (index: number, v: PyValue): void => {
    if (!memo.has(index) && memo.size >= maxMemo) fail(`memo grew past ${maxMemo} entries`);
    memo.set(index, v);
  };
  const memoGet = (index: number): PyValue => {
    if (!memo.has(index)) fail(`memo index ${index} was never stored`);
    return memo.get(index) as PyValue;
  };
  const resolveGlobal = (module: string, name: string): PyGlobal => {
    const qualified = `${module}.${name}`;
    const handler = globals.get(qualified);
    if (!handler) {
      const shown = /^[\x20-\x7e]*$/.test(qualified) ? qualified : JSON.stringify(qualified);
      fail(`refusing global ${shown}: not on the allow-list of what a PyTorch state dict may contain`);
    }
    return new PyGlobal(module, name, handler as GlobalHandler);
  };
  const setItem = (target: PyValue, key: PyValue, value: PyValue): void => {
    if (!(target instanceof PyDict)) fail(`cannot set an item on a ${describeValue(target)}`);
    if (!isKey(key)) fail(`unsupported dict key of type ${describeValue(key)}`);
    (target as PyDict).map.set(key as PyKey, value);
  };
  const appendTo = (target: PyValue, items: PyValue[]): void => {
    if (!Array.isArray(target)) fail(`cannot append to a ${describeValue(target)}`);
    const list = target as PyValue[];
    if (list.length + items.length > maxStack) fail(`list grew past ${maxStack} items`);
    for (const item of items) list.push(item);
  };

  while (pos < bytes.length) {
    opPos = pos;
    op = bytes[pos++];
    switch (op) {
      case OP.PROTO: {
        const proto = bytes[need(1)];
        if (proto < 2 || proto > 5) fail(`unsupported pickle protocol ${proto}`);
        break;
      }
      case OP.FRAME: // a framing hint; the frame's bytes follow inline.
        readU64();
        break;
      case OP.STOP: {
        if (marks.length) fail('STOP inside an open MARK');
        if (stack.length !== 1) fail(`STOP with ${stack.length} items on the stack (expected 1)`);
        return stack[0];
      }
      case OP.MARK:
        if (marks.length >= maxMarks) fail(`more than ${maxMarks} nested MARKs`);
        marks.push(stack);
        stack = [];
        break;
      case OP.EMPTY_DICT:
        push(new PyDict());
        break;
      case OP.EMPTY_LIST:
        push([]);
        break;
      case OP.EMPTY_TUPLE:
        push(new PyTuple([]));
        break;
      case OP.DICT: {
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        push(d);
        break;
      }
      case OP.LIST:
        push(popMark());
        break;
      case OP.TUPLE:
        push(new PyTuple(popMark()));
        break;
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3:
        push(new PyTuple(popN(op - OP.TUPLE1 + 1)));
        break;
      case OP.BINUNICODE:
        push(readString(view.getUint32(need(4), true)));
        break;
      case OP.SHORT_BINUNICODE:
        push(readString(bytes[need(1)]));
        break;
      case OP.BINUNICODE8:
        push(readString(readU64()));
        break;
      case OP.BINBYTES:
        push(readBytes(view.getUint32(need(4), true)));
        break;
      case OP.SHORT_BINBYTES:
        push(readBytes(bytes[need(1)]));
        break;
      case OP.BINBYTES8:
        push(readBytes(readU64()));
        break;
      case OP.BININT:
        push(view.getInt32(need(4), true));
        break;
      case OP.BININT1:
        push(bytes[need(1)]);
        break;
      case OP.BININT2:
        push(view.getUint16(need(2), true));
        break;
      case OP.LONG1:
        push(readLong(bytes[need(1)]));
        break;
      case OP.LONG4: {
        const n = view.getInt32(need(4), true);
        if (n < 0) fail('negative LONG4 length');
        push(readLong(n));
        break;
      }
      case OP.BINFLOAT: // big-endian
        push(view.getFloat64(need(8), false));
        break;
      case OP.NONE:
        push(null);
        break;
      case OP.NEWTRUE:
        push(true);
        break;
      case OP.NEWFALSE:
        push(false);
        break;
      case OP.SETITEM: {
        const [key, value] = popN(2);
        setItem(top(), key, value);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const target = top();
        for (let i = 0; i < items.length; i += 2) setItem(target, items[i], items[i + 1]);
        break;
      }
      case OP.APPEND: {
        const value = pop();
        appendTo(top(), [value]);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        appendTo(top(), items);
        break;
      }
      case OP.BINPUT:
        memoPut(bytes[need(1)], top());
        break;
      case OP.LONG_BINPUT:
        memoPut(view.getUint32(need(4), true), top());
        break;
      case OP.MEMOIZE:
        memoPut(memo.size, top());
        break;
      case OP.BINGET:
        push(memoGet(bytes[need(1)]));
        break;
      case OP.LONG_BINGET:
        push(memoGet(view.getUint32(need(4), true)));
        break;
      case OP.GLOBAL: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        push(resolveGlobal(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const [module, name] = popN(2);
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(resolveGlobal(module as string, name as string));
        break;
      }
      case OP.REDUCE: {
        const [fn, args] = popN(2);
        if (!(fn instanceof PyGlobal) || !fn.handler.call)
          fail(`refusing to call ${describeValue(fn)}: not an allow-listed callable`);
        if (!(args instanceof PyTuple)) fail(`REDUCE arguments are a ${describeValue(args)}, not a tuple`);
        push((fn as PyGlobal).handler.call!((args as PyTuple).items, ctx));
        break;
      }
      case OP.NEWOBJ: {
        // NEWOBJ (cls.__new__(cls, *args)) only for inert record classes
        const [cls, args] = popN(2);
        if (!(cls instanceof PyGlobal) || !cls.handler.inertRecord)
          fail(`refusing to instantiate ${describeValue(cls)}: not an allow-listed data class`);
        if (!(args instanceof PyTuple)) fail(`NEWOBJ arguments are a ${describeValue(args)}, not a tuple`);
        push(new PyRecord(cls as PyGlobal, (args as PyTuple).items));
        break;
      }
      case OP.BUILD: {
        // BUILD: only plain state on dicts and inert records; no __setstate__ is ever called.
        const state = pop();
        const target = top();
        if (target instanceof PyDict || target instanceof PyRecord) {
          if (state !== null && !(state instanceof PyDict) && !(state instanceof PyTuple))
            fail(`BUILD state of type ${describeValue(state)} is not supported`);
          target.state = state;
        } else {
          fail(`refusing BUILD on a ${describeValue(target)}`);
        }
        break;
      }
      case OP.BINPERSID: {
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent ids are not allowed here');
        push(opts.persistentLoad!(pid, ctx));
        break;
      }
      default:
        fail(OPCODE_NAMES[op] ? 'opcode not allowed in a state-dict pickle' : 'unknown opcode');
    }
  }
  opPos = pos;
  op = 0x2e;
  return fail('pickle ends without STOP (truncated)');
}
