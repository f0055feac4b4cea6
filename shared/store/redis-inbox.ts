// Inbox on Redis: one Lua script per operation (dm-*.lua). A recipient's meta, inbox and dedup keys
// and their slot's compensation set, attempts hash, sender hashes, dead-letter list and lease share the
// slot's hash tag, so every script touches one Redis Cluster slot. Must not read a process clock: times
// are TIME.
import { randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import { decodeName, encodeName } from '../cluster/encode.js';
import { keys, type Keys } from '../cluster/keys.js';
import { LimitError, NotOwnerError } from '../errors.js';
import { scripts, type Scripts } from '../redis/scripts.js';
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
import { leaseValue } from './redis-slot-leases.js';

const REASONS: readonly string[] = ['attempts', 'inbox_full', 'expired'] satisfies DeadLetterReason[];

/** A dead-letter list entry as include/inbox.lua writes it. */
export function parseDeadLetter(json: string): DeadLetter {
  const e = JSON.parse(json) as Record<string, unknown>;
  const { id, user, seq, frame, attempts, reason, sentTs, ts } = e;
  if (
    typeof id !== 'string' ||
    typeof user !== 'string' ||
    typeof seq !== 'number' ||
    typeof frame !== 'string' ||
    typeof attempts !== 'number' ||
    typeof reason !== 'string' ||
    !REASONS.includes(reason) ||
    typeof sentTs !== 'number' ||
    typeof ts !== 'number'
  ) {
    throw new Error(`malformed dead letter: ${json.slice(0, 200)}`);
  }
  return { id, user, seq, frame, attempts, reason: reason as DeadLetterReason, sentTs, ts };
}

const CANONICAL_INT = /^(0|[1-9]\d{0,14})$/;

/** `<slot>:<user>:<seq>` split at its first and last `:` (user ids may hold `:`); undefined when not canonical. */
export function parseDeadLetterId(id: string): { slot: number; user: string; seq: number } | undefined {
  const a = id.indexOf(':');
  const b = id.lastIndexOf(':');
  if (a < 0 || b <= a) return undefined;
  const slot = id.slice(0, a);
  const seq = id.slice(b + 1);
  if (!CANONICAL_INT.test(slot) || !CANONICAL_INT.test(seq)) return undefined;
  return { slot: Number(slot), user: id.slice(a + 1, b), seq: Number(seq) };
}

const isSeq = (seq: number) => Number.isSafeInteger(seq) && seq > 0;
const splitNodes = (nodes: string): string[] => (nodes === '' ? [] : nodes.split(' '));

export class RedisInbox implements Inbox {
  private readonly k: Keys;
  private readonly lua: Scripts;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly limits: DeliveryLimits,
    private readonly onDeadLetter: DeadLetterObserver = () => undefined,
  ) {
    this.k = keys(prefix);
    this.lua = scripts(redis);
  }

  private counted(reason: DeadLetterReason | 'dropped', count: unknown): void {
    const n = Number(count);
    if (n > 0) this.onDeadLetter(reason, n);
  }

  async append(req: DmAppendRequest, lease: Lease): Promise<DmAppendResult> {
    // A lease of another slot would be checked against the wrong key.
    if (lease.slot !== req.slot) throw new NotOwnerError(req.slot);
    const { k, limits } = this;
    const meta = k.dmMeta(req.slot, req.to);
    const dedup = req.mid !== undefined && req.dedupBy !== undefined;
    const dedupKey = dedup ? k.dedup(req.slot, req.to, req.dedupBy!, req.mid!) : meta;
    let reply: unknown;
    try {
      reply = await this.lua['dm-append'](
        [
          k.lease(req.slot),
          meta,
          k.inbox(req.slot, req.to),
          k.retry(req.slot),
          k.retryAttempts(req.slot),
          k.dmSenderOf(req.slot),
          k.dmSenders(req.slot),
          dedupKey,
          k.userConns(req.slot, req.to),
        ],
        [
          leaseValue(lease),
          req.slot,
          encodeName(req.to),
          JSON.stringify(req.from),
          req.dataJson,
          req.mid === undefined ? '' : JSON.stringify(req.mid),
          dedup ? '1' : '0',
          limits.ackTimeoutMs,
          limits.inboxMaxMessages,
          limits.dedupWindowMs,
          encodeName(req.sender),
          limits.inboxMaxPerSender,
          dmMetaTtlMs(limits),
        ],
      );
    } catch (e) {
      if (e instanceof Error && /^(ERR )?NOT_OWNER\b/.test(e.message)) throw new NotOwnerError(req.slot);
      const limit = e instanceof Error ? /^(?:ERR )?LIMIT (.*)$/s.exec(e.message) : null;
      if (limit) throw new LimitError(limit[1]!);
      throw e;
    }
    const [seq, frame, duplicate, inboxSize, nodes] = reply as [number, string, number, number, string];
    return {
      seq: Number(seq),
      frame: String(frame),
      duplicate: Number(duplicate) === 1,
      inboxSize: Number(inboxSize),
      nodes: splitNodes(nodes),
    };
  }

  async ack(slot: number, user: string, seq: number): Promise<boolean> {
    if (!isSeq(seq)) return false;
    const { k } = this;
    const removed = await this.lua['dm-ack'](
      [k.inbox(slot, user), k.retry(slot), k.retryAttempts(slot), k.dmSenderOf(slot), k.dmSenders(slot)],
      [encodeName(user), seq],
    );
    return Number(removed) === 1;
  }

  async pending(slot: number, user: string): Promise<{ head: number; messages: { seq: number; frame: string }[] }> {
    const { k, limits } = this;
    const [expired, entries, head, dropped] = (await this.lua['dm-pending'](
      [
        k.inbox(slot, user),
        k.retry(slot),
        k.retryAttempts(slot),
        k.deadLetters(slot),
        k.dmMeta(slot, user),
        k.dmSenderOf(slot),
        k.dmSenders(slot),
      ],
      [
        slot,
        encodeName(user),
        limits.ackTimeoutMs,
        limits.inboxMaxAgeMs,
        limits.inboxMaxMessages,
        limits.deadLettersMaxPerSlot,
      ],
    )) as [number, string[], number, number];
    this.counted('expired', expired);
    this.counted('dropped', dropped);
    const messages: { seq: number; frame: string }[] = [];
    for (let i = 0; i + 1 < entries.length; i += 2)
      messages.push({ seq: Number(entries[i + 1]), frame: String(entries[i]) });
    return { head: Number(head), messages };
  }

  async peek(slot: number, user: string, after: number, limit: number): Promise<{ seq: number; frame: string }[]> {
    const flat = await this.redis.zrangebyscore(
      this.k.inbox(slot, user),
      `(${after}`,
      '+inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    const out: { seq: number; frame: string }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ seq: Number(flat[i + 1]), frame: flat[i]! });
    return out;
  }

  async claimDue(slot: number, limit: number): Promise<DueDelivery[]> {
    if (!(limit >= 1)) return [];
    const { k, limits } = this;
    const [expired, outOfAttempts, dropped, reply] = (await this.lua['dm-claim'](
      [k.retry(slot), k.retryAttempts(slot), k.deadLetters(slot), k.dmSenderOf(slot), k.dmSenders(slot)],
      [
        slot,
        k.inboxPrefix(slot),
        Math.floor(limit),
        limits.ackTimeoutMs,
        limits.maxBackoffMs,
        limits.maxAttempts,
        limits.inboxMaxAgeMs,
        randomInt(2 ** 31),
        k.userConnsPrefix(slot),
        limits.deadLettersMaxPerSlot,
      ],
    )) as [number, number, number, (string | number)[]];
    this.counted('expired', expired);
    this.counted('attempts', outOfAttempts);
    this.counted('dropped', dropped);
    const out: DueDelivery[] = [];
    for (let i = 0; i + 5 < reply.length; i += 6) {
      out.push({
        user: decodeName(String(reply[i])),
        seq: Number(reply[i + 1]),
        frame: String(reply[i + 2]),
        attempt: Number(reply[i + 3]),
        due: Number(reply[i + 4]),
        nodes: splitNodes(String(reply[i + 5])),
      });
    }
    return out;
  }

  async park(slot: number, user: string, seq: number, due: number): Promise<void> {
    if (!isSeq(seq)) return;
    const { k } = this;
    await this.lua['dm-park'](
      [k.retry(slot), k.retryAttempts(slot), k.inbox(slot, user), k.dmSenderOf(slot), k.dmSenders(slot)],
      [encodeName(user), seq, due, this.limits.inboxMaxAgeMs],
    );
  }

  async stats(slot: number): Promise<RetryStats> {
    const [queued, due, oldestDueMs] = (await this.lua['dm-stats']([this.k.retry(slot)], [])) as number[];
    return { queued: Number(queued), due: Number(due), oldestDueMs: Number(oldestDueMs) };
  }

  async deadLetters(slot: number, limit: number): Promise<DeadLetter[]> {
    if (!(limit >= 1)) return [];
    const entries = await this.redis.lrange(this.k.deadLetters(slot), 0, Math.floor(limit) - 1);
    return entries.map(parseDeadLetter);
  }

  async takeDeadLetter(slot: number, id: string): Promise<DeadLetter | undefined> {
    const parsed = parseDeadLetterId(id);
    if (!parsed || parsed.slot !== slot) return undefined;
    const entry = await this.lua['dm-take-dead'](
      [this.k.deadLetters(slot)],
      [slot, encodeName(parsed.user), parsed.seq],
    );
    return typeof entry === 'string' ? parseDeadLetter(entry) : undefined;
  }
}
