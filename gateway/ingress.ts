// Client frames to actions: validation, authorization, rate limits, and one handler per frame type.
// Every request gets exactly one answer (`ok` or `err`), even when the connection's work fails.
import { BusError, toBytes, toJson, type Bus } from '../shared/bus/bus.js';
import { isErrorReply, type DmRequest, type PubRequest } from '../shared/cluster/messages.js';
import type { SlotClient } from '../shared/cluster/slot-rpc.js';
import { roomSlot, userSlot } from '../shared/cluster/slots.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import { encodePresence } from '../shared/cluster/stream.js';
import type { Config } from '../shared/config.js';
import { RtgwError, toRtgwError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import { frameId, parseClientFrame } from '../shared/protocol/codec.js';
import { encodeServerFrame } from '../shared/protocol/server-codec.js';
import { CloseCode, ErrorCode, isErrorCode } from '../shared/protocol/codes.js';
import type { ClientFrame, Json, RawJson, Request } from '../shared/protocol/frames.js';
import { matchesAny, type RoomId } from '../shared/protocol/names.js';
import type { GatewayStores } from '../shared/store/ports.js';
import { AuthError, type Verifier } from './auth.js';
import { Strikes } from './ratelimit.js';
import type { Backpressure } from './backpressure.js';
import { endSocket, type Conn } from './connection.js';
import type { DirectHub } from './direct.js';
import { presenceTopic, RoomHub } from './rooms.js';

type Answer = Record<string, Json | undefined> | undefined;
const PONG = encodeServerFrame({ t: 'pong' });

/**
 * What a frame costs of the rate limit, in frames (contract 7.1): a join that replays history and a
 * presence read do many times the work of a ping. The first frame's worth is taken before parsing.
 */
const frameCost = (f: ClientFrame): number =>
  (f.t === 'join' && f.since !== undefined) || f.t === 'presence' ? 10 : 1;

export interface IngressDeps {
  cfg: Config;
  bus: Bus;
  subj: Subjects;
  presence: GatewayStores['presence'];
  hub: RoomHub;
  direct: DirectHub;
  verify: Verifier;
  slots: SlotClient;
  backpressure: Backpressure;
  metrics: Metrics;
  log: Logger;
  /** Re-arms the connection's expiry timer after a successful refresh. */
  armExpiry: (conn: Conn) => void;
}

export class Ingress {
  constructor(private readonly d: IngressDeps) {}

  /** One frame of `bytes` bytes from a client. Synchronous up to the first await; never throws. */
  handle(conn: Conn, text: string, bytes: number, binary: boolean): void {
    // A closed connection's state is gone: nothing a frame does may add to it again. (A frame can close
    // it, and the frames after it in the same read, or kept from before `welcome`, still arrive here.)
    if (!conn.open) return;
    if (binary)
      return this.refuse(conn, undefined, ErrorCode.BadRequest, 'binary frames are not supported; send JSON text');
    // Frames and bytes both: at the frame limit alone, near-limit frames would be 500 × 64 KiB a second.
    if (!conn.bucket.take() || !conn.byteBucket.take(bytes)) {
      // Not parsed (that is the work being refused), but the id lets the client tell which request was dropped.
      return this.rateLimited(conn, frameId(text));
    }
    const parsed = parseClientFrame(text);
    if (!parsed.ok) return this.refuse(conn, parsed.id, parsed.code, parsed.msg);
    const f = parsed.frame;
    const cost = frameCost(f);
    if (cost > 1 && !conn.bucket.take(cost - 1)) return this.rateLimited(conn, 'id' in f ? f.id : undefined);
    this.d.metrics.framesReceived.inc({ type: f.t });
    switch (f.t) {
      case 'ping':
        return this.send(conn, PONG, 'pong');
      case 'ack':
        return this.d.direct.ack(conn, f.seq);
      default:
        this.answer(conn, f, this.request(conn, f));
    }
  }

  private rateLimited(conn: Conn, id: number | undefined): void {
    this.d.metrics.rateLimited.inc();
    this.refuse(conn, id, ErrorCode.RateLimited, 'rate limit exceeded; frame dropped');
  }

  /** Sends an error; too many within the window close the connection with 1008. */
  refuse(conn: Conn, id: number | undefined, code: ErrorCode, msg: string): void {
    this.d.metrics.badFrames.inc({ code });
    this.send(conn, encodeServerFrame(id === undefined ? { t: 'err', code, msg } : { t: 'err', id, code, msg }), 'err');
    if ((conn.strikes ??= new Strikes()).hit() && conn.open) {
      this.d.log.info({ conn: conn.id }, 'closing abusive connection');
      endSocket(conn.ws, CloseCode.Policy, 'too many bad or rate-limited frames');
    }
  }

  send(conn: Conn, frame: string, type: string): void {
    if (!conn.open) return;
    conn.ws.send(frame);
    this.d.backpressure.wrote(conn);
    this.d.metrics.framesSent.inc({ type });
  }

  private answer(conn: Conn, f: Request, work: Promise<Answer | (() => void)>): void {
    work.then(
      (r) => {
        if (typeof r === 'function') return r();
        this.send(conn, encodeServerFrame({ t: 'ok', id: f.id, ...r }), 'ok');
      },
      (e: unknown) => {
        const err = toRtgwError(e);
        if (err.code === ErrorCode.Internal)
          this.d.log.error({ err: e, conn: conn.id, type: f.t, id: f.id }, 'request failed');
        if (err.code === ErrorCode.BadRequest) return this.refuse(conn, f.id, err.code, err.message);
        this.send(conn, encodeServerFrame({ t: 'err', id: f.id, code: err.code, msg: err.message }), 'err');
      },
    );
  }

  private async request(conn: Conn, f: Exclude<ClientFrame, { t: 'ping' | 'ack' }>): Promise<Answer | (() => void)> {
    switch (f.t) {
      case 'join':
        return this.join(conn, f);
      case 'leave':
        return this.leave(conn, f.room);
      case 'pub':
        return this.pub(conn, f);
      case 'presence':
        this.allowed(conn.claims.rooms, f.room, 'join');
        return this.d.presence.members(f.room);
      case 'send':
        return this.sendToRoute(conn, f.route, f.data);
      case 'refresh':
        return this.refresh(conn, f.token);
      case 'dm':
        return this.dm(conn, f);
    }
  }

  private allowed(patterns: string[] | undefined, room: string, what: string): void {
    if (!matchesAny(patterns, room))
      throw new RtgwError(ErrorCode.Forbidden, `token does not allow ${what} on this room`);
  }

  private async join(conn: Conn, f: Extract<ClientFrame, { t: 'join' }>): Promise<() => void> {
    this.allowed(conn.claims.rooms, f.room, 'join');
    const max = this.d.cfg.maxRoomsPerConn;
    if (!conn.rooms?.has(f.room) && (conn.rooms?.size ?? 0) >= max) {
      throw new RtgwError(ErrorCode.Limit, `a connection may be in at most ${max} rooms; leave one first`);
    }
    const presence = f.presence === true;
    if (conn.rooms?.has(f.room)) {
      // A repeated join re-reads from `since`; the simplest correct way is a leave and a fresh join.
      this.d.hub.leave(conn, f.room);
    }
    // This join's own entry: a leave, a close or another join of the room meanwhile replaces or removes it,
    // and from then on this join adds nothing (presence, subscriptions) that nothing would remove.
    const entry = { presence, removed: false };
    (conn.rooms ??= new Map()).set(f.room, entry);
    const current = () => conn.open && conn.rooms?.get(f.room) === entry;
    let joined;
    try {
      joined = await this.d.hub.join(conn, f.room, f.since, f.epoch);
    } catch (e) {
      // Still current: the connection is in the room no more, and a repeated join's earlier presence goes too.
      if (conn.rooms?.get(f.room) === entry) {
        this.leave(conn, f.room).catch((err: unknown) =>
          this.d.log.warn({ err, conn: conn.id }, 'presence leave failed'),
        );
      }
      throw e;
    }
    if (current()) {
      const member = { room: f.room, user: conn.user, conn: conn.id };
      // Presence is best effort next to the join itself: a store hiccup must not fail the join. A leave
      // issued after this write reaches the store after it, so it cannot be overtaken.
      this.d.presence
        .join(this.d.cfg.nodeId, member)
        .then((isNew) => {
          if (isNew) this.d.bus.publish(this.d.subj.room(f.room), encodePresence('joined', member, conn.id));
        })
        .catch((e: unknown) => this.d.log.warn({ err: e, conn: conn.id }, 'presence join failed'));
    }
    return () => {
      // Every request is answered, even one superseded by a leave or a newer join; only the current one goes
      // live. One that a refresh took out of the room was refused in effect: `removed` went out already.
      if (entry.removed) {
        const msg = 'token does not allow join on this room';
        return this.send(conn, encodeServerFrame({ t: 'err', id: f.id, code: ErrorCode.Forbidden, msg }), 'err');
      }
      this.send(conn, encodeServerFrame({ t: 'ok', id: f.id, room: f.room, ...joined.result }), 'ok');
      if (!current()) return;
      if (presence) conn.ws.subscribe(presenceTopic(f.room));
      joined.start();
    };
  }

  /** Also used when a connection closes. */
  async leave(conn: Conn, room: RoomId): Promise<Answer> {
    if (!conn.rooms?.delete(room)) return { room };
    this.d.hub.leave(conn, room);
    const member = { room, user: conn.user, conn: conn.id };
    if (await this.d.presence.leave(this.d.cfg.nodeId, member)) {
      this.d.bus.publish(this.d.subj.room(room), encodePresence('left', member, conn.id));
    }
    return { room };
  }

  private async pub(conn: Conn, f: Extract<ClientFrame, { t: 'pub' }>): Promise<Answer> {
    this.allowed(conn.claims.pub, f.room, 'publish');
    const req: PubRequest = {
      op: 'pub',
      room: f.room,
      from: conn.user,
      d: f.data,
      mid: f.mid,
      by: conn.user,
      exclude: f.echo ? undefined : conn.id,
    };
    const { seq } = await this.d.slots.request(roomSlot(f.room, this.d.cfg.slots), req);
    return { seq };
  }

  private async dm(conn: Conn, f: Extract<ClientFrame, { t: 'dm' }>): Promise<Answer> {
    const req: DmRequest = { op: 'dm', to: f.to, from: conn.user, d: f.data, mid: f.mid, by: conn.user };
    const { seq } = await this.d.slots.request(userSlot(f.to, this.d.cfg.slots), req);
    return { seq };
  }

  private async sendToRoute(conn: Conn, route: string, data: RawJson): Promise<Answer> {
    const body = toBytes(`{"user":${JSON.stringify(conn.user)},"conn":${JSON.stringify(conn.id)},"data":${data}}`);
    let reply: unknown;
    try {
      reply = toJson(await this.d.bus.request(this.d.subj.route(route), body, this.d.cfg.requestTimeoutMs));
    } catch (e) {
      if (e instanceof BusError && e.code === 'no_responders')
        throw new RtgwError(ErrorCode.NoRoute, 'no service on this route');
      if (e instanceof BusError && e.code === 'timeout')
        throw new RtgwError(ErrorCode.Timeout, 'the service did not answer in time');
      if (e instanceof SyntaxError) throw new RtgwError(ErrorCode.Internal, 'the service answered with invalid JSON');
      throw new RtgwError(ErrorCode.Unavailable, 'bus unavailable', { cause: e });
    }
    if (isErrorReply(reply)) {
      throw new RtgwError(
        isErrorCode(reply.error.code) ? reply.error.code : ErrorCode.Internal,
        String(reply.error.msg ?? 'service error'),
      );
    }
    return { data: reply as never };
  }

  private async refresh(conn: Conn, token: string): Promise<Answer> {
    let claims;
    try {
      claims = await this.d.verify(token);
    } catch (e) {
      throw new RtgwError(ErrorCode.Unauthorized, e instanceof AuthError ? e.reason : 'invalid token');
    }
    if (claims.sub !== conn.user) throw new RtgwError(ErrorCode.Unauthorized, 'token is for another user');
    if (!conn.open) return undefined; // closed while the token was checked: nothing to refresh
    conn.claims = claims;
    this.d.armExpiry(conn);
    // Rooms the new token no longer allows are left at once (joins under way too), before the answer.
    for (const room of [...(conn.rooms?.keys() ?? [])]) {
      if (matchesAny(claims.rooms, room)) continue;
      conn.rooms!.get(room)!.removed = true;
      this.send(conn, encodeServerFrame({ t: 'removed', room, reason: 'forbidden' }), 'removed');
      this.leave(conn, room).catch((e: unknown) =>
        this.d.log.warn({ err: e, conn: conn.id, room }, 'presence leave failed'),
      );
    }
    return { exp: claims.exp };
  }
}
