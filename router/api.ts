// The backend API over NATS (protocol section 5), answered by any router (one queue group).
import type { Bus, BusMsg } from '../shared/bus/bus.js';
import type { SeqReply } from '../shared/cluster/messages.js';
import { requestSlot } from '../shared/cluster/slot-client.js';
import { roomSlot } from '../shared/cluster/slots.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Config } from '../shared/config.js';
import { errorReply, RtgwError, toRtgwError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { MAX_MID_CHARS } from '../shared/protocol/codec.js';
import { ErrorCode } from '../shared/protocol/codes.js';
import { isRoomId, isUserId } from '../shared/protocol/names.js';
import type { PresenceStore } from '../shared/store/ports.js';

type Body = Record<string, unknown>;
const QUEUE = 'rtgw-routers';
const MAX_FROM_CHARS = 128;

const bad = (msg: string) => new RtgwError(ErrorCode.BadRequest, msg);

export function serveApi(bus: Bus, subj: Subjects, cfg: Config, presence: PresenceStore, log: Logger): () => void {
  const handlers: Record<string, (b: Body) => Promise<unknown>> = {
    async publish(b) {
      if (!isRoomId(b.room)) throw bad('bad room name');
      if (!('data' in b)) throw bad('`data` is required');
      const from = b.from ?? 'backend';
      if (typeof from !== 'string' || from.length === 0 || from.length > MAX_FROM_CHARS) throw bad('`from` must be a string of 1 to 128 characters');
      if (b.mid !== undefined && (typeof b.mid !== 'string' || b.mid.length === 0 || b.mid.length > MAX_MID_CHARS)) throw bad('`mid` must be a string of 1 to 64 characters');
      const d = JSON.stringify(b.data);
      // A backend's mids are its own: they never collide with a user's of the same name.
      const req = { op: 'pub' as const, room: b.room, from, d, mid: b.mid as string | undefined, by: `backend/${from}` };
      const { seq } = await requestSlot<SeqReply>(bus, subj, roomSlot(b.room, cfg.slots), req, cfg.requestTimeoutMs);
      return { seq };
    },
    async presence(b) {
      if (!isRoomId(b.room)) throw bad('bad room name');
      return presence.members(b.room);
    },
    async disconnect(b) {
      if (!isUserId(b.user)) throw bad('bad user id');
      if (b.reason !== undefined && typeof b.reason !== 'string') throw bad('`reason` must be a string');
      const byNode = new Map<string, number>();
      for (const c of await presence.userConns(b.user)) byNode.set(c.node, 1);
      const body = JSON.stringify({ op: 'disconnect', user: b.user, reason: b.reason });
      const counts = await Promise.all(
        [...byNode.keys()].map(async (node) => {
          try {
            const r = JSON.parse(Buffer.from(await bus.request(subj.node(node), body, cfg.requestTimeoutMs)).toString()) as { count?: number };
            return r.count ?? 0;
          } catch {
            return 0; // A node that is gone holds no connections; its presence is reaped.
          }
        }),
      );
      return { count: counts.reduce((a, n) => a + n, 0) };
    },
    async dm() {
      throw new RtgwError(ErrorCode.Unavailable, 'direct messages are not enabled on this server yet');
    },
  };

  const subs = Object.entries(handlers).map(([op, handler]) =>
    bus.subscribe(subj.api(op as 'publish'), (msg: BusMsg) => {
      let body: Body;
      try {
        const v: unknown = JSON.parse(Buffer.from(msg.data).toString('utf8'));
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        body = v as Body;
      } catch {
        msg.respond(JSON.stringify(errorReply(ErrorCode.BadRequest, 'body must be a JSON object')));
        return;
      }
      handler(body).then(
        (r) => msg.respond(JSON.stringify(r)),
        (e: unknown) => {
          const err = toRtgwError(e);
          if (err.code === ErrorCode.Internal) log.error({ err: e, op }, 'api request failed');
          msg.respond(JSON.stringify(errorReply(err.code, err.message)));
        },
      );
    }, { queue: QUEUE }),
  );
  return () => subs.forEach((s) => s.unsubscribe());
}
