// Slow consumers. uWS drops a socket past its own backpressure limit without a close frame, so the
// gateway checks send buffers itself and closes with 4009 first. Only connections written to since the
// last sweep are checked (one native call each): idle connections cost nothing.
import type { Conn } from './connection.js';

export class Backpressure {
  private conns = new Set<Conn>();
  /** Whole groups written to at once (a room's members, a user's connections), walked at the sweep. */
  private groups = new Set<Iterable<Conn>>();

  wrote(conn: Conn): void {
    this.conns.add(conn);
  }

  wroteAll(group: Iterable<Conn>): void {
    this.groups.add(group);
  }

  /** Checks every `everyMs`; `slow` gets each open connection whose send buffer is past `limitBytes`. */
  start(limitBytes: number, everyMs: number, slow: (conn: Conn) => void): () => void {
    const timer = setInterval(() => {
      const { conns, groups } = this;
      this.conns = new Set();
      this.groups = new Set();
      const check = (c: Conn) => c.open && c.ws.getBufferedAmount() > limitBytes && slow(c);
      for (const g of groups) for (const c of g) check(c);
      for (const c of conns) check(c);
    }, everyMs);
    return () => clearInterval(timer);
  }
}
