// Inbox in process memory for standalone and tests, with the Redis inbox's semantics (dm-*.lua):
// fenced appends, per-recipient seqs, dedup window, limits (per sender, per inbox), compensation entries
// scored on Date.now(), claims with backoff and jitter, parking, bounded dead letters, and the seq
// counter's expiry (dmMetaTtlMs). State dies with the process.
import { dmFrame } from '../protocol/stored-frames.js';
import { LimitError, NotOwnerError } from '../errors.js';
import type { MemorySlotLeases } from './memory-slot-leases.js';
import {
  dmMetaTtlMs,
  type DeadLetter,
  type DeadLetterObserver,
  type DeadLetterReason,
  type DeliveryLimits,
  type DmAppendRequest,
  type DmAppendResult,
  type DueDelivery,
  type Inbox,
  type Lease,
  type RetryStats,
} from './ports.js';

const SWEEP_EVERY_MS = 60_000;

interface Recipient {
  /** The last seq; it counts only until `seqExpiresAt`, as the Redis meta hash expires (dm-append.lua). */
  seq: number;
  seqExpiresAt: number;
  /** seq -> pending message and whose share it takes; insertion order is seq order (seqs only grow). */
  inbox: Map<number, { frame: string; ts: number; sender: string }>;
  /** sender -> pending messages in `inbox`; a sender is deleted at 0, as its Redis hash field is. */
  senders: Map<string, number>;
}

/** One compensation entry: the message's next look and its deliveries while online. */
interface Entry {
  user: string;
  seq: number;
  due: number;
  attempts: number;
}

const isSeq = (seq: number) => Number.isSafeInteger(seq) && seq > 0;

export class MemoryInbox implements Inbox {
  /** JSON [slot, user] -> recipient */
  private recipients = new Map<string, Recipient>();
  /** slot -> JSON [user, seq] -> entry: the slot's compensation set */
  private retry = new Map<number, Map<string, Entry>>();
  private dead = new Map<number, DeadLetter[]>();
  private dedup = new Map<string, { seq: number; expiresAt: number }>();
  private lastSweep = Date.now();

  constructor(
    private readonly leases: MemorySlotLeases,
    private readonly limits: DeliveryLimits,
    /** The gateway nodes holding a connection of a user (presence), read with each append and claim. */
    private readonly nodesOf: (user: string) => string[],
    private readonly onDeadLetter: DeadLetterObserver = () => undefined,
  ) {}

  /** Test hook: loses every inbox, entry and dead letter, as FLUSHALL does on Redis. */
  wipe(): void {
    this.recipients.clear();
    this.retry.clear();
    this.dead.clear();
    this.dedup.clear();
  }

  private recipient(slot: number, user: string): Recipient {
    const key = JSON.stringify([slot, user]);
    let r = this.recipients.get(key);
    if (!r) this.recipients.set(key, (r = { seq: 0, seqExpiresAt: 0, inbox: new Map(), senders: new Map() }));
    return r;
  }

  /** Reads create nothing, as on Redis. */
  private message(slot: number, user: string, seq: number): { frame: string; ts: number; sender: string } | undefined {
    return this.recipients.get(JSON.stringify([slot, user]))?.inbox.get(seq);
  }

  /** The recipient's last seq as the Redis meta hash reads: 0 once it expired. */
  private head(r: Recipient, now: number): number {
    return r.seqExpiresAt > now ? r.seq : 0;
  }

  /** Removes a pending message and gives its sender's share back (include/inbox.lua settle). */
  private settle(slot: number, user: string, seq: number): boolean {
    this.retry.get(slot)?.delete(this.member(user, seq));
    const r = this.recipients.get(JSON.stringify([slot, user]));
    const msg = r?.inbox.get(seq);
    if (!r || !msg) return false;
    r.inbox.delete(seq);
    const left = (r.senders.get(msg.sender) ?? 0) - 1;
    if (left > 0) r.senders.set(msg.sender, left);
    else r.senders.delete(msg.sender);
    return true;
  }

  private entries(slot: number): Map<string, Entry> {
    let m = this.retry.get(slot);
    if (!m) this.retry.set(slot, (m = new Map()));
    return m;
  }

  private member = (user: string, seq: number) => JSON.stringify([user, seq]);

  /**
   * Drops old dedup entries and recipients with nothing pending whose seq expired now and then, so
   * memory does not grow with mids or users ever seen (Redis expires and empties those keys itself).
   */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [k, d] of this.dedup) if (d.expiresAt <= now) this.dedup.delete(k);
    for (const [k, r] of this.recipients) if (r.inbox.size === 0 && r.seqExpiresAt <= now) this.recipients.delete(k);
  }

  private deadLetter(
    slot: number,
    user: string,
    seq: number,
    reason: DeadLetterReason,
    now: number,
    attempts?: number,
  ) {
    const msg = this.message(slot, user, seq);
    const entry = this.entries(slot).get(this.member(user, seq));
    this.settle(slot, user, seq);
    if (!msg) return;
    let list = this.dead.get(slot);
    if (!list) this.dead.set(slot, (list = []));
    list.push({
      id: `${slot}:${user}:${seq}`,
      user,
      seq,
      frame: msg.frame,
      attempts: attempts ?? entry?.attempts ?? 0,
      reason,
      sentTs: msg.ts,
      ts: now,
    });
    this.onDeadLetter(reason, 1);
    const over = list.length - this.limits.deadLettersMaxPerSlot;
    if (over > 0) {
      list.splice(0, over);
      this.onDeadLetter('dropped', over);
    }
  }

  async append(req: DmAppendRequest, lease: Lease): Promise<DmAppendResult> {
    if (lease.slot !== req.slot || !this.leases.holds(lease)) throw new NotOwnerError(req.slot);
    const now = Date.now();
    this.sweep(now);
    const r = this.recipient(req.slot, req.to);
    const dedupKey =
      req.mid !== undefined && req.dedupBy !== undefined
        ? JSON.stringify([req.slot, req.to, req.dedupBy, req.mid])
        : undefined;
    if (dedupKey !== undefined) {
      const first = this.dedup.get(dedupKey);
      if (first && first.expiresAt > now) {
        return {
          seq: first.seq,
          frame: r.inbox.get(first.seq)?.frame ?? '',
          duplicate: true,
          inboxSize: r.inbox.size,
          nodes: this.nodesOf(req.to),
        };
      }
    }
    // Limits after dedup (a retried mid is answered with its first seq); nothing is evicted for room.
    if ((r.senders.get(req.sender) ?? 0) >= this.limits.inboxMaxPerSender) {
      throw new LimitError('too many of your messages are pending for this recipient');
    }
    if (r.inbox.size >= this.limits.inboxMaxMessages) throw new LimitError("the recipient's inbox is full");
    // An expired counter starts again, after whatever old message still waits in the inbox (dm-append.lua).
    if (r.seqExpiresAt <= now) r.seq = [...r.inbox.keys()].at(-1) ?? 0;
    r.seqExpiresAt = now + dmMetaTtlMs(this.limits);
    const seq = ++r.seq;
    const frame = dmFrame(seq, req.from, req.dataJson, req.mid, now);
    r.inbox.set(seq, { frame, ts: now, sender: req.sender });
    r.senders.set(req.sender, (r.senders.get(req.sender) ?? 0) + 1);
    this.entries(req.slot).set(this.member(req.to, seq), {
      user: req.to,
      seq,
      due: now + this.limits.ackTimeoutMs,
      attempts: 1,
    });
    if (dedupKey !== undefined) this.dedup.set(dedupKey, { seq, expiresAt: now + this.limits.dedupWindowMs });
    return { seq, frame, duplicate: false, inboxSize: r.inbox.size, nodes: this.nodesOf(req.to) };
  }

  async ack(slot: number, user: string, seq: number): Promise<boolean> {
    if (!isSeq(seq)) return false;
    return this.settle(slot, user, seq);
  }

  async pending(slot: number, user: string): Promise<{ head: number; messages: { seq: number; frame: string }[] }> {
    const now = Date.now();
    const { ackTimeoutMs, inboxMaxAgeMs, inboxMaxMessages } = this.limits;
    const r = this.recipients.get(JSON.stringify([slot, user]));
    if (!r) return { head: 0, messages: [] };
    const entries = this.entries(slot);
    const messages: { seq: number; frame: string }[] = [];
    let n = 0;
    for (const [seq, msg] of [...r.inbox]) {
      if (n++ >= inboxMaxMessages) break;
      if (msg.ts + inboxMaxAgeMs <= now) {
        this.deadLetter(slot, user, seq, 'expired', now);
        continue;
      }
      entries.set(this.member(user, seq), { user, seq, due: now + ackTimeoutMs, attempts: 1 });
      messages.push({ seq, frame: msg.frame });
    }
    return { head: this.head(r, now), messages };
  }

  async peek(slot: number, user: string, after: number, limit: number): Promise<{ seq: number; frame: string }[]> {
    const r = this.recipients.get(JSON.stringify([slot, user]));
    if (!r) return [];
    return [...r.inbox]
      .filter(([seq]) => seq > after)
      .sort(([a], [b]) => a - b)
      .slice(0, limit)
      .map(([seq, m]) => ({ seq, frame: m.frame }));
  }

  async claimDue(slot: number, limit: number): Promise<DueDelivery[]> {
    if (!(limit >= 1)) return [];
    const now = Date.now();
    const { ackTimeoutMs, maxBackoffMs, maxAttempts, inboxMaxAgeMs } = this.limits;
    const entries = this.entries(slot);
    // Redis order: by score, then by member.
    const due = [...entries]
      .filter(([, e]) => e.due <= now)
      .sort(([ma, a], [mb, b]) => a.due - b.due || (ma < mb ? -1 : ma > mb ? 1 : 0))
      .slice(0, Math.floor(limit));
    const out: DueDelivery[] = [];
    for (const [, e] of due) {
      const msg = this.message(slot, e.user, e.seq);
      if (!msg) {
        this.settle(slot, e.user, e.seq);
        continue;
      }
      if (msg.ts + inboxMaxAgeMs <= now) {
        this.deadLetter(slot, e.user, e.seq, 'expired', now);
        continue;
      }
      const attempt = ++e.attempts;
      if (attempt > maxAttempts) {
        this.deadLetter(slot, e.user, e.seq, 'attempts', now, attempt - 1);
        continue;
      }
      const backoff = Math.min(maxBackoffMs, ackTimeoutMs * 2 ** (attempt - 2));
      e.due = now + Math.max(1, Math.floor(backoff * (0.5 + 0.5 * Math.random())));
      out.push({ user: e.user, seq: e.seq, frame: msg.frame, attempt, due: e.due, nodes: this.nodesOf(e.user) });
    }
    return out;
  }

  async park(slot: number, user: string, seq: number, due: number): Promise<void> {
    const entries = this.entries(slot);
    const member = this.member(user, seq);
    const e = entries.get(member);
    if (!e || e.due !== due) return;
    const msg = this.message(slot, user, seq);
    if (!msg) {
      this.settle(slot, user, seq);
      return;
    }
    if (e.attempts > 1) e.attempts--;
    e.due = msg.ts + this.limits.inboxMaxAgeMs;
  }

  async stats(slot: number): Promise<RetryStats> {
    const now = Date.now();
    let queued = 0;
    let due = 0;
    let earliest = Infinity;
    for (const e of this.entries(slot).values()) {
      queued++;
      if (e.due <= now) due++;
      if (e.due < earliest) earliest = e.due;
    }
    return { queued, due, oldestDueMs: due > 0 ? Math.max(0, now - earliest) : 0 };
  }

  async deadLetters(slot: number, limit: number): Promise<DeadLetter[]> {
    if (!(limit >= 1)) return [];
    return (this.dead.get(slot) ?? []).slice(0, Math.floor(limit)).map((d) => ({ ...d }));
  }

  async takeDeadLetter(slot: number, id: string): Promise<DeadLetter | undefined> {
    const list = this.dead.get(slot);
    const i = list?.findIndex((d) => d.id === id) ?? -1;
    if (i < 0) return undefined;
    return list!.splice(i, 1)[0];
  }
}
