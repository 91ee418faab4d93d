/**
 * Loader worker thread: builds samples (decode, fbank, image transform, augmentation) off the
 * main thread. Protocol: the parent posts `{ id, task }` as soon as a task is queued; the worker
 * keeps a FIFO and runs at most `inflight` tasks at once (so file reads overlap compute), and
 * answers `{ id, ok: true, result }` (buffers transferred, not copied), `{ id, ok: false, which,
 * path, message }` for an unreadable file, or `{ id, ok: false, fatal: true, message }` for a bug.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { buildSample, SampleLoadError, type SampleConfig, type SampleTask } from './sample.js';
import type { WorkerReply } from './loader.js';

const { config, inflight } = workerData as { config: SampleConfig; inflight: number };
const port = parentPort!;
const queue: { id: number; task: SampleTask }[] = [];
let running = 0;

function pump(): void {
  while (running < inflight && queue.length > 0) {
    const msg = queue.shift()!;
    running++;
    buildSample(msg.task, config)
      .then(
        (result) => {
          const buffers = new Set<ArrayBuffer>([
            result.audio.buffer as ArrayBuffer,
            result.image.buffer as ArrayBuffer,
            result.labels.buffer as ArrayBuffer,
          ]);
          const reply: WorkerReply = { id: msg.id, ok: true, result };
          port.postMessage(reply, [...buffers]);
        },
        (e: unknown) => {
          let reply: WorkerReply;
          if (e instanceof SampleLoadError)
            reply = { id: msg.id, ok: false, which: e.which, path: e.path, message: e.message };
          else reply = { id: msg.id, ok: false, fatal: true, message: (e as Error)?.stack ?? String(e) };
          port.postMessage(reply);
        },
      )
      .finally(() => {
        running--;
        pump();
      });
  }
}

port.on('message', (msg: { id: number; task: SampleTask }) => {
  queue.push(msg);
  pump();
});
