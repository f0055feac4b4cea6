// The in-process Bus, with the NATS core semantics written on the port. A MemoryHub plays the server and
// each MemoryBus is one client connection to it, so several "nodes" can share one hub in one process.
// Delivery is always on a later tick (never inside publish): code that works here must not rely on
// re-entrancy that NATS would not give it.
import { BusError, toBytes, type Bus, type BusMsg, type Subscription } from './bus.js';

export interface MemoryBusOptions {
  /** Called when a handler throws; the subscription stays. Defaults to console.error. */
  onError?: (err: unknown, subject: string) => void;
}

type Handler = (msg: BusMsg) => void;

class MemorySub implements Subscription {
  active = true;
  constructor(
    readonly bus: MemoryBus,
    readonly subject: string,
    /** Set only for wildcard subscriptions, which are matched token by token. */
    readonly pattern: readonly string[] | undefined,
    readonly queue: string | undefined,
    readonly handler: Handler,
  ) {}

  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.bus.forget(this);
  }

  /** Nothing is in transit in one process: what is queued for this subscription is delivered first. */
  async drain(): Promise<void> {
    await this.bus.flush().catch(() => undefined);
    this.unsubscribe();
  }
}

class MemoryMsg implements BusMsg {
  constructor(
    private readonly hub: MemoryHub,
    readonly subject: string,
    readonly data: Uint8Array,
    readonly reply: string | undefined,
    readonly noResponders = false,
  ) {}

  respond(data: Uint8Array | string): boolean {
    if (this.reply === undefined) return false;
    this.hub.route(this.reply, own(data), undefined);
    return true;
  }
}

/** One routed message, or a flush marker. */
type Entry = { readonly targets: readonly MemorySub[]; readonly msg: MemoryMsg } | (() => void);

const EMPTY: readonly MemorySub[] = [];

export class MemoryHub {
  // Arrays are replaced, never mutated, so a queued entry keeps the exact set that matched at publish time.
  readonly #exact = new Map<string, readonly MemorySub[]>();
  #wildcards: readonly MemorySub[] = EMPTY;
  #queue: Entry[] = [];
  #scheduled = false;
  #inboxes = 0;

  /** A new client connection to this hub. */
  connect(opts?: MemoryBusOptions): MemoryBus {
    return new MemoryBus(this, opts);
  }

  /** @internal */
  add(sub: MemorySub): void {
    if (sub.pattern) this.#wildcards = [...this.#wildcards, sub];
    else this.#exact.set(sub.subject, [...(this.#exact.get(sub.subject) ?? EMPTY), sub]);
  }

  /** @internal */
  remove(sub: MemorySub): void {
    if (sub.pattern) {
      this.#wildcards = this.#wildcards.filter((s) => s !== sub);
      return;
    }
    const rest = (this.#exact.get(sub.subject) ?? EMPTY).filter((s) => s !== sub);
    if (rest.length === 0) this.#exact.delete(sub.subject);
    else this.#exact.set(sub.subject, rest);
  }

  /** @internal A subject nobody else will ever use, for one request's reply. */
  inbox(): string {
    return `_INBOX.${++this.#inboxes}`;
  }

  /**
   * @internal Picks the receivers as the subscriptions stand now (one member per queue group) and queues
   * the message for them. Returns how many will get it: 0 means no responders.
   */
  route(subject: string, data: Uint8Array, reply: string | undefined, noResponders = false): number {
    const exact = this.#exact.get(subject) ?? EMPTY;
    let matched = exact;
    if (this.#wildcards.length > 0) {
      const tokens = subject.split('.');
      for (const sub of this.#wildcards) {
        if (!matches(sub.pattern!, tokens)) continue;
        if (matched === exact) matched = [...exact];
        (matched as MemorySub[]).push(sub);
      }
    }
    if (matched.length === 0) return 0;
    const targets = matched.some((s) => s.queue !== undefined) ? pickQueueMembers(matched) : matched;
    this.#push({ targets, msg: new MemoryMsg(this, subject, data, reply, noResponders) });
    return targets.length;
  }

  /** @internal Resolves once everything queued before it has been delivered. */
  flush(): Promise<void> {
    return new Promise((resolve) => this.#push(resolve));
  }

  #push(entry: Entry): void {
    this.#queue.push(entry);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#drain);
  }

  // One queue for the whole hub keeps every publisher's order. What handlers publish while a batch runs
  // goes to the next batch, on a later tick, so a publish/reply ping-pong cannot starve I/O.
  readonly #drain = (): void => {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    for (const entry of batch) {
      if (typeof entry === 'function') {
        entry();
        continue;
      }
      for (const sub of entry.targets) {
        if (sub.active) sub.bus.deliver(sub, entry.msg);
      }
    }
  };
}

export class MemoryBus implements Bus {
  readonly #hub: MemoryHub;
  readonly #onError: (err: unknown, subject: string) => void;
  readonly #subs = new Set<MemorySub>();
  /** Rejects each pending request when the bus closes. */
  readonly #requests = new Set<(err: BusError) => void>();
  #open = true;
  #closing: Promise<void> | undefined;

  constructor(hub: MemoryHub = new MemoryHub(), opts: MemoryBusOptions = {}) {
    this.#hub = hub;
    this.#onError = opts.onError ?? ((err, subject) => console.error(`bus handler for ${subject} threw`, err));
  }

  get connected(): boolean {
    return this.#open;
  }

  publish(subject: string, data: Uint8Array | string, reply?: string): void {
    this.#check();
    checkPublishSubject(subject);
    if (reply !== undefined) checkPublishSubject(reply);
    if (this.#hub.route(subject, own(data), reply) === 0 && reply !== undefined)
      this.#hub.route(reply, new Uint8Array(0), undefined, true);
  }

  subscribe(subject: string, handler: Handler, opts?: { queue?: string }): Subscription {
    this.#check();
    const sub = new MemorySub(this, subject, checkSubscribeSubject(subject), opts?.queue, handler);
    this.#hub.add(sub);
    this.#subs.add(sub);
    return sub;
  }

  request(subject: string, data: Uint8Array | string, timeoutMs: number): Promise<Uint8Array> {
    try {
      this.#check();
      checkPublishSubject(subject);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: BusError | undefined, reply?: Uint8Array) => {
        clearTimeout(timer);
        inbox.unsubscribe();
        this.#requests.delete(finish);
        if (err) reject(err);
        else resolve(reply!);
      };
      const replyTo = this.#hub.inbox();
      const inbox = this.subscribe(replyTo, (msg) => finish(undefined, msg.data));
      if (this.#hub.route(subject, own(data), replyTo) === 0) {
        finish(new BusError('no_responders', `no responders on ${subject}`));
        return;
      }
      timer = setTimeout(
        () => finish(new BusError('timeout', `no reply on ${subject} within ${timeoutMs}ms`)),
        timeoutMs,
      );
      this.#requests.add(finish);
    });
  }

  flush(): Promise<void> {
    return this.#open ? this.#hub.flush() : Promise.reject(closedError());
  }

  /** Like a NATS drain: later calls fail at once, what is already queued is still delivered, then the subscriptions go. */
  close(): Promise<void> {
    this.#closing ??= this.#drainAndClose();
    return this.#closing;
  }

  async #drainAndClose(): Promise<void> {
    this.#open = false;
    await this.#hub.flush();
    for (const finish of this.#requests) finish(closedError());
    for (const sub of this.#subs) sub.unsubscribe();
  }

  /** @internal */
  forget(sub: MemorySub): void {
    this.#hub.remove(sub);
    this.#subs.delete(sub);
  }

  /** @internal */
  deliver(sub: MemorySub, msg: MemoryMsg): void {
    try {
      sub.handler(msg);
    } catch (e) {
      this.#onError(e, sub.subject);
    }
  }

  #check(): void {
    if (!this.#open) throw closedError();
  }
}

const closedError = () => new BusError('closed', 'bus is closed');

/** A private copy, as NATS would make on the wire: the publisher may reuse its buffer. */
const own = (data: Uint8Array | string): Uint8Array => (typeof data === 'string' ? toBytes(data) : data.slice());

// An empty token, a wildcard token or whitespace: a subject nobody may publish to.
const BAD_PUBLISH_SUBJECT = /(^|\.)[*>]?(\.|$)|\s/;

function checkPublishSubject(subject: string): void {
  if (BAD_PUBLISH_SUBJECT.test(subject)) throw new Error(`invalid subject to publish to: ${JSON.stringify(subject)}`);
}

/** Throws on a subject NATS would refuse; returns the tokens of a wildcard subject, undefined for an exact one. */
function checkSubscribeSubject(subject: string): string[] | undefined {
  const tokens = subject.split('.');
  let wildcard = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0 || /\s/.test(t) || (t === '>' && i !== tokens.length - 1)) {
      throw new Error(`invalid subject to subscribe to: ${JSON.stringify(subject)}`);
    }
    if (t === '*' || t === '>') wildcard = true;
  }
  return wildcard ? tokens : undefined;
}

function matches(pattern: readonly string[], tokens: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return tokens.length > i;
    if (i >= tokens.length || (p !== '*' && p !== tokens[i])) return false;
  }
  return tokens.length === pattern.length;
}

/** Plain subscribers all receive; each queue group gets one member chosen at random. */
function pickQueueMembers(matched: readonly MemorySub[]): MemorySub[] {
  const targets: MemorySub[] = [];
  const groups = new Map<string, MemorySub[]>();
  for (const sub of matched) {
    if (sub.queue === undefined) {
      targets.push(sub);
      continue;
    }
    const group = groups.get(sub.queue);
    if (group) group.push(sub);
    else groups.set(sub.queue, [sub]);
  }
  for (const group of groups.values()) targets.push(group[Math.floor(Math.random() * group.length)]!);
  return targets;
}
