/**
 * Loader worker thread: builds samples (decode, fbank, image transform, augmentation) off the
 * main thread. Protocol: the parent posts `{ id, task }` as soon as a task is queued; the worker
 * keeps a FIFO and runs at most `inflight` tasks at once (so file reads overlap compute), and
 * answers `{ id, ok: true, result }` (buffers transferred, not copied), `{ id, ok: false, which,
 * path, message }` for an unreadable file, or `{ id, ok: false, fatal: true, message }` for a bug.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SampleConfig, SampleTask } from './sample.js';
import { runSampleTask } from './loader.js';

const { config, inflight } = workerData as { config: SampleConfig; inflight: number };
const port = parentPort!;
const queue: { id: number; task: SampleTask }[] = [];
let running = 0;

function pump(): void {
  while (running < inflight && queue.length > 0) {
    const msg = queue.shift()!;
    running++;
    runSampleTask(msg.id, msg.task, config)
      .then((reply) => {
        // The sample's buffers are transferred, not copied.
        const buffers = reply.ok ? [reply.result.audio, reply.result.image, reply.result.labels] : [];
        port.postMessage(reply, [...new Set(buffers.map((b) => b.buffer as ArrayBuffer))]);
      })
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
