// The Bus over NATS core, and the ONLY module that imports NATS: callers see BusError codes, never NATS
// classes. Handlers run inside the client's socket read loop, so nothing they throw may escape from it.
import {
  ClosedConnectionError,
  connect,
  DrainingConnectionError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from '@nats-io/transport-node';
import { BusError, type Bus, type BusMsg, type Subscription } from './bus.js';

export type { NatsConnection };

export interface NatsStatus {
  readonly connected: boolean;
  readonly detail: string;
}

export interface NatsBusOptions {
  /** Called when a handler throws or the server refuses a subscription; the subscription stays. Defaults to console.error. */
  onError?: (err: unknown, subject: string) => void;
}

/**
 * Opens the one connection a process uses. After the first connect it reconnects forever (buffering
 * publishes meanwhile), so a NATS restart is an outage to report, not a reason to exit. The first
 * connect is not retried: a wrong address should fail start-up loudly.
 */
export async function connectNats(
  servers: string[],
  name: string,
  onStatus?: (s: NatsStatus) => void,
): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name,
      maxReconnectAttempts: -1,
      // Jitter spreads the reconnects of many processes after a server restart.
      reconnectTimeWait: 250,
      reconnectJitter: 250,
      // Async stack traces cost two Error objects per request (~8% of a busy gateway's CPU).
      noAsyncTraces: true,
    });
  } catch (e) {
    throw new Error(`cannot connect to NATS at ${servers.join(', ')}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  if (onStatus) {
    onStatus({ connected: true, detail: `connected to ${nc.getServer()}` });
    watchStatus(nc, onStatus);
  }
  return nc;
}

/** Reports connectivity changes (and errors, with the state unchanged) until the connection closes. */
function watchStatus(nc: NatsConnection, report: (s: NatsStatus) => void): void {
  let connected = !nc.isClosed();
  const watch = async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          report({ connected: (connected = false), detail: `disconnected from ${s.server}` });
          break;
        case 'reconnect':
          report({ connected: (connected = true), detail: `reconnected to ${s.server}` });
          break;
        case 'close':
          report({ connected: (connected = false), detail: 'connection closed' });
          break;
        case 'error':
          report({ connected, detail: `server error: ${s.error.message}` });
          break;
        case 'ldm':
          report({ connected, detail: `server ${s.server} is shutting down (lame duck mode)` });
          break;
        case 'staleConnection':
          report({ connected, detail: 'server stopped answering pings' });
          break;
      }
    }
  };
  watch().catch((e: unknown) => report({ connected, detail: `status watch failed: ${String(e)}` }));
}

/**
 * The Bus over one NATS connection. Everything it sends (publishes, replies, subscriptions, requests,
 * flushes) waits for the end of the current turn of the event loop and then goes to the client in call
 * order, in one go: the client writes it with one socket write. Without that, every uWS or socket
 * callback (one per client frame, one per reply) costs its own write: a connection storm or a busy
 * router spent a fifth of its CPU in them.
 */
export class NatsBus implements Bus {
  readonly #nc: NatsConnection;
  readonly #onError: (err: unknown, subject: string) => void;
  #connected: boolean;
  #closing: Promise<void> | undefined;
  /** This turn's operations, in call order; the flat pairs avoid an object per publish. */
  #ops: Op[] = [];
  #args: unknown[] = [];
  #scheduled = false;
  /** This turn's flush: every flush asked for in one turn shares one PING, sent after the turn's writes. */
  #flush: TurnFlush | undefined;

  /** Takes a connection that is ready: the bus owns it from here on, and close() drains it. */
  constructor(nc: NatsConnection, opts: NatsBusOptions = {}) {
    this.#nc = nc;
    this.#onError = opts.onError ?? ((err, subject) => console.error(`bus handler for ${subject} threw`, err));
    this.#connected = !nc.isClosed();
    watchStatus(nc, (s) => {
      this.#connected = s.connected;
    });
  }

  get connected(): boolean {
    return this.#connected && this.#closing === undefined;
  }

  publish(subject: string, data: Uint8Array | string, reply?: string): void {
    this.#check();
    if (reply === undefined) this.#defer(Op.Publish, subject, data);
    else this.#defer(Op.PublishWithReply, subject, { data, reply });
  }

  subscribe(subject: string, handler: (msg: BusMsg) => void, opts?: { queue?: string }): Subscription {
    this.#check();
    const sub = new LaterSubscription(subject, handler, opts?.queue);
    this.#defer(Op.Subscribe, sub, undefined);
    return sub;
  }

  request(subject: string, data: Uint8Array | string, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#check();
      this.#defer(Op.Request, subject, { data, timeoutMs, resolve, reject });
    });
  }

  flush(): Promise<void> {
    if (this.#closing) return Promise.reject(new BusError('closed', 'bus is closed'));
    if (!this.#flush) {
      let settle!: (e?: unknown) => void;
      const promise = new Promise<void>(
        (resolve, reject) => (settle = (e) => (e === undefined ? resolve() : reject(e))),
      );
      this.#flush = { promise, settle };
      this.#defer(Op.Flush, this.#flush, undefined);
    }
    return this.#flush.promise;
  }

  close(): Promise<void> {
    this.#closing ??= this.#drain();
    return this.#closing;
  }

  /** Replies go through the turn's batch too, after the publishes made before them. */
  respond(msg: Msg, data: Uint8Array | string): boolean {
    if (!msg.reply) return false;
    this.#defer(Op.Respond, msg, data);
    return true;
  }

  #defer(op: Op, a: unknown, b: unknown): void {
    this.#ops.push(op);
    this.#args.push(a, b);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#run());
  }

  /** Hands this turn's operations to the client, in order. Never throws: failures go to their callers or to onError. */
  #run(): void {
    this.#scheduled = false;
    const ops = this.#ops;
    const args = this.#args;
    this.#ops = [];
    this.#args = [];
    const nc = this.#nc;
    for (let i = 0; i < ops.length; i++) {
      const a = args[2 * i];
      const b = args[2 * i + 1];
      try {
        switch (ops[i]) {
          case Op.Publish:
            nc.publish(a as string, b as Uint8Array | string);
            break;
          case Op.PublishWithReply: {
            const r = b as { data: Uint8Array | string; reply: string };
            nc.publish(a as string, r.data, { reply: r.reply });
            break;
          }
          case Op.Respond:
            (a as Msg).respond(b as Uint8Array | string);
            break;
          case Op.Subscribe:
            (a as LaterSubscription).start(nc, this, this.#onError);
            break;
          case Op.Request: {
            const r = b as PendingRequest;
            nc.request(a as string, r.data, { timeout: r.timeoutMs }).then(
              (m) => r.resolve(m.data),
              (e: unknown) => r.reject(toBusError(e, this.#closed(), a as string)),
            );
            break;
          }
          case Op.Flush: {
            const f = a as TurnFlush;
            if (this.#flush === f) this.#flush = undefined;
            nc.flush().then(
              () => f.settle(),
              (e: unknown) => f.settle(toBusError(e, this.#closed())),
            );
            break;
          }
        }
      } catch (e) {
        const err = toBusError(e, this.#closed());
        if (ops[i] === Op.Request) (b as PendingRequest).reject(err);
        else if (ops[i] === Op.Flush) (a as TurnFlush).settle(err);
        else
          this.#onError(
            err,
            ops[i] === Op.Subscribe
              ? (a as LaterSubscription).subject
              : String(ops[i] === Op.Respond ? (a as Msg).reply : a),
          );
      }
    }
  }

  async #drain(): Promise<void> {
    this.#run(); // what was asked for before close goes out first
    const nc = this.#nc;
    if (nc.isClosed()) return;
    // Someone else started the drain: wait for it rather than fail.
    if (nc.isDraining()) await nc.closed();
    else await nc.drain();
  }

  #check(): void {
    if (this.#closing) throw new BusError('closed', 'bus is closed');
  }

  /** Set once the caller can no longer expect a reply: the bus or its connection is closing. */
  #closed(): boolean {
    return this.#closing !== undefined || this.#nc.isClosed() || this.#nc.isDraining();
  }

  /** For LaterSubscription.drain: what the caller sent before draining goes out first. */
  runNow(): void {
    this.#run();
  }
}

const enum Op {
  Publish,
  PublishWithReply,
  Respond,
  Subscribe,
  Request,
  Flush,
}

interface TurnFlush {
  promise: Promise<void>;
  settle: (e?: unknown) => void;
}

interface PendingRequest {
  data: Uint8Array | string;
  timeoutMs: number;
  resolve: (d: Uint8Array) => void;
  reject: (e: unknown) => void;
}

/** A subscription made at the end of the turn: until then, unsubscribing just cancels it. */
class LaterSubscription implements Subscription {
  #sub: NatsSubscription | undefined;
  #bus: NatsBus | undefined;
  #cancelled = false;

  constructor(
    readonly subject: string,
    private readonly handler: (msg: BusMsg) => void,
    private readonly queue: string | undefined,
  ) {}

  start(nc: NatsConnection, bus: NatsBus, onError: (err: unknown, subject: string) => void): void {
    if (this.#cancelled) return;
    this.#bus = bus;
    const { subject, handler } = this;
    this.#sub = nc.subscribe(subject, {
      queue: this.queue,
      // A callback, not an async iterator: no per-message promise, and a throw cannot end the loop.
      callback: (err, msg) => {
        if (err) {
          onError(err, subject);
          return;
        }
        try {
          handler(new NatsMsg(msg, bus));
        } catch (e) {
          onError(e, subject);
        }
      },
    });
  }

  unsubscribe(): void {
    this.#cancelled = true;
    this.#sub?.unsubscribe();
  }

  async drain(): Promise<void> {
    this.#cancelled = true;
    if (!this.#sub) return;
    this.#bus!.runNow();
    await this.#sub.drain();
  }
}

/** Maps what the client throws to the port's codes; programming and permission errors pass as they are. */
function toBusError(e: unknown, closed: boolean, subject?: string): unknown {
  const on = subject === undefined ? '' : ` on ${subject}`;
  if (e instanceof BusError) return e;
  if (e instanceof ClosedConnectionError || e instanceof DrainingConnectionError) {
    return new BusError('closed', 'bus is closed', { cause: e });
  }
  if (e instanceof TimeoutError) return new BusError('timeout', `no reply${on} in time`, { cause: e });
  if (e instanceof RequestError) {
    if (e.isNoResponders()) return new BusError('no_responders', `no responders${on}`, { cause: e });
    if (closed) return new BusError('closed', 'bus closed before the reply came', { cause: e });
    if (e.cause instanceof PermissionViolationError) return e;
    // The connection dropped while we waited: the other side may have acted, exactly as after a timeout.
    return new BusError('timeout', `connection lost before the reply${on} came`, { cause: e });
  }
  return e;
}

/**
 * Reads subject and data lazily from the client's message (it decodes them on access). `data` is a view
 * into the socket's read chunk: keeping it keeps the whole chunk alive, so copy what is stored for long.
 */
class NatsMsg implements BusMsg {
  constructor(
    private readonly msg: Msg,
    private readonly bus: NatsBus,
  ) {}

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  get reply(): string | undefined {
    return this.msg.reply || undefined;
  }

  get noResponders(): boolean {
    return this.msg.headers?.code === 503;
  }

  // Not through NatsBus.publish (no closing check): replies to requests already received still go out
  // while the bus drains. They keep their place after the publishes made before them.
  respond(data: Uint8Array | string): boolean {
    return this.bus.respond(this.msg, data);
  }
}
