// The gateway's open connections, by id and by user: the one registry every part reads. Rooms find a
// sender by id (to leave it out), direct messages and backend control reach a user's connections, and the
// per-user cap counts them. A connection is in it from its `welcome` to its close.
import type { Conn } from './connection.js';

export class Connections {
  readonly #byId = new Map<string, Conn>();
  /** A user's set lives while the user has a connection here, so its identity can stand for the group. */
  readonly #byUser = new Map<string, Set<Conn>>();

  add(conn: Conn): void {
    this.#byId.set(conn.id, conn);
    let mine = this.#byUser.get(conn.user);
    if (!mine) this.#byUser.set(conn.user, (mine = new Set()));
    mine.add(conn);
  }

  remove(conn: Conn): void {
    this.#byId.delete(conn.id);
    const mine = this.#byUser.get(conn.user);
    if (mine?.delete(conn) && mine.size === 0) this.#byUser.delete(conn.user);
  }

  get(id: string): Conn | undefined {
    return this.#byId.get(id);
  }

  /** The user's connections here (empty when none). */
  ofUser(user: string): ReadonlySet<Conn> {
    return this.#byUser.get(user) ?? NONE;
  }

  get size(): number {
    return this.#byId.size;
  }

  values(): IterableIterator<Conn> {
    return this.#byId.values();
  }
}

const NONE: ReadonlySet<Conn> = new Set();
