// A Jepsen-style history of what test clients did and saw, and the one checker that judges it
// (architecture.md guarantees 1–4). Clients record every send (`pub`, `dm`, each with a unique mid that
// is also `data.id`), every answer, every join and leave, every frame received on a watched connection
// and every ack; `check()` computes, per room and per recipient: lost (judged per join interval of each
// member), unexpected, room seqs repeated within one join interval, messages stored twice, order
// inversions and conflicting seqs. Checks return problems, not booleans, so a failing assertion names
// every violation with its seq and mid. The per-receiver room checks (`receiverProblems`,
// `agreementProblems`) predate the event history and stay for the room fault tests.
import type { Frame, TestClient } from './client.js';
import { sleep, waitFor } from './wait.js';

// ---------------------------------------------------------------------------------------------------
// Records

/** How one request ended: an answer, or none at all (the connection died, or the deadline passed). */
export type Outcome =
  { kind: 'ok'; seq: number } | { kind: 'err'; code: string; msg: string } | { kind: 'unanswered'; why: string };
/** The name the room fault tests know it by. */
export type PubOutcome = Outcome;

export type Op = 'pub' | 'dm';

interface SendFields {
  /** Unique per message in one History; sent as the frame's `mid` (unless `noMid`) and always as `data.id`. */
  readonly mid: string;
  /** Label of the sending client. */
  readonly by: string;
  /** Free label for phases of a test (e.g. 'before' / 'after' a restart). */
  readonly tag: string | undefined;
  /** 1 for a message's first send; 2, 3, ... for sends of the same mid again (the client's own retries). */
  readonly attempt: number;
  /** The room (pub) or the recipient's user id (dm). */
  readonly target: string;
  readonly sentAtMs: number;
  answeredAtMs?: number;
  outcome?: Outcome;
}
export interface PubRecord extends SendFields {
  readonly op: 'pub';
  readonly room: string;
}
export interface DmRecord extends SendFields {
  readonly op: 'dm';
  readonly to: string;
}
export type SendRecord = PubRecord | DmRecord;
type Ok<R> = R & { outcome: { kind: 'ok'; seq: number } };

/** One step of the history, in the order the test process saw it (`i` is that order). */
export type HistoryEvent =
  | { readonly type: 'send'; readonly i: number; readonly atMs: number; readonly rec: SendRecord }
  | {
      readonly type: 'answer';
      readonly i: number;
      readonly atMs: number;
      readonly rec: SendRecord;
      readonly outcome: Outcome;
    }
  /** A `msg` or `dm` frame on connection `conn` of `user`; `who` labels the receiver across its connections. */
  | {
      readonly type: 'receive';
      readonly i: number;
      readonly atMs: number;
      readonly who: string;
      readonly user: string;
      readonly conn: string;
      readonly frame: Frame;
    }
  | {
      readonly type: 'ack';
      readonly i: number;
      readonly atMs: number;
      readonly who: string;
      readonly user: string;
      readonly conn: string;
      readonly seq: number;
    }
  /**
   * `who` joined `room` (on connection `conn`, when known) and from then on must receive, on that
   * connection, every ok'd pub of `room` with a seq above `after`, each once: `after` is the `since` of a
   * recovered join (`recovered`: the member asked for everything after it), else the head seq the join
   * was answered with. The join opens an interval that the member's next join or leave of `room` closes.
   */
  | {
      readonly type: 'join';
      readonly i: number;
      readonly atMs: number;
      readonly who: string;
      readonly room: string;
      readonly after: number;
      readonly conn?: string;
      readonly recovered?: boolean;
    }
  /** `who` left `room`: its current join interval is closed (see `check` for what a closed one owes). */
  | { readonly type: 'leave'; readonly i: number; readonly atMs: number; readonly who: string; readonly room: string }
  /** A dead letter of `user` (message `mid`, seq `fromSeq`) was sent again as `seq`. */
  | {
      readonly type: 'redrive';
      readonly i: number;
      readonly atMs: number;
      readonly user: string;
      readonly mid: string;
      readonly fromSeq: number;
      readonly seq: number;
    };

type EventOf<T extends HistoryEvent['type']> = Extract<HistoryEvent, { type: T }>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type NewEvent = DistributiveOmit<HistoryEvent, 'i' | 'atMs'>;

// ---------------------------------------------------------------------------------------------------
// Options

export interface SendOptions {
  /** Deadline for the answer; past it the request counts as unanswered. */
  answerTimeoutMs?: number;
  tag?: string;
  /** Extra fields of the frame (e.g. `echo`). */
  extra?: Record<string, unknown>;
  /**
   * Leave `mid` out of the frame (default false). Without a mid the router has nothing to deduplicate
   * by, so a request acted on twice (say, by a stale and a new slot owner) shows as two messages.
   */
  noMid?: boolean;
  /** Send this already-recorded message again (same mid, same data): a client's retry. */
  mid?: string;
}
/** The name the room fault tests know it by. */
export type PubOptions = SendOptions;

export interface ReceiverCheck {
  room: string;
  /** The receiver holds every seq after this one (its join seq, or `since`). Default 0. */
  after?: number;
  /** When set, the receiver's last seq must be exactly this one (a replay that must end at the head). */
  through?: number;
  /** The ok'd pubs this receiver must hold (default: every ok'd pub of the room with seq > after). */
  expected?: readonly PubRecord[];
}

export interface PublishLoopOptions {
  publishers: readonly { client: TestClient; name: string }[];
  rooms: readonly string[];
  durationMs: number;
  /** Pause between two pubs of one publisher (the loop is paced by time on purpose). */
  everyMs: number;
  /** At most this many unanswered pubs per publisher; the loop waits for one to settle beyond it. */
  maxInFlight: number;
  answerTimeoutMs: number;
  tag?: string;
  noMid?: boolean;
}

/** A sending client whose connection a test may replace (after its gateway died): read at every send. */
export interface Sender {
  readonly name: string;
  client: TestClient;
}

export interface SendLoopOptions {
  op: Op;
  senders: readonly Sender[];
  /** Rooms (pub) or recipient user ids (dm), taken round-robin. */
  targets: readonly string[];
  durationMs: number;
  everyMs: number;
  /** Unsettled messages per sender (a message is settled once ok'd or given up); the loop waits beyond it. */
  maxInFlight: number;
  answerTimeoutMs: number;
  tag?: string;
  /**
   * A reliable sender: a message answered with an error or not at all is sent again with the same mid
   * (deduplicated by the server) until ok'd or this long after the loop's end. Default 0: sent once.
   */
  resendForMs?: number;
  /** Pause before a resend. Default 100 ms. */
  resendAfterMs?: number;
}

export interface WatchOptions {
  /** Which `dm` frames to acknowledge (default all): the recipient sends `ack` for each and it is recorded. */
  ack?: boolean | ((f: Frame) => boolean);
  /** Delay before each ack, for slow recipients whose acks come after a retry. Default 0. */
  ackDelayMs?: number;
}

export interface CheckOptions {
  /**
   * Dead letters the test read back (`<prefix>.api.deadletters`): an ok'd dm listed there is not lost
   * when it was never delivered, and it counts as settled.
   */
  deadLetters?: readonly { user: string; seq: number }[];
  /** Also require every ok'd dm to be acknowledged by its recipient or dead-lettered (nothing left to retry). */
  settled?: boolean;
  /**
   * Receivers that publish are the senders of their pubs, which they sent without echo (the client SDK's
   * own messages): a member is not owed its own pubs, and receiving one is unexpected.
   */
  withoutEcho?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Verdicts

export type ProblemKind = 'lost' | 'unexpected' | 'repeat' | 'duplicate' | 'inversion' | 'conflict' | 'unsettled';
export type Scope = 'room' | 'recipient';

export interface Problem {
  readonly kind: ProblemKind;
  readonly scope: Scope;
  /** The room, or the recipient's user id. */
  readonly target: string;
  /** The message's History id, when known. */
  readonly mid?: string;
  /** The seqs involved (one for most kinds; every seq of a duplicate; [late, before] for an inversion). */
  readonly seqs: readonly number[];
  /** The receiver, for problems one receiver saw. */
  readonly who?: string;
  readonly conn?: string;
  readonly detail: string;
}

export interface Verdict {
  /** Ok'd, but a receiver that must have it never received it (and it is not a dead letter). */
  lost: Problem[];
  /** Received, but never sent by this History, sent to another room / recipient, or a room seq at or below its join. */
  unexpected: Problem[];
  /**
   * A room seq received more than once within one join interval of a member. The gateway hands each
   * member every room message once; only a rejoin with `since` (a replay the member asked for) may bring
   * a seq again, and that opens a new interval. Dms are redelivered until acked: never a repeat.
   */
  repeats: Problem[];
  /** One message stored under two seqs (a repeated seq is the client's to drop, not a duplicate). */
  duplicates: Problem[];
  /** A seq first received on a connection after a higher one (after dropping repeated seqs). */
  inversions: Problem[];
  /** One seq carrying two different messages (in answers or deliveries). */
  conflicts: Problem[];
  /** With `settled`: an ok'd dm neither acknowledged nor dead-lettered. */
  unsettled: Problem[];
  stats: {
    /** Messages ok'd (distinct seqs), including re-driven dead letters. */
    ok: number;
    /** Distinct seqs received by anyone. */
    delivered: number;
    /** Frames repeating a seq their connection already had (allowed for dms; for rooms see `repeats`). */
    redelivered: number;
    /** Distinct seqs acknowledged (dm). */
    acked: number;
  };
}

export interface CheckResult {
  readonly rooms: Readonly<Record<string, Verdict>>;
  readonly recipients: Readonly<Record<string, Verdict>>;
  /** Every problem, rooms first. */
  readonly problems: readonly Problem[];
  /** One line per problem (at most `max`, then a count), for `expect(result.lines()).toEqual([])`. */
  lines(max?: number): string[];
}

const KIND_FIELD: Record<ProblemKind, Exclude<keyof Verdict, 'stats'>> = {
  lost: 'lost',
  unexpected: 'unexpected',
  repeat: 'repeats',
  duplicate: 'duplicates',
  inversion: 'inversions',
  conflict: 'conflicts',
  unsettled: 'unsettled',
};

const emptyVerdict = (): Verdict => ({
  lost: [],
  unexpected: [],
  repeats: [],
  duplicates: [],
  inversions: [],
  conflicts: [],
  unsettled: [],
  stats: { ok: 0, delivered: 0, redelivered: 0, acked: 0 },
});

const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const scopeOf = (op: Op): Scope => (op === 'pub' ? 'room' : 'recipient');

export class History {
  /** Every step, in the order this process saw it. */
  readonly events: HistoryEvent[] = [];
  /** Every send of a pub (retries included), in send order. */
  readonly pubs: PubRecord[] = [];
  /** Every send of a dm (retries included), in send order. */
  readonly dms: DmRecord[] = [];
  /** Every send, in send order. */
  readonly sends: SendRecord[] = [];
  /** A message's first send, by mid. */
  private readonly byMid = new Map<string, SendRecord>();
  private n = 0;

  private log(e: NewEvent): void {
    this.events.push({ ...e, i: this.events.length, atMs: Date.now() } as HistoryEvent);
  }

  // -------------------------------------------------------------------------------------------------
  // Recording (the primitives; the drivers below use them, unit tests feed them directly)

  /** Records a send: a new message with a fresh mid, or (with `opts.mid`) the same message again. */
  recordSend(op: Op, by: string, target: string, opts: { mid?: string; tag?: string } = {}): SendRecord {
    let mid: string;
    let attempt = 1;
    if (opts.mid !== undefined) {
      const first = this.byMid.get(opts.mid);
      if (first === undefined) throw new Error(`recordSend: no message ${opts.mid} to send again`);
      if (first.op !== op || first.target !== target)
        throw new Error(`recordSend: ${opts.mid} was a ${first.op} to ${first.target}`);
      mid = opts.mid;
      attempt = this.sends.filter((s) => s.mid === mid).length + 1;
    } else {
      mid = `${by}.${++this.n}`;
    }
    const base = { mid, by, tag: opts.tag, attempt, target, sentAtMs: Date.now() };
    const rec: SendRecord = op === 'pub' ? { ...base, op, room: target } : { ...base, op, to: target };
    if (rec.op === 'pub') this.pubs.push(rec);
    else this.dms.push(rec);
    this.sends.push(rec);
    if (attempt === 1) this.byMid.set(mid, rec);
    this.log({ type: 'send', rec });
    return rec;
  }

  recordAnswer(rec: SendRecord, outcome: Outcome): void {
    rec.answeredAtMs = Date.now();
    rec.outcome = outcome;
    this.log({ type: 'answer', rec, outcome });
  }

  /** A frame received by `who` on connection `conn` of `user`; only `msg` and `dm` frames are kept. */
  recordReceive(who: string, user: string, conn: string, frame: Frame): void {
    if (frame.t === 'msg' || frame.t === 'dm') this.log({ type: 'receive', who, user, conn, frame });
  }

  recordAck(who: string, user: string, conn: string, seq: number): void {
    this.log({ type: 'ack', who, user, conn, seq });
  }

  /**
   * `who` joined `room`; it is owed every ok'd pub above `after` (see the join event). `conn` ties the
   * interval to the connection it must arrive on; without it, the member's frames on any connection count.
   */
  recordJoin(who: string, room: string, after: number, opts: { conn?: string; recovered?: boolean } = {}): void {
    this.log({
      type: 'join',
      who,
      room,
      after,
      ...(opts.conn === undefined ? {} : { conn: opts.conn }),
      recovered: opts.recovered ?? false,
    });
  }

  recordLeave(who: string, room: string): void {
    this.log({ type: 'leave', who, room });
  }

  /** Dead letter `fromSeq` of `user` (message `mid`) was re-driven and stored again as `seq`. */
  recordRedrive(user: string, mid: string, fromSeq: number, seq: number): void {
    this.log({ type: 'redrive', user, mid, fromSeq, seq });
  }

  // -------------------------------------------------------------------------------------------------
  // Driving real clients

  private async request(
    client: TestClient,
    rec: SendRecord,
    frame: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<void> {
    let outcome: Outcome;
    try {
      const ans = await client.request(frame, timeoutMs);
      outcome =
        ans.t === 'ok'
          ? { kind: 'ok', seq: ans.seq as number }
          : { kind: 'err', code: String(ans.code), msg: String(ans.msg) };
    } catch (e) {
      outcome = { kind: 'unanswered', why: e instanceof Error ? e.message.slice(0, 300) : String(e) };
    }
    this.recordAnswer(rec, outcome);
  }

  private frameFor(rec: SendRecord, opts: SendOptions): Record<string, unknown> {
    const first = this.byMid.get(rec.mid)!;
    const n = Number(first.mid.slice(first.mid.lastIndexOf('.') + 1));
    const data = { id: rec.mid, by: first.by, n };
    const mid = opts.noMid ? {} : { mid: rec.mid };
    return rec.op === 'pub'
      ? { t: 'pub', room: rec.room, data, ...mid, ...opts.extra }
      : { t: 'dm', to: rec.to, data, ...mid, ...opts.extra };
  }

  /** Sends one `pub` (a new message, or `opts.mid` again) and records its answer; never rejects. */
  async pub(client: TestClient, by: string, room: string, opts: SendOptions = {}): Promise<PubRecord> {
    const rec = this.recordSend('pub', by, room, opts) as PubRecord;
    await this.request(client, rec, this.frameFor(rec, opts), opts.answerTimeoutMs ?? 10_000);
    return rec;
  }

  /** Sends one `dm` (a new message, or `opts.mid` again) and records its answer; never rejects. */
  async dm(client: TestClient, by: string, to: string, opts: SendOptions = {}): Promise<DmRecord> {
    const rec = this.recordSend('dm', by, to, opts) as DmRecord;
    await this.request(client, rec, this.frameFor(rec, opts), opts.answerTimeoutMs ?? 10_000);
    return rec;
  }

  /** Publishes again and again (new messages each time) until one pub is answered `ok` or the deadline passes. */
  async pubUntilOk(
    client: TestClient,
    by: string,
    room: string,
    deadlineMs: number,
    opts: SendOptions = {},
  ): Promise<PubRecord> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const rec = await this.pub(client, by, room, opts);
      if (rec.outcome?.kind === 'ok') return rec;
      if (Date.now() >= deadline) {
        throw new Error(
          `no ok for a pub in ${room} within ${deadlineMs} ms; last outcome ${JSON.stringify(rec.outcome)}`,
        );
      }
      await sleep(50);
    }
  }

  /** Sends one dm and, like a reliable client, sends the same mid again until it is ok'd or the deadline passes. */
  async dmUntilOk(
    client: TestClient | (() => TestClient),
    by: string,
    to: string,
    deadlineMs: number,
    opts: SendOptions = {},
  ): Promise<DmRecord> {
    const current = typeof client === 'function' ? client : () => client;
    const rec = await this.dm(current(), by, to, opts);
    return (await this.resendUntilOk(current, rec, deadlineMs, opts)) as DmRecord;
  }

  /**
   * Like a reliable client: unless `rec` was ok'd, sends the same message (same mid) again on the
   * current client until one send of it is ok'd; throws after `deadlineMs`. Resolves the ok'd send.
   */
  async resendUntilOk(
    client: TestClient | (() => TestClient),
    rec: SendRecord,
    deadlineMs: number,
    opts: SendOptions = {},
  ): Promise<SendRecord> {
    const deadline = Date.now() + deadlineMs;
    const current = typeof client === 'function' ? client : () => client;
    let last = rec;
    while (last.outcome?.kind !== 'ok') {
      if (Date.now() >= deadline)
        throw new Error(
          `no ok for ${rec.op} ${rec.mid} to ${rec.target} within ${deadlineMs} ms; last outcome ${JSON.stringify(last.outcome)}`,
        );
      await sleep(100);
      const again = { ...opts, mid: rec.mid };
      last =
        rec.op === 'pub'
          ? await this.pub(current(), rec.by, rec.target, again)
          : await this.dm(current(), rec.by, rec.target, again);
    }
    return last;
  }

  /** Publishers send round-robin over `rooms`, paced, for `durationMs`; resolves once every pub is settled. */
  async publishFor(o: PublishLoopOptions): Promise<void> {
    const end = Date.now() + o.durationMs;
    await Promise.all(
      o.publishers.map(async ({ client, name }, k) => {
        const inFlight = new Set<Promise<unknown>>();
        for (let i = k; Date.now() < end; i++) {
          const p = this.pub(client, name, o.rooms[i % o.rooms.length]!, {
            answerTimeoutMs: o.answerTimeoutMs,
            tag: o.tag,
            noMid: o.noMid,
          });
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
          if (inFlight.size >= o.maxInFlight) await Promise.race(inFlight);
          await sleep(o.everyMs);
        }
        await Promise.all(inFlight);
      }),
    );
  }

  /**
   * Senders send `op` round-robin over `targets`, paced, for `durationMs`, each on its current
   * `client` (waiting while that one is closed, so a test can swap in a new connection); with
   * `resendForMs`, unsuccessful messages are sent again with their mid. Resolves once all are settled.
   */
  async sendFor(o: SendLoopOptions): Promise<void> {
    const end = Date.now() + o.durationMs;
    const giveUpAt = end + (o.resendForMs ?? 0);
    const open = async (s: Sender, until: number): Promise<boolean> => {
      while (!s.client.isOpen) {
        if (Date.now() >= until) return false;
        await sleep(20);
      }
      return true;
    };
    const one = async (s: Sender, target: string): Promise<void> => {
      const send = (mid?: string) =>
        o.op === 'pub'
          ? this.pub(s.client, s.name, target, { answerTimeoutMs: o.answerTimeoutMs, tag: o.tag, mid })
          : this.dm(s.client, s.name, target, { answerTimeoutMs: o.answerTimeoutMs, tag: o.tag, mid });
      let rec: SendRecord = await send();
      while (rec.outcome?.kind !== 'ok' && Date.now() < giveUpAt) {
        await sleep(o.resendAfterMs ?? 100);
        if (!(await open(s, giveUpAt))) return;
        rec = await send(rec.mid);
      }
    };
    await Promise.all(
      o.senders.map(async (s, k) => {
        const inFlight = new Set<Promise<unknown>>();
        for (let i = k; Date.now() < end; i++) {
          if (!(await open(s, end))) break;
          const p = one(s, o.targets[i % o.targets.length]!);
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
          if (inFlight.size >= o.maxInFlight) await Promise.race(inFlight);
          await sleep(o.everyMs);
        }
        await Promise.all(inFlight);
      }),
    );
  }

  /**
   * Records every `msg` and `dm` frame `client` receives (those already received first) under the
   * receiver label `who`, and acknowledges `dm` frames as `opts.ack` says (default: every one, like a
   * well-behaved recipient; a seq seen again is acknowledged again). Returns a function that stops it.
   */
  watch(client: TestClient, who: string, opts: WatchOptions = {}): () => void {
    const { user, conn } = client;
    const ackIf = opts.ack ?? true;
    const take = (f: Frame) => {
      this.recordReceive(who, user, conn, f);
      if (f.t !== 'dm' || !isSeq(f.seq)) return;
      if (ackIf === false || (typeof ackIf === 'function' && !ackIf(f))) return;
      const seq = f.seq;
      const ack = () => {
        if (!client.isOpen) return;
        client.sendJson({ t: 'ack', seq });
        this.recordAck(who, user, conn, seq);
      };
      if (opts.ackDelayMs) setTimeout(ack, opts.ackDelayMs).unref();
      else ack();
    };
    for (const f of client.frames) take(f);
    const onMessage = (data: unknown) => {
      const text = Array.isArray(data)
        ? Buffer.concat(data as Buffer[]).toString()
        : Buffer.from(data as ArrayBuffer).toString();
      let f: unknown;
      try {
        f = JSON.parse(text);
      } catch {
        return;
      }
      if (f !== null && typeof f === 'object' && !Array.isArray(f)) take(f as Frame);
    };
    client.ws.on('message', onMessage);
    return () => client.ws.off('message', onMessage);
  }

  /**
   * Joins `room` and records the membership: from then on `who` must receive on this connection every
   * ok'd pub with a seq above the join's (or above `since` when the replay was recovered), each once.
   * Resolves the `ok` frame.
   */
  async join(
    client: TestClient,
    who: string,
    room: string,
    extra: { since?: number; epoch?: string; presence?: boolean } = {},
  ): Promise<Frame> {
    const ok = await client.ok({ t: 'join', room, ...extra });
    const recovered = extra.since !== undefined && ok.recovered === true;
    this.recordJoin(who, room, recovered ? extra.since! : (ok.seq as number), { conn: client.conn, recovered });
    return ok;
  }

  // -------------------------------------------------------------------------------------------------
  // Reading the records

  /** A message's first send, by mid. */
  record(mid: string): SendRecord | undefined {
    return this.byMid.get(mid);
  }

  /** The History id a received `msg` frame carries (its `mid`, or `data.id` for pubs sent without one). */
  static idOf(f: Frame): string | undefined {
    if (typeof f.mid === 'string') return f.mid;
    const id: unknown = (f.data as { id?: unknown } | null | undefined)?.id;
    return typeof id === 'string' ? id : undefined;
  }

  /**
   * The identity of a received message for `check`: `data.id` first (a re-driven dead letter keeps
   * its data but gets a new mid), the frame's `mid` otherwise.
   */
  static identityOf(f: Frame): string | undefined {
    const id: unknown = (f.data as { id?: unknown } | null | undefined)?.id;
    if (typeof id === 'string') return id;
    return typeof f.mid === 'string' ? f.mid : undefined;
  }

  /** The record of a received frame, if this History sent it. */
  recordOf(f: Frame): SendRecord | undefined {
    const id = History.identityOf(f);
    return id === undefined ? undefined : this.byMid.get(id);
  }

  /** Pubs answered ok, optionally of one room / tag, in seq order. */
  oks(room?: string, tag?: string): Ok<PubRecord>[] {
    return this.pubs
      .filter((p): p is Ok<PubRecord> => p.outcome?.kind === 'ok')
      .filter((p) => (room === undefined || p.room === room) && (tag === undefined || p.tag === tag))
      .sort((a, b) => a.outcome.seq - b.outcome.seq);
  }

  /** Dms answered ok (one per message: a retry's ok repeats the first), optionally to one user / of one tag, in seq order. */
  dmOks(to?: string, tag?: string): Ok<DmRecord>[] {
    const first = new Map<string, Ok<DmRecord>>();
    for (const p of this.dms) {
      if (p.outcome?.kind !== 'ok' || (to !== undefined && p.to !== to) || (tag !== undefined && p.tag !== tag))
        continue;
      if (!first.has(p.mid)) first.set(p.mid, p as Ok<DmRecord>);
    }
    return [...first.values()].sort((a, b) => a.outcome.seq - b.outcome.seq);
  }

  maxOkSeq(room: string, tag?: string): number {
    const oks = this.oks(room, tag);
    return oks.length === 0 ? 0 : oks[oks.length - 1]!.outcome.seq;
  }

  /** Receive events, optionally only `dm` frames of `user` or `msg` frames of a room. */
  receives(filter: { user?: string; room?: string; who?: string } = {}): EventOf<'receive'>[] {
    return this.events.filter(
      (e): e is EventOf<'receive'> =>
        e.type === 'receive' &&
        (filter.user === undefined || (e.frame.t === 'dm' && e.user === filter.user)) &&
        (filter.room === undefined || (e.frame.t === 'msg' && e.frame.room === filter.room)) &&
        (filter.who === undefined || e.who === filter.who),
    );
  }

  /** Count of outcomes by kind/code, e.g. { ok: 812, 'err:unavailable': 9 } — for reports. */
  summary(op?: Op): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.sends) {
      if (op !== undefined && p.op !== op) continue;
      const k =
        p.outcome === undefined ? 'pending' : p.outcome.kind === 'err' ? `err:${p.outcome.code}` : p.outcome.kind;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /**
   * Every send answered exactly once, errors only with an allowed code, and no seq of a room or a
   * recipient given to two different ok'd messages (a resend's ok must repeat its first seq: that is
   * checked by `check` as a duplicate). `clients` are the sending clients, whose answer counts per
   * request id are checked. `epochOf` names the history a pub went to when a test wipes it.
   */
  answerProblems(
    allowedErrors: readonly string[],
    clients: readonly TestClient[] = [],
    epochOf: (p: SendRecord) => string = () => '',
  ): string[] {
    const out: string[] = [];
    const seqOwner = new Map<string, string>();
    for (const p of this.sends) {
      const o = p.outcome;
      const what = `${p.op} ${p.mid}${p.attempt > 1 ? ` (send #${p.attempt})` : ''} (${p.target})`;
      if (o === undefined) out.push(`${what}: still pending`);
      else if (o.kind === 'unanswered') out.push(`${what}: no answer: ${o.why}`);
      else if (o.kind === 'err' && !allowedErrors.includes(o.code)) out.push(`${what}: err ${o.code} "${o.msg}"`);
      else if (o.kind === 'ok') {
        if (!isSeq(o.seq)) out.push(`${what}: ok with bad seq ${String(o.seq)}`);
        const key = `${p.op}#${p.target}#${epochOf(p)}#${o.seq}`;
        const prev = seqOwner.get(key);
        if (prev !== undefined && prev !== p.mid)
          out.push(
            `${p.target} seq ${o.seq} was answered ok to both ${prev} and ${p.mid}${epochOf(p) ? ` (epoch ${epochOf(p)})` : ''}`,
          );
        else seqOwner.set(key, p.mid);
      }
    }
    clients.forEach((c, i) => {
      for (const [id, n] of c.answers) if (n !== 1) out.push(`sender #${i}: request id ${id} answered ${n} times`);
    });
    return out;
  }

  /**
   * Longest time without an ok answer among the sends to `targets` (all when omitted) inside
   * [fromMs, toMs], the bounds counting as answers: how long the service was away for those targets.
   */
  longestSilence(fromMs: number, toMs: number, targets?: readonly string[]): { ms: number; startMs: number } {
    const times = this.sends
      .filter((p) => p.outcome?.kind === 'ok' && (targets === undefined || targets.includes(p.target)))
      .map((p) => p.answeredAtMs!)
      .filter((t) => t >= fromMs && t <= toMs)
      .sort((a, b) => a - b);
    let prev = fromMs;
    let best = { ms: 0, startMs: fromMs };
    for (const t of [...times, toMs]) {
      if (t - prev > best.ms) best = { ms: t - prev, startMs: prev };
      prev = t;
    }
    return best;
  }

  // -------------------------------------------------------------------------------------------------
  // The checker

  /**
   * Judges the whole history, per room and per recipient:
   * - lost, rooms: judged per join interval of a member (a join, up to the member's next join or leave of
   *   the room; the frames of a join are those on its connection). An interval with `after` A owes every
   *   ok'd pub with a seq s > A up to its end: the open last interval owes them all; one closed by a
   *   recovered rejoin with since S owes those up to S (the member claimed to hold them; the rejoin owes
   *   the rest); one closed by a leave or by a join without a recovered since owes those up to the highest
   *   seq it received (no gaps: when the connection stopped owing is not in the history). An owed seq is
   *   lost unless the interval received it (the ok'd message, not a stranger at its seq) or a later
   *   interval of the member with an `after` below s did (a replay the member asked for from an earlier
   *   position); it is reported once, at the last interval that owes it.
   * - lost, dms: a dm ok'd (or re-driven) with seq s that no connection of its recipient received, unless
   *   (user, s) is in `opts.deadLetters`. An `ok` is a promise that the message is stored; `unavailable`
   *   or no answer promises nothing, so such a message may be received, but only once (see duplicates).
   * - unexpected: a received message this History never sent, sent to another room or recipient, or
   *   without a valid seq; and a room seq at or below the `after` of the join interval it arrived in.
   * - repeats: a room seq received twice within one join interval (see `Verdict.repeats`). Frames of a
   *   room on a connection no recorded join covers form one interval per connection.
   * - duplicates: one message under two seqs (in answers or deliveries; a re-drive's new seq excepted)
   *   is a message stored twice. Receiving a dm seq again is redelivery until ack, allowed.
   * - inversions: per connection (and room), the first arrival of each seq must come in increasing seq
   *   order. For dms this includes the pending replay on connect: every seq a connection gets for the
   *   first time, replayed or live, must be higher than all it got before. Repeats are skipped.
   * - conflicts: one seq of a room or recipient carrying two different messages.
   * - unsettled (with `opts.settled`): an ok'd dm neither acknowledged by its recipient nor dead-lettered.
   */
  check(opts: CheckOptions = {}): CheckResult {
    const verdicts: Record<Scope, Map<string, Verdict>> = { room: new Map(), recipient: new Map() };
    const verdict = (scope: Scope, target: string): Verdict => {
      let v = verdicts[scope].get(target);
      if (!v) verdicts[scope].set(target, (v = emptyVerdict()));
      return v;
    };
    const add = (p: Problem) => verdict(p.scope, p.target)[KIND_FIELD[p.kind]].push(p);
    const key = (scope: Scope, target: string) => `${scope}\u0000${target}`;
    const dead = new Set((opts.deadLetters ?? []).map((d) => `${d.user}\u0000${d.seq}`));

    // Who claims what: seq → message and message → seqs, from ok answers, re-drives and deliveries.
    const bySeq = new Map<string, Map<number, Map<string, string>>>();
    const byMessage = new Map<string, Map<string, Set<number>>>();
    const claim = (scope: Scope, target: string, seq: number, mid: string, source: string) => {
      const k = key(scope, target);
      let seqs = bySeq.get(k);
      if (!seqs) bySeq.set(k, (seqs = new Map()));
      let mids = seqs.get(seq);
      if (!mids) seqs.set(seq, (mids = new Map()));
      if (!mids.has(mid)) mids.set(mid, source);
      let msgs = byMessage.get(k);
      if (!msgs) byMessage.set(k, (msgs = new Map()));
      let s = msgs.get(mid);
      if (!s) msgs.set(mid, (s = new Set()));
      s.add(seq);
    };

    // What must be delivered: ok'd pubs per room, ok'd and re-driven dms per recipient.
    const okPubs = new Map<string, Map<number, string>>();
    const okDms = new Map<string, Map<number, string>>();
    const redriveSeqs = new Map<string, Set<number>>();
    const expect = (m: Map<string, Map<number, string>>, target: string, seq: number, mid: string) => {
      let s = m.get(target);
      if (!s) m.set(target, (s = new Map()));
      if (!s.has(seq)) s.set(seq, mid);
    };
    for (const e of this.events) {
      if (e.type === 'answer' && e.outcome.kind === 'ok') {
        const r = e.rec;
        if (!isSeq(e.outcome.seq)) continue; // answerProblems reports it
        claim(scopeOf(r.op), r.target, e.outcome.seq, r.mid, `answered ok to ${r.by}`);
        expect(r.op === 'pub' ? okPubs : okDms, r.target, e.outcome.seq, r.mid);
        verdict(scopeOf(r.op), r.target);
      } else if (e.type === 'redrive') {
        claim('recipient', e.user, e.seq, e.mid, `re-drive of seq ${e.fromSeq}`);
        expect(okDms, e.user, e.seq, e.mid);
        const k = `${key('recipient', e.user)}\u0000${e.mid}`;
        let s = redriveSeqs.get(k);
        if (!s) redriveSeqs.set(k, (s = new Set()));
        s.add(e.seq);
      }
    }

    // Room join intervals, per member and room in join order. A join closes the member's previous interval
    // in that room, a leave its current one.
    interface Interval {
      readonly who: string;
      readonly room: string;
      readonly after: number;
      readonly conn: string | undefined;
      readonly recovered: boolean;
      /** Index of the join event. */
      readonly i: number;
      closedBy?: 'leave' | { join: Interval };
      /** Times each seq arrived in this interval, and the seq+mid pairs received as the message sent to the room. */
      readonly count: Map<number, number>;
      readonly got: Set<string>;
      /** A frame of the interval's connection, for problem reports. */
      someConn?: string;
    }
    const intervals = new Map<string, Interval[]>(); // who/room → intervals in join order
    const unjoined = new Map<string, Interval>(); // who/conn/room → frames no recorded join covers
    for (const e of this.events) {
      if (e.type !== 'join' && e.type !== 'leave') continue;
      const mk = `${e.who}\u0000${e.room}`;
      let list = intervals.get(mk);
      if (!list) intervals.set(mk, (list = []));
      const last = list[list.length - 1];
      if (e.type === 'leave') {
        if (last !== undefined && last.closedBy === undefined) last.closedBy = 'leave';
        continue;
      }
      const iv: Interval = {
        who: e.who,
        room: e.room,
        after: e.after,
        conn: e.conn,
        recovered: e.recovered ?? false,
        i: e.i,
        count: new Map(),
        got: new Set(),
      };
      if (last !== undefined && last.closedBy === undefined) last.closedBy = { join: iv };
      list.push(iv);
    }
    /**
     * The interval a room frame belongs to: among the member's joins on the frame's connection (or, when
     * it has none there, its joins recorded without a connection), the latest recorded before the frame.
     * A frame recorded before any of them belongs to the first: one socket read can carry a join's `ok`
     * and the replay after it, and the frames are recorded before the awaited answer records the join.
     */
    const intervalOf = (who: string, room: string, conn: string, i: number): Interval | undefined => {
      const list = intervals.get(`${who}\u0000${room}`) ?? [];
      let pool = list.filter((m) => m.conn === conn);
      if (pool.length === 0) pool = list.filter((m) => m.conn === undefined);
      let pick = pool[0];
      for (const m of pool) if (m.i < i) pick = m;
      return pick;
    };

    // Deliveries, in arrival order per connection.
    const order = new Map<string, { max: number; seen: Set<number> }>();
    const got = new Map<string, Map<string, Set<string>>>(); // scope/target → seq+mid → holders (who for rooms, user for dms)
    const seqsSeen = new Map<string, Set<number>>(); // scope/target → every seq received
    const acked = new Map<string, Set<number>>();
    for (const e of this.events) {
      if (e.type === 'ack') {
        let s = acked.get(e.user);
        if (!s) acked.set(e.user, (s = new Set()));
        s.add(e.seq);
        continue;
      }
      if (e.type !== 'receive') continue;
      const f = e.frame;
      const scope: Scope = f.t === 'msg' ? 'room' : 'recipient';
      const target = scope === 'room' ? String(f.room) : e.user;
      const where = { who: e.who, conn: e.conn };
      const id = History.identityOf(f);
      if (!isSeq(f.seq)) {
        add({
          kind: 'unexpected',
          scope,
          target,
          mid: id,
          seqs: [],
          ...where,
          detail: `${e.who} received a ${f.t} without a valid seq: ${JSON.stringify(f).slice(0, 200)}`,
        });
        continue;
      }
      const seq = f.seq;
      const rec = id === undefined ? undefined : this.byMid.get(id);
      let iv: Interval | undefined;
      if (scope === 'room') {
        iv = intervalOf(e.who, target, e.conn, e.i);
        if (iv === undefined) {
          const uk = `${e.who}\u0000${e.conn}\u0000${target}`;
          iv = unjoined.get(uk);
          if (!iv)
            unjoined.set(
              uk,
              (iv = {
                who: e.who,
                room: target,
                after: 0,
                conn: e.conn,
                recovered: false,
                i: e.i,
                count: new Map(),
                got: new Set(),
              }),
            );
        }
        iv.someConn ??= e.conn;
        iv.count.set(seq, (iv.count.get(seq) ?? 0) + 1);
        if (seq <= iv.after) {
          add({
            kind: 'unexpected',
            scope,
            target,
            mid: id,
            seqs: [seq],
            ...where,
            detail: `${e.who} (${e.conn}) received ${target} seq ${seq} (${id ?? 'no id'}) in its join after seq ${iv.after}`,
          });
        }
      }
      const gk = key(scope, target);
      let seen = seqsSeen.get(gk);
      if (!seen) seqsSeen.set(gk, (seen = new Set()));
      seen.add(seq);
      if (rec === undefined) {
        add({
          kind: 'unexpected',
          scope,
          target,
          mid: id,
          seqs: [seq],
          ...where,
          detail: `${e.who} received ${f.t} seq ${seq} (${id ?? 'no id'}) that was never sent`,
        });
      } else if (scopeOf(rec.op) !== scope || rec.target !== target) {
        add({
          kind: 'unexpected',
          scope,
          target,
          mid: id,
          seqs: [seq],
          ...where,
          detail: `${e.who} received ${id} as ${f.t} seq ${seq} in ${target}, but it was a ${rec.op} to ${rec.target}`,
        });
      } else {
        if (opts.withoutEcho && rec.op === 'pub' && rec.by === e.who) {
          add({
            kind: 'unexpected',
            scope,
            target,
            mid: id,
            seqs: [seq],
            ...where,
            detail: `${e.who} received its own pub ${id} (seq ${seq}), sent without echo`,
          });
        }
        claim(scope, target, seq, rec.mid, `received by ${e.who}`);
        // Only the message sent to this target counts as received at this seq (not a stranger in its place).
        let holders = got.get(gk);
        if (!holders) got.set(gk, (holders = new Map()));
        const hk = `${seq}\u0000${rec.mid}`;
        let set = holders.get(hk);
        if (!set) holders.set(hk, (set = new Set()));
        set.add(scope === 'room' ? e.who : e.user);
        iv?.got.add(hk);
      }
      const v = verdict(scope, target);
      const ok = `${e.conn}\u0000${scope === 'room' ? target : ''}`;
      let st = order.get(ok);
      if (!st) order.set(ok, (st = { max: 0, seen: new Set() }));
      if (st.seen.has(seq)) v.stats.redelivered++;
      else {
        if (seq < st.max) {
          add({
            kind: 'inversion',
            scope,
            target,
            mid: id,
            seqs: [seq, st.max],
            ...where,
            detail: `${e.who} (${e.conn}) first received seq ${seq} after seq ${st.max}`,
          });
        }
        st.seen.add(seq);
        st.max = Math.max(st.max, seq);
      }
    }

    // Conflicts and duplicates from the claims.
    for (const [k, seqs] of bySeq) {
      const [scope, target] = k.split('\u0000') as [Scope, string];
      for (const [seq, mids] of [...seqs].sort((a, b) => a[0] - b[0])) {
        if (mids.size < 2) continue;
        const list = [...mids].map(([m, src]) => `${m} (${src})`).join(', ');
        add({
          kind: 'conflict',
          scope,
          target,
          seqs: [seq],
          detail: `${target} seq ${seq} carries different messages: ${list}`,
        });
      }
    }
    for (const [k, msgs] of byMessage) {
      const [scope, target] = k.split('\u0000') as [Scope, string];
      for (const [mid, seqs] of msgs) {
        const redriven = redriveSeqs.get(`${k}\u0000${mid}`) ?? new Set<number>();
        const own = [...seqs].filter((s) => !redriven.has(s)).sort((a, b) => a - b);
        if (own.length < 2) continue;
        add({
          kind: 'duplicate',
          scope,
          target,
          mid,
          seqs: own,
          detail: `${mid} is stored under ${own.length} seqs of ${target}: ${own.join(', ')}`,
        });
      }
    }

    // Repeats: a room seq more than once in one interval.
    for (const iv of [...[...intervals.values()].flat(), ...unjoined.values()]) {
      for (const [seq, n] of [...iv.count].sort((a, b) => a[0] - b[0])) {
        if (n < 2) continue;
        add({
          kind: 'repeat',
          scope: 'room',
          target: iv.room,
          seqs: [seq],
          who: iv.who,
          conn: iv.conn ?? iv.someConn,
          detail: `${iv.who} (${iv.conn ?? iv.someConn}) received ${iv.room} seq ${seq} ${n} times in its join after seq ${iv.after}`,
        });
      }
    }

    // Lost: rooms per join interval (see above); dms per recipient.
    const ends = (iv: Interval): number => {
      if (iv.closedBy === undefined) return Infinity;
      if (iv.closedBy !== 'leave' && iv.closedBy.join.recovered) return iv.closedBy.join.after;
      return Math.max(0, ...iv.count.keys());
    };
    for (const list of intervals.values()) {
      const owes = (iv: Interval, seq: number) => seq > iv.after && seq <= ends(iv);
      const oks = [...(okPubs.get(list[0]!.room) ?? [])].sort((a, b) => a[0] - b[0]);
      list.forEach((iv, k) => {
        const later = list.slice(k + 1);
        for (const [seq, mid] of oks) {
          if (!owes(iv, seq)) continue;
          if (opts.withoutEcho && this.byMid.get(mid)?.by === iv.who) continue;
          const hk = `${seq}\u0000${mid}`;
          if (iv.got.has(hk) || later.some((l) => l.after < seq && l.got.has(hk))) continue;
          if (later.some((l) => owes(l, seq))) continue; // the last interval that owes it reports it
          const closed =
            iv.closedBy === undefined
              ? ''
              : iv.closedBy === 'leave'
                ? ', before it left'
                : `, before it joined again after seq ${iv.closedBy.join.after}`;
          add({
            kind: 'lost',
            scope: 'room',
            target: iv.room,
            mid,
            seqs: [seq],
            who: iv.who,
            conn: iv.conn,
            detail: `${iv.who} never received ${iv.room} seq ${seq} (${mid}), answered ok, in its join after seq ${iv.after}${iv.conn === undefined ? '' : ` on ${iv.conn}`}${closed}`,
          });
        }
      });
    }
    for (const [user, oks] of okDms) {
      const has = got.get(key('recipient', user));
      for (const [seq, mid] of [...oks].sort((a, b) => a[0] - b[0])) {
        const isDead = dead.has(`${user}\u0000${seq}`);
        if (!has?.get(`${seq}\u0000${mid}`)?.has(user) && !isDead) {
          add({
            kind: 'lost',
            scope: 'recipient',
            target: user,
            mid,
            seqs: [seq],
            detail: `${user} never received dm seq ${seq} (${mid}), answered ok, and it is not a dead letter`,
          });
        }
        if (opts.settled && !acked.get(user)?.has(seq) && !isDead) {
          add({
            kind: 'unsettled',
            scope: 'recipient',
            target: user,
            mid,
            seqs: [seq],
            detail: `${user} dm seq ${seq} (${mid}) was neither acknowledged nor dead-lettered`,
          });
        }
      }
    }

    // Stats.
    for (const [scope, m] of Object.entries(verdicts) as [Scope, Map<string, Verdict>][]) {
      for (const [target, v] of m) {
        v.stats.ok = (scope === 'room' ? okPubs : okDms).get(target)?.size ?? 0;
        v.stats.delivered = seqsSeen.get(key(scope, target))?.size ?? 0;
        if (scope === 'recipient') v.stats.acked = acked.get(target)?.size ?? 0;
      }
    }

    const rooms = Object.fromEntries(verdicts.room);
    const recipients = Object.fromEntries(verdicts.recipient);
    const problems: Problem[] = [];
    for (const v of [...Object.values(rooms), ...Object.values(recipients)]) {
      problems.push(
        ...v.lost,
        ...v.unexpected,
        ...v.repeats,
        ...v.duplicates,
        ...v.inversions,
        ...v.conflicts,
        ...v.unsettled,
      );
    }
    return {
      rooms,
      recipients,
      problems,
      lines: (max = 40) => {
        // A run of inversions behind one seq (a replay overtaken by a live message) reads as one line.
        const out: string[] = [];
        let i = 0;
        for (; i < problems.length && out.length < max; i++) {
          const p = problems[i]!;
          let j = i;
          while (p.kind === 'inversion') {
            const q = problems[j + 1];
            if (
              q?.kind !== 'inversion' ||
              q.target !== p.target ||
              q.conn !== p.conn ||
              q.seqs[1] !== p.seqs[1] ||
              q.seqs[0] !== problems[j]!.seqs[0]! + 1
            )
              break;
            j++;
          }
          out.push(
            j === i
              ? `${p.kind} [${p.scope} ${p.target}] ${p.detail}`
              : `${p.kind} [${p.scope} ${p.target}] ${p.who} (${p.conn}) first received seqs ${p.seqs[0]}..${problems[j]!.seqs[0]} after seq ${p.seqs[1]} (${j - i + 1} inversions)`,
          );
          i = j;
        }
        if (i < problems.length) out.push(`... ${problems.length} problems in all`);
        return out;
      },
    };
  }

  /**
   * Waits until `check({ settled: true })` finds nothing lost or unsettled, or `timeoutMs` has passed
   * (not a failure here), then returns that check: the caller's assertion on it names what is missing.
   */
  async settle(
    timeoutMs: number,
    what = 'every ok’d message delivered and acknowledged',
    opts: Omit<CheckOptions, 'settled'> = {},
  ): Promise<CheckResult> {
    const check = () => this.check({ ...opts, settled: true });
    const open = () => check().problems.filter((p) => p.kind === 'lost' || p.kind === 'unsettled').length;
    await waitFor(() => open() === 0, timeoutMs, what).catch(() => undefined);
    return check();
  }

  /** Logs the first `n` problems of `result`, each with `explain(p, t0, max)`. For failure reports. */
  logProblems(result: CheckResult, n: number, t0?: number, max?: number): void {
    for (const p of result.problems.slice(0, n))
      console.error(`${p.kind}: ${p.detail}\n  ${this.explain(p, t0, max).join('\n  ')}`);
  }

  /**
   * The events behind a problem, one line each with ms since `t0` (default the first event): the
   * sends and answers of the messages at its seqs, and what its target received and acknowledged at
   * seqs between its lowest and highest (on its connection, when it has one). For failure reports.
   */
  explain(p: Problem, t0 = this.events[0]?.atMs ?? 0, max = 40): string[] {
    const lo = Math.min(...p.seqs);
    const hi = Math.max(...p.seqs);
    const inRange = (seq: unknown) => isSeq(seq) && seq >= lo && seq <= hi;
    const mids = new Set<string>(p.mid === undefined ? [] : [p.mid]);
    for (const e of this.events) {
      if (
        e.type === 'answer' &&
        e.outcome.kind === 'ok' &&
        scopeOf(e.rec.op) === p.scope &&
        e.rec.target === p.target &&
        p.seqs.includes(e.outcome.seq)
      )
        mids.add(e.rec.mid);
    }
    const at = (e: HistoryEvent) => `+${e.atMs - t0}ms`;
    const out: string[] = [];
    for (const e of this.events) {
      if ((e.type === 'send' || e.type === 'answer') && mids.has(e.rec.mid)) {
        out.push(
          e.type === 'send'
            ? `${at(e)} ${e.rec.by} sends ${e.rec.op} ${e.rec.mid} (#${e.rec.attempt}) to ${e.rec.target}`
            : `${at(e)} ${e.rec.mid} (#${e.rec.attempt}) answered ${JSON.stringify(e.outcome)}`,
        );
      } else if (e.type === 'receive' && (p.conn === undefined || e.conn === p.conn) && inRange(e.frame.seq)) {
        const target = e.frame.t === 'msg' ? String(e.frame.room) : e.user;
        if (target === p.target)
          out.push(
            `${at(e)} ${e.who} (${e.conn}) receives ${e.frame.t} seq ${String(e.frame.seq)} (${History.identityOf(e.frame) ?? 'no id'})`,
          );
      } else if (
        e.type === 'ack' &&
        p.scope === 'recipient' &&
        e.user === p.target &&
        (p.conn === undefined || e.conn === p.conn) &&
        inRange(e.seq)
      ) {
        out.push(`${at(e)} ${e.who} (${e.conn}) acks seq ${e.seq}`);
      }
    }
    return out.length > max ? [...out.slice(0, max), `... ${out.length - max} more`] : out;
  }

  // -------------------------------------------------------------------------------------------------
  // Per-receiver room checks of the fault tests (frames as collected by a TestClient)

  /**
   * One receiver's copy of a room: seqs after+1, after+2, ... with no gap, duplicate or reordering;
   * every expected ok'd pub at its seq with its mid; no mid twice; and a pub that was NOT ok'd
   * (err/unanswered) may be present, but once only.
   */
  receiverProblems(who: string, frames: readonly Frame[], c: ReceiverCheck): string[] {
    const out: string[] = [];
    const after = c.after ?? 0;
    const msgs = frames.filter((f) => f.t === 'msg' && f.room === c.room);
    const seen = new Map<number, Frame>();
    const mids = new Map<string, number>();
    let reported = 0;
    const report = (s: string) => {
      if (reported++ < 12) out.push(`${who} in ${c.room}: ${s}`);
    };
    // Each message must be the one after the highest so far: one deviation is reported once, not again
    // for every message after it (the count and `through` checks below still see it).
    let top = after;
    msgs.forEach((f, i) => {
      const want = top + 1;
      if (f.seq !== want) {
        const kind = seen.has(f.seq as number) ? 'duplicate' : (f.seq as number) < want ? 'out of order' : 'gap';
        report(
          `${kind}: message #${i} has seq ${String(f.seq)}, expected ${want} (previous ${String(msgs[i - 1]?.seq)})`,
        );
      }
      if (typeof f.seq === 'number' && f.seq > top) top = f.seq;
      seen.set(f.seq as number, f);
      const id = History.idOf(f);
      if (id !== undefined) {
        const at = mids.get(id);
        if (at !== undefined) report(`message ${id} received twice (seqs ${at} and ${String(f.seq)})`);
        mids.set(id, f.seq as number);
        const rec = this.byMid.get(id);
        if (rec && rec.target !== c.room) report(`message ${id} published to ${rec.target} arrived in this room`);
        if (rec?.outcome?.kind === 'ok' && rec.outcome.seq !== f.seq) {
          report(`message ${id} was answered ok with seq ${rec.outcome.seq} but arrived as seq ${String(f.seq)}`);
        }
      }
    });
    if (c.through !== undefined) {
      const last = msgs.length === 0 ? after : (msgs[msgs.length - 1]!.seq as number);
      if (last !== c.through || msgs.length !== c.through - after) {
        report(
          `expected exactly seqs ${after + 1}..${c.through} (${c.through - after} messages), got ${msgs.length} ending at ${last}`,
        );
      }
    }
    const expected = c.expected ?? this.oks(c.room).filter((p) => p.outcome.seq > after);
    let missing = 0;
    for (const p of expected) {
      if (p.outcome?.kind !== 'ok') continue;
      const f = seen.get(p.outcome.seq);
      if (f === undefined) {
        if (missing++ < 8) report(`ok'd seq ${p.outcome.seq} (mid ${p.mid}) was never delivered`);
      } else if (History.idOf(f) !== p.mid) {
        report(
          `seq ${p.outcome.seq} carries message ${String(History.idOf(f))}, but ${p.mid} was answered ok with that seq`,
        );
      }
    }
    if (missing > 8) out.push(`${who} in ${c.room}: ... ${missing} ok'd messages missing in all`);
    if (reported > 12) out.push(`${who} in ${c.room}: ... ${reported} problems in all`);
    return out;
  }

  /**
   * Copies of one room from several receivers (and history) agree: one message per seq (same mid and
   * data everywhere) and one seq per mid, so nothing was sequenced twice or rewritten.
   */
  agreementProblems(room: string, copies: readonly { who: string; frames: readonly Frame[] }[]): string[] {
    const out: string[] = [];
    const bySeq = new Map<number, { who: string; body: string }>();
    const seqOfMid = new Map<string, { who: string; seq: number }>();
    for (const { who, frames } of copies) {
      for (const f of frames) {
        if (f.t !== 'msg' || f.room !== room) continue;
        const seq = f.seq as number;
        const body = JSON.stringify({ mid: f.mid, data: f.data, from: f.from });
        const first = bySeq.get(seq);
        if (first === undefined) bySeq.set(seq, { who, body });
        else if (first.body !== body && out.length < 12)
          out.push(`${room} seq ${seq}: ${first.who} has ${first.body}, ${who} has ${body}`);
        const id = History.idOf(f);
        if (id !== undefined) {
          const m = seqOfMid.get(id);
          if (m === undefined) seqOfMid.set(id, { who, seq });
          else if (m.seq !== seq && out.length < 12)
            out.push(`${room} message ${id}: seq ${m.seq} at ${m.who}, seq ${seq} at ${who}`);
        }
      }
    }
    return out;
  }
}
