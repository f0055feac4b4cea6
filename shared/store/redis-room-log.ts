// RoomLog on Redis: one Lua script per operation (append.lua, read.lua), all keys of a room under
// its slot's hash tag, so the lease check and the write are one atomic step on one node. Appends are
// batched per slot (one script call for a burst of them).
import type { Redis } from 'ioredis';
import { keys, type Keys } from '../cluster/keys.js';
import { BurstBatches } from '../batches.js';
import { NotOwnerError } from '../errors.js';
import { scripts, type Scripts } from '../redis/scripts.js';
import {
  roomTtlMs,
  type AppendRequest,
  type AppendResult,
  type HistoryFrame,
  type HistoryRead,
  type Lease,
  type RoomLog,
  type RoomLogLimits,
} from './ports.js';
import { leaseValue } from './redis-slot-leases.js';

/** Messages per script call: a batch blocks Redis for its whole run (~10 µs a message). */
const MAX_BATCH = 256;

interface QueuedAppend {
  req: AppendRequest;
  lease: Lease;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export class RedisRoomLog implements RoomLog {
  private readonly k: Keys;
  private readonly lua: Scripts;
  /** By slot and lease: one batch is fenced by one lease. */
  private readonly batches = new BurstBatches<string, QueuedAppend>((_, items) => {
    for (let i = 0; i < items.length; i += MAX_BATCH)
      void this.appendBatch(items[0]!.lease, items.slice(i, i + MAX_BATCH));
  });

  constructor(
    redis: Redis,
    prefix: string,
    private readonly limits: RoomLogLimits,
  ) {
    this.k = keys(prefix);
    this.lua = scripts(redis);
  }

  /**
   * Appends of one slot (and lease) asked for in the same burst (a router's handling of one chunk of
   * requests) go to Redis as one script call, in order: one round trip and one script run for many.
   */
  append(req: AppendRequest, lease: Lease): Promise<AppendResult> {
    // A lease of another slot would be checked against the wrong key.
    if (lease.slot !== req.slot) return Promise.reject(new NotOwnerError(req.slot));
    return new Promise((resolve, reject) =>
      this.batches.add(`${lease.slot}|${lease.fence}|${lease.owner}`, { req, lease, resolve, reject }),
    );
  }

  private async appendBatch(lease: Lease, items: QueuedAppend[]): Promise<void> {
    const { k, limits } = this;
    const slot = lease.slot;
    const keyList = [k.lease(slot)];
    const args: (string | number)[] = [
      leaseValue(lease),
      limits.maxMessages,
      limits.maxAgeMs,
      limits.dedupWindowMs,
      roomTtlMs(limits),
    ];
    for (const { req } of items) {
      const meta = k.roomMeta(slot, req.room);
      const dedup = req.mid !== undefined && req.dedupBy !== undefined;
      keyList.push(
        meta,
        k.roomHistory(slot, req.room),
        dedup ? k.roomDedup(slot, req.room, req.dedupBy!, req.mid!) : meta,
      );
      args.push(
        JSON.stringify(req.room),
        JSON.stringify(req.from),
        req.dataJson,
        req.mid === undefined ? '' : JSON.stringify(req.mid),
        dedup ? '1' : '0',
        req.exclude ?? '',
      );
    }
    let reply: unknown[];
    try {
      reply = (await this.lua.append(keyList, args)) as unknown[];
    } catch (e) {
      const err = e instanceof Error && /^(ERR )?NOT_OWNER\b/.test(e.message) ? new NotOwnerError(slot) : e;
      for (const it of items) it.reject(err);
      return;
    }
    for (let i = 0; i < items.length; i++) {
      const at = 4 * i;
      items[i]!.resolve({
        seq: Number(reply[at]),
        epoch: String(reply[at + 1]),
        frame: String(reply[at + 2]),
        duplicate: Number(reply[at + 3]) === 1,
      });
    }
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
      frames.push({
        seq: Number(entries[i + 1]),
        frame: member.slice(nl + 1),
        exclude: nl > 0 ? member.slice(0, nl) : undefined,
      });
    }
    return { seq: Number(seq), epoch: String(epoch), frames, complete: Number(complete) === 1 };
  }
}
