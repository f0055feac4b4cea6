// RoomLog in process memory, with the Redis room log's semantics (append.lua, read.lua): fenced appends,
// random epochs, history trimmed by count and age, a dedup window, idle rooms expiring.
import { msgFrame } from '../protocol/stored-frames.js';
import { randomUUID } from 'node:crypto';
import { NotOwnerError } from '../errors.js';
import type { MemorySlotLeases } from './memory-slot-leases.js';
import {
  roomTtlMs,
  type AppendRequest,
  type AppendResult,
  type HistoryRead,
  type Lease,
  type RoomLog,
  type RoomLogLimits,
} from './ports.js';

const SWEEP_EVERY_MS = 60_000;

interface Room {
  epoch: string;
  seq: number;
  /** Ascending, gapless seqs; trimmed at the head. */
  history: { seq: number; frame: string; exclude?: string; ts: number }[];
  expiresAt: number;
}

export class MemoryRoomLog implements RoomLog {
  private rooms = new Map<string, Room>();
  private dedup = new Map<string, { seq: number; expiresAt: number }>();
  private lastSweep = Date.now();

  constructor(
    private readonly leases: MemorySlotLeases,
    private readonly limits: RoomLogLimits,
  ) {}

  /** Test hook: loses every room, as FLUSHALL does on Redis. */
  wipe(): void {
    this.rooms.clear();
    this.dedup.clear();
  }

  private room(slot: number, name: string, now: number): Room {
    this.sweep(now);
    const key = `${slot}/${name}`;
    let r = this.rooms.get(key);
    if (!r || r.expiresAt <= now) {
      r = { epoch: randomUUID(), seq: 0, history: [], expiresAt: now + roomTtlMs(this.limits) };
      this.rooms.set(key, r);
    }
    return r;
  }

  /** Drops idle rooms and old dedup entries now and then, so memory does not grow with names ever used. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [k, r] of this.rooms) if (r.expiresAt <= now) this.rooms.delete(k);
    for (const [k, d] of this.dedup) if (d.expiresAt <= now) this.dedup.delete(k);
  }

  async append(req: AppendRequest, lease: Lease): Promise<AppendResult> {
    if (lease.slot !== req.slot || !this.leases.holds(lease)) throw new NotOwnerError(req.slot);
    const now = Date.now();
    const room = this.room(req.slot, req.room, now);
    const dedupKey =
      req.mid !== undefined && req.dedupBy !== undefined
        ? JSON.stringify([req.slot, req.room, req.dedupBy, req.mid])
        : undefined;
    if (dedupKey !== undefined) {
      const first = this.dedup.get(dedupKey);
      if (first && first.expiresAt > now) {
        const h = room.history;
        const kept = h.length > 0 ? h[first.seq - h[0]!.seq] : undefined;
        return { seq: first.seq, epoch: room.epoch, frame: kept?.seq === first.seq ? kept.frame : '', duplicate: true };
      }
    }
    const seq = ++room.seq;
    const frame = msgFrame(req.room, seq, req.from, req.dataJson, req.mid, now);
    const h = room.history;
    h.push({ seq, frame, exclude: req.exclude, ts: now });
    const cutoff = now - this.limits.maxAgeMs;
    let drop = Math.max(0, h.length - this.limits.maxMessages);
    while (drop < h.length && h[drop]!.ts < cutoff) drop++;
    if (drop > 0) h.splice(0, drop);
    if (dedupKey !== undefined) this.dedup.set(dedupKey, { seq, expiresAt: now + this.limits.dedupWindowMs });
    room.expiresAt = now + roomTtlMs(this.limits);
    return { seq, epoch: room.epoch, frame, duplicate: false };
  }

  async read(slot: number, name: string, after: number): Promise<HistoryRead> {
    const now = Date.now();
    const room = this.room(slot, name, now);
    const head = room.seq;
    const none = (complete: boolean): HistoryRead => ({ seq: head, epoch: room.epoch, frames: [], complete });
    if (after === head) return none(true);
    if (after > head || head - after > this.limits.maxMessages) return none(false);
    const h = room.history;
    const from = h.length > 0 ? after + 1 - h[0]!.seq : -1;
    if (from < 0 || h.length - from !== head - after) return none(false);
    const first = h[from]!;
    if (first.seq !== after + 1 || first.ts < now - this.limits.maxAgeMs) return none(false);
    const frames = h.slice(from).map(({ seq, frame, exclude }) => ({ seq, frame, exclude }));
    return { seq: head, epoch: room.epoch, frames, complete: true };
  }
}
