// Inbox in process memory for standalone and tests, with the Redis inbox's semantics (dm-*.lua):
// fenced appends, per-recipient seqs, dedup window, compensation entries scored on Date.now(),
// claims with backoff and jitter, parking, dead letters. State dies with the process.
import { NotOwnerError } from '../errors.js';
import type { MemorySlotLeases } from './memory.js';
import type {
  DeadLetter,
  DeadLetterObserver,
  DeadLetterReason,
  DeliveryLimits,
  DmAppendRequest,
  DmAppendResult,
  DueDelivery,
  Inbox,
  Lease,
  RetryStats,
} from './ports.js';

const SWEEP_EVERY_MS = 60_000;

interface Recipient {
  /** Never reset, as the Redis meta hash never expires: seqs never restart. */
  seq: number;
  /** seq -> pending message; insertion order is seq order (seqs only grow). */
  inbox: Map<number, { frame: string; ts: number }>;
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
    if (!r) this.recipients.set(key, (r = { seq: 0, inbox: new Map() }));
    return r;
  }

  /** Reads create nothing, as on Redis. */
  private message(slot: number, user: string, seq: number): { frame: string; ts: number } | undefined {
    return this.recipients.get(JSON.stringify([slot, user]))?.inbox.get(seq);
  }

  private entries(slot: number): Map<string, Entry> {
    let m = this.retry.get(slot);
    if (!m) this.retry.set(slot, (m = new Map()));
    return m;
  }

  private member = (user: string, seq: number) => JSON.stringify([user, seq]);

  /** Drops old dedup entries now and then, so memory does not grow with mids ever used. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [k, d] of this.dedup) if (d.expiresAt <= now) this.dedup.delete(k);
  }

  private deadLetter(slot: number, user: string, seq: number, reason: DeadLetterReason, now: number, attempts?: number) {
    const msg = this.message(slot, user, seq);
    const entries = this.entries(slot);
    const member = this.member(user, seq);
    const entry = entries.get(member);
    this.recipients.get(JSON.stringify([slot, user]))?.inbox.delete(seq);
    entries.delete(member);
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
        return { seq: first.seq, frame: r.inbox.get(first.seq)?.frame ?? '', duplicate: true, inboxSize: r.inbox.size, nodes: this.nodesOf(req.to) };
      }
    }
    const seq = ++r.seq;
    const frame =
      `{"t":"dm","seq":${seq},"from":${JSON.stringify(req.from)},"data":${req.dataJson}` +
      `${req.mid === undefined ? '' : `,"mid":${JSON.stringify(req.mid)}`},"ts":${now}}`;
    r.inbox.set(seq, { frame, ts: now });
    this.entries(req.slot).set(this.member(req.to, seq), {
      user: req.to,
      seq,
      due: now + this.limits.ackTimeoutMs,
      attempts: 1,
    });
    let over = r.inbox.size - this.limits.inboxMaxMessages;
    for (const oldest of r.inbox.keys()) {
      if (over-- <= 0) break;
      this.deadLetter(req.slot, req.to, oldest, 'inbox_full', now);
    }
    if (dedupKey !== undefined) this.dedup.set(dedupKey, { seq, expiresAt: now + this.limits.dedupWindowMs });
    return { seq, frame, duplicate: false, inboxSize: r.inbox.size, nodes: this.nodesOf(req.to) };
  }

  async ack(slot: number, user: string, seq: number): Promise<boolean> {
    if (!isSeq(seq)) return false;
    this.retry.get(slot)?.delete(this.member(user, seq));
    return this.recipients.get(JSON.stringify([slot, user]))?.inbox.delete(seq) ?? false;
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
    return { head: r.seq, messages };
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
    for (const [member, e] of due) {
      const msg = this.message(slot, e.user, e.seq);
      if (!msg) {
        entries.delete(member);
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
      entries.delete(member);
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
