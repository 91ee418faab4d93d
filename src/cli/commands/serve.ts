/** `cavmae serve --model M --index P`: the HTTP API and the web page (src/serve). */
import type { Command } from 'commander';
import { defineCommand, flag, int, num, str } from '../schema.js';

const OPTIONS = {
  model: str('--model <file>', 'model checkpoint (.safetensors or .pth)', { required: true }),
  index: str('--index <dir>', 'media index to search and to serve thumbnails and media from'),
  host: str('--host <address>', 'address to bind (anything but loopback needs a token)', {
    default: '127.0.0.1',
  }),
  port: int('--port <n>', 'port (0 picks a free one)', { min: 0, max: 65535, default: 8080 }),
  token: str(
    '--token <secret>',
    'require "Authorization: Bearer <secret>" on every API call (generated when --host is not loopback)',
  ),
  maxUploadMb: num('--max-upload-mb <n>', 'largest uploaded file', { min: 0, exclusive: true, default: 50 }),
  maxDurationSec: num('--max-duration-s <n>', 'longest uploaded audio or video', {
    min: 0,
    exclusive: true,
    default: 60,
  }),
  concurrency: int('--concurrency <n>', 'model jobs at once', { min: 1, default: 1 }),
  queueLength: int('--queue <n>', 'jobs allowed to wait (more get 503)', { min: 0, default: 32 }),
  quiet: flag('--quiet', 'no request log'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'serve',
    'serve the HTTP API (embed, search, classify, localize, reconstruct) and a web page; 127.0.0.1 by default',
    OPTIONS,
    async (o) => {
      const { runServe } = await import('../../serve/run.js');
      await runServe(o);
    },
  );
}
