// In-process stores for standalone and tests, with the Redis stores' semantics: TTLs on Date.now(),
// fenced appends, random epochs, a dedup window, reaping of lapsed nodes. State dies with the process.
import { randomUUID } from 'node:crypto';
import { NotOwnerError } from '../errors.js';
import { MemoryInbox } from './memory-inbox.js';
import type {
  AppendRequest,
  AppendResult,
  DeadLetterObserver,
  HistoryRead,
  Lease,
  PresenceStore,
  RoomLog,
  RoomLogLimits,
  RoomMember,
  SlotLeases,
  StoreLimits,
  Stores,
} from './ports.js';

export { MemoryInbox } from './memory-inbox.js';

const SWEEP_EVERY_MS = 60_000;

export class MemorySlotLeases implements SlotLeases {
  private readonly held = new Map<number, { owner: string; fence: number; expiresAt: number }>();
  private readonly fences = new Map<number, number>();
  /** router -> deadline */
  private readonly routers = new Map<string, number>();

  private current(slot: number) {
    const l = this.held.get(slot);
    if (l && l.expiresAt <= Date.now()) {
      this.held.delete(slot);
      return undefined;
    }
    return l;
  }

  /** True while `lease` is its slot's current lease (what a fenced write checks). */
  holds(lease: Lease): boolean {
    const l = this.current(lease.slot);
    return l !== undefined && l.owner === lease.owner && l.fence === lease.fence;
  }

  async acquire(slot: number, owner: string, ttlMs: number): Promise<Lease | null> {
    if (this.current(slot)) return null;
    const fence = (this.fences.get(slot) ?? 0) + 1;
    this.fences.set(slot, fence);
    this.held.set(slot, { owner, fence, expiresAt: Date.now() + ttlMs });
    return { slot, owner, fence };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    if (!this.holds(lease)) return false;
    this.held.get(lease.slot)!.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async release(lease: Lease): Promise<void> {
    if (this.holds(lease)) this.held.delete(lease.slot);
  }

  async owners(slots: number): Promise<(string | null)[]> {
    return Array.from({ length: slots }, (_, s) => this.current(s)?.owner ?? null);
  }

  async heartbeat(router: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.routers.set(router, now + ttlMs);
    for (const [r, deadline] of this.routers) if (deadline <= now) this.routers.delete(r);
  }

  async liveRouters(): Promise<string[]> {
    const now = Date.now();
    return [...this.routers].filter(([, deadline]) => deadline > now).map(([r]) => r).sort();
  }

  async leave(router: string): Promise<void> {
    this.routers.delete(router);
  }
}

interface Room {
  epoch: string;
  seq: number;
  /** Ascending, gapless seqs; trimmed at the head. */
  history: { seq: number; frame: string; exclude?: string; ts: number }[];
  expiresAt: number;
}

export class MemoryRoomLog implements RoomLog {
  private rooms = new Map<string, Room>();
  private dedup = new Map<string, { seq: number; expiresAt: number }>();
  private lastSweep = Date.now();

  constructor(
    private readonly leases: MemorySlotLeases,
    private readonly limits: RoomLogLimits,
  ) {}

  /** Test hook: loses every room, as FLUSHALL does on Redis. */
  wipe(): void {
    this.rooms.clear();
    this.dedup.clear();
  }

  private room(slot: number, name: string, now: number): Room {
    this.sweep(now);
    const key = `${slot}/${name}`;
    let r = this.rooms.get(key);
    if (!r || r.expiresAt <= now) {
      r = { epoch: randomUUID(), seq: 0, history: [], expiresAt: now + this.ttlMs() };
      this.rooms.set(key, r);
    }
    return r;
  }

  private ttlMs(): number {
    return this.limits.maxAgeMs + this.limits.dedupWindowMs;
  }

  /** Drops idle rooms and old dedup entries now and then, so memory does not grow with names ever used. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [k, r] of this.rooms) if (r.expiresAt <= now) this.rooms.delete(k);
    for (const [k, d] of this.dedup) if (d.expiresAt <= now) this.dedup.delete(k);
  }

  async append(req: AppendRequest, lease: Lease): Promise<AppendResult> {
    if (lease.slot !== req.slot || !this.leases.holds(lease)) throw new NotOwnerError(req.slot);
    const now = Date.now();
    const room = this.room(req.slot, req.room, now);
    const dedupKey =
      req.mid !== undefined && req.dedupBy !== undefined
        ? JSON.stringify([req.slot, req.room, req.dedupBy, req.mid])
        : undefined;
    if (dedupKey !== undefined) {
      const first = this.dedup.get(dedupKey);
      if (first && first.expiresAt > now) {
        const h = room.history;
        const kept = h.length > 0 ? h[first.seq - h[0]!.seq] : undefined;
        return { seq: first.seq, epoch: room.epoch, frame: kept?.seq === first.seq ? kept.frame : '', duplicate: true };
      }
    }
    const seq = ++room.seq;
    const frame =
      `{"t":"msg","room":${JSON.stringify(req.room)},"seq":${seq},"from":${JSON.stringify(req.from)},` +
      `"data":${req.dataJson}${req.mid === undefined ? '' : `,"mid":${JSON.stringify(req.mid)}`},"ts":${now}}`;
    const h = room.history;
    h.push({ seq, frame, exclude: req.exclude, ts: now });
    const cutoff = now - this.limits.maxAgeMs;
    let drop = Math.max(0, h.length - this.limits.maxMessages);
    while (drop < h.length && h[drop]!.ts < cutoff) drop++;
    if (drop > 0) h.splice(0, drop);
    if (dedupKey !== undefined) this.dedup.set(dedupKey, { seq, expiresAt: now + this.limits.dedupWindowMs });
    room.expiresAt = now + this.ttlMs();
    return { seq, epoch: room.epoch, frame, duplicate: false };
  }

  async read(slot: number, name: string, after: number): Promise<HistoryRead> {
    const now = Date.now();
    const room = this.room(slot, name, now);
    const head = room.seq;
    const none = (complete: boolean): HistoryRead => ({ seq: head, epoch: room.epoch, frames: [], complete });
    if (after === head) return none(true);
    if (after > head || head - after > this.limits.maxMessages) return none(false);
    const h = room.history;
    const from = h.length > 0 ? after + 1 - h[0]!.seq : -1;
    if (from < 0 || h.length - from !== head - after) return none(false);
    const first = h[from]!;
    if (first.seq !== after + 1 || first.ts < now - this.limits.maxAgeMs) return none(false);
    const frames = h.slice(from).map(({ seq, frame, exclude }) => ({ seq, frame, exclude }));
    return { seq: head, epoch: room.epoch, frames, complete: true };
  }
}

type Holding = { kind: 'm'; m: RoomMember } | { kind: 'c'; user: string; conn: string };

export class MemoryPresence implements PresenceStore {
  /** room -> conn -> who */
  private readonly rooms = new Map<string, Map<string, { user: string; node: string }>>();
  /** user -> conn -> node */
  private readonly users = new Map<string, Map<string, string>>();
  private readonly holdings = new Map<string, Map<string, Holding>>();
  /** node -> heartbeat deadline */
  private readonly alive = new Map<string, number>();

  private hold(node: string, key: string, h: Holding | undefined): void {
    let set = this.holdings.get(node);
    if (h) {
      if (!set) this.holdings.set(node, (set = new Map()));
      set.set(key, h);
    } else if (set) {
      set.delete(key);
      if (set.size === 0) this.holdings.delete(node);
    }
  }

  async heartbeat(node: string, ttlMs: number): Promise<void> {
    this.alive.set(node, Date.now() + ttlMs);
  }

  /** Test aid: whether the node's heartbeat is still current. */
  isAlive(node: string): boolean {
    return (this.alive.get(node) ?? 0) > Date.now();
  }

  async connect(node: string, user: string, conn: string): Promise<void> {
    let conns = this.users.get(user);
    if (!conns) this.users.set(user, (conns = new Map()));
    conns.set(conn, node);
    this.hold(node, JSON.stringify(['c', user, conn]), { kind: 'c', user, conn });
  }

  async disconnect(node: string, user: string, conn: string): Promise<void> {
    this.dropUserConn(user, conn);
    this.hold(node, JSON.stringify(['c', user, conn]), undefined);
  }

  async join(node: string, m: RoomMember): Promise<boolean> {
    let conns = this.rooms.get(m.room);
    if (!conns) this.rooms.set(m.room, (conns = new Map()));
    const added = !conns.has(m.conn);
    conns.set(m.conn, { user: m.user, node });
    this.hold(node, JSON.stringify(['m', m.room, m.user, m.conn]), { kind: 'm', m: { ...m } });
    return added;
  }

  async leave(node: string, m: RoomMember): Promise<boolean> {
    const removed = this.dropMember(m.room, m.conn);
    this.hold(node, JSON.stringify(['m', m.room, m.user, m.conn]), undefined);
    return removed;
  }

  async members(room: string): Promise<{ users: string[]; count: number }> {
    const conns = [...(this.rooms.get(room)?.values() ?? [])];
    return { users: [...new Set(conns.map((c) => c.user))].sort(), count: conns.length };
  }

  /** The distinct nodes holding a connection of `user` (the memory inbox reads it with each append). */
  nodesOf(user: string): string[] {
    return [...new Set(this.users.get(user)?.values() ?? [])];
  }

  async userConns(user: string): Promise<{ conn: string; node: string }[]> {
    return [...(this.users.get(user) ?? [])]
      .map(([conn, node]) => ({ conn, node }))
      .sort((a, b) => (a.conn < b.conn ? -1 : a.conn > b.conn ? 1 : 0));
  }

  async reap(): Promise<RoomMember[]> {
    const now = Date.now();
    const out: RoomMember[] = [];
    // Nodes known by a heartbeat only, as on Redis (where the node set is filled by heartbeats).
    for (const [node, deadline] of this.alive) {
      if (deadline <= now) out.push(...this.purge(node));
    }
    return out;
  }

  async removeNode(node: string): Promise<RoomMember[]> {
    return this.purge(node);
  }

  private purge(node: string): RoomMember[] {
    const out: RoomMember[] = [];
    for (const h of this.holdings.get(node)?.values() ?? []) {
      if (h.kind === 'm') {
        if (this.dropMember(h.m.room, h.m.conn)) out.push(h.m);
      } else {
        this.dropUserConn(h.user, h.conn);
      }
    }
    this.holdings.delete(node);
    this.alive.delete(node);
    return out;
  }

  private dropMember(room: string, conn: string): boolean {
    const conns = this.rooms.get(room);
    if (!conns?.delete(conn)) return false;
    if (conns.size === 0) this.rooms.delete(room);
    return true;
  }

  private dropUserConn(user: string, conn: string): void {
    const conns = this.users.get(user);
    if (conns?.delete(conn) && conns.size === 0) this.users.delete(user);
  }
}

export interface MemoryStores extends Stores {
  readonly log: MemoryRoomLog;
  readonly inbox: MemoryInbox;
  readonly leases: MemorySlotLeases;
  readonly presence: MemoryPresence;
}

export interface MemoryStoresOptions {
  /** Counts dead letters as they are made (rtgw_dead_letters_total). */
  onDeadLetter?: DeadLetterObserver;
}

export function memoryStores(limits: StoreLimits, opts: MemoryStoresOptions = {}): MemoryStores {
  const leases = new MemorySlotLeases();
  const presence = new MemoryPresence();
  let open = true;
  return {
    log: new MemoryRoomLog(leases, limits),
    inbox: new MemoryInbox(leases, limits, (user) => presence.nodesOf(user), opts.onDeadLetter),
    leases,
    presence,
    get connected() {
      return open;
    },
    async close() {
      open = false;
    },
  };
}
