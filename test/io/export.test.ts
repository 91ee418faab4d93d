/**
 * `cavmae export`: the torch.save writer (pickle + zip) read back by our own reader, the key
 * order of the official file, `module.` prefixes, and - where Debian's python3-torch is
 * installed - PyTorch itself: torch.load + load_state_dict(strict=True) into classes with the
 * official parameter names (test/python/torch_export_check.py), whose forward must equal ours
 * within 1e-5 of max|ref| on the small fixtures (CAVMAE, CAVMAEFT, CAV-MAE Sync, Sync FT).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tape } from '../../src/autograd/tape.js';
import { exportPth } from '../../src/io/export.js';
import { readPth, parsePth } from '../../src/io/pth.js';
import { encodePth } from '../../src/io/pth-write.js';
import { BufferSource } from '../../src/io/bytes.js';
import { ZIP_ALIGNMENT } from '../../src/io/zip-write.js';
import { ZipArchive } from '../../src/io/zip.js';
import { unpickle } from '../../src/io/pickle.js';
import { PickleWriter } from '../../src/io/pickle-write.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { loadModel, type AnyModel } from '../../src/models/registry.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { CAVMAEFT } from '../../src/models/cavmae-ft.js';
import { kindTraits } from '../../src/models/config.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, randomArray, repoRoot } from '../helpers.js';

const FIX = join(repoRoot(), 'test', 'fixtures');
/** Forward outputs of the exported file in PyTorch vs ours: max|diff| <= 1e-5 * max|ref|. */
const FORWARD_RTOL = 1e-5;

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

test('the pickle writer emits integers, strings and tuples the reader decodes', () => {
  const values = [
    0,
    1,
    255,
    256,
    65535,
    65536,
    2 ** 31 - 1,
    2 ** 31,
    -1,
    -129,
    -(2 ** 31),
    -(2 ** 31) - 1,
    2 ** 40,
    -(2 ** 53) + 1,
  ];
  for (const v of values) {
    const bytes = new PickleWriter().proto(2).int(v).stop().finish();
    const got = unpickle(bytes, { what: 'int', globals: new Map() });
    assert.equal(Number(got), v, `int ${v}`);
  }
  const s = unpickle(new PickleWriter().proto(2).string('blocks_u.0.norm1_a.weight ü').stop().finish(), {
    what: 's',
    globals: new Map(),
  });
  assert.equal(s, 'blocks_u.0.norm1_a.weight ü');
});

test('encodePth: our reader gets the same keys in the same order, shapes, dtypes and bytes; data 64-byte aligned', () => {
  const tensors: [string, { dtype: 'F32'; shape: number[]; data: Float32Array }][] = [
    ['scalar', { dtype: 'F32', shape: [], data: Float32Array.of(3.5) }],
    ['z.last_by_name_first_by_order', { dtype: 'F32', shape: [2, 3], data: randomArray(6, 1) }],
    ['a.vector', { dtype: 'F32', shape: [5], data: randomArray(5, 2) }],
    ['big.rank4', { dtype: 'F32', shape: [4, 1, 16, 16], data: randomArray(1024, 3) }],
    ['empty', { dtype: 'F32', shape: [0, 7], data: new Float32Array(0) }],
  ];
  const bytes = concat(encodePth(tensors, { prefix: 'mymodel' }));
  const sd = parsePth(new BufferSource(bytes, 'encoded.pth'));
  assert.equal(sd.prefix, 'mymodel');
  assert.deepEqual(
    [...sd.tensors.keys()],
    tensors.map(([k]) => k),
  );
  for (const [k, t] of tensors) {
    const got = sd.tensors.get(k)!;
    assert.equal(got.dtype, 'F32');
    assert.deepEqual(got.shape, t.shape);
    assert.deepEqual(Array.from(got.data as Float32Array), Array.from(t.data), k);
  }
  const zip = new ZipArchive(new BufferSource(bytes, 'encoded.pth'));
  assert.deepEqual(
    [...zip.entries.keys()],
    [
      'mymodel/data.pkl',
      'mymodel/byteorder',
      'mymodel/data/0',
      'mymodel/data/1',
      'mymodel/data/2',
      'mymodel/data/3',
      'mymodel/data/4',
      'mymodel/version',
    ],
  );
  for (const e of zip.entries.values()) {
    const lh = new DataView(bytes.buffer, bytes.byteOffset + e.localHeaderOffset);
    const start = e.localHeaderOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
    assert.equal(start % ZIP_ALIGNMENT, 0, `${e.name} data starts at ${start}`);
  }
  assert.equal(new TextDecoder().decode(zip.read('mymodel/version')), '3\n');
});

interface Case {
  name: string;
  file: string;
  isA: (m: AnyModel) => boolean;
  inputs: string;
}

/** A file name for a case. */
const r0 = (c: Case) => c.name.replace(/[^A-Za-z]+/g, '-');

const CASES: Case[] = [
  {
    name: 'pretrained CAVMAE',
    file: 'official/model_small/cavmae_small.safetensors',
    isA: (m) => m instanceof CAVMAE && !kindTraits(m.config).sync,
    inputs: 'official/model_small/cavmaeft_small_io.safetensors',
  },
  {
    name: 'fine-tuned CAVMAEFT',
    file: 'official/model_small/cavmaeft_small.safetensors',
    isA: (m) => m instanceof CAVMAEFT && !kindTraits(m.config).sync,
    inputs: 'official/model_small/cavmaeft_small_io.safetensors',
  },
  {
    name: 'CAV-MAE Sync',
    file: 'sync/sync_global_local.safetensors',
    isA: (m) => m instanceof CAVMAE && kindTraits(m.config).sync,
    inputs: 'sync/sync_global_local_io.safetensors',
  },
  {
    name: 'CAV-MAE Sync fine-tuned',
    file: 'sync/sync_ft_mm_cls.safetensors',
    isA: (m) => m instanceof CAVMAEFT && kindTraits(m.config).sync,
    inputs: 'sync/sync_ft_mm_cls_io.safetensors',
  },
];

test('exportPth writes every parameter in the model order; the pretrained order equals the official file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-export-'));
  try {
    for (const c of CASES) {
      const { model } = loadModel(join(FIX, c.file));
      assert.ok(c.isA(model), c.name);
      for (const dataParallel of [false, true]) {
        const out = join(dir, `${r0(c)}${dataParallel ? '-dp' : ''}.pth`);
        const r = exportPth(join(FIX, c.file), out, { dataParallel });
        const sd = readPth(out);
        const prefix = dataParallel ? 'module.' : '';
        assert.deepEqual(
          [...sd.tensors.keys()],
          model.arena.params.map((p) => prefix + p.name),
          `${c.name}: keys and order`,
        );
        assert.equal(r.keys, model.arena.params.length);
        for (const p of model.arena.params) {
          const t = sd.tensors.get(prefix + p.name)!;
          assert.deepEqual(t.shape, [...p.shape]);
          assert.ok(
            Buffer.from(
              (t.data as Float32Array).buffer,
              (t.data as Float32Array).byteOffset,
              t.data.byteLength,
            ).equals(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength)),
            `${p.name} bit-equal`,
          );
        }
        // Our own loader takes it back (it strips "module.").
        const back = loadModel(out, {
          config: model.config as unknown as Record<string, unknown>,
          strict: true,
        });
        assert.deepEqual(Array.from(back.model.arena.data), Array.from(model.arena.data));
      }
    }
    // The official code wrote cavmae_small.pth: same keys, same order, same values.
    const official = readPth(join(FIX, 'official', 'model_small', 'cavmae_small.pth'));
    const ours = readPth(join(dir, `${r0(CASES[0])}.pth`));
    assert.deepEqual([...ours.tensors.keys()], [...official.tensors.keys()]);
    for (const [k, t] of official.tensors)
      assert.deepEqual(
        Array.from(ours.tensors.get(k)!.data as Float32Array),
        Array.from(t.data as Float32Array),
        k,
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const PYTHON = '/usr/bin/python3';
const torchCheck = spawnSync(PYTHON, ['-c', 'import torch, numpy; print(torch.__version__)'], {
  encoding: 'utf8',
});
const torchSkip =
  torchCheck.status === 0
    ? false
    : `PyTorch is not installed for ${PYTHON} (Debian: apt-get install python3-torch)`;

/** Our forward on the fixture inputs, named as the Python check names its outputs. */
function ourOutputs(
  model: AnyModel,
  io: Map<string, { shape: number[]; data: Float32Array }>,
): Map<string, Float32Array> {
  const t = (k: string) => new Tensor(io.get(k)!.shape, io.get(k)!.data);
  const batch = { audio: t('input.audio'), image: t('input.image') };
  const tp = new Tape({ grad: false });
  const out = new Map<string, Float32Array>();
  if (model instanceof CAVMAEFT && kindTraits(model.config).head === 'aggregator') {
    out.set('logits', model.forward(tp, batch).data);
  } else if (model instanceof CAVMAEFT) {
    for (const mode of ['multimodal', 'audioonly', 'videoonly'] as const)
      out.set(`logits.${mode}`, model.forward(tp, batch, mode).data);
  } else if (kindTraits(model.config).sync) {
    const f = (model as CAVMAE).forwardFeat(tp, batch);
    out.set('feat.audio_tokens', f.audioTokens!.data);
    out.set('feat.video_tokens', f.videoTokens!.data);
    if (f.clsA) out.set('feat.cls_a', f.clsA.data);
    if (f.clsV) out.set('feat.cls_v', f.clsV.data);
  } else {
    const f = (model as CAVMAE).forwardFeat(tp, batch);
    out.set('feat.audio_tokens', f.audioTokens!.data);
    out.set('feat.video_tokens', f.videoTokens!.data);
  }
  return out;
}

for (const c of CASES) {
  for (const dataParallel of [false, true]) {
    test(
      `PyTorch loads the exported ${c.name}${dataParallel ? ' (--data-parallel)' : ''} with strict=True and its forward equals ours`,
      { skip: torchSkip },
      () => {
        const dir = mkdtempSync(join(tmpdir(), 'cavmae-export-py-'));
        try {
          const pth = join(dir, 'model.pth');
          const r = exportPth(join(FIX, c.file), pth, { dataParallel });
          const spec = {
            pth,
            class: r.className,
            args: r.args,
            data_parallel: dataParallel,
            inputs: join(FIX, c.inputs),
            out: join(dir, 'torch-out.safetensors'),
            ft_modes: ['multimodal', 'audioonly', 'videoonly'],
          };
          writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
          const py = spawnSync(
            PYTHON,
            [join(repoRoot(), 'test', 'python', 'torch_export_check.py'), join(dir, 'spec.json')],
            { encoding: 'utf8', timeout: 120_000 },
          );
          assert.equal(py.status, 0, `python failed: ${py.stderr}`);
          const report = JSON.parse(py.stdout.trim().split('\n').pop()!) as {
            type: string;
            keys: number;
            order_ok: boolean;
            first_mismatch: unknown;
            missing: string[];
            unexpected: string[];
          };
          assert.equal(report.type, 'OrderedDict');
          assert.equal(report.keys, r.keys);
          assert.ok(
            report.order_ok,
            `key order differs from the class's state_dict(): ${JSON.stringify(report.first_mismatch)}`,
          );
          assert.deepEqual([report.missing, report.unexpected], [[], []]);
          const theirs = readSafetensorsF32(spec.out);
          const { model } = loadModel(join(FIX, c.file));
          const ours = ourOutputs(model, readSafetensorsF32(join(FIX, c.inputs)));
          assert.deepEqual([...theirs.keys()].sort(), [...ours.keys()].sort());
          for (const [k, ref] of theirs)
            assertClose(ours.get(k)!, ref.data, { rtol: FORWARD_RTOL, what: `${c.name} ${k}` });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }
}

test('export refuses a file that is not a model checkpoint, naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-export-bad-'));
  try {
    const bad = join(dir, 'notes.safetensors');
    writeFileSync(bad, 'not a checkpoint');
    assert.throws(() => exportPth(bad, join(dir, 'out.pth')), /notes\.safetensors/);
    assert.throws(() => readFileSync(join(dir, 'out.pth')), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
