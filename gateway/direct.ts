// Direct messages at the gateway, and the registry of each user's local connections. Routers send a
// user's direct messages to the gateway nodes that presence says hold that user's connections (one
// subscription per gateway, `<p>.dm.<node>`), and the gateway writes them to the user's live sockets.
// Per-recipient seqs have no gaps, so first copies are delivered in seq order like a room stream: a seq
// that arrives ahead of a missing one waits while the missing ones are read from the inbox (an
// acknowledged one is gone from it, and skipped). A connecting socket gets the inbox's pending messages
// first, read after its presence entry is written (so a message stored meanwhile is either pending or
// routed here), then the live ones after them. Retries (a seq again) pass straight through: the client
// drops seqs it has seen. The ordering (last seq, fill, what waits, attachers' buffers) is
// ordered-stream.ts's.
import type { Bus, BusMsg, Subscription } from '../shared/bus/bus.js';
import { userSlot } from '../shared/cluster/slots.js';
import { decodeDm, DM_ABSENT, DM_HELD } from '../shared/cluster/stream.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import { dmFrameSeq } from '../shared/protocol/stored-frames.js';
import type { GatewayStores } from '../shared/store/ports.js';
import type { Backpressure } from './backpressure.js';
import type { Conn } from './connection.js';
import type { Connections } from './registry.js';
import { OrderedStream, type StreamHandler } from './ordered-stream.js';

interface DmEvent {
  readonly seq: number;
  readonly frame: Uint8Array | string;
}

/** A socket between connect and live: it collects (the stream's buffer) what it must not miss while its replay is read. */
interface Attacher {
  readonly conn: Conn;
  readonly buffer: DmEvent[];
}

/**
 * A user with connections here: the ordered stream of their direct messages (last seq handed over,
 * gap fill, what waits, the attaching sockets) and their connections. The stream is held until the
 * recipient's head is known (read with the first pending messages).
 */
class UserStream extends OrderedStream<UserStream, DmEvent, Attacher> {
  constructor(
    handler: StreamHandler<UserStream, DmEvent>,
    readonly user: string,
    readonly slot: number,
  ) {
    super(handler);
  }
}

export interface DirectHubDeps {
  bus: Bus;
  subj: Subjects;
  /** This gateway's node id: its dm subject. */
  node: string;
  inbox: GatewayStores['inbox'];
  slots: number;
  conns: Connections;
  backpressure: Backpressure;
  metrics: Metrics;
  log: Logger;
}

export class DirectHub {
  private readonly users = new Map<string, UserStream>();
  private readonly sub: Subscription;
  /** One for all users (a user's stream calls it with itself). */
  private readonly stream: StreamHandler<UserStream, DmEvent> = {
    // Retries repeat a seq: they go to the live connections again, which drop seqs they have seen.
    redeliver: true,
    deliver: (u, ev) => this.deliver(u, ev),
    fill: (u, upTo) => this.fill(u, upTo),
  };

  constructor(private readonly d: DirectHubDeps) {
    this.sub = d.bus.subscribe(d.subj.dm(d.node), (msg) => this.onMessage(msg));
  }

  /** Users with a stream here (the holdings gauges). */
  get userCount(): number {
    return this.users.size;
  }

  /**
   * Makes the connection receive the user's direct messages: everything pending in the inbox (seq
   * order, re-armed for retry), then the live ones after it. `registered` is the presence write.
   */
  async attach(conn: Conn, registered: Promise<unknown>): Promise<void> {
    const u = this.open(conn.user);
    const a: Attacher = { conn, buffer: [] };
    u.addNewcomer(a);
    try {
      await registered;
      let pending: { head: number; messages: { seq: number; frame: string }[] };
      try {
        pending = await this.d.inbox.pending(u.slot, u.user);
      } catch (e) {
        u.start(0); // when the head is not known yet, ordering starts from the first live message
        // Live from now on: its pending messages come as the router's retries, which reach live connections only.
        conn.dmLive = true;
        throw e;
      }
      // Once per stream: a later attacher's head is not used.
      u.start(pending.head);
      if (!conn.open) return;
      const messages = pending.messages;
      const last = messages.at(-1)?.seq ?? 0;
      // The buffer has redeliveries too (any order, repeated seqs): sorted, and each seq once.
      const tail = a.buffer.filter((e) => e.seq > last).sort((x, y) => x.seq - y.seq);
      conn.ws.cork(() => {
        for (const p of messages) conn.ws.send(p.frame);
        let prev = last;
        for (const e of tail) {
          if (e.seq === prev) continue;
          conn.ws.send(e.frame);
          prev = e.seq;
        }
      });
      conn.dmLive = true;
      this.d.backpressure.wrote(conn);
      this.d.metrics.dmSent.inc({ kind: 'pending' }, messages.length);
      this.d.metrics.framesSent.inc({ type: 'dm' }, messages.length + tail.length);
    } finally {
      u.removeNewcomer(a);
    }
  }

  /** After the connection left the registry: the user's stream goes with their last connection. */
  detach(conn: Conn): void {
    if (this.d.conns.ofUser(conn.user).size === 0) this.users.delete(conn.user);
  }

  /** An ack from any of the user's connections settles the message for all of them. */
  ack(conn: Conn, seq: number): void {
    this.d.inbox.ack(userSlot(conn.user, this.d.slots), conn.user, seq).then(
      (settled) => settled && this.d.metrics.dmAcked.inc(),
      (e: unknown) => this.d.log.warn({ err: e, conn: conn.id, seq }, 'ack failed; the message will be sent again'),
    );
  }

  close(): void {
    this.sub.unsubscribe();
  }

  private open(user: string): UserStream {
    const existing = this.users.get(user);
    if (existing) return existing;
    const u = new UserStream(this.stream, user, userSlot(user, this.d.slots));
    this.users.set(user, u);
    return u;
  }

  private onMessage(msg: BusMsg): void {
    const d = decodeDm(msg.data);
    const u = d && this.users.get(d.user);
    // Retries are requests: the answer tells the router whether the recipient is connected here.
    msg.respond(u ? DM_HELD : DM_ABSENT);
    if (!d) return this.d.log.warn('dropped malformed dm envelope');
    if (!u) return; // presence is behind: the user has gone from here
    const ev: DmEvent = { seq: dmFrameSeq(d.frame), frame: d.frame };
    if (ev.seq < 0) return this.d.log.warn({ user: u.user }, 'dropped malformed dm frame');
    u.push(ev);
  }

  /**
   * The user's fill: reads the missing seqs from the inbox and delivers them. What is not in the inbox
   * was acknowledged (or dead-lettered), and a failed read is not retried: either way nothing is waited
   * for up to `upTo` (a missing one that is still pending comes again as a retry).
   */
  private fill(u: UserStream, upTo: number): void {
    this.d.inbox
      .peek(u.slot, u.user, u.lastSeq, upTo - u.lastSeq)
      .then((found) => {
        for (const m of found) if (m.seq <= upTo) u.handOver(m);
      })
      .catch((e: unknown) =>
        this.d.log.warn({ err: e, user: u.user }, 'dm gap fill failed; the missing ones come as retries'),
      )
      .finally(() => {
        u.skipTo(upTo);
        u.endFill();
      });
  }

  /** The stream's delivery, in order or a redelivery (it buffers `ev` for the attachers). */
  private deliver(u: UserStream, ev: DmEvent): void {
    let sent = 0;
    const mine = this.d.conns.ofUser(u.user);
    for (const c of mine) {
      if (!c.dmLive || !c.open) continue;
      c.ws.send(ev.frame);
      sent++;
    }
    this.d.backpressure.wroteAll(mine);
    this.d.metrics.framesSent.inc({ type: 'dm' }, sent);
  }
}
