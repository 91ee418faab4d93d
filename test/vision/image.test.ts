/**
 * Image decode and the reference's eval transform, against the official fixtures (Pillow decode,
 * torchvision transform) and Pillow goldens from scripts/golden/image_golden.py.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertClose, fixture, hasOfficialFixtures, maxAbsDiff, repoRoot } from '../helpers.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import {
  centerCrop,
  decodeImage,
  encodeJpeg,
  imageToTensor,
  loadImageTensor,
  normalizeToTensor,
  resizeShorter,
  resizedSize,
  type RgbImage,
} from '../../src/vision/index.js';

const ID = '00W1lcxW-WU_40.000';
const local = (...p: string[]) => join(repoRoot(), 'test', 'fixtures', 'image', ...p);
const golden = JSON.parse(readFileSync(local('golden.json'), 'utf8')) as {
  cases: {
    name: string;
    width: number;
    height: number;
    bicubic_resized: number[];
    bilinear_resized?: number[];
  }[];
  decode: { file: string; mode: string }[];
};

test(
  'fixture PNG (Pillow decode of frame_5.jpg) -> tensor equals the official eval transform',
  { skip: !hasOfficialFixtures() },
  async () => {
    const ref = readSafetensorsF32(fixture('image', 'image.safetensors')).get(`${ID}.image`)!;
    assert.deepEqual(ref.shape, [3, 224, 224]);
    const t = await loadImageTensor(fixture('image', `${ID}.frame_5_decoded.png`));
    // Brief: <= 1e-5; measured 0 (bit-exact).
    assertClose(t, ref.data, { atol: 1e-5, what: 'png tensor' });
    assert.equal(maxAbsDiff(t, ref.data), 0, 'expected a bit-exact tensor');
  },
);

test(
  'fixture JPEG -> tensor within 0.03 of the official eval transform (measured: 0)',
  { skip: !hasOfficialFixtures() },
  async () => {
    const st = readSafetensorsF32(fixture('image', 'image.safetensors'));
    const ref = st.get(`${ID}.image`)!;
    const img = await decodeImage(fixture('image', 'frames', ID, 'frame_5.jpg'));
    // The decode itself matches Pillow's (libjpeg-turbo) bit for bit.
    assertClose(img.data, st.get(`${ID}.frame_5_decoded_u8`)!.data, {
      atol: 0,
      what: 'decoded uint8 vs Pillow',
    });
    const t = imageToTensor(img);
    assertClose(t, ref.data, { atol: 0.03, what: 'jpeg tensor' });
  },
);

test('Resize(224, bicubic/bilinear) + CenterCrop(224) equal Pillow on synthetic images', async () => {
  let checked = 0;
  for (const c of golden.cases) {
    const src = await decodeImage(local(`${c.name}.png`));
    assert.equal(src.width, c.width);
    assert.equal(src.height, c.height);
    for (const filt of ['bicubic', 'bilinear'] as const) {
      const size = filt === 'bicubic' ? c.bicubic_resized : c.bilinear_resized;
      if (!size) continue;
      const resized = resizeShorter(src, 224, filt);
      assert.deepEqual([resized.width, resized.height], size, `${c.name} ${filt} resized size`);
      const ref = await decodeImage(local(`${c.name}.${filt}224.png`));
      const mine = centerCrop(resized, 224);
      assertClose(mine.data, ref.data, { atol: 0, what: `${c.name} ${filt}` });
      checked++;
    }
  }
  assert.equal(checked, 8);
});

test(
  'fixture frame_5_source -> Resize(224) bilinear + CenterCrop = frame_5_prejpeg (extractor)',
  { skip: !hasOfficialFixtures() },
  async () => {
    const src = await decodeImage(fixture('image', `${ID}.frame_5_source.png`));
    const pre = await decodeImage(fixture('image', `${ID}.frame_5_prejpeg.png`));
    assert.deepEqual([src.width, src.height], [256, 144]);
    const mine = centerCrop(resizeShorter(src, 224, 'bilinear'), 224);
    assertClose(mine.data, pre.data, { atol: 0, what: 'prejpeg' });
  },
);

test(
  'JPEG encoding reproduces the reference frame file byte for byte',
  { skip: !hasOfficialFixtures() },
  async () => {
    const pre = await decodeImage(fixture('image', `${ID}.frame_5_prejpeg.png`));
    const jpeg = await encodeJpeg(pre);
    const ref = readFileSync(fixture('image', 'frames', ID, 'frame_5.jpg'));
    assert.equal(Buffer.compare(jpeg, ref), 0, `encoded ${jpeg.length} bytes vs reference ${ref.length}`);
  },
);

test('ToTensor + Normalize equals torch float32 for every uint8 value', () => {
  const bytes = readFileSync(local('normalize_table_f32.bin'));
  const table = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)); // [3, 256]
  const img: RgbImage = { width: 256, height: 1, data: new Uint8Array(256 * 3) };
  for (let v = 0; v < 256; v++) img.data.fill(v, v * 3, v * 3 + 3);
  const t = normalizeToTensor(img); // [3, 1, 256]
  assertClose(t, table, { atol: 0, what: 'normalize table' });
});

test('decoding JPEG (several modes), PNG (grey, RGBA, palette) and WebP matches Pillow convert("RGB")', async () => {
  const errors: string[] = [];
  for (const d of golden.decode) {
    const mine = await decodeImage(local(d.file));
    const ref = await decodeImage(local(`${d.file}.pil.png`));
    assert.deepEqual([mine.width, mine.height], [ref.width, ref.height], d.file);
    const err = maxAbsDiff(mine.data, ref.data);
    errors.push(`${d.file}: ${err}`);
    // Lossless formats and libjpeg-turbo JPEGs are exact; lossy WebP may differ by libwebp version.
    assertClose(mine.data, ref.data, {
      atol: d.file.endsWith('lossy.webp') ? 3 : 0,
      what: `decode ${d.file}`,
    });
  }
  assert.equal(errors.length, golden.decode.length);
});

test('resizedSize follows torchvision (int truncation of the long side)', () => {
  assert.deepEqual(resizedSize(256, 144, 224), { width: 398, height: 224 });
  assert.deepEqual(resizedSize(97, 131, 224), { width: 224, height: 302 });
  assert.deepEqual(resizedSize(224, 224, 224), { width: 224, height: 224 });
  assert.deepEqual(resizedSize(1280, 720, 224), { width: 398, height: 224 });
});

test('centerCrop pads like torchvision when the image is smaller than the crop', () => {
  const img: RgbImage = { width: 3, height: 2, data: new Uint8Array(18).fill(9) };
  const out = centerCrop(img, 6); // pad left 1, top 2
  assert.deepEqual([out.width, out.height], [6, 6]);
  const at = (x: number, y: number) => out.data[(y * 6 + x) * 3];
  assert.equal(at(0, 2), 0);
  assert.equal(at(1, 2), 9);
  assert.equal(at(3, 3), 9);
  assert.equal(at(4, 3), 0);
  assert.equal(at(1, 1), 0);
  assert.equal(at(1, 4), 0);
});

test('bad image inputs give a UserError naming the file and the reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-img-'));
  try {
    const empty = join(dir, 'empty.jpg');
    writeFileSync(empty, '');
    const text = join(dir, 'notes.png');
    writeFileSync(text, 'this is not an image\n');
    const random = join(dir, 'random.webp');
    writeFileSync(random, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    const truncated = join(dir, 'truncated.jpg');
    writeFileSync(truncated, readFileSync(local('dec_q90.jpg')).subarray(0, 900));
    const truncPng = join(dir, 'truncated.png');
    writeFileSync(truncPng, readFileSync(local('port_97x131.png')).subarray(0, 2000));
    const folder = join(dir, 'folder.jpg');
    mkdirSync(folder);
    const fifo = join(dir, 'fifo.png');
    execFileSync('mkfifo', [fifo]);
    const cases: [string, RegExp][] = [
      [empty, /empty/],
      [text, /cannot decode image/],
      [random, /cannot decode image/],
      [truncated, /cannot decode image/],
      [truncPng, /cannot decode image/],
      [folder, /directory/],
      [fifo, /not a regular file/],
      [join(dir, 'missing.jpg'), /not found/],
    ];
    for (const [path, why] of cases) {
      await assert.rejects(decodeImage(path), (e: unknown) => {
        assert.ok(e instanceof UserError, `${path}: expected UserError, got ${String(e)}`);
        assert.ok(e.message.startsWith(`${path}: `), `message names the file: ${e.message}`);
        assert.match(e.message, why);
        return true;
      });
    }
    await assert.rejects(decodeImage(new Uint8Array(0)), UserError);
    await assert.rejects(decodeImage(new Uint8Array([1, 2, 3, 4])), /image data: cannot decode image/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
