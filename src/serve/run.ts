/** What `cavmae serve` does: load the engine, start the server, stop it cleanly on a signal. */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { existingBackend } from '../index/backend.js';
import { fileError } from '../util/errors.js';
import { loadEngine } from './load-engine.js';
import { isLoopback, startServer, type RunningServer, type ServeOptions } from './server.js';

/** The server's own options (`--host` ... `--queue`), the model and index files, and `--quiet`. */
export interface ServeCommandOptions extends Pick<
  ServeOptions,
  'port' | 'token' | 'maxUploadMb' | 'maxDurationSec' | 'concurrency' | 'queueLength'
> {
  model: string;
  index?: string;
  host: string;
  quiet?: boolean;
}

/** Starts serving; resolves when the server has stopped after SIGINT/SIGTERM. */
export async function runServe(
  o: ServeCommandOptions,
  out: NodeJS.WritableStream = process.stderr,
): Promise<void> {
  // Either backend: the embedded folder (meta.json) or LanceDB (a folder or a URI).
  if (o.index && !existingBackend(o.index))
    throw fileError(o.index, "no media index here (build one with 'cavmae index add')");
  if (!existsSync(o.model)) throw fileError(o.model, 'model file not found');
  let token = o.token;
  if (!isLoopback(o.host) && !token) {
    token = randomBytes(24).toString('base64url');
    out.write(
      `cavmae: WARNING: listening on ${o.host}, which is reachable from other machines; generated an access token (pass --token to choose one)\n`,
    );
  }
  const engine = await loadEngine(o.model, o.index);
  const { model, index, quiet, ...serverOptions } = o;
  let server: RunningServer;
  try {
    server = await startServer({
      ...serverOptions,
      engine,
      token,
      log: quiet ? undefined : (line) => out.write(`${new Date().toISOString()} ${line}\n`),
    });
  } catch (e) {
    await engine.close?.();
    throw e;
  }
  const open = token ? `${server.url}?token=${encodeURIComponent(token)}` : server.url;
  out.write(
    `cavmae: serving ${engine.info().modelName}${o.index ? ` with the index ${o.index}` : ''} on ${server.url}\n`,
  );
  out.write(
    `cavmae: open ${open} in a browser${token ? '; API calls need "Authorization: Bearer <token>"' : ''}; Ctrl-C stops\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      out.write(`cavmae: ${sig}: finishing running requests and stopping\n`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop); // node passes the signal's name
    process.on('SIGTERM', stop);
  });
}
