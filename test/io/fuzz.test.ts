/**
 * Fuzz: seeded random mutations (byte flips, interesting values, truncations, insertions,
 * deletions, duplicated chunks, numbers rewritten inside the JSON header) of real checkpoint
 * files, each fed to the .pth parser, the safetensors parser and the format-sniffing loader.
 * Every outcome must be a result or a UserError: never another exception, never a slow case.
 * Most mutations target the structural bytes (safetensors header, data.pkl, zip directory),
 * where a parser can go wrong; the rest land anywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BufferSource } from '../../src/io/bytes.js';
import { parseStateDictBytes } from '../../src/io/checkpoint.js';
import { parsePth } from '../../src/io/pth.js';
import { parseSafetensorsBytes } from '../../src/io/safetensors.js';
import { ZipArchive } from '../../src/io/zip.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, hasOfficialFixtures, repoRoot, rng } from '../helpers.js';

const CASE_LIMIT_MS = 2000;

/** Byte ranges worth attacking: the header of a safetensors file; data.pkl and the directory of a zip. */
function structuralRanges(bytes: Uint8Array): [number, number][] {
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    const zip = new ZipArchive(new BufferSource(bytes, 'seed'));
    const pkl = [...zip.entries.values()].find((e) => e.name.endsWith('data.pkl'))!;
    const eocd = bytes.length - 22;
    const cdStart = Buffer.from(bytes).readUInt32LE(eocd + 16);
    return [
      [pkl.localHeaderOffset, pkl.localHeaderOffset + 30 + pkl.name.length + pkl.compressedSize],
      [cdStart, bytes.length],
    ];
  }
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  return [[0, 8 + n]];
}

type Mutator = (b: Buffer, r: () => number, pick: () => number) => Buffer;

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff];
const INTERESTING_NUMBERS = [
  '-1',
  '0',
  '1e308',
  '9007199254740993',
  '18446744073709551615',
  '4294967296',
  '1.5',
  '99999999',
  'null',
  '"x"',
];

const mutators: [string, Mutator][] = [
  [
    'flip',
    (b, r, pick) => {
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) b[pick()] ^= 1 << Math.floor(r() * 8);
      return b;
    },
  ],
  [
    'byte',
    (b, r, pick) => {
      b[pick()] = Math.floor(r() * 256);
      return b;
    },
  ],
  [
    'interesting',
    (b, r, pick) => {
      const at = pick();
      const width = [1, 2, 4, 8][Math.floor(r() * 4)];
      const v = INTERESTING[Math.floor(r() * INTERESTING.length)];
      for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = v;
      return b;
    },
  ],
  ['truncate', (b, r) => b.subarray(0, Math.floor(r() * b.length))],
  [
    'insert',
    (b, r, pick) => {
      const at = pick();
      const extra = Buffer.alloc(1 + Math.floor(r() * 16));
      for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(r() * 256);
      return Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
    },
  ],
  [
    'delete',
    (b, r, pick) => {
      const at = pick();
      return Buffer.concat([
        b.subarray(0, at),
        b.subarray(Math.min(b.length, at + 1 + Math.floor(r() * 64))),
      ]);
    },
  ],
  [
    'duplicate',
    (b, r, pick) => {
      const at = pick();
      const chunk = b.subarray(at, Math.min(b.length, at + 1 + Math.floor(r() * 256)));
      return Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]);
    },
  ],
  [
    'number',
    (b, r) => {
      // Rewrite a number inside a safetensors JSON header (shapes, offsets), keeping the length field honest.
      if (b.length < 8 || b[0] === 0x50) return b;
      const n = Number(b.readBigUInt64LE(0));
      if (8 + n > b.length) return b;
      const text = b.subarray(8, 8 + n).toString('latin1');
      const digits = [...text.matchAll(/\d+/g)];
      if (!digits.length) return b;
      const m = digits[Math.floor(r() * digits.length)];
      const repl = INTERESTING_NUMBERS[Math.floor(r() * INTERESTING_NUMBERS.length)];
      const header = Buffer.from(
        text.slice(0, m.index!) + repl + text.slice(m.index! + m[0].length),
        'latin1',
      );
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      return Buffer.concat([len, header, b.subarray(8 + n)]);
    },
  ],
];

function fuzz(
  name: string,
  seedBytes: Uint8Array,
  cases: number,
  seed: number,
): { ok: number; refused: number; maxMs: number } {
  const ranges = structuralRanges(seedBytes);
  const counts = { ok: 0, refused: 0, maxMs: 0 };
  const r = rng(seed);
  for (let c = 0; c < cases; c++) {
    let b: Buffer = Buffer.from(seedBytes);
    const ops: string[] = [];
    const steps = 1 + Math.floor(r() * 3);
    for (let s = 0; s < steps && b.length > 0; s++) {
      const [opName, op] = mutators[Math.floor(r() * mutators.length)];
      const len = b.length;
      const pick = () => {
        if (r() < 0.8) {
          const [lo, hi] = ranges[Math.floor(r() * ranges.length)];
          const h = Math.min(hi, len);
          if (h > lo) return lo + Math.floor(r() * (h - lo));
        }
        return Math.floor(r() * len);
      };
      b = op(b, r, pick);
      ops.push(opName);
    }
    for (const [parser, parse] of [
      ['pth', (x: Buffer) => parsePth(new BufferSource(x, 'fuzz'))],
      ['safetensors', (x: Buffer) => parseSafetensorsBytes(x, 'fuzz')],
      ['loadStateDict', (x: Buffer) => parseStateDictBytes(x, 'fuzz')],
    ] as const) {
      const t0 = performance.now();
      try {
        parse(b);
        counts.ok++;
      } catch (e) {
        if (!(e instanceof UserError)) {
          assert.fail(
            `${name} case ${c} (seed ${seed}, ops ${ops.join('+')}), ${parser} parser threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`,
          );
        }
        assert.ok(e.message.startsWith('fuzz'), `error names the file: ${e.message}`);
        counts.refused++;
      }
      const ms = performance.now() - t0;
      counts.maxMs = Math.max(counts.maxMs, ms);
      assert.ok(
        ms < CASE_LIMIT_MS,
        `${name} case ${c} (${ops.join('+')}): ${parser} took ${ms.toFixed(0)} ms`,
      );
    }
  }
  return counts;
}

const local = (file: string) => join(repoRoot(), 'test', 'fixtures', file);
// Each case runs all three parsers; the shared 3 MB files cost ~10 ms per valid parse, so they get fewer cases.
const SEEDS: { name: string; path: () => string; cases: number; shared: boolean }[] = [
  { name: 'pth_views_torch2.pth', path: () => local('pth_views_torch2.pth'), cases: 3000, shared: false },
  {
    name: 'pth_views_torch2.safetensors',
    path: () => local('pth_views_torch2.safetensors'),
    cases: 3000,
    shared: false,
  },
  {
    name: 'cavmae_small.pth',
    path: () => fixture('model_small', 'cavmae_small.pth'),
    cases: 600,
    shared: true,
  },
  {
    name: 'cavmae_small.safetensors',
    path: () => fixture('model_small', 'cavmae_small.safetensors'),
    cases: 1500,
    shared: true,
  },
];

for (const [i, s] of SEEDS.entries()) {
  test(
    `fuzz ${s.name}: ${s.cases} mutated copies through all parsers`,
    { skip: s.shared && !hasOfficialFixtures(), timeout: 60_000 },
    () => {
      const counts = fuzz(s.name, readFileSync(s.path()), s.cases, 1000 + i);
      // Both outcomes must occur, or the mutations are not exercising the parsers.
      assert.ok(counts.refused > 0 && counts.ok > 0, JSON.stringify(counts));
      if (process.env.CAVMAE_FUZZ_VERBOSE) console.log(s.name, counts);
    },
  );
}
