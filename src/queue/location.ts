/**
 * Where the job queue lives: `redis://[user:password@]HOST:PORT/N[?queue=NAME]` (rediss:// for
 * TLS), N the Redis database number. Parsed once, checked with clear errors, and turned into
 * the connection options BullMQ and ioredis take.
 */
import { OptionError } from '../util/errors.js';

/** BullMQ key prefix: every key of ours in Redis starts with "cavmae:". */
export const QUEUE_PREFIX = 'cavmae';
export const DEFAULT_QUEUE_NAME = 'index';

export interface QueueLocation {
  /** The URL without its password (for messages and logs). */
  display: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** BullMQ queue name. */
  name: string;
}

export function parseQueueUrl(url: string): QueueLocation {
  const bad = (why: string) => new OptionError((n) => `${n('queue')} ${url}: ${why}`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad('not a URL (expected redis://HOST:PORT/N)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw bad(`the scheme must be redis:// or rediss://, got ${u.protocol}//`);
  if (!u.hostname) throw bad('no host');
  const port = u.port ? Number(u.port) : 6379;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`bad port ${u.port}`);
  const dbText = u.pathname.replace(/^\//, '') || '0';
  if (!/^\d{1,5}$/.test(dbText))
    throw bad(`the path must be a database number (/0, /1, ...), got /${dbText}`);
  const name = u.searchParams.get('queue') ?? DEFAULT_QUEUE_NAME;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
    throw bad(`queue name "${name}" must be 1-64 letters, digits, _ . -`);
  const hostPort = `${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:${port}`;
  return {
    display: `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${hostPort}/${dbText}${name !== DEFAULT_QUEUE_NAME ? `?queue=${name}` : ''}`,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port,
    db: Number(dbText),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === 'rediss:',
    name,
  };
}

/**
 * ioredis options: commands wait for a lost connection to come back (maxRetriesPerRequest
 * null, as BullMQ workers require) and reconnection is retried forever, backing off to 2 s, so a
 * Redis restart only pauses the run.
 */
export function connectionOptions(loc: QueueLocation): Record<string, unknown> {
  return {
    host: loc.host,
    port: loc.port,
    db: loc.db,
    ...(loc.username ? { username: loc.username } : {}),
    ...(loc.password ? { password: loc.password } : {}),
    ...(loc.tls ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
    connectTimeout: 10_000,
  };
}
