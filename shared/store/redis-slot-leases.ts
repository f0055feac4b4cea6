// SlotLeases on Redis: a lease is a string `<owner>|<fence>` with a PX TTL; every change that depends
// on its current value is a Lua script, so a lapsed or taken lease is never extended or deleted.
import type { Redis } from 'ioredis';
import { keys, type Keys } from '../cluster/keys.js';
import { scripts, type Scripts } from '../redis/scripts.js';
import type { Lease, SlotLeases } from './ports.js';

/** A lease as stored, and as every fenced script (room log, inbox) compares it. */
export const leaseValue = (lease: Lease): string => `${lease.owner}|${lease.fence}`;

/** The owner part of a lease value; owners may contain `|`, fences never do. */
export const leaseOwner = (value: string): string => value.slice(0, value.lastIndexOf('|'));

export class RedisSlotLeases implements SlotLeases {
  private readonly k: Keys;
  private readonly lua: Scripts;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.k = keys(prefix);
    this.lua = scripts(redis);
  }

  async acquire(slot: number, owner: string, ttlMs: number): Promise<Lease | null> {
    const fence = await this.lua['lease-acquire']([this.k.lease(slot), this.k.fence(slot)], [owner, ttlMs]);
    return fence === null ? null : { slot, owner, fence: Number(fence) };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    return Number(await this.lua['lease-renew']([this.k.lease(lease.slot)], [leaseValue(lease), ttlMs])) === 1;
  }

  async release(lease: Lease): Promise<void> {
    await this.lua['lease-release']([this.k.lease(lease.slot)], [leaseValue(lease)]);
  }

  async owners(slots: number): Promise<(string | null)[]> {
    // One GET per slot (each its own hash tag), sent as one batch by auto-pipelining.
    const values = await Promise.all(Array.from({ length: slots }, (_, s) => this.redis.get(this.k.lease(s))));
    return values.map((v) => (v === null ? null : leaseOwner(v)));
  }

  async heartbeat(router: string, ttlMs: number): Promise<void> {
    await this.lua['router-heartbeat']([this.k.routers()], [router, ttlMs]);
  }

  async liveRouters(): Promise<string[]> {
    const live = (await this.lua['live-routers']([this.k.routers()], [])) as string[];
    return live.map(String).sort();
  }

  async leave(router: string): Promise<void> {
    await this.redis.zrem(this.k.routers(), router);
  }
}
