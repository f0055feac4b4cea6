// The backend API over NATS (protocol section 5), answered by any router (one queue group).
import { createHash } from 'node:crypto';
import type { Bus, BusMsg } from '../shared/bus/bus.js';
import { decodeCount, encodeNodeRequest } from '../shared/cluster/messages.js';
import type { SlotClient } from '../shared/cluster/slot-rpc.js';
import { roomSlot, userSlot } from '../shared/cluster/slots.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Config } from '../shared/config.js';
import { errorReply, RtgwError, toRtgwError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { isMid, MAX_MID_CHARS } from '../shared/protocol/codec.js';
import { ErrorCode } from '../shared/protocol/codes.js';
import { isRoomId, isUserId } from '../shared/protocol/names.js';
import type { DeadLetter, RouterStores } from '../shared/store/ports.js';

type Body = Record<string, unknown>;
const QUEUE = 'rtgw-routers';
const MAX_FROM_CHARS = 128;
const DEFAULT_DEAD_LETTERS = 100;
const MAX_DEAD_LETTERS = 1000;

const bad = (msg: string) => new RtgwError(ErrorCode.BadRequest, msg);

export interface ApiDeps {
  bus: Bus;
  subj: Subjects;
  slots: SlotClient;
  cfg: Config;
  stores: RouterStores;
  log: Logger;
}

export function serveApi({ bus, subj, slots, cfg, stores, log }: ApiDeps): () => void {
  const { presence, inbox } = stores;
  const validFrom = (from: unknown): string => {
    const f = from ?? 'backend';
    if (typeof f !== 'string' || f.length === 0 || f.length > MAX_FROM_CHARS)
      throw bad('`from` must be a string of 1 to 128 characters');
    return f;
  };
  const validMid = (mid: unknown): string | undefined => {
    if (mid !== undefined && !isMid(mid)) throw bad(`\`mid\` must be a string of 1 to ${MAX_MID_CHARS} characters`);
    return mid;
  };
  const sendDm = (to: string, from: string, data: unknown, mid: string | undefined, by: string) =>
    slots.request(userSlot(to, cfg.slots), { op: 'dm', to, from, d: JSON.stringify(data), mid, by });

  const handlers: Record<string, (b: Body) => Promise<unknown>> = {
    async publish(b) {
      if (!isRoomId(b.room)) throw bad('bad room name');
      if (!('data' in b)) throw bad('`data` is required');
      const from = validFrom(b.from);
      // A backend's mids are its own: they never collide with a user's of the same name.
      const req = {
        op: 'pub' as const,
        room: b.room,
        from,
        d: JSON.stringify(b.data),
        mid: validMid(b.mid),
        by: `backend/${from}`,
      };
      const { seq } = await slots.request(roomSlot(b.room, cfg.slots), req);
      return { seq };
    },
    async dm(b) {
      if (!isUserId(b.to)) throw bad('bad user id in `to`');
      if (!('data' in b)) throw bad('`data` is required');
      const from = validFrom(b.from);
      const { seq } = await sendDm(b.to, from, b.data, validMid(b.mid), `backend/${from}`);
      return { seq };
    },
    async presence(b) {
      if (!isRoomId(b.room)) throw bad('bad room name');
      return presence.members(b.room);
    },
    async disconnect(b) {
      if (!isUserId(b.user)) throw bad('bad user id');
      if (b.reason !== undefined && typeof b.reason !== 'string') throw bad('`reason` must be a string');
      const nodes = new Set((await presence.userConns(b.user)).map((c) => c.node));
      const body = encodeNodeRequest({ op: 'disconnect', user: b.user, reason: b.reason });
      const counts = await Promise.all(
        [...nodes].map(async (node) => {
          try {
            return decodeCount(await bus.request(subj.node(node), body, cfg.requestTimeoutMs));
          } catch {
            return 0; // A node that is gone holds no connections; its presence is reaped.
          }
        }),
      );
      return { count: counts.reduce((a, n) => a + n, 0) };
    },
    /** `{limit?, user?}` → `{deadLetters: [...]}`, oldest first per slot. */
    async deadletters(b) {
      const limit = b.limit ?? DEFAULT_DEAD_LETTERS;
      if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_DEAD_LETTERS)
        throw bad(`\`limit\` must be an integer from 1 to ${MAX_DEAD_LETTERS}`);
      if (b.user !== undefined && !isUserId(b.user)) throw bad('bad user id');
      const slots = b.user === undefined ? [...Array(cfg.slots).keys()] : [userSlot(b.user as string, cfg.slots)];
      const out: DeadLetter[] = [];
      for (const slot of slots) {
        if (out.length >= (limit as number)) break;
        const found = await inbox.deadLetters(slot, MAX_DEAD_LETTERS);
        out.push(...found.filter((d) => b.user === undefined || d.user === b.user));
      }
      return { deadLetters: out.slice(0, limit as number) };
    },
    /**
     * `{ids: [...]}` → `{redriven: [{id, seq}], missing: [...]}`. Each dead letter is sent again as a new
     * direct message (new seq) and only then removed, with a mid derived from its id: a re-drive repeated
     * after a failure neither loses nor duplicates it.
     */
    async redrive(b) {
      if (
        !Array.isArray(b.ids) ||
        b.ids.length === 0 ||
        b.ids.length > MAX_DEAD_LETTERS ||
        !b.ids.every((i) => typeof i === 'string')
      ) {
        throw bad(`\`ids\` must be a list of 1 to ${MAX_DEAD_LETTERS} dead-letter ids`);
      }
      const redriven: { id: string; seq: number }[] = [];
      const missing: string[] = [];
      const letters: { slot: number; letter: DeadLetter }[] = [];
      // One read of each slot's list, however many of the ids are in it.
      const bySlot = new Map<number, Promise<DeadLetter[]>>();
      const listOf = (slot: number) => {
        let list = bySlot.get(slot);
        if (!list) bySlot.set(slot, (list = inbox.deadLetters(slot, MAX_DEAD_LETTERS)));
        return list;
      };
      for (const id of new Set(b.ids as string[])) {
        const slot = Number(id.split(':')[0]);
        const letter =
          Number.isInteger(slot) && slot >= 0 && slot < cfg.slots
            ? (await listOf(slot)).find((d) => d.id === id)
            : undefined;
        if (letter) letters.push({ slot, letter });
        else missing.push(id);
      }
      // In their original order per recipient, whatever order they were dead-lettered or listed in.
      letters.sort((a, b) =>
        a.letter.user === b.letter.user ? a.letter.seq - b.letter.seq : a.letter.user < b.letter.user ? -1 : 1,
      );
      for (const { slot, letter } of letters) {
        const id = letter.id;
        const original = JSON.parse(letter.frame) as { from: string; data: unknown };
        // The id and the letter's sentTs: ids may repeat once a recipient's seqs restarted (ports.ts dmMetaTtlMs).
        const mid = 'redrive:' + createHash('sha256').update(`${id}|${letter.sentTs}`).digest('base64url').slice(0, 32);
        const { seq } = await sendDm(letter.user, original.from, original.data, mid, 'rtgw/redrive');
        await inbox.takeDeadLetter(slot, id);
        redriven.push({ id, seq });
      }
      return { redriven, missing };
    },
  };

  const subs = Object.entries(handlers).map(([op, handler]) =>
    bus.subscribe(
      subj.api(op as 'publish'),
      (msg: BusMsg) => {
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
      },
      { queue: QUEUE },
    ),
  );
  return () => subs.forEach((s) => s.unsubscribe());
}
