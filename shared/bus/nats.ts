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

export class NatsBus implements Bus {
  readonly #nc: NatsConnection;
  readonly #onError: (err: unknown, subject: string) => void;
  #connected: boolean;
  #closing: Promise<void> | undefined;

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

  // No flush here: the client coalesces writes on its own.
  publish(subject: string, data: Uint8Array | string): void {
    this.#check();
    try {
      this.#nc.publish(subject, data);
    } catch (e) {
      throw toBusError(e, this.#closed());
    }
  }

  subscribe(subject: string, handler: (msg: BusMsg) => void, opts?: { queue?: string }): Subscription {
    this.#check();
    const onError = this.#onError;
    try {
      return this.#nc.subscribe(subject, {
        queue: opts?.queue,
        // A callback, not an async iterator: no per-message promise, and a throw cannot end the loop.
        callback: (err, msg) => {
          if (err) {
            onError(err, subject);
            return;
          }
          try {
            handler(new NatsMsg(msg));
          } catch (e) {
            onError(e, subject);
          }
        },
      });
    } catch (e) {
      throw toBusError(e, this.#closed());
    }
  }

  async request(subject: string, data: Uint8Array | string, timeoutMs: number): Promise<Uint8Array> {
    this.#check();
    try {
      return (await this.#nc.request(subject, data, { timeout: timeoutMs })).data;
    } catch (e) {
      throw toBusError(e, this.#closed(), subject);
    }
  }

  async flush(): Promise<void> {
    this.#check();
    try {
      await this.#nc.flush();
    } catch (e) {
      throw toBusError(e, this.#closed());
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#drain();
    return this.#closing;
  }

  async #drain(): Promise<void> {
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
  constructor(private readonly msg: Msg) {}

  get subject(): string {
    return this.msg.subject;
  }

  get data(): Uint8Array {
    return this.msg.data;
  }

  // Straight to the client, not through NatsBus.publish: replies to requests already received still go
  // out while the bus drains.
  respond(data: Uint8Array | string): boolean {
    try {
      return this.msg.respond(data);
    } catch (e) {
      throw toBusError(e, false);
    }
  }
}
