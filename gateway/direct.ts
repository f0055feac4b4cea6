// Direct messages at the gateway: one NATS subscription per locally connected user, fanned out to that
// user's sockets through a uWS topic. Per-recipient seqs have no gaps, so the gateway delivers first
// copies in seq order like a room stream: a seq that arrives ahead of a missing one waits while the
// missing ones are read from the inbox (an acknowledged one is gone from it, and skipped). A connecting
// socket gets the inbox's pending messages first, then the live ones after them. Retries (a seq again)
// pass straight through: the client drops seqs it has seen.
import type { TemplatedApp } from 'uWebSockets.js';
import type { Bus, BusMsg, Subscription } from '../shared/bus/bus.js';
import { userSlot } from '../shared/cluster/slots.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { Inbox } from '../shared/store/ports.js';
import type { Backpressure } from './backpressure.js';
import type { Conn } from './connection.js';

interface DmEvent {
  seq: number;
  frame: Uint8Array | string;
}

/** A socket between connect and live: it collects what it must not miss while its replay is read. */
interface Attacher {
  conn: Conn;
  buffer: DmEvent[];
}

interface UserStream {
  readonly user: string;
  readonly slot: number;
  readonly topic: string;
  sub: Subscription;
  /** The user's connections on this gateway that receive the stream (attached or attaching). */
  conns: Set<Conn>;
  /** Resolves once the recipient's head seq is known; live messages wait in `waiting` until then. */
  ready: Promise<void>;
  /** Highest seq handed to the topic in order (starting from the head when the stream opened). */
  lastSeq: number;
  filling: boolean;
  waiting: DmEvent[];
  attaching: Set<Attacher>;
}

export const userTopic = (user: string) => 'u:' + user;

/** The store builds every dm frame as `{"t":"dm","seq":<n>,...`: the seq is read without parsing JSON. */
const SEQ_AT = '{"t":"dm","seq":'.length;
function frameSeq(frame: Uint8Array): number {
  let n = 0;
  let i = SEQ_AT;
  for (; i < frame.length && frame[i]! >= 48 && frame[i]! <= 57; i++) n = n * 10 + frame[i]! - 48;
  return i === SEQ_AT ? -1 : n;
}

export class DirectHub {
  private readonly users = new Map<string, UserStream>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly bus: Bus,
    private readonly subj: Subjects,
    private readonly inbox: Inbox,
    private readonly slots: number,
    private readonly backpressure: Backpressure,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Makes the connection receive the user's direct messages: everything pending in the inbox (seq
   * order, re-armed for retry), then the live ones after it. `registered` is the presence write.
   */
  async attach(conn: Conn, registered: Promise<unknown>): Promise<void> {
    const u = this.open(conn.user);
    u.conns.add(conn);
    const a: Attacher = { conn, buffer: [] };
    u.attaching.add(a);
    try {
      await Promise.all([registered, u.ready]);
      const pending = await this.inbox.pending(u.slot, u.user);
      if (!conn.open) return;
      const last = pending.at(-1)?.seq ?? 0;
      const tail = a.buffer.filter((e) => e.seq > last).sort((x, y) => x.seq - y.seq);
      conn.ws.cork(() => {
        for (const p of pending) conn.ws.send(p.frame);
        let prev = last;
        for (const e of tail) {
          if (e.seq === prev) continue;
          conn.ws.send(e.frame);
          prev = e.seq;
        }
        conn.ws.subscribe(u.topic);
      });
      this.backpressure.wrote(conn);
      this.metrics.dmSent.inc({ kind: 'pending' }, pending.length);
      this.metrics.framesSent.inc({ type: 'dm' }, pending.length + tail.length);
    } finally {
      u.attaching.delete(a);
    }
  }

  detach(conn: Conn): void {
    const u = this.users.get(conn.user);
    if (!u || !u.conns.delete(conn) || u.conns.size > 0) return;
    u.sub.unsubscribe();
    this.users.delete(conn.user);
  }

  /** An ack from any of the user's connections settles the message for all of them. */
  ack(conn: Conn, seq: number): void {
    this.inbox.ack(userSlot(conn.user, this.slots), conn.user, seq).then(
      (settled) => settled && this.metrics.dmAcked.inc(),
      (e: unknown) => this.log.warn({ err: e, conn: conn.id, seq }, 'ack failed; the message will be sent again'),
    );
  }

  private open(user: string): UserStream {
    const existing = this.users.get(user);
    if (existing) return existing;
    const u: UserStream = {
      user,
      slot: userSlot(user, this.slots),
      topic: userTopic(user),
      sub: undefined as unknown as Subscription,
      conns: new Set(),
      ready: Promise.resolve(),
      lastSeq: 0,
      // Until the head is known, everything waits (as during a fill).
      filling: true,
      waiting: [],
      attaching: new Set(),
    };
    u.sub = this.bus.subscribe(this.subj.user(user), (msg) => this.onMessage(u, msg));
    // Live delivery must be in place on the server before the head is read, or a message stored in
    // between would be neither below the head nor on the stream.
    u.ready = this.bus
      .flush()
      .then(() => this.inbox.head(u.slot, user))
      .then(
        (head) => {
          u.lastSeq = head;
        },
        (e: unknown) => this.log.warn({ err: e, user }, 'dm head unknown; ordering starts from the first live message'),
      )
      .finally(() => this.release(u));
    this.users.set(user, u);
    return u;
  }

  private onMessage(u: UserStream, msg: BusMsg): void {
    // Retries are requests: answering tells the router the recipient is connected here.
    msg.respond('1');
    const ev = { seq: frameSeq(msg.data), frame: msg.data };
    if (ev.seq < 0) return this.log.warn({ user: u.user }, 'dropped malformed dm frame');
    if (u.filling) {
      u.waiting.push(ev);
      return;
    }
    this.accept(u, ev);
  }

  private accept(u: UserStream, ev: DmEvent): void {
    if (ev.seq <= u.lastSeq + 1) {
      // Next in order, or a redelivery of one already handed over.
      this.deliver(u, ev);
      return;
    }
    u.waiting.push(ev);
    this.fill(u, ev.seq - 1);
  }

  /** Reads the missing seqs from the inbox and delivers them, then what waited meanwhile. */
  private fill(u: UserStream, upTo: number): void {
    u.filling = true;
    this.inbox
      .peek(u.slot, u.user, u.lastSeq, upTo - u.lastSeq)
      .then((found) => {
        for (const m of found) if (m.seq <= upTo) this.deliver(u, m);
      })
      .catch((e: unknown) => this.log.warn({ err: e, user: u.user }, 'dm gap fill failed; the missing ones come as retries'))
      .finally(() => {
        // What is not in the inbox was acknowledged (or dead-lettered): nothing to wait for.
        u.lastSeq = Math.max(u.lastSeq, upTo);
        this.release(u);
      });
  }

  /** Ends a fill (or the wait for the head) and delivers what waited meanwhile, in seq order. */
  private release(u: UserStream): void {
    u.filling = false;
    const waiting = u.waiting.sort((x, y) => x.seq - y.seq);
    u.waiting = [];
    for (let i = 0; i < waiting.length; i++) {
      if (u.filling) {
        u.waiting.push(...waiting.slice(i));
        return;
      }
      this.accept(u, waiting[i]!);
    }
  }

  private deliver(u: UserStream, ev: DmEvent): void {
    if (ev.seq > u.lastSeq) u.lastSeq = ev.seq;
    this.app.publish(u.topic, ev.frame);
    this.backpressure.wroteAll(u.conns);
    for (const a of u.attaching) a.buffer.push(ev);
    this.metrics.framesSent.inc({ type: 'dm' }, this.app.numSubscribers(u.topic));
  }
}
