// Local fan-out of room streams. A gateway subscribes to a room's NATS subject while it has a member
// there, and hands every message, in seq order with no gap and no duplicate, to the uWS topic of the
// room; uWS writes it to each local member. A gap (a message lost between router and gateway, or
// reordered by a router takeover) is filled from history before anything after it is delivered.
// A joining connection gets its replay from history, then exactly the live messages after it.
import type { TemplatedApp } from 'uWebSockets.js';
import type { Bus, Subscription } from '../shared/bus/bus.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { RoomId } from '../shared/protocol/names.js';
import { encodeServerFrame } from '../shared/protocol/server-codec.js';
import { decodeStream, type StreamEvent } from '../shared/cluster/stream.js';
import { roomSlot } from '../shared/cluster/slots.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { GatewayStores } from '../shared/store/ports.js';
import type { Backpressure } from './backpressure.js';
import type { Conn } from './connection.js';

type MsgEvent = Extract<StreamEvent, { kind: 'm' }>;

/**
 * A join from its request to its first live message. It is in its room's `joiners` from the first step,
 * so a leave or a close (both end in `leave`) removes it wherever the join is: no later step of a join
 * that is gone may add state. Meanwhile it collects the messages it must not miss.
 */
interface Joiner {
  conn: Conn;
  buffer: MsgEvent[];
  /** Seq the replay ended at, set once the replay is sent; the joiner goes live once the room has delivered up to it. */
  until?: number;
}

interface Room {
  readonly name: RoomId;
  readonly slot: number;
  readonly topic: string;
  readonly presenceTopic: string;
  sub: Subscription;
  /** Resolves once the head seq is known; live messages wait in `pending` until then. */
  ready: Promise<void>;
  isReady: boolean;
  lastSeq: number;
  epoch: string;
  pending: MsgEvent[];
  filling: boolean;
  members: Set<Conn>;
  joiners: Set<Joiner>;
}

export interface JoinResult {
  seq: number;
  epoch: string;
  recovered?: boolean;
}

const HEAD = Number.MAX_SAFE_INTEGER;
export const roomTopic = (room: string) => 'r:' + room;
export const presenceTopic = (room: string) => 'p:' + room;

export class RoomHub {
  private readonly rooms = new Map<RoomId, Room>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly bus: Bus,
    private readonly subj: Subjects,
    private readonly log: GatewayStores['log'],
    private readonly slots: number,
    private readonly conns: Map<string, Conn>,
    private readonly backpressure: Backpressure,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /**
   * Adds `conn` to `room`. The caller sends the returned `ok` first and then calls `start`, which
   * writes the replay and makes the connection live; nothing is delivered to it before that. A join
   * that a leave or close overtook still gets its answer, but `start` then does nothing.
   */
  async join(conn: Conn, name: RoomId, since: number | undefined, epoch: string | undefined): Promise<{ result: JoinResult; start: () => void }> {
    const room = this.open(name);
    room.members.add(conn);
    const joiner: Joiner = { conn, buffer: [] };
    room.joiners.add(joiner);
    try {
      await room.ready;
      if (since === undefined && !room.filling) {
        // Nothing to replay: live from the next message on.
        room.joiners.delete(joiner);
        const result = { seq: room.lastSeq, epoch: room.epoch };
        return { result, start: () => this.rooms.get(name) === room && room.members.has(conn) && conn.open && conn.ws.subscribe(room.topic) };
      }
      const read = await this.log.read(room.slot, name, since ?? HEAD);
      if (read.epoch !== room.epoch && this.rooms.get(name) === room) this.resetEpoch(room, read.epoch, read.seq);
      const recovered = since !== undefined && (epoch === undefined || epoch === read.epoch) && read.complete;
      // History names each message's sender: a connection re-joining does not get its own back.
      const replay = recovered ? read.frames.filter((f) => f.exclude !== conn.id) : [];
      return {
        result: since === undefined ? { seq: read.seq, epoch: read.epoch } : { seq: read.seq, epoch: read.epoch, recovered },
        start: () => {
          // Gone when a leave, a close or a newer join of the room took it out meanwhile.
          if (!room.joiners.has(joiner)) return;
          // Set only now: until then a live message must not make the joiner go live (before its ok).
          joiner.until = read.seq;
          conn.ws.cork(() => {
            for (const m of replay) conn.ws.send(m.frame);
          });
          this.backpressure.wrote(conn);
          this.metrics.framesSent.inc({ type: 'msg' }, replay.length);
          // History may be ahead of what this gateway has delivered: catch the room up, then go live.
          if (room.lastSeq < read.seq) this.fill(room, read.seq);
          this.settleJoiners(room);
        },
      };
    } catch (e) {
      // Still in place: this join's membership is undone. Gone (or its room dropped after a failed
      // start): whatever took it out has done so.
      if (room.joiners.delete(joiner) && this.rooms.get(name) === room) this.leave(conn, name);
      throw e;
    }
  }

  /** Counts for the holdings gauges: what this hub holds right now. */
  holdings(): { rooms: number; roomMembers: number; joiners: number; joinerBuffered: number } {
    let roomMembers = 0;
    let joiners = 0;
    let joinerBuffered = 0;
    for (const room of this.rooms.values()) {
      roomMembers += room.members.size;
      joiners += room.joiners.size;
      for (const j of room.joiners) joinerBuffered += j.buffer.length;
    }
    return { rooms: this.rooms.size, roomMembers, joiners, joinerBuffered };
  }

  leave(conn: Conn, name: RoomId): void {
    const room = this.rooms.get(name);
    if (!room || !room.members.delete(conn)) return;
    for (const j of room.joiners) if (j.conn === conn) room.joiners.delete(j);
    if (conn.open) {
      conn.ws.unsubscribe(room.topic);
      conn.ws.unsubscribe(room.presenceTopic);
    }
    if (room.members.size === 0) {
      room.sub.unsubscribe();
      this.rooms.delete(name);
    }
  }

  private open(name: RoomId): Room {
    const existing = this.rooms.get(name);
    if (existing) return existing;
    const room: Room = {
      name,
      slot: roomSlot(name, this.slots),
      topic: roomTopic(name),
      presenceTopic: presenceTopic(name),
      sub: undefined as unknown as Subscription,
      ready: Promise.resolve(),
      isReady: false,
      lastSeq: 0,
      epoch: '',
      pending: [],
      filling: false,
      members: new Set(),
      joiners: new Set(),
    };
    room.sub = this.bus.subscribe(this.subj.room(name), (msg) => this.onStream(room, msg.data));
    room.ready = (async () => {
      // The subscription must be live on the server before the head is read, or a message sequenced
      // in between would be neither in the head nor on the stream.
      await this.bus.flush();
      const head = await this.log.read(room.slot, name, HEAD);
      room.lastSeq = head.seq;
      room.epoch = head.epoch;
      room.isReady = true;
      this.drainPending(room);
    })();
    room.ready.catch(() => {
      // The joiner that triggered it gets the error; a later join must retry from scratch.
      if (this.rooms.get(name) === room) {
        room.sub.unsubscribe();
        this.rooms.delete(name);
      }
    });
    this.rooms.set(name, room);
    return room;
  }

  private onStream(room: Room, data: Uint8Array): void {
    const ev = decodeStream(data);
    if (!ev) return this.logger.warn({ room: room.name }, 'dropped malformed stream message');
    if (ev.kind === 'p') return this.publish(room, room.presenceTopic, ev.exclude, ev.frame);
    if (!room.isReady || room.filling) {
      room.pending.push(ev);
      return;
    }
    this.accept(room, ev);
  }

  /** Delivers `ev` if it is next, drops it if already delivered, or starts a gap fill. */
  private accept(room: Room, ev: MsgEvent): void {
    if (ev.epoch !== room.epoch) this.resetEpoch(room, ev.epoch, ev.seq - 1);
    if (ev.seq <= room.lastSeq) return;
    if (ev.seq === room.lastSeq + 1) {
      this.deliver(room, ev);
      this.settleJoiners(room);
      return;
    }
    room.pending.push(ev);
    this.fill(room, ev.seq - 1);
  }

  /** Reads history up to at least `upTo`, delivers it in order, then whatever waited meanwhile. */
  private fill(room: Room, upTo: number): void {
    if (room.filling) return;
    room.filling = true;
    this.metrics.gapFills.inc();
    this.log
      .read(room.slot, room.name, room.lastSeq)
      .then((read) => {
        if (read.epoch !== room.epoch) return this.resetEpoch(room, read.epoch, read.seq);
        // Only the gap comes from history (a copy that arrived on the stream meanwhile is used as is):
        // what follows it comes from the stream.
        const waiting = new Map(room.pending.map((e) => [e.seq, e]));
        for (const f of read.frames) {
          if (f.seq > upTo) break;
          if (f.seq !== room.lastSeq + 1) continue;
          const ev = waiting.get(f.seq) ?? { kind: 'm' as const, seq: f.seq, ts: Date.now(), epoch: read.epoch, exclude: f.exclude, frame: Buffer.from(f.frame) };
          this.deliver(room, ev);
        }
        if (room.lastSeq < upTo) {
          // History no longer holds the gap (trimmed or lost): skip it rather than stall the room.
          this.logger.warn({ room: room.name, from: room.lastSeq + 1, to: upTo }, 'gap not in history; skipped');
          room.lastSeq = upTo;
        }
      })
      .catch((e: unknown) => this.logger.error({ err: e, room: room.name }, 'gap fill failed; delivering what arrived'))
      .finally(() => {
        room.filling = false;
        this.drainPending(room);
      });
  }

  private drainPending(room: Room): void {
    const pending = room.pending.sort((a, b) => a.seq - b.seq);
    room.pending = [];
    for (let i = 0; i < pending.length; i++) {
      if (room.filling) {
        room.pending.push(...pending.slice(i));
        return;
      }
      this.accept(room, pending[i]!);
    }
    this.settleJoiners(room);
  }

  private resetEpoch(room: Room, epoch: string, lastSeq: number): void {
    this.logger.warn({ room: room.name, from: room.epoch, to: epoch }, 'room history was lost; new epoch');
    room.epoch = epoch;
    room.lastSeq = lastSeq;
    // Members drop seqs they have seen, and `msg` frames carry no epoch: tell them seqs start again.
    this.publish(room, room.topic, undefined, encodeServerFrame({ t: 'epoch', room: room.name, epoch, seq: lastSeq }));
    this.metrics.framesSent.inc({ type: 'epoch' }, this.app.numSubscribers(room.topic));
  }

  private deliver(room: Room, ev: MsgEvent): void {
    room.lastSeq = ev.seq;
    this.publish(room, room.topic, ev.exclude, ev.frame);
    for (const j of room.joiners) j.buffer.push(ev);
    this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - ev.ts) / 1000);
    this.metrics.framesSent.inc({ type: 'msg' }, this.app.numSubscribers(room.topic));
  }

  /**
   * Publishing through the sender's own socket is how uWS leaves the sender out. uWS ignores a publish
   * from a socket that subscribes to nothing, and an unsubscribed sender gets nothing from the topic
   * anyway: so the sender's socket is used only when it is subscribed.
   */
  private publish(room: Room, topic: string, exclude: string | undefined, frame: Uint8Array | string): void {
    const sender = exclude === undefined ? undefined : this.conns.get(exclude);
    if (sender?.open && sender.ws.isSubscribed(topic)) sender.ws.publish(topic, frame);
    else this.app.publish(topic, frame);
    this.backpressure.wroteAll(room.members);
  }

  /** Joiners whose replay the room has caught up with get their buffered tail and go live. */
  private settleJoiners(room: Room): void {
    for (const j of room.joiners) {
      if (j.until === undefined || room.lastSeq < j.until || room.filling) continue;
      room.joiners.delete(j);
      const { conn } = j;
      if (!conn.open || !room.members.has(conn)) continue;
      const tail = j.buffer.filter((e) => e.seq > j.until! && e.exclude !== conn.id);
      conn.ws.cork(() => {
        for (const e of tail) conn.ws.send(e.frame);
        conn.ws.subscribe(room.topic);
      });
      this.backpressure.wrote(conn);
      this.metrics.framesSent.inc({ type: 'msg' }, tail.length);
    }
  }
}
