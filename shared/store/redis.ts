// The Redis engine's stores: one instance of each Redis store on a client the CLI opened (see
// shared/redis/connection.ts), and the client's readiness and shutdown.
import type { Redis } from 'ioredis';
import type { DeadLetterObserver, StoreLimits, Stores } from './ports.js';
import { RedisInbox } from './redis-inbox.js';
import { RedisPresence } from './redis-presence.js';
import { RedisRoomLog } from './redis-room-log.js';
import { RedisSlotLeases } from './redis-slot-leases.js';

const CLOSE_WAIT_MS = 2_000;

export interface RedisStoresOptions {
  /** Whether close() quits the client (default true); false when the client is shared with other users. */
  quitOnClose?: boolean;
  /** Counts dead letters as this process makes them (rtgw_dead_letters_total). */
  onDeadLetter?: DeadLetterObserver;
}

/** Every key starts with `prefix` (RTGW_NATS_PREFIX), so clusters can share one Redis. */
export function redisStores(redis: Redis, prefix: string, limits: StoreLimits, opts: RedisStoresOptions = {}): Stores {
  return {
    log: new RedisRoomLog(redis, prefix, limits),
    inbox: new RedisInbox(redis, prefix, limits, opts.onDeadLetter),
    leases: new RedisSlotLeases(redis, prefix),
    presence: new RedisPresence(redis, prefix, limits.slots),
    get connected() {
      return redis.status === 'ready';
    },
    async close() {
      if (opts.quitOnClose === false || redis.status === 'end') return;
      if (redis.status !== 'ready') {
        redis.disconnect(); // also cancels a pending reconnect attempt
        return;
      }
      const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
      try {
        await redis.quit(); // lets commands already sent finish
      } catch {
        redis.disconnect();
      }
      // Bounded, in case the connection drops mid-quit.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}
