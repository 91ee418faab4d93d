/**
 * `cavmae embed` and `cavmae retrieval` end to end: the JSON report equals the library's ranking
 * of the embeddings (strict ranks, class-match@1), from the model or from the embeddings file,
 * with chance levels; the text table; one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, resolveConfig } from '../../src/models/index.js';
import { readEmbeddings, retrievalReport, type RetrievalReport } from '../../src/eval/embed.js';
import { retrievalCommand } from '../../src/eval/retrieval-report.js';
import { evaluateRetrieval } from '../../src/eval/retrieval.js';
import { writeModelFile } from '../../src/train/run.js';
import { assertClose } from '../helpers.js';
import { cli, makeSyntheticSet, TINY_TEST_CONFIG } from '../train/pretrain-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-retrieval-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('embed + retrieval: JSON = evaluateRetrieval on the written embeddings, both directions, chance', async () => {
  const set = await makeSyntheticSet(join(tmp, 'data'), 4, 12);
  const model = join(tmp, 'model.safetensors');
  writeModelFile(model, buildModel(resolveConfig(TINY_TEST_CONFIG), { seed: 9 }));
  const emb = join(tmp, 'emb.safetensors');
  let r = cli(['embed', '--model', model, '--data', set.val, '--out', emb, '--quiet', '--workers', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /emb\.safetensors: audio \[12, 32\], video \[12, 32\], ids, labels\n$/);
  const e = readEmbeddings(emb);
  const want = evaluateRetrieval(
    { data: e.audio!, n: 12, dim: 32 },
    { data: e.video!, n: 12, dim: 32 },
    { labels: e.labels },
  );
  r = cli(['retrieval', '--model', model, '--data', set.val, '--json', '--workers', '1']);
  assert.equal(r.status, 0, r.stderr);
  const fromModel = JSON.parse(r.stdout) as RetrievalReport;
  r = cli(['retrieval', '--embeddings', emb, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const fromFile = JSON.parse(r.stdout) as RetrievalReport;
  for (const got of [fromModel, fromFile]) {
    assert.equal(got.n, 12);
    assert.equal(got.tieRule, 'strict');
    for (const [dir, w] of [
      ['audioToVideo', want.audioToVideo],
      ['videoToAudio', want.videoToAudio],
    ] as const) {
      assertClose(
        [got[dir].r1, got[dir].r5, got[dir].r10, got[dir].medianRank, got[dir].classMatchAt1!],
        [w.r1, w.r5, w.r10, w.medianRank, w.classMatchAt1!],
        { atol: 1e-12, what: dir },
      );
    }
    assertClose(
      [got.chance.r1, got.chance.r10, got.chance.classMatchAt1!],
      [1 / 12, 10 / 12, 4 * (1 / 4) ** 2],
      { atol: 1e-12, what: 'chance' },
    );
  }
  r = cli(['retrieval', '--embeddings', emb]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^retrieval over 12 clips/);
  assert.match(r.stdout, /\nA->V +\d\.\d{3} /);
  assert.match(r.stdout, /\nV->A +\d\.\d{3} /);
  assert.match(r.stdout, /\nchance +0\.083 +0\.417 +0\.833 +6\.5 +0\.250\n/);
});

test('retrieval errors: one line, exit code 1', async () => {
  let r = cli(['retrieval', '--model', join(tmp, 'nope.safetensors'), '--data', join(tmp, 'nope.json')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cavmae: .*nope/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = cli(['retrieval', '--embeddings', join(tmp, 'missing.safetensors')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cavmae: .*missing\.safetensors/);
  r = cli(['retrieval', '--data', 'x.json']);
  assert.match(
    r.stderr,
    /^cavmae: retrieval needs --model <checkpoint> and --data <datafile> \(or --embeddings <file>\)\n$/,
  );
  r = cli(['retrieval', '--embeddings', 'e.safetensors', '--segment-length', '48', '--segments']);
  assert.match(
    r.stderr,
    /^cavmae: --segments needs --model and --data \(embeddings files hold one pooled vector per clip\)\n$/,
  );
  // The library says the same with its option names.
  await assert.rejects(
    retrievalReport({ data: 'x.json' }),
    /^OptionError: retrieval needs model <checkpoint> and data <datafile> \(or embeddings <file>\)$/,
  );
  await assert.rejects(
    retrievalCommand({ embeddings: 'e.safetensors', model: 'm.safetensors' }),
    /^OptionError: embeddings replaces model and data; pass one or the other$/,
  );
  await assert.rejects(
    retrievalCommand({ embeddings: 'e.safetensors', segments: true }),
    /^OptionError: segments needs model and data/,
  );
});
