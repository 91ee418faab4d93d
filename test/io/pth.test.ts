import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePth, readPth } from '../../src/io/pth.js';
import { BufferSource } from '../../src/io/bytes.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, hasOfficialFixtures, repoRoot } from '../helpers.js';
import {
  f32Bytes,
  makePth,
  makeStateDictPth,
  makeZip,
  PickleWriter,
  stateDictPickle,
  type FakeTensor,
} from './builders.js';

const local = (name: string) => join(repoRoot(), 'test', 'fixtures', name);

function parse(bytes: Uint8Array, what = 'evil.pth') {
  return parsePth(new BufferSource(bytes, what));
}

function rejects(bytes: Uint8Array, pattern: RegExp, what = 'evil.pth'): void {
  assert.throws(
    () => parse(bytes, what),
    (e: unknown) => {
      if (!(e instanceof UserError)) return false;
      assert.ok(e.message.startsWith(what), `message names the file: ${e.message}`);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

function sameTensors(
  a: Map<string, { dtype: string; shape: number[]; data: ArrayLike<number | bigint> }>,
  b: typeof a,
  what: string,
): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: key sets`);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    assert.equal(t.dtype, u.dtype, `${what}: ${k} dtype`);
    assert.deepEqual(t.shape, u.shape, `${what}: ${k} shape`);
    assert.equal(t.data.length, u.data.length, `${what}: ${k} length`);
    // Exact equality, bit for bit (NaN-free data, so === suffices).
    for (let i = 0; i < t.data.length; i++)
      if (t.data[i] !== u.data[i]) assert.fail(`${what}: ${k}[${i}] = ${t.data[i]} != ${u.data[i]}`);
  }
}

test(
  'official-code fixture: .pth and .safetensors hold identical tensors; .pth keeps state-dict order',
  { skip: !hasOfficialFixtures() },
  () => {
    const pth = readPth(fixture('model_small', 'cavmae_small.pth'));
    const st = readSafetensors(fixture('model_small', 'cavmae_small.safetensors'));
    assert.equal(pth.prefix, 'cavmae_small');
    assert.equal(pth.tensors.size, 527);
    sameTensors(pth.tensors, st.tensors, 'cavmae_small');
    // The pickle's order is the official module order: compare with the base model's key list
    // (same block structure; only the decoder depth differs: 8 there, 2 here).
    const base = JSON.parse(readFileSync(fixture('model_base', 'cavmae_base_params.json'), 'utf8')).CAVMAE
      .state_dict as [string, number[]][];
    const expectedOrder = base.map(([k]) => k).filter((k) => !/^decoder_blocks\.[2-7]\./.test(k));
    assert.deepEqual([...pth.tensors.keys()], expectedOrder);
  },
);

for (const major of ['1', '2']) {
  test(`torch ${major}.x archive: dtypes, views, offsets, strides, shared storages, module. keys`, () => {
    const pth = readPth(local(`pth_views_torch${major}.pth`));
    const expected = readSafetensors(local(`pth_views_torch${major}.safetensors`));
    assert.equal(expected.metadata.torch.split('.')[0], major);
    const stripped = new Map([...pth.tensors].map(([k, v]) => [k.replace(/^module\./, ''), v]));
    sameTensors(stripped, expected.tensors, `torch${major}`);
    assert.deepEqual(stripped.get('transposed')!.shape, [5, 6]);
    assert.deepEqual(stripped.get('scalar')!.shape, []);
    assert.deepEqual(stripped.get('empty')!.shape, [0, 3]);
    assert.equal(stripped.get('bf16')!.dtype, 'BF16');
    assert.equal(stripped.get('long')!.data[2], 2n ** 40n);
    // A view never aliases the storage another tensor owns.
    assert.notEqual(stripped.get('rows')!.data.buffer, stripped.get('base')!.data.buffer);
  });
}

test('training checkpoint: state dict found under "model"; argparse.Namespace and ints are inert data', () => {
  const pth = readPth(local('mae_tiny.pth'));
  assert.equal(pth.nestedKey, 'model');
  assert.equal(pth.tensors.size, 182);
  assert.deepEqual(pth.tensors.get('patch_embed.proj.weight')!.shape, [8, 3, 16, 16]);
});

test('hand-made archive: prefix is discovered, strided views materialised', () => {
  const storage = f32Bytes([0, 1, 2, 3, 4, 5]);
  const tensors: Record<string, FakeTensor> = {
    m: { key: '0', numel: 6, size: [2, 3], data: storage },
    t: { key: '0', numel: 6, size: [3, 2], stride: [1, 3], data: storage },
    tail: { key: '0', numel: 6, offset: 4, size: [2], data: storage },
    bcast: { key: '0', numel: 6, offset: 1, size: [2, 2], stride: [0, 1], data: storage },
  };
  const r = parse(makeStateDictPth(tensors, { prefix: 'some name_v2' }));
  assert.equal(r.prefix, 'some name_v2');
  assert.deepEqual(Array.from(r.tensors.get('m')!.data as Float32Array), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(r.tensors.get('t')!.data as Float32Array), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(Array.from(r.tensors.get('tail')!.data as Float32Array), [4, 5]);
  assert.deepEqual(Array.from(r.tensors.get('bcast')!.data as Float32Array), [1, 2, 1, 2]);
});

test('unknown globals and calls are refused before anything runs', () => {
  for (const [module, name] of [
    ['os', 'system'],
    ['posix', 'system'],
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['subprocess', 'Popen'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_tensor'], // the old v1, never written by zip-format torch.save
    ['collections', 'defaultdict'],
  ]) {
    // The classic payload: GLOBAL os.system, ('echo pwned',), REDUCE.
    const payload = new PickleWriter()
      .proto(2)
      .global(module, name)
      .mark()
      .str('echo pwned')
      .tuple()
      .reduce()
      .stop()
      .bytes();
    rejects(
      makePth(payload),
      new RegExp(
        `refusing global ${module.replace('.', '\\.')}\\.${name}: not on the allow-list.*GLOBAL at byte 2`,
      ),
    );
  }
  // The same name through STACK_GLOBAL (protocol 4 style).
  const stackGlobal = new PickleWriter()
    .proto(4)
    .str('os')
    .str('system')
    .raw(0x93)
    .mark()
    .str('id')
    .tuple()
    .reduce()
    .stop()
    .bytes();
  rejects(makePth(stackGlobal), /refusing global os\.system.*STACK_GLOBAL/);
  // Allow-listed names are not all callable: a storage class, a string, a dict.
  rejects(
    makePth(new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes()),
    /refusing to call torch\.FloatStorage.*REDUCE/,
  );
  rejects(
    makePth(new PickleWriter().proto(2).str('os.system').emptyTuple().reduce().stop().bytes()),
    /refusing to call str/,
  );
  rejects(
    makePth(
      new PickleWriter()
        .proto(2)
        .global('collections', 'OrderedDict')
        .mark()
        .str('x')
        .tuple()
        .reduce()
        .stop()
        .bytes(),
    ),
    /only accepted with no arguments/,
  );
  // NEWOBJ on a non-record class; BUILD on a non-dict (would be __setstate__ in Python).
  rejects(
    makePth(
      new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().raw(0x81).stop().bytes(),
    ),
    /refusing to instantiate collections\.OrderedDict/,
  );
  rejects(
    makePth(new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyDict().raw(0x62).stop().bytes()),
    /refusing BUILD/,
  );
  // Opcodes outside the allowed set: INST, OBJ, text-mode GET, EXT1, POP.
  rejects(
    makePth(
      new PickleWriter()
        .proto(2)
        .raw(0x69, ...Buffer.from('os\nsystem\n'))
        .stop()
        .bytes(),
    ),
    /opcode not allowed.*INST at byte 2/,
  );
  rejects(
    makePth(new PickleWriter().proto(2).mark().raw(0x6f).stop().bytes()),
    /opcode not allowed.*OBJ at byte 3/,
  );
  rejects(makePth(new PickleWriter().proto(2).raw(0x82, 1).stop().bytes()), /opcode not allowed.*EXT1/);
  rejects(makePth(new PickleWriter().proto(2).raw(0xff).stop().bytes()), /unknown opcode.*0xff at byte 2/);
  rejects(makePth(new PickleWriter().proto(1).emptyDict().stop().bytes()), /unsupported pickle protocol 1/);
});

test('malformed pickles: truncation, bad memo, huge lengths, deep nesting, bad stacks', () => {
  rejects(makePth(new PickleWriter().proto(2).emptyDict().bytes()), /ends without STOP/);
  rejects(
    makePth(new PickleWriter().proto(2).raw(0x58, 0xff, 0xff, 0xff, 0x7f).stop().bytes()),
    /truncated: needs 2147483647 more bytes/,
  );
  rejects(
    makePth(new PickleWriter().proto(4).raw(0x8d, 0, 0, 0, 0, 0, 0, 0, 0x80).stop().bytes()),
    /exceeds the pickle size/,
  );
  rejects(makePth(new PickleWriter().proto(2).raw(0x68, 7).stop().bytes()), /memo index 7 was never stored/);
  rejects(makePth(new PickleWriter().proto(2).raw(0x73).stop().bytes()), /stack underflow/);
  rejects(makePth(new PickleWriter().proto(2).emptyDict().emptyDict().stop().bytes()), /STOP with 2 items/);
  rejects(makePth(new PickleWriter().proto(2).raw(0x75).stop().bytes()), /no MARK to pop to/);
  rejects(
    makePth(new PickleWriter().proto(2).emptyDict().emptyDict().emptyDict().raw(0x73).stop().bytes()),
    /unsupported dict key of type dict/,
  );
  rejects(
    makePth(
      new PickleWriter()
        .proto(2)
        .raw(0x8a, 200, ...new Array(200).fill(1))
        .stop()
        .bytes(),
    ),
    /too wide/,
  );
  // 100k nested MARKs, 100k nested 1-tuples: bounded, no stack overflow.
  rejects(
    makePth(new PickleWriter().proto(2).repeat(0x28, 100_000).stop().bytes()),
    /more than 10000 nested MARKs/,
  );
  const nested = new PickleWriter().proto(2).emptyTuple().repeat(0x85, 100_000).stop().bytes();
  rejects(makePth(nested), /holds a tuple, not a state dict/);
  // A list that contains itself.
  rejects(
    makePth(new PickleWriter().proto(2).raw(0x5d, 0x71, 0, 0x68, 0, 0x61).stop().bytes()),
    /holds a list, not a state dict/,
  );
});

test('hostile tensor metadata: views outside storage, huge shapes, bad storage ids', () => {
  const data = f32Bytes([1, 2, 3, 4]);
  const one = (t: Partial<FakeTensor>) =>
    makeStateDictPth({ w: { key: '0', numel: 4, size: [4], data, ...t } });
  rejects(one({ offset: 1 }), /reaches outside its 4-element storage/);
  rejects(one({ size: [2, 2], stride: [3, 1] }), /reaches outside/);
  rejects(one({ size: [2 ** 26, 2 ** 27], stride: [0, 0] }), /more than 2147483647 elements/);
  rejects(one({ size: [2 ** 20, 64], stride: [0, 0] }), /far larger than its 4-element storage/);
  rejects(one({ numel: 8 }), /record archive\/data\/0 has 16 bytes, its storage needs 32/);
  rejects(one({ numel: 2 ** 53 + 2 }), /storage size must be a non-negative integer/);
  rejects(one({ key: '../../etc/passwd' }), /storage key "\.\.\/\.\.\/etc\/passwd" is not a plain name/);
  rejects(
    one({ storageType: 'ShortStorage', numel: 4 }),
    /storage type ShortStorage, which is not supported/,
  );
  rejects(one({ storageType: 'EvilStorage' }), /refusing global torch\.EvilStorage/);
  rejects(
    makeStateDictPth(
      { w: { key: '0', numel: 4, size: [4], data } },
      { rebuild: ['torch._utils', '_rebuild_parameter'] },
    ),
    /expected 3 arguments, got 6/,
  );
  const missing = makePth(stateDictPickle({ w: { key: '0', numel: 4, size: [4], data } }), {});
  rejects(missing, /missing entry "archive\/data\/0"/);
  // Same key declared with two sizes.
  rejects(
    makeStateDictPth({
      a: { key: '0', numel: 4, size: [4], data },
      b: { key: '0', numel: 2, size: [2], data },
    }),
    /declared twice/,
  );
});

test('corrupt archives: wrong magic, truncation at every eighth, CRC, offsets, legacy format', () => {
  const good = makeStateDictPth({ w: { key: '0', numel: 4, size: [2, 2], data: f32Bytes([1, 2, 3, 4]) } });
  assert.deepEqual(Array.from(parse(good).tensors.get('w')!.data as Float32Array), [1, 2, 3, 4]);
  rejects(Buffer.from('GIF89a....'), /not a PyTorch checkpoint \(no zip signature\)/);
  rejects(
    Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]),
    /legacy torch\.save format/,
  );
  for (let i = 1; i < 8; i++)
    rejects(good.subarray(0, Math.floor((good.length * i) / 8)), /zip|truncated|outside|CRC/);
  const flipped = Buffer.from(good);
  flipped[flipped.indexOf(Buffer.from(f32Bytes([1])))] ^= 0x40; // a byte of tensor data
  rejects(flipped, /zip entry "archive\/data\/0": CRC-32 mismatch/);
  const eocd = good.length - 22;
  const badOffset = Buffer.from(good);
  badOffset.writeUInt32LE(0xfffffff0, eocd + 16);
  rejects(badOffset, /central directory .* runs past its end record/);
  const badCount = Buffer.from(good);
  badCount.writeUInt16LE(60000, eocd + 10);
  badCount.writeUInt16LE(60000, eocd + 8);
  rejects(badCount, /cannot hold 60000 entries/);
  const cdStart = Buffer.from(good).readUInt32LE(eocd + 16);
  const badLocal = Buffer.from(good);
  badLocal.writeUInt32LE(0x7ffffff0, cdStart + 42);
  rejects(badLocal, /local header offset 2147483632 is outside the archive data/);
  const zip64 = Buffer.from(good);
  zip64.writeUInt32LE(0xffffffff, eocd + 16);
  rejects(zip64, /declares zip64 sizes but has no zip64 locator/);
  const deflate = Buffer.from(good);
  deflate.writeUInt16LE(12, cdStart + 10); // bzip2
  rejects(deflate, /compression method 12/);
  rejects(
    makeZip([
      { name: 'a/data.pkl', data: new Uint8Array([0x80, 2, 0x7d, 0x2e]) },
      { name: 'b/data.pkl', data: new Uint8Array(0) },
    ]),
    /several data\.pkl records/,
  );
  rejects(makeZip([{ name: 'x/model.json', data: new Uint8Array(0) }]), /no data\.pkl record/);
  rejects(
    makeZip([
      { name: 'x/data.pkl', data: new Uint8Array(0) },
      { name: 'x/constants.pkl', data: new Uint8Array(0) },
    ]),
    /TorchScript archive/,
  );
  rejects(
    makeZip([
      { name: 'x/data.pkl', data: new Uint8Array(0) },
      { name: 'x/byteorder', data: Buffer.from('big') },
    ]),
    /byte order "big" is not supported/,
  );
});

test('deflated members are inflated with a bounded output', () => {
  const pkl = stateDictPickle({ w: { key: '0', numel: 2, size: [2], data: f32Bytes([5, 6]) } });
  const entries = [
    { name: 'z/data.pkl', data: pkl, deflate: true },
    { name: 'z/data/0', data: f32Bytes([5, 6]), deflate: true },
  ];
  const archive = makeZip(entries);
  assert.deepEqual(Array.from(parse(archive).tensors.get('w')!.data as Float32Array), [5, 6]);
  // A declared size smaller than the real output is refused, not silently truncated.
  const lying = Buffer.from(archive);
  const cdStart = lying.readUInt32LE(lying.length - 22 + 16);
  lying.writeUInt32LE(pkl.length - 1, cdStart + 24);
  rejects(lying, /deflate data is corrupt or larger than declared/);
  // A zip bomb claim: 4 GB from a few bytes.
  const bomb = Buffer.from(archive);
  bomb.writeUInt32LE(0xfffffff0, cdStart + 24);
  rejects(bomb, /impossible for \d+ deflated bytes/);
});
