// Token expiry: a connection is closed with 4010 once its token's `exp` has passed (unless a refresh
// moved it). Connections wait in buckets by exp second, walked by one timer for all of them, instead of
// a timer each (a Timeout and its closure were ~180 B of heap per idle connection).
import type { Conn } from './connection.js';

const TICK_MS = 250;

export class Expiry {
  private readonly buckets = new Map<number, Set<Conn>>();
  /** Every second up to this one has been walked. */
  private done = Math.floor(Date.now() / 1000) - 1;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly expired: (conn: Conn) => void) {
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Schedules `conn` for its token's current `exp` (again, after a refresh). */
  arm(conn: Conn): void {
    this.disarm(conn);
    if (!conn.open) return; // a closed connection is never armed: nothing would disarm it

    const second = Math.max(Math.floor(conn.claims.exp), this.done + 1);
    let bucket = this.buckets.get(second);
    if (!bucket) this.buckets.set(second, (bucket = new Set()));
    bucket.add(conn);
    conn.expirySecond = second;
  }

  /** The connection closed: nothing keeps it until its exp. */
  disarm(conn: Conn): void {
    const second = conn.expirySecond;
    if (second === 0) return;
    conn.expirySecond = 0;
    const bucket = this.buckets.get(second);
    if (bucket?.delete(conn) && bucket.size === 0) this.buckets.delete(second);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    // Bucket s holds the connections whose token is no longer valid from s * 1000 ms on.
    const now = Date.now();
    const last = Math.floor(now / 1000);
    for (let s = this.done + 1; s <= last; s++) {
      const bucket = this.buckets.get(s);
      if (!bucket) continue;
      this.buckets.delete(s);
      for (const c of bucket) {
        c.expirySecond = 0;
        if (c.open) this.expired(c);
      }
    }
    this.done = Math.max(this.done, last);
  }
}
