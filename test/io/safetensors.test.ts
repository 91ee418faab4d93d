import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodeSafetensors,
  parseSafetensorsBytes,
  readSafetensors,
  readSafetensorsF32,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, hasOfficialFixtures } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-st-'));

/** Builds a safetensors file from a raw header object and data bytes (for hostile cases). */
function rawFile(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  opts: { headerText?: string; lengthField?: bigint } = {},
): Uint8Array {
  const text = opts.headerText ?? JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lengthField ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

function rejects(bytes: Uint8Array, pattern: RegExp, what = 'bad.safetensors'): void {
  assert.throws(
    () => parseSafetensorsBytes(bytes, what),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`${what}: `) && pattern.test(e.message),
    `expected a UserError matching ${pattern}`,
  );
}

test('round trip: every dtype, 0-d and empty tensors, metadata, order', () => {
  const path = join(tmp, 'rt.safetensors');
  const tensors = {
    w: { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, Math.PI, -0, 1e-30]) },
    scalar: { shape: [], data: Float32Array.from([7]) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
    bf: { dtype: 'BF16' as const, shape: [2], data: Uint16Array.from([0x3f80, 0xc000]) },
    half: { dtype: 'F16' as const, shape: [3], data: Uint16Array.from([0x3c00, 0x0001, 0xfc00]) },
    ids: { shape: [3], data: BigInt64Array.from([-1n, 0n, 2n ** 40n]) },
    i32: { shape: [2], data: Int32Array.from([-5, 2147483647]) },
    bytes: { shape: [3], data: Uint8Array.from([0, 128, 255]) },
    flags: { dtype: 'BOOL' as const, shape: [2], data: Uint8Array.from([1, 0]) },
    f64: { shape: [2], data: Float64Array.from([1 / 3, -1e300]) },
  };
  // A metadata key named __proto__ must stay data (JSON.parse makes it an own property).
  writeSafetensors(path, tensors, JSON.parse('{"note": "hello", "__proto__": "not a prototype"}'));
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'header padded to a multiple of 8');
  assert.match(bytes.subarray(8, 8 + n).toString(), / *$/);
  const back = readSafetensors(path);
  assert.equal(back.metadata.note, 'hello');
  assert.equal(Object.getPrototypeOf(back.metadata), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(back.metadata, '__proto__')?.value, 'not a prototype');
  // Larger item sizes first, caller order within an item size.
  assert.deepEqual(
    [...back.tensors.keys()],
    ['ids', 'f64', 'w', 'scalar', 'empty', 'i32', 'bf', 'half', 'bytes', 'flags'],
  );
  for (const [name, t] of Object.entries(tensors)) {
    const got = back.tensors.get(name)!;
    assert.deepEqual(got.shape, t.shape, name);
    assert.deepEqual(
      Array.from(got.data as ArrayLike<number>),
      Array.from(t.data as ArrayLike<number>),
      name,
    );
    assert.equal(got.data.byteOffset % 8, 0);
  }
  assert.equal(back.tensors.get('ids')!.dtype, 'I64');
  assert.equal(back.tensors.get('flags')!.dtype, 'BOOL');
  // Data offsets are aligned to the item size.
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const { dtype, data_offsets } = v as { dtype: string; data_offsets: number[] };
    const size = { F64: 8, I64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, U8: 1, BOOL: 1 }[dtype]!;
    assert.equal(data_offsets[0] % size, 0, `${k} aligned`);
  }
  const f32 = readSafetensorsF32(path);
  assert.deepEqual(Array.from(f32.get('bf')!.data), [1, -2]);
  assert.deepEqual(Array.from(f32.get('half')!.data), [1, 2 ** -24, -Infinity]);
  assert.deepEqual(Array.from(f32.get('ids')!.data), [-1, 0, 2 ** 40]);
  assert.deepEqual(Array.from(f32.get('flags')!.data), [1, 0]);
  assert.deepEqual(Array.from(f32.get('f64')!.data), [Math.fround(1 / 3), -Infinity]);
  // Atomic write leaves no temporary files behind.
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('writer refuses inconsistent tensors', () => {
  assert.throws(() => encodeSafetensors({ a: { shape: [3], data: new Float32Array(2) } }), /needs 12 bytes/);
  assert.throws(() => encodeSafetensors({ a: { shape: [2], data: new Uint16Array(2) } }), /pass dtype/);
  assert.throws(() => encodeSafetensors({ a: { shape: [-1], data: new Float32Array(0) } }), /bad shape/);
  assert.throws(
    () => encodeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } }),
    /__metadata__/,
  );
});

test(
  'shared fixture: header, metadata and data of the reference writer',
  { skip: !hasOfficialFixtures() },
  () => {
    const st = readSafetensors(fixture('model_small', 'cavmae_small.safetensors'));
    assert.equal(st.tensors.size, 527);
    assert.equal(st.metadata.class, 'CAVMAE');
    assert.equal(JSON.parse(st.metadata.config).embed_dim, 48);
    assert.deepEqual(st.tensors.get('patch_embed_v.proj.weight')!.shape, [48, 3, 16, 16]);
    assert.deepEqual(st.tensors.get('decoder_pred_a.weight')!.shape, [256, 32]);
    // The reference writer sorts by name: data-offset order is alphabetical here.
    const keys = [...st.tensors.keys()];
    assert.deepEqual(keys, [...keys].sort());
  },
);

test('hostile and corrupt files give a UserError naming the file', () => {
  const good = encodeSafetensors({ a: { shape: [2], data: Float32Array.from([1, 2]) } }, { m: 'x' });
  const goodBytes = Buffer.concat(good);
  assert.equal(parseSafetensorsBytes(goodBytes, 'ok').tensors.size, 1);

  rejects(new Uint8Array(3), /shorter than the 8-byte header length/);
  rejects(
    Buffer.from('PK\x03\x04 this is a zip, not safetensors'),
    /exceeds the 100 MB limit|runs past the end/,
  );
  rejects(rawFile({}, undefined, { lengthField: 2n ** 63n }), /exceeds the 100 MB limit/);
  rejects(rawFile({}, undefined, { lengthField: 99_000_000n }), /runs past the end/);
  rejects(rawFile(null, undefined, { headerText: '{"a": ' }), /not valid JSON/);
  rejects(rawFile(null, undefined, { headerText: '[1, 2, 3]' }), /does not start with/);
  rejects(rawFile(null, undefined, { headerText: '{"a": 1} \xff' }).fill(0xff, 12, 13), /not valid UTF-8/);
  rejects(rawFile({ a: 5 }), /header entry is not an object/);
  rejects(
    rawFile({ a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)),
    /unknown dtype "F128"/,
  );
  rejects(
    rawFile({ a: { dtype: 'I16', shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)),
    /dtype I16 is not supported/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    /non-negative integer/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)),
    /non-negative integer/,
  );
  rejects(
    rawFile(null, new Uint8Array(4), {
      headerText: '{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}',
    }),
    /non-negative integer/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: '1', data_offsets: [0, 4] } }, new Uint8Array(4)),
    /shape is not an array/,
  );
  // 2^53 elements (and a product that overflows float64 precision) against a 4-byte span.
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [2 ** 26, 2 ** 27], data_offsets: [0, 4] } }, new Uint8Array(4)),
    /needs more than the 4 bytes/,
  );
  rejects(
    rawFile(
      { a: { dtype: 'F32', shape: [2 ** 53 - 1, 2 ** 53 - 1, 2 ** 53 - 1], data_offsets: [0, 4] } },
      new Uint8Array(4),
    ),
    /needs more than/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 2 ** 60] } }, new Uint8Array(4)),
    /pair of non-negative integers|run past/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, new Uint8Array(8)),
    /end before they begin/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(2)),
    /run past the end/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)),
    /data section holds 8 bytes but the tensors cover 4/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
    /leave a gap/,
  );
  rejects(
    rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      },
      new Uint8Array(8),
    ),
    /overlap/,
  );
  rejects(
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)),
    /pair of non-negative integers/,
  );
  rejects(rawFile({ __metadata__: { k: 1 } }), /__metadata__ value of "k" is not a string/);
  rejects(rawFile({ __metadata__: [] }), /__metadata__ is not a JSON object/);
  // Truncated at every eighth of a real file.
  for (let i = 0; i < 8; i++) {
    const cut = Math.floor((goodBytes.length * i) / 8);
    rejects(goodBytes.subarray(0, cut), /.+/);
  }
});

test('reading a missing file or a directory is a UserError', () => {
  assert.throws(
    () => readSafetensors(join(tmp, 'nope.safetensors')),
    (e: unknown) => e instanceof UserError && /nope\.safetensors: no such file/.test(e.message),
  );
  assert.throws(
    () => readSafetensors(tmp),
    (e: unknown) => e instanceof UserError && /not a regular file/.test(e.message),
  );
  const p = join(tmp, 'short.safetensors');
  writeFileSync(p, Buffer.from([1, 2, 3]));
  assert.throws(
    () => readSafetensors(p),
    (e: unknown) => e instanceof UserError && e.message.startsWith(p),
  );
});
