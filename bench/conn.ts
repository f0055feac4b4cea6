// One client connection of the load generator, whatever the client library: members.ts and driver.ts
// only see BenchConn. `lean` (lean-client.ts + a wire.ts protocol) serves every server kind;
// `socket.io-client` (the official Socket.IO client) and `rtgw-sdk` (client/, on `ws`) run once each for
// the record. Another client: a class implementing BenchConn, a ClientKind, and a case in openConn.
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { encodeFrame, LeanWs, signHs256 } from './lean-client.js';
import { errText, sleep } from './util.js';
import { WIRES, type Stamp, type WireName } from './wire.js';

export type ClientKind = 'lean' | 'socket.io-client' | 'rtgw-sdk';
export const CLIENT_KINDS: readonly ClientKind[] = ['lean', 'socket.io-client', 'rtgw-sdk'];
/** The protocols each client speaks: the record run measures a client against the systems it can talk to. */
export const CLIENT_WIRES: Record<ClientKind, readonly WireName[]> = {
  lean: ['rtgw', 'bare', 'socketio'],
  'socket.io-client': ['socketio'],
  'rtgw-sdk': ['rtgw'],
};

/** A server's address: a gateway, a Socket.IO node, a bare uWS server. */
export interface Endpoint {
  host: string;
  port: number;
}

/**
 * Who the load generator talks to, and with which client: what a connection needs, so it is defined with
 * the connections (systems.ts makes one from a running system, protocol.ts carries it to the workers).
 */
export interface Target {
  endpoints: Endpoint[];
  wire: WireName;
  client: ClientKind;
}

export interface ConnOptions {
  host: string;
  port: number;
  wire: WireName;
  /** The room a bare uWS member subscribes to (by URL); others ignore it. */
  room: string;
  /** A signed token, for servers that verify one. */
  token?: string;
  /** The probe: every data message is decoded and its stamp handed to onStamp. */
  onStamp?: (s: Stamp) => void;
  onClose?: (code: number | undefined) => void;
  /** Every answer to a publish, as it arrives. */
  onAnswer?: (ok: boolean) => void;
  connectTimeoutMs?: number;
}

export interface BenchConn {
  /** Data messages received; the bench sets it to 0 between steps. */
  data: number;
  /** Answers to publishes: `ok`s and errors, with a few errors kept. */
  oks: number;
  errs: number;
  readonly errSample: string[];
  readonly open: boolean;
  readonly closeCode: number | undefined;
  onClose: ((code: number | undefined) => void) | undefined;
  /** Upgrade and the protocol's handshake; resolves once the connection may be used. */
  connect(): Promise<void>;
  /** Joins `room` and resolves on the server's answer (rejects on an error answer or a close). */
  join(room: string): Promise<void>;
  /** Publishes each of `datas` (JSON text) to `room`, in one socket write where the client allows. */
  publish(room: string, datas: string[], echo: boolean): void;
  /** Bytes waiting to be written: the server not reading fast enough shows here. */
  readonly backlog: number;
  destroy(): void;
}

/** What every client kind counts the same way: the answers to its publishes. */
abstract class Answers {
  oks = 0;
  errs = 0;
  readonly errSample: string[] = [];
  onClose: BenchConn['onClose'];

  constructor(protected readonly o: ConnOptions) {
    this.onClose = o.onClose;
  }

  /** An `ok`, or an error with what it said. */
  protected answered(error?: string): void {
    if (error === undefined) this.oks++;
    else {
      this.errs++;
      if (this.errSample.length < 5) this.errSample.push(error);
    }
    this.o.onAnswer?.(error === undefined);
  }
}

/** Answers are told apart from joins by order: a connection joins before it publishes. */
class LeanConn extends Answers implements BenchConn {
  private readonly ws: LeanWs;
  private readonly wire;
  private nextId = 1;
  private ready: ((e?: Error) => void) | undefined;
  private joining: ((e?: Error) => void) | undefined;

  constructor(o: ConnOptions) {
    super(o);
    this.wire = WIRES[o.wire];
    const onStamp = o.onStamp;
    this.ws = new LeanWs({
      host: o.host,
      port: o.port,
      path: this.wire.path(o.room),
      token: this.wire.auth ? o.token : undefined,
      typeAt: this.wire.typeAt,
      isData: this.wire.isData,
      wantData: onStamp !== undefined,
      onData:
        onStamp &&
        ((p) => {
          const s = this.wire.stampOf(p.toString('utf8'));
          if (s) onStamp(s);
        }),
      onOther: (p) => this.other(p.toString('utf8')),
      onClose: (code, reason) => {
        const e = new Error(`closed ${code ?? 1006} (${reason})`);
        this.ready?.(e);
        this.joining?.(e);
        this.ready = this.joining = undefined;
        this.onClose?.(code);
      },
      connectTimeoutMs: o.connectTimeoutMs,
    });
  }

  get data() {
    return this.ws.data;
  }
  set data(n: number) {
    this.ws.data = n;
  }
  get open() {
    return this.ws.open;
  }
  get closeCode() {
    return this.ws.closeCode;
  }
  get backlog() {
    return this.ws.writableLength;
  }

  private other(text: string): void {
    if (this.ready) {
      const h = this.wire.handshake!(text);
      if (h.send) this.ws.sendText(h.send);
      if (h.ready) {
        const r = this.ready;
        this.ready = undefined;
        r();
      }
      return;
    }
    const back = this.wire.control?.(text);
    if (back !== undefined) return void this.ws.sendText(back);
    const a = this.wire.answer(text);
    if (a === undefined) return;
    if (this.joining) {
      const j = this.joining;
      this.joining = undefined;
      return j(a === 'ok' ? undefined : new Error(`join refused: ${text.slice(0, 200)}`));
    }
    this.answered(a === 'ok' ? undefined : text.slice(0, 200));
  }

  async connect(): Promise<void> {
    const ready = this.wire.handshake
      ? new Promise<void>((res, rej) => (this.ready = (e) => (e ? rej(e) : res())))
      : undefined;
    await this.ws.connect();
    await ready;
  }

  join(room: string): Promise<void> {
    return new Promise<void>((res, rej) => {
      this.joining = (e) => (e ? rej(e) : res());
      this.ws.sendText(this.wire.joinFrame(room, this.nextId++));
    });
  }

  publish(room: string, datas: string[], echo: boolean): void {
    const frames = datas.map((d) => encodeFrame(0x1, Buffer.from(this.wire.pubFrame(room, this.nextId++, d, echo))));
    this.ws.writeRaw(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  destroy(): void {
    this.ws.destroy();
  }
}

/** socket.io-client over WebSocket only, against socketio-server.ts's `join`, `pub` and `msg` events. */
class SocketIoClientConn extends Answers implements BenchConn {
  data = 0;
  closeCode: number | undefined;
  private readonly socket: Socket;

  constructor(o: ConnOptions) {
    super(o);
    if (o.wire !== 'socketio') throw new Error('socket.io-client speaks only to the Socket.IO server');
    this.socket = io(`http://${o.host}:${o.port}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      autoConnect: false,
      timeout: o.connectTimeoutMs ?? 10_000,
    });
    const onStamp = o.onStamp;
    this.socket.on('msg', (m: { data?: Stamp }) => {
      this.data++;
      if (onStamp && m.data) onStamp(m.data);
    });
    this.socket.on('disconnect', () => {
      this.closeCode = 1006;
      this.onClose?.(1006);
    });
  }

  get open() {
    return this.socket.connected;
  }
  get backlog() {
    return 0;
  }

  connect(): Promise<void> {
    return new Promise<void>((res, rej) => {
      this.socket.once('connect', () => res());
      this.socket.once('connect_error', (e) => rej(e));
      this.socket.connect();
    });
  }

  async join(room: string): Promise<void> {
    await this.socket.timeout(15_000).emitWithAck('join', room);
  }

  publish(room: string, datas: string[]): void {
    for (const d of datas) {
      this.socket.emit('pub', { room, data: JSON.parse(d) as unknown }, () => this.answered());
    }
  }

  destroy(): void {
    this.socket.disconnect();
  }
}

/**
 * What the bench uses of the rtgw SDK. It is loaded from the build (dist/client/, which `npm run bench`
 * makes first) rather than compiled in: the bench's sources stay inside bench/.
 */
interface Sdk {
  RtgwClient: new (opts: {
    url: string;
    token: string;
    WebSocket: unknown;
    reconnect?: { baseMs: number; maxMs: number };
  }) => SdkClient;
}
interface SdkClient {
  readonly state: string;
  connect(): Promise<void>;
  join(room: string, onMessage: (m: { data: unknown }) => void): { joined: Promise<unknown> };
  publish(room: string, data: unknown, opts: { echo?: boolean }): Promise<number>;
  on(type: 'closed' | 'disconnected', fn: (ev: { code: number }) => void): () => void;
  close(): void;
}
let sdk: Promise<Sdk> | undefined;
const loadSdk = () => (sdk ??= import(new URL('../../dist/client/index.js', import.meta.url).href) as Promise<Sdk>);

/** The rtgw client SDK over `ws`: its outbox, dedup and own-message filter included in what it costs. */
class SdkConn extends Answers implements BenchConn {
  data = 0;
  closeCode: number | undefined;
  private client: SdkClient | undefined;

  constructor(o: ConnOptions) {
    super(o);
    if (o.wire !== 'rtgw') throw new Error('the rtgw SDK speaks only to rtgw');
  }

  get open() {
    return this.client?.state === 'connected';
  }
  get backlog() {
    return 0;
  }

  async connect(): Promise<void> {
    const { RtgwClient } = await loadSdk();
    const c = new RtgwClient({ url: `ws://${this.o.host}:${this.o.port}/ws`, token: this.o.token ?? '', WebSocket });
    this.client = c;
    // The bench counts a dropped member as a failure; the SDK would reconnect and recover it.
    c.on('disconnected', (ev) => this.lost(ev.code));
    c.on('closed', (ev) => this.lost(ev.code));
    await c.connect();
  }

  private lost(code: number): void {
    if (this.closeCode !== undefined) return;
    this.closeCode = code;
    this.onClose?.(code);
  }

  async join(room: string): Promise<void> {
    const onStamp = this.o.onStamp;
    await this.client!.join(room, (m) => {
      this.data++;
      if (onStamp && m.data) onStamp(m.data as Stamp);
    }).joined;
  }

  publish(room: string, datas: string[], echo: boolean): void {
    for (const d of datas) {
      this.client!.publish(room, JSON.parse(d) as unknown, { echo }).then(
        () => this.answered(),
        (e: Error) => this.answered(e.message),
      );
    }
  }

  destroy(): void {
    this.client?.close();
  }
}

export function openConn(kind: ClientKind, o: ConnOptions): BenchConn {
  switch (kind) {
    case 'lean':
      return new LeanConn(o);
    case 'socket.io-client':
      return new SocketIoClientConn(o);
    case 'rtgw-sdk':
      return new SdkConn(o);
  }
}

/** A load-generator token for `sub`: HS256 with the secret the bench gave its workers, valid for an hour. */
export const benchToken = (sub: string): string =>
  signHs256(process.env.BENCH_JWT_SECRET ?? '', { sub, exp: Math.floor(Date.now() / 1000) + 3600 });

/** The endpoint connection number `n` uses: members spread over a system's endpoints by their number. */
export const endpointOf = (target: Target, n: number) => target.endpoints[n % target.endpoints.length]!;

/** Member `user` of `room`: opened on its endpoint and joined, as user `m<user>` (`m<user>.<attempt>` on a retry). */
export function joinMember(
  target: Target,
  user: number,
  room: string,
  extra: Pick<ConnOptions, 'onStamp' | 'onAnswer'>,
  errors: string[],
): Promise<{ conn: BenchConn; retried: number }> {
  const ep = endpointOf(target, user);
  return joinWithRetry(
    (attempt) =>
      openConn(target.client, {
        ...ep,
        wire: target.wire,
        room,
        token: benchToken(attempt === 1 ? `m${user}` : `m${user}.${attempt}`),
        ...extra,
      }),
    room,
    JOIN_ATTEMPTS,
    errors,
  );
}

/**
 * Opens a connection with `make(attempt)` (a fresh user id per attempt) and joins `room`, up to `attempts`
 * times: the gateway used to drop a share of new connections (bench/README.md), and a retry is counted.
 */
export async function joinWithRetry(
  make: (attempt: number) => BenchConn,
  room: string,
  attempts: number,
  errors: string[],
): Promise<{ conn: BenchConn; retried: number }> {
  for (let attempt = 1; ; attempt++) {
    const conn = make(attempt);
    try {
      await conn.connect();
      await withTimeout(conn.join(room), JOIN_TIMEOUT_MS, 'join timeout');
      return { conn, retried: attempt - 1 };
    } catch (e) {
      conn.destroy();
      if (errors.length < 5) errors.push(`attempt ${attempt}: ${errText(e)}`);
      if (attempt >= attempts) throw e;
      await sleep(50 * attempt);
    }
  }
}

const JOIN_TIMEOUT_MS = 15_000;
const JOIN_ATTEMPTS = 5;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(what)), ms))),
  ]).finally(() => clearTimeout(timer));
}
