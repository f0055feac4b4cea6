// The backends every contract suite runs against: the memory stores and the Redis stores on a real
// redis-server started for the file. Each make() gets a fresh key prefix, so tests never share state.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { keys } from '../../shared/cluster/keys.js';
import { openRedis } from '../../shared/redis/connection.js';
import { memoryStores } from '../../shared/store/memory.js';
import type { DeadLetterReason, StoreLimits, Stores } from '../../shared/store/ports.js';
import { redisStores } from '../../shared/store/redis.js';
import { startRedis, type RedisServer } from '../harness/redis.js';

export const DEFAULT_LIMITS: StoreLimits = {
  maxMessages: 1000,
  maxAgeMs: 3_600_000,
  dedupWindowMs: 3_600_000,
  ackTimeoutMs: 5_000,
  maxBackoffMs: 60_000,
  maxAttempts: 8,
  inboxMaxAgeMs: 7 * 24 * 3_600_000,
  inboxMaxMessages: 10_000,
  inboxMaxPerSender: 1000,
  deadLettersMaxPerSlot: 10_000,
  slots: 64,
};

export interface Instance {
  stores: Stores;
  /** A second handle on the same data (on Redis: another connection), for concurrency tests. */
  peer: Stores;
  /** Dead letters reported to the stores' onDeadLetter observer (stores and peer), by reason, and old ones dropped. */
  deadLettered: Record<DeadLetterReason | 'dropped', number>;
  /** Loses all room history and inboxes: FLUSHALL on Redis (leases go too), wipe() on memory. */
  wipe(): Promise<void>;
  /** Only on redis: every key under this instance's prefix (to check hash tags and leftovers). */
  redisKeys?(): Promise<string[]>;
  /** Only on redis: a key's PTTL (-1 without expiry, -2 when absent). */
  redisPttl?(key: string): Promise<number>;
  /** True once a presence node's heartbeat has lapsed, as the store sees it. */
  lapsed(node: string): Promise<boolean>;
}

export interface Backend {
  readonly name: 'memory' | 'redis';
  make(limits?: Partial<StoreLimits>): Instance;
  close(): Promise<void>;
  /** Only on redis: the server. */
  readonly server?: RedisServer;
}

export const uniquePrefix = (): string => `t${randomBytes(6).toString('hex')}`;

function deadLetterCounter() {
  const deadLettered: Record<DeadLetterReason | 'dropped', number> = {
    attempts: 0,
    inbox_full: 0,
    expired: 0,
    dropped: 0,
  };
  const onDeadLetter = (reason: DeadLetterReason | 'dropped', count: number) => void (deadLettered[reason] += count);
  return { deadLettered, onDeadLetter };
}

function memoryBackend(): Backend {
  return {
    name: 'memory',
    make(limits) {
      const { deadLettered, onDeadLetter } = deadLetterCounter();
      const stores = memoryStores({ ...DEFAULT_LIMITS, ...limits }, { onDeadLetter });
      return {
        stores,
        peer: stores,
        deadLettered,
        wipe: async () => {
          stores.log.wipe();
          stores.inbox.wipe();
        },
        lapsed: async (node) => !stores.presence.isAlive(node),
      };
    },
    close: async () => undefined,
  };
}

async function redisBackend(): Promise<Backend> {
  const server = await startRedis();
  const a = await openRedis(server.url, 'contract-a');
  const b = await openRedis(server.url, 'contract-b');
  return {
    name: 'redis',
    server,
    make(limits) {
      const prefix = uniquePrefix();
      const l = { ...DEFAULT_LIMITS, ...limits };
      const { deadLettered, onDeadLetter } = deadLetterCounter();
      return {
        stores: redisStores(a, prefix, l, { quitOnClose: false, onDeadLetter }),
        peer: redisStores(b, prefix, l, { quitOnClose: false, onDeadLetter }),
        deadLettered,
        wipe: async () => void (await a.flushall()),
        redisKeys: () => a.keys(`${prefix}:*`),
        redisPttl: (key) => a.pttl(key),
        lapsed: async (node) => (await a.exists(keys(prefix).nodeAlive(node))) === 0,
      };
    },
    async close() {
      a.disconnect();
      b.disconnect();
      await server.stop();
    },
  };
}

/** Runs `body` once per backend; `get()` returns the backend once beforeAll has run. */
export function forEachBackend(suite: string, body: (get: () => Backend) => void): void {
  describe.each(['memory', 'redis'] as const)(`${suite} [%s]`, (kind) => {
    let backend: Backend | undefined;
    beforeAll(async () => {
      backend = kind === 'memory' ? memoryBackend() : await redisBackend();
    });
    afterAll(async () => {
      await backend?.close();
    });
    body(() => {
      if (!backend) throw new Error('backend not started');
      return backend;
    });
  });
}
