// Opens the Redis client every tier uses, tuned to fail fast: while Redis is down or stalled a
// command errors within seconds (the caller answers `unavailable`) instead of queueing forever.
// Also refuses a Redis that may evict keys: leases, history and dedup keys must never vanish.
import { Redis } from 'ioredis';

export interface OpenRedisOptions {
  /** How long the first connection may take before openRedis rejects. */
  connectDeadlineMs?: number;
  /** A command without a reply after this long fails (a paused or partitioned Redis). */
  commandTimeoutMs?: number;
}

const DEFAULT_CONNECT_DEADLINE_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 3_000;

/** The URL with any password replaced, fit for logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable redis url>';
  }
}

/**
 * Connects and resolves once the client is ready. Keeps reconnecting after that; `status === 'ready'`
 * tells whether it is connected. An `error` listener is installed (ioredis would print otherwise):
 * callers that log should add their own.
 */
export async function openRedis(url: string, name: string, opts: OpenRedisOptions = {}): Promise<Redis> {
  const deadlineMs = opts.connectDeadlineMs ?? DEFAULT_CONNECT_DEADLINE_MS;
  const redis = new Redis(url, {
    // CLIENT SETNAME refuses spaces and control characters.
    connectionName: name.replace(/[^\x21-\x7e]/g, '-'),
    lazyConnect: false,
    enableAutoPipelining: true,
    // Queued commands fail after two failed reconnect attempts; the timeout covers a stalled server.
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: Math.min(deadlineMs, 5_000),
    retryStrategy: (times: number) => Math.min(100 * times, 2_000),
    // A command whose reply was lost may have run; resending it would run a non-idempotent script
    // (an append) twice. It fails instead, and the caller's retry goes through dedup.
    autoResendUnfulfilledCommands: false,
  });
  let lastError: Error | undefined;
  redis.on('error', (e: Error) => {
    lastError = e;
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no connection within ${deadlineMs} ms`));
      }, deadlineMs);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const onEnd = () => {
        cleanup();
        reject(new Error('connection closed'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('end', onEnd);
      };
      redis.on('ready', onReady);
      redis.on('end', onEnd);
    });
  } catch (e) {
    redis.disconnect();
    const why = lastError ? `${(e as Error).message} (last error: ${lastError.message})` : (e as Error).message;
    throw new Error(`Redis ${redactRedisUrl(url)} unreachable: ${why}`, { cause: e });
  }
  return redis;
}

/**
 * Throws when the server's `maxmemory-policy` is not `noeviction`. Returns a warning (to log) when the
 * policy cannot be read, e.g. CONFIG is disabled on a managed Redis; null when all is well.
 */
export async function assertNoEviction(redis: Redis): Promise<string | null> {
  let reply: unknown;
  try {
    reply = await redis.config('GET', 'maxmemory-policy');
  } catch (e) {
    // A reply error means the server answered but refused CONFIG; connection errors propagate.
    if (e instanceof Error && e.name === 'ReplyError') {
      return `cannot read Redis maxmemory-policy (${e.message}); make sure it is noeviction, or keys may be evicted`;
    }
    throw e;
  }
  const policy = Array.isArray(reply)
    ? reply[1]
    : reply !== null && typeof reply === 'object'
      ? (reply as Record<string, unknown>)['maxmemory-policy']
      : undefined;
  if (typeof policy !== 'string') {
    return 'Redis did not report its maxmemory-policy; make sure it is noeviction, or keys may be evicted';
  }
  if (policy !== 'noeviction') {
    throw new Error(
      `Redis maxmemory-policy is "${policy}", rtgw requires "noeviction": evicting leases, history or ` +
        'dedup keys would break ordering and delivery. Run CONFIG SET maxmemory-policy noeviction.',
    );
  }
  return null;
}
