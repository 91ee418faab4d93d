/**
 * Distributed indexing end to end, with real processes: a private redis-server, `cavmae worker`
 * processes and `cavmae index add --queue` (the submitter and writer), on AV-digits demo data
 * (300 examples: 300 WAV clips + 300 PNG images) and the `tiny` model.
 *
 * - 3 workers, one SIGKILLed in the middle of a job: every file is indexed exactly once (no
 *   dead rows), the killed worker's job is redelivered, vectors and thumbnails are bit-equal
 *   to a single-process `index add`, every row records the model that made it.
 * - A worker with the wrong model (by --model, or by a mapped path holding another file)
 *   refuses the job with a clear message and exits; the job goes to a good worker.
 * - Redis crashes twice mid-run (once keeping its data, once losing it): the run completes
 *   after it is back, writing to a LanceDB index, and `search` answers equal the embedded one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeDemoData } from '../../src/data/avdigits.js';
import { MediaIndex } from '../../src/index/store.js';
import { CAVMAE, presetConfig, saveModel } from '../../src/models/index.js';
import { CavMae } from '../../src/api/cavmae.js';
import { TestRedis, cavmae, exited, kill, queueSkip, stopAll, testRoot } from './procs.js';

const tools = ['espeak-ng', 'sox'].every((t) => {
  try {
    return readdirSync('/usr/bin').includes(t);
  } catch {
    return false;
  }
});
const skip = queueSkip() || (!tools && 'espeak-ng and sox are needed for the demo data');
const root = testRoot('cavmae-queue-');

let prepared:
  Promise<{ data: string; files: string[]; model: string; wrong: string; modelId: string }> | undefined;
/** Demo data and model files, made once for the whole file. */
function prepare() {
  prepared ??= (async () => {
    const data = join(root, 'avdigits');
    await makeDemoData({ out: data, n: 300, testN: 0, jobs: 2, realTest: false });
    const media = join(data, 'train');
    const files = readdirSync(media)
      .filter((f) => /\.(wav|png)$/.test(f))
      .sort()
      .map((f) => join(media, f));
    const model = join(root, 'models', 'tiny.safetensors');
    mkdirSync(join(root, 'models'));
    saveModel(model, CAVMAE.create(presetConfig('tiny'), { seed: 0 }));
    const wrong = join(root, 'models', 'wrong.safetensors');
    saveModel(wrong, CAVMAE.create(presetConfig('tiny'), { seed: 1 }));
    const modelId = (await CavMae.load(model)).modelId;
    return { data: media, files, model, wrong, modelId };
  })();
  return prepared;
}

interface Summary {
  added: number;
  skipped: number;
  failed: { path: string; error: string }[];
  index: { count: number; rows: number; dead: number };
  queue: {
    jobs: number;
    redelivered: number;
    duplicates: number;
    resubmitted: number;
    refusals: string[];
    workers: Record<string, { jobs: number; files: number }>;
  };
}

interface WorkerEvent {
  event: string;
  worker: string;
  job?: string;
  message?: string;
}

function startWorker(url: string, name: string, extra: string[] = [], onEvent?: (e: WorkerEvent) => void) {
  return cavmae(
    ['worker', '--queue', url, '--threads', '1', '--json', '--lock-ms', '4000', '--name', name, ...extra],
    (line) => {
      try {
        onEvent?.(JSON.parse(line) as WorkerEvent);
      } catch {
        /* not an event */
      }
    },
  );
}

async function runToEnd(p: ReturnType<typeof cavmae>, what: string): Promise<Summary> {
  const code = await exited(p);
  assert.equal(code, 0, `${what} exited with ${code}: ${p.stderrText().slice(-2000)}`);
  return JSON.parse(p.stdoutText().trim().split('\n').pop()!) as Summary;
}

function bytesOf(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

test(
  '3 workers, one SIGKILLed mid-job: every file indexed exactly once, bit-equal to a single-process index add',
  { skip, timeout: 900_000 },
  async () => {
    const { data, files, model, modelId } = await prepare();
    assert.equal(files.length, 600);
    const redis = await TestRedis.start();
    try {
      const refDir = join(root, 'ref-index');
      const ref = await runToEnd(
        cavmae(['index', 'add', data, '--model', model, '--index', refDir, '--json']),
        'single-process index add',
      );
      assert.equal(ref.added, 600);

      const events: WorkerEvent[] = [];
      let victimJob: string | undefined;
      const workers: ReturnType<typeof startWorker>[] = [];
      const onEvent = (e: WorkerEvent) => {
        events.push(e);
        // w0 is killed as soon as it reports starting its second job. A job of 8 tiny-model
        // files can finish in ~100 ms, so a fixed delay here (it was 150 ms) sometimes let the job
        // finish first, and the test failed its own precondition.
        if (
          e.worker === 'w0' &&
          e.event === 'start' &&
          victimJob === undefined &&
          events.some((x) => x.worker === 'w0' && x.event === 'job')
        ) {
          victimJob = e.job;
          void kill(workers[0]);
        }
      };
      for (const name of ['w0', 'w1', 'w2']) workers.push(startWorker(redis.url, name, [], onEvent));
      const qDir = join(root, 'queued-index');
      const s = await runToEnd(
        cavmae([
          'index',
          'add',
          data,
          '--model',
          model,
          '--index',
          qDir,
          '--queue',
          redis.url,
          '--batch',
          '8',
          '--json',
        ]),
        'queued index add',
      );

      assert.ok(victimJob, 'w0 was killed in the middle of a job');
      assert.equal(workers[0].signalCode, 'SIGKILL');
      assert.ok(
        !events.some((e) => e.worker === 'w0' && e.event === 'job' && e.job === victimJob),
        'w0 never finished its last job',
      );
      assert.ok(
        events.some((e) => e.worker !== 'w0' && e.event === 'job' && e.job === victimJob),
        'another worker finished the job w0 died in',
      );
      assert.ok(s.queue.redelivered >= 1, `redelivered ${s.queue.redelivered}`);
      assert.equal(s.added, 600);
      assert.deepEqual(s.failed, []);
      assert.equal(s.queue.jobs, 75);

      // Exactly once: 600 live entries, 600 rows (no row written twice), one per file.
      const q = MediaIndex.open(qDir);
      const r = MediaIndex.open(refDir);
      assert.deepEqual([q.count, q.rows], [600, 600]);
      assert.deepEqual(
        q
          .list()
          .map((e) => e.path)
          .sort(),
        files,
      );
      let vectors = 0;
      for (const e of q.list()) {
        const f = r.get(e.id)!;
        assert.deepEqual(
          [e.modality, e.hasAudio, e.hasVisual, e.size, e.mtimeMs],
          [f.modality, f.hasAudio, f.hasVisual, f.size, f.mtimeMs],
        );
        for (const space of ['audio', 'visual'] as const) {
          if (!(space === 'audio' ? e.hasAudio : e.hasVisual)) continue;
          assert.ok(
            bytesOf(q.vector(space, e.row)).equals(bytesOf(r.vector(space, f.row))),
            `${e.path} ${space} vector bit-equal`,
          );
          vectors++;
        }
        assert.ok(
          readFileSync(join(qDir, e.thumb!)).equals(readFileSync(join(refDir, f.thumb!))),
          `${e.path} thumbnail equal`,
        );
        assert.equal(e.model, modelId, 'the row records its model');
        assert.match(e.worker ?? '', /^w[012]$/);
      }
      assert.equal(vectors, 600);
      assert.ok(Object.keys(s.queue.workers).length >= 2);

      // Running the same command again finds nothing to do.
      const again = await runToEnd(
        cavmae(['index', 'add', data, '--model', model, '--index', qDir, '--queue', redis.url, '--json']),
        're-run',
      );
      assert.deepEqual([again.added, again.skipped, again.queue.jobs], [0, 600, 0]);
    } finally {
      await stopAll();
      await redis.stop();
    }
  },
);

test(
  'a worker with the wrong model refuses the job and exits; the job goes to a worker with the right one',
  { skip, timeout: 600_000 },
  async () => {
    const { files, model, wrong, modelId } = await prepare();
    const redis = await TestRedis.start();
    try {
      const subset = files.slice(0, 24);
      const qDir = join(root, 'refusal-index');
      const sub = cavmae([
        'index',
        'add',
        ...subset,
        '--model',
        model,
        '--index',
        qDir,
        '--queue',
        redis.url,
        '--batch',
        '8',
        '--json',
      ]);

      // 1. --model names another model.
      const byFlag = startWorker(redis.url, 'wrong-flag', ['--model', wrong]);
      assert.notEqual(await exited(byFlag), 0);
      assert.match(
        byFlag.stderrText(),
        /worker wrong-flag refuses job for index .*refusal-index: it needs model tiny\.safetensors \([0-9a-f]{12}\), this worker has wrong\.safetensors \([0-9a-f]{12}\)/,
      );

      // 2. No --model: the job's model path, mapped to a folder where that name is another file.
      const elsewhere = join(root, 'elsewhere');
      mkdirSync(elsewhere, { recursive: true });
      copyFileSync(wrong, join(elsewhere, 'tiny.safetensors'));
      const byMap = startWorker(redis.url, 'wrong-map', ['--map', `${join(root, 'models')}=${elsewhere}`]);
      assert.notEqual(await exited(byMap), 0);
      assert.match(
        byMap.stderrText(),
        /worker wrong-map refuses job .*: .*elsewhere\/tiny\.safetensors is model tiny\.safetensors \([0-9a-f]{12}\), the job needs tiny\.safetensors \([0-9a-f]{12}\) \(weights or config differ\)/,
      );

      const good = startWorker(redis.url, 'good');
      const s = await runToEnd(sub, 'queued index add');
      await kill(good, 'SIGTERM');
      assert.equal(s.added, 24);
      assert.deepEqual(s.failed, []);
      assert.equal(s.queue.refusals.length, 2, JSON.stringify(s.queue.refusals));
      assert.deepEqual(Object.keys(s.queue.workers), ['good']);
      const idx = MediaIndex.open(qDir);
      assert.ok(idx.list().every((e) => e.worker === 'good' && e.model === modelId));
    } finally {
      await stopAll();
      await redis.stop();
    }
  },
);

test(
  'Redis crashes mid-run (keeping its data, then losing it): the run completes when it is back; LanceDB and embedded search agree',
  { skip, timeout: 600_000 },
  async () => {
    const { files, model } = await prepare();
    const redis = await TestRedis.start();
    try {
      const subset = files.slice(0, 96);
      const lanceDir = join(root, 'lance-index');
      const jobsDone: number[] = [];
      const onEvent = (e: WorkerEvent) => e.event === 'job' && jobsDone.push(Date.now());
      startWorker(redis.url, 'a', [], onEvent);
      startWorker(redis.url, 'b', [], onEvent);
      const sub = cavmae([
        'index',
        'add',
        ...subset,
        '--model',
        model,
        '--index',
        lanceDir,
        '--backend',
        'lancedb',
        '--queue',
        redis.url,
        '--batch',
        '4',
        '--json',
      ]);
      const waitJobs = async (n: number) => {
        while (jobsDone.length < n) await new Promise((r) => setTimeout(r, 50));
      };
      await waitJobs(3);
      await redis.crash();
      await new Promise((r) => setTimeout(r, 1500));
      await redis.startProcess(); // same port, same data (AOF)
      const afterFirst = jobsDone.length;
      await waitJobs(afterFirst + 3);
      await redis.crash();
      rmSync(redis.dir, { recursive: true, force: true });
      mkdirSync(redis.dir);
      await new Promise((r) => setTimeout(r, 1500));
      await redis.startProcess(); // same port, nothing in it
      const s = await runToEnd(sub, 'queued index add through two Redis crashes');
      assert.ok(jobsDone.length > afterFirst + 3, 'workers went on after the restarts');
      assert.equal(s.added, 96);
      assert.deepEqual(s.failed, []);
      assert.ok(s.queue.resubmitted > 0, 'jobs lost with the Redis data were submitted again');

      // The same files indexed by a single process into the embedded backend: equal search answers.
      const embDir = join(root, 'emb-index');
      await runToEnd(
        cavmae(['index', 'add', ...subset, '--model', model, '--index', embDir, '--json']),
        'embedded index add',
      );
      for (const query of [subset[0], subset[1], subset[50]]) {
        const kind = query.endsWith('.wav') ? '--audio' : '--image';
        const a = JSON.parse((await searchJson(['--index', lanceDir, kind, query, '--k', '10'])).trim());
        const b = JSON.parse((await searchJson(['--index', embDir, kind, query, '--k', '10'])).trim());
        assert.equal(a.lists.length, b.lists.length);
        for (let i = 0; i < a.lists.length; i++) {
          assert.deepEqual(
            a.lists[i].hits.map((h: { id: string }) => h.id),
            b.lists[i].hits.map((h: { id: string }) => h.id),
          );
          a.lists[i].hits.forEach((h: { score: number }, j: number) =>
            assert.ok(
              Math.abs(h.score - b.lists[i].hits[j].score) <= 1e-5,
              `score ${h.score} vs ${b.lists[i].hits[j].score}`,
            ),
          );
        }
      }
    } finally {
      await stopAll();
      await redis.stop();
    }
  },
);

async function searchJson(args: string[]): Promise<string> {
  const p = cavmae(['search', ...args, '--json']);
  const code = await exited(p);
  assert.equal(code, 0, p.stderrText());
  return p.stdoutText();
}
