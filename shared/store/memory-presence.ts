// PresenceStore in process memory, with the Redis presence's semantics: entries filed under their
// gateway node, removed together when the node's heartbeat (Date.now()) lapses and a reaper looks.
import type { PresenceStore, RoomMember } from './ports.js';

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
