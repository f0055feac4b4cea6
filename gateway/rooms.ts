// Local fan-out of room streams. A gateway subscribes to a room's NATS subject while it has a member
// there, and hands every message, in seq order with no gap and no duplicate, to the uWS topic of the
// room; uWS writes it to each local member. A gap (a message lost between router and gateway, or
// reordered by a router takeover) is filled from history before anything after it is delivered.
// A joining connection gets its replay from history, then exactly the live messages after it. The
// ordering (last seq, fill, what waits, joiners' buffers) is ordered-stream.ts's; this file keeps what is
// the room's own: epochs, uWS topics, history reads and the joiners' replay up to `until`.
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
import type { Connections } from './registry.js';
import { OrderedStream, type StreamHandler } from './ordered-stream.js';

type MsgEvent = Extract<StreamEvent, { kind: 'm' }>;

/**
 * A join from its request to its first live message. It is among its room's newcomers from the first
 * step, so a leave or a close (both end in `leave`) removes it wherever the join is: no later step of a
 * join that is gone may add state. Meanwhile it collects (the stream's buffer) the messages it must not miss.
 */
interface Joiner {
  readonly conn: Conn;
  readonly buffer: MsgEvent[];
  /** Seq the replay ended at, set once the replay is sent; the joiner goes live once the room has delivered up to it. */
  until: number | undefined;
}

/**
 * A room with a local member: its ordered stream (last seq, gap fill, what waits, the joiners) and what
 * is the room's own. The stream is held until the head seq is known (`ready`).
 */
class Room extends OrderedStream<Room, MsgEvent, Joiner> {
  readonly topic: string;
  readonly presenceTopic: string;
  /** Set right after construction (its callback needs the room). */
  sub!: Subscription;
  ready: Promise<void> = Promise.resolve();
  epoch = '';
  readonly members = new Set<Conn>();

  constructor(
    handler: StreamHandler<Room, MsgEvent>,
    readonly name: RoomId,
    readonly slot: number,
  ) {
    super(handler);
    this.topic = roomTopic(name);
    this.presenceTopic = presenceTopic(name);
  }
}

export interface JoinResult {
  seq: number;
  epoch: string;
  recovered?: boolean;
}

const HEAD = Number.MAX_SAFE_INTEGER;
export const roomTopic = (room: string) => 'r:' + room;
export const presenceTopic = (room: string) => 'p:' + room;

export interface RoomHubDeps {
  app: TemplatedApp;
  bus: Bus;
  subj: Subjects;
  /** History reads: the head when a room opens, replays, gap fills. */
  log: GatewayStores['log'];
  slots: number;
  conns: Connections;
  backpressure: Backpressure;
  metrics: Metrics;
  logger: Logger;
}

export class RoomHub {
  private readonly rooms = new Map<RoomId, Room>();
  /** One for all rooms (a room's stream calls it with itself). */
  private readonly stream: StreamHandler<Room, MsgEvent> = {
    redeliver: false,
    admit: (room, ev) => {
      if (ev.epoch !== room.epoch) this.resetEpoch(room, ev.epoch, ev.seq - 1);
    },
    deliver: (room, ev) => this.deliver(room, ev),
    fill: (room, upTo) => this.fill(room, upTo),
    settled: (room) => this.settleJoiners(room),
  };

  constructor(private readonly d: RoomHubDeps) {}

  /**
   * Adds `conn` to `room`. The caller sends the returned `ok` first and then calls `start`, which
   * writes the replay and makes the connection live; nothing is delivered to it before that. A join
   * that a leave or close overtook still gets its answer, but `start` then does nothing.
   */
  async join(
    conn: Conn,
    name: RoomId,
    since: number | undefined,
    epoch: string | undefined,
  ): Promise<{ result: JoinResult; start: () => void }> {
    const room = this.open(name);
    room.members.add(conn);
    const joiner: Joiner = { conn, buffer: [], until: undefined };
    room.addNewcomer(joiner);
    try {
      await room.ready;
      if (since === undefined && !room.filling) {
        // Nothing to replay: live from the next message on.
        room.removeNewcomer(joiner);
        const result = { seq: room.lastSeq, epoch: room.epoch };
        return {
          result,
          start: () =>
            this.rooms.get(name) === room && room.members.has(conn) && conn.open && conn.ws.subscribe(room.topic),
        };
      }
      const read = await this.d.log.read(room.slot, name, since ?? HEAD);
      if (read.epoch !== room.epoch && this.rooms.get(name) === room) this.resetEpoch(room, read.epoch, read.seq);
      const recovered = since !== undefined && (epoch === undefined || epoch === read.epoch) && read.complete;
      // History names each message's sender: a connection re-joining does not get its own back.
      const replay = recovered ? read.frames.filter((f) => f.exclude !== conn.id) : [];
      return {
        result:
          since === undefined ? { seq: read.seq, epoch: read.epoch } : { seq: read.seq, epoch: read.epoch, recovered },
        start: () => {
          // Gone when a leave, a close or a newer join of the room took it out meanwhile.
          if (!room.hasNewcomer(joiner)) return;
          // Set only now: until then a live message must not make the joiner go live (before its ok).
          joiner.until = read.seq;
          conn.ws.cork(() => {
            for (const m of replay) conn.ws.send(m.frame);
          });
          this.d.backpressure.wrote(conn);
          this.d.metrics.framesSent.inc({ type: 'msg' }, replay.length);
          // History may be ahead of what this gateway has delivered: catch the room up, then go live.
          if (room.lastSeq < read.seq) room.fill(read.seq);
          this.settleJoiners(room);
        },
      };
    } catch (e) {
      // Still in place: this join's membership is undone. Gone (or its room dropped after a failed
      // start): whatever took it out has done so.
      if (room.removeNewcomer(joiner) && this.rooms.get(name) === room) this.leave(conn, name);
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
      const newcomers = room.newcomers;
      if (newcomers === undefined) continue;
      joiners += newcomers.size;
      for (const j of newcomers) joinerBuffered += j.buffer.length;
    }
    return { rooms: this.rooms.size, roomMembers, joiners, joinerBuffered };
  }

  leave(conn: Conn, name: RoomId): void {
    const room = this.rooms.get(name);
    if (!room || !room.members.delete(conn)) return;
    const newcomers = room.newcomers;
    if (newcomers !== undefined) for (const j of newcomers) if (j.conn === conn) room.removeNewcomer(j);
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
    const room = new Room(this.stream, name, roomSlot(name, this.d.slots));
    room.sub = this.d.bus.subscribe(this.d.subj.room(name), (msg) => this.onStream(room, msg.data));
    room.ready = (async () => {
      // The subscription must be live on the server before the head is read, or a message sequenced
      // in between would be neither in the head nor on the stream.
      await this.d.bus.flush();
      const head = await this.d.log.read(room.slot, name, HEAD);
      room.epoch = head.epoch;
      // Takes what arrived meanwhile, in seq order.
      room.start(head.seq);
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
    if (!ev) return this.d.logger.warn({ room: room.name }, 'dropped malformed stream message');
    if (ev.kind === 'p') return this.publish(room, room.presenceTopic, ev.exclude, ev.frame);
    room.push(ev);
  }

  /**
   * The room's fill: reads history after the last seq and delivers the gap up to `upTo` in order. History
   * may be incomplete: a gap it no longer holds is skipped (with a warning) rather than stall the room; a
   * new epoch there restarts the room instead. A failed read delivers nothing: the next message still
   * ahead starts another fill.
   */
  private fill(room: Room, upTo: number): void {
    this.d.metrics.gapFills.inc();
    this.d.log
      .read(room.slot, room.name, room.lastSeq)
      .then((read) => {
        if (read.epoch !== room.epoch) return this.resetEpoch(room, read.epoch, read.seq);
        // Only the gap comes from history (a copy that arrived on the stream meanwhile is used as is):
        // what follows it comes from the stream.
        const waiting = new Map(room.waiting?.map((e) => [e.seq, e]));
        for (const f of read.frames) {
          if (f.seq > upTo) break;
          if (f.seq !== room.lastSeq + 1) continue;
          const ev = waiting.get(f.seq) ?? {
            kind: 'm' as const,
            seq: f.seq,
            ts: Date.now(),
            epoch: read.epoch,
            exclude: f.exclude,
            frame: Buffer.from(f.frame),
          };
          room.handOver(ev);
        }
        if (room.lastSeq < upTo) {
          // History no longer holds the gap (trimmed or lost): skip it rather than stall the room.
          this.d.logger.warn({ room: room.name, from: room.lastSeq + 1, to: upTo }, 'gap not in history; skipped');
          room.skipTo(upTo);
        }
      })
      .catch((e: unknown) =>
        this.d.logger.error({ err: e, room: room.name }, 'gap fill failed; delivering what arrived'),
      )
      .finally(() => room.endFill());
  }

  private resetEpoch(room: Room, epoch: string, lastSeq: number): void {
    this.d.logger.warn({ room: room.name, from: room.epoch, to: epoch }, 'room history was lost; new epoch');
    room.epoch = epoch;
    room.restartAt(lastSeq);
    // Members drop seqs they have seen, and `msg` frames carry no epoch: tell them seqs start again.
    this.publish(room, room.topic, undefined, encodeServerFrame({ t: 'epoch', room: room.name, epoch, seq: lastSeq }));
    this.d.metrics.framesSent.inc({ type: 'epoch' }, this.d.app.numSubscribers(room.topic));
  }

  /** The stream's delivery (it has moved the last seq, and buffers `ev` for the joiners). */
  private deliver(room: Room, ev: MsgEvent): void {
    this.publish(room, room.topic, ev.exclude, ev.frame);
    this.d.metrics.deliveryLatency.observe(Math.max(0, Date.now() - ev.ts) / 1000);
    this.d.metrics.framesSent.inc({ type: 'msg' }, this.d.app.numSubscribers(room.topic));
  }

  /**
   * Publishing through the sender's own socket is how uWS leaves the sender out. uWS ignores a publish
   * from a socket that subscribes to nothing, and an unsubscribed sender gets nothing from the topic
   * anyway: so the sender's socket is used only when it is subscribed.
   */
  private publish(room: Room, topic: string, exclude: string | undefined, frame: Uint8Array | string): void {
    const sender = exclude === undefined ? undefined : this.d.conns.get(exclude);
    if (sender?.open && sender.ws.isSubscribed(topic)) sender.ws.publish(topic, frame);
    else this.d.app.publish(topic, frame);
    this.d.backpressure.wroteAll(room.members);
  }

  /** Joiners whose replay the room has caught up with get their buffered tail and go live. */
  private settleJoiners(room: Room): void {
    const joiners = room.newcomers;
    if (joiners === undefined) return;
    // Removing goes on over this set even when it empties (ordered-stream.ts); nothing here adds a joiner.
    for (const j of joiners) {
      if (j.until === undefined || room.lastSeq < j.until || room.filling) continue;
      room.removeNewcomer(j);
      const { conn } = j;
      if (!conn.open || !room.members.has(conn)) continue;
      const until = j.until;
      const tail = j.buffer.filter((e) => e.seq > until && e.exclude !== conn.id);
      conn.ws.cork(() => {
        for (const e of tail) conn.ws.send(e.frame);
        conn.ws.subscribe(room.topic);
      });
      this.d.backpressure.wrote(conn);
      this.d.metrics.framesSent.inc({ type: 'msg' }, tail.length);
    }
  }
}
