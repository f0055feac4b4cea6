// PresenceStore on Redis with single-key commands only (Redis Cluster friendly), batched by
// auto-pipelining. Every entry is also recorded in its node's holdings set, which is what reaping
// walks; a membership is reported by the reaper whose HDEL removed it, so concurrent reapers never both do.
import type { Redis } from 'ioredis';
import { decodeName, encodeName } from '../cluster/encode.js';
import { keys, type Keys } from '../cluster/keys.js';
import { userSlot } from '../cluster/slots.js';
import type { PresenceStore, RoomMember } from './ports.js';

// Holdings entries: `m <room> <user> <conn>` and `c <user> <conn>`, each name encoded, so a name can
// never contain the separating space.
const memberEntry = (m: RoomMember) => `m ${encodeName(m.room)} ${encodeName(m.user)} ${encodeName(m.conn)}`;
const connEntry = (user: string, conn: string) => `c ${encodeName(user)} ${encodeName(conn)}`;

/** `user|node`: user ids never contain `|`, node ids might, so split at the first one. */
const splitMember = (v: string): { user: string; node: string } => {
  const i = v.indexOf('|');
  return { user: v.slice(0, i), node: v.slice(i + 1) };
};

const SREM_BATCH = 1000;

export class RedisPresence implements PresenceStore {
  private readonly k: Keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    /** RTGW_SLOTS: a user's connections are filed under the user's slot (keys.ts userConns). */
    private readonly slots: number,
  ) {
    this.k = keys(prefix);
  }

  private conns(user: string): string {
    return this.k.userConns(userSlot(user, this.slots), user);
  }

  async heartbeat(node: string, ttlMs: number): Promise<void> {
    await Promise.all([
      this.redis.set(this.k.nodeAlive(node), '1', 'PX', ttlMs),
      this.redis.sadd(this.k.nodes(), node),
    ]);
  }

  async connect(node: string, user: string, conn: string): Promise<void> {
    await Promise.all([
      this.redis.hset(this.conns(user), conn, node),
      this.redis.sadd(this.k.nodeHoldings(node), connEntry(user, conn)),
    ]);
  }

  async disconnect(node: string, user: string, conn: string): Promise<void> {
    await Promise.all([
      this.redis.hdel(this.conns(user), conn),
      this.redis.srem(this.k.nodeHoldings(node), connEntry(user, conn)),
    ]);
  }

  async join(node: string, m: RoomMember): Promise<boolean> {
    const [added] = await Promise.all([
      this.redis.hset(this.k.presence(m.room), m.conn, `${m.user}|${node}`),
      this.redis.sadd(this.k.nodeHoldings(node), memberEntry(m)),
    ]);
    return added === 1;
  }

  async leave(node: string, m: RoomMember): Promise<boolean> {
    const [removed] = await Promise.all([
      this.redis.hdel(this.k.presence(m.room), m.conn),
      this.redis.srem(this.k.nodeHoldings(node), memberEntry(m)),
    ]);
    return removed === 1;
  }

  async members(room: string): Promise<{ users: string[]; count: number }> {
    const all = await this.redis.hgetall(this.k.presence(room));
    const values = Object.values(all);
    const users = [...new Set(values.map((v) => splitMember(v).user))].sort();
    return { users, count: values.length };
  }

  async userConns(user: string): Promise<{ conn: string; node: string }[]> {
    const all = await this.redis.hgetall(this.conns(user));
    return Object.entries(all)
      .map(([conn, node]) => ({ conn, node }))
      .sort((a, b) => (a.conn < b.conn ? -1 : a.conn > b.conn ? 1 : 0));
  }

  async reap(): Promise<RoomMember[]> {
    const nodes = await this.redis.smembers(this.k.nodes());
    if (nodes.length === 0) return [];
    const alive = await Promise.all(nodes.map((n) => this.redis.exists(this.k.nodeAlive(n))));
    return this.purge(
      nodes.filter((_, i) => alive[i] === 0),
      false,
    );
  }

  removeNode(node: string): Promise<RoomMember[]> {
    return this.purge([node], true);
  }

  /** Removes what the nodes hold: three round trips however many nodes and entries. */
  private async purge(nodes: string[], dropAlive: boolean): Promise<RoomMember[]> {
    if (nodes.length === 0) return [];
    const { redis, k } = this;
    const holdings = await Promise.all(nodes.map((n) => redis.smembers(k.nodeHoldings(n))));
    const removals: { m: RoomMember; removed: Promise<number> }[] = [];
    const writes: Promise<unknown>[] = [];
    nodes.forEach((node, i) => {
      const entries = holdings[i] ?? [];
      for (const entry of entries) {
        const parts = entry.split(' ').map(decodeName);
        if (parts[0] === 'm' && parts.length === 4) {
          const m = { room: parts[1]!, user: parts[2]!, conn: parts[3]! };
          removals.push({ m, removed: redis.hdel(k.presence(m.room), m.conn) });
        } else if (parts[0] === 'c' && parts.length === 3) {
          writes.push(redis.hdel(this.conns(parts[1]!), parts[2]!));
        }
      }
      // Only the entries read above: whatever the node added meanwhile stays for a later reap.
      for (let j = 0; j < entries.length; j += SREM_BATCH) {
        writes.push(redis.srem(k.nodeHoldings(node), ...entries.slice(j, j + SREM_BATCH)));
      }
      writes.push(redis.srem(k.nodes(), node));
      if (dropAlive) writes.push(redis.del(k.nodeAlive(node)));
    });
    const [removed] = await Promise.all([Promise.all(removals.map((r) => r.removed)), Promise.all(writes)]);
    return removals.filter((_, i) => removed[i] === 1).map((r) => r.m);
  }
}
