/**
 * The server side of the load test, in its own process so that its memory can be measured:
 * serves an existing index with the deterministic test engine, prints "LISTENING <url>", and
 * shuts down gracefully on SIGTERM (exit code 0).
 * Usage: serve-child <indexDir>
 */
import { MediaIndex } from '../../src/index/index.js';
import { startServer } from '../../src/serve/index.js';
import { TestEngine } from './test-engine.js';

const index = MediaIndex.open(process.argv[2]);
const server = await startServer({
  engine: new TestEngine({ index, delayMs: 5 }),
  port: 0,
  maxUploadMb: 1,
  maxDurationSec: 30,
  concurrency: 2,
  queueLength: 32,
});
process.stdout.write(`LISTENING ${server.url}\n`);
process.on('SIGTERM', () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
