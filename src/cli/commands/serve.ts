/** `cavmae serve --model M --index P`: the HTTP API and the web page (src/serve). */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function positive(name: string, integer: boolean) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new UserError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got '${v}'`);
    }
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API (embed, search, classify, localize, reconstruct) and a web page; 127.0.0.1 by default')
    .requiredOption('--model <file>', 'model checkpoint (.safetensors or .pth)')
    .option('--index <dir>', 'media index to search and to serve thumbnails and media from')
    .option('--host <address>', 'address to bind (anything but loopback needs a token)', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UserError(`--port must be an integer in 0..65535, got '${v}'`);
      return n;
    }, 8080)
    .option('--token <secret>', 'require "Authorization: Bearer <secret>" on every API call (generated when --host is not loopback)')
    .option('--max-upload-mb <n>', 'largest uploaded file', positive('--max-upload-mb', false), 50)
    .option('--max-duration-s <n>', 'longest uploaded audio or video', positive('--max-duration-s', false), 60)
    .option('--concurrency <n>', 'model jobs at once', positive('--concurrency', true), 1)
    .option('--queue <n>', 'jobs allowed to wait (more get 503)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new UserError(`--queue must be an integer >= 0, got '${v}'`);
      return n;
    }, 32)
    .option('--quiet', 'no request log')
    .action(async (o: { model: string; index?: string; host: string; port: number; token?: string; maxUploadMb: number; maxDurationS: number; concurrency: number; queue: number; quiet?: boolean }) => {
      const { runServe } = await import('../../serve/run.js');
      await runServe(o);
    });
}
