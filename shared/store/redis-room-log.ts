// RoomLog on Redis: one Lua script per operation (append.lua, read.lua), all keys of a room under
// its slot's hash tag, so the lease check and the write are one atomic step on one node.
import type { Redis } from 'ioredis';
import { keys, type Keys } from '../cluster/keys.js';
import { NotOwnerError } from '../errors.js';
import { scripts, type Scripts } from '../redis/scripts.js';
import type { AppendRequest, AppendResult, HistoryFrame, HistoryRead, Lease, RoomLog, RoomLogLimits } from './ports.js';

export const leaseValue = (lease: Lease): string => `${lease.owner}|${lease.fence}`;

/** Idle rooms expire after this: past the age limit nothing is readable, past the dedup window no mid is remembered. */
export const roomTtlMs = (limits: RoomLogLimits): number => limits.maxAgeMs + limits.dedupWindowMs;

export class RedisRoomLog implements RoomLog {
  private readonly k: Keys;
  private readonly lua: Scripts;

  constructor(
    redis: Redis,
    prefix: string,
    private readonly limits: RoomLogLimits,
  ) {
    this.k = keys(prefix);
    this.lua = scripts(redis);
  }

  async append(req: AppendRequest, lease: Lease): Promise<AppendResult> {
    // A lease of another slot would be checked against the wrong key.
    if (lease.slot !== req.slot) throw new NotOwnerError(req.slot);
    const { k, limits } = this;
    const meta = k.roomMeta(req.slot, req.room);
    const dedup = req.mid !== undefined && req.dedupBy !== undefined;
    const dedupKey = dedup ? k.roomDedup(req.slot, req.room, req.dedupBy!, req.mid!) : meta;
    let reply: unknown;
    try {
      reply = await this.lua.append(
        [k.lease(req.slot), meta, k.roomHistory(req.slot, req.room), dedupKey],
        [
          leaseValue(lease),
          JSON.stringify(req.room),
          JSON.stringify(req.from),
          req.dataJson,
          req.mid === undefined ? '' : JSON.stringify(req.mid),
          dedup ? '1' : '0',
          limits.maxMessages,
          limits.maxAgeMs,
          limits.dedupWindowMs,
          roomTtlMs(limits),
          req.exclude ?? '',
        ],
      );
    } catch (e) {
      if (e instanceof Error && /^(ERR )?NOT_OWNER\b/.test(e.message)) throw new NotOwnerError(req.slot);
      throw e;
    }
    const [seq, epoch, frame, duplicate] = reply as [number, string, string, number];
    return { seq: Number(seq), epoch: String(epoch), frame: String(frame), duplicate: Number(duplicate) === 1 };
  }

  async read(slot: number, room: string, after: number): Promise<HistoryRead> {
    const { k, limits } = this;
    const reply = (await this.lua.read(
      [k.roomMeta(slot, room), k.roomHistory(slot, room)],
      [after, limits.maxMessages, limits.maxAgeMs, roomTtlMs(limits)],
    )) as [number, string, number, string[]];
    const [seq, epoch, complete, entries] = reply;
    const frames: HistoryFrame[] = [];
    for (let i = 0; i + 1 < entries.length; i += 2) {
      // `<exclude>\n<frame>` (append.lua); neither conn ids nor JSON frames hold a raw newline.
      const member = String(entries[i]);
      const nl = member.indexOf('\n');
      frames.push({ seq: Number(entries[i + 1]), frame: member.slice(nl + 1), exclude: nl > 0 ? member.slice(0, nl) : undefined });
    }
    return { seq: Number(seq), epoch: String(epoch), frames, complete: Number(complete) === 1 };
  }
}
