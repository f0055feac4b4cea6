// The rtgw client: one logical connection to a cluster that survives gateway deaths, drains, token expiry
// and dead networks. It reconnects with capped exponential backoff and full jitter, rotating through the
// gateway URLs it was given; re-joins its rooms where they were; sends the outbox again (a publish is stored
// once however often it is sent: it carries a `mid`); and hands direct messages over once. Imports only
// the shared protocol module: it runs in browsers (native WebSocket) and in Node (`ws` injected).
import { CloseCode, ErrorCode, isTerminalClose, needsNewToken } from '../shared/protocol/codes.js';
import type { Json } from '../shared/protocol/frames.js';
import { decodeServerFrame } from '../shared/protocol/server-codec.js';
import { isRoomId, isUserId } from '../shared/protocol/names.js';
import { fullJitter, type BackoffOptions } from './backoff.js';
import { DirectInbox, type DirectHandler } from './direct.js';
import { Emitter } from './emitter.js';
import { ClientErrorCode, RtgwClientError } from './errors.js';
import { Requests, type Outgoing } from './requests.js';
import type { OkFrame } from '../shared/protocol/frames.js';
import { Room, type JoinOptions, type RoomHost, type RoomMessage } from './rooms.js';
import { tokenExpiryMs } from './token.js';

/** A WebSocket constructor: the browser's `WebSocket`, or the `ws` package's default export in Node. */
export type WebSocketConstructor = abstract new (url: string) => object;

/** What the client uses of a WebSocket (the browser's and `ws`'s both have it). */
interface Socket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface ClientOptions {
  /** Gateway URL(s) (`wss://host/ws`); on every reconnect the next one is tried. */
  url: string | string[];
  /** Gives a token: before the first connect, when the server refused or expired one (4001/4010), and before `exp`. */
  getToken?: () => string | Promise<string>;
  /** A fixed token; without `getToken`, a refused or expired token ends the client. */
  token?: string;
  /** Defaults to `globalThis.WebSocket`; pass `ws`'s in Node. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: full jitter up to min(maxMs, baseMs × 2^attempt). Defaults 500 and 15,000 ms. */
  reconnect?: Partial<BackoffOptions>;
  /** Open plus `welcome`, ms (default 10,000). */
  connectTimeoutMs?: number;
  /** After a `ping`, how long without any frame before the connection counts as dead (default min(hb, 10,000)). */
  pongTimeoutMs?: number;
  /** Deadline of requests other than publishes and direct messages (default 15,000 ms). */
  requestTimeoutMs?: number;
  /** How long a publish or direct message is kept and re-sent before it fails (default 5 minutes; the server deduplicates for an hour). */
  outboxTimeoutMs?: number;
  /** Refresh this long before `exp` (default a quarter of the token's lifetime, at most a minute). */
  refreshBeforeMs?: number;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface ClientEvents {
  state: { state: ClientState; prev: ClientState };
  connecting: { url: string; attempt: number };
  connected: { url: string; conn: string; user: string; hb: number; reconnected: boolean };
  /** The connection was lost; the client reconnects in `reconnectInMs`. */
  disconnected: { code: number; reason: string; reconnectInMs: number };
  /** For good: closed by the application, by a backend (4011), or refused with no way to get a new token. */
  closed: { code: number; reason: string };
  /** The gateway is going away; the client moves to another within `ms`. */
  drain: { ms: number };
  /** A new token is in use (refreshed on the open connection). */
  token: { expiresAt: number | undefined };
  /** Failures with no caller to tell: an `err` without id, a throwing handler, `getToken` failing. */
  error: Error;
}

/** The close code reported for a connection the client gave up on itself (dead, or never welcomed). */
const CLIENT_DEAD = 1006;

type TimerName = 'reconnect' | 'connect' | 'heartbeat' | 'pong' | 'refresh' | 'drain';

export class RtgwClient extends Emitter<ClientEvents> {
  state: ClientState = 'idle';
  /** The current connection's id and the token's user, once welcomed. */
  conn: string | undefined;
  user: string | undefined;

  private readonly urls: string[];
  private urlIndex = 0;
  private attempt = 0;
  private connectedOnce = false;
  private socket: Socket | undefined;
  private drainMs: number | undefined;
  private token: string | undefined;
  private tokenExp: number | undefined;
  private tokenLifetimeMs = 0;
  /** The server refused the token (4001/4010): get a new one before connecting. */
  private tokenRefused = false;
  private readonly timers = new Map<TimerName, ReturnType<typeof setTimeout>>();
  private readonly requests = new Requests();
  private readonly rooms = new Map<string, Room>();
  private readonly inbox: DirectInbox;
  private readonly session = randomId();
  private mids = 0;
  private readonly ready: Promise<void>;
  private settleReady!: (e?: Error) => void;

  private readonly WS: new (url: string) => Socket;
  private readonly backoff: BackoffOptions;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly outboxTimeoutMs: number;

  constructor(private readonly opts: ClientOptions) {
    super();
    this.urls = Array.isArray(opts.url) ? [...opts.url] : [opts.url];
    if (this.urls.length === 0) throw new TypeError('rtgw: at least one gateway URL is needed');
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WS === undefined)
      throw new TypeError(
        'rtgw: no WebSocket here; pass one (in Node: `import WebSocket from "ws"`, then `{ WebSocket }`)',
      );
    this.WS = WS as unknown as new (url: string) => Socket;
    if (opts.token === undefined && opts.getToken === undefined)
      throw new TypeError('rtgw: give `token` or `getToken`');
    if (opts.token !== undefined) this.setToken(opts.token);
    this.backoff = { baseMs: opts.reconnect?.baseMs ?? 500, maxMs: opts.reconnect?.maxMs ?? 15_000 };
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.outboxTimeoutMs = opts.outboxTimeoutMs ?? 300_000;
    this.inbox = new DirectInbox(
      (seq) => this.state === 'connected' && this.transmit(`{"t":"ack","seq":${seq}}`),
      (e) => this.emit('error', asError(e)),
    );
    this.ready = new Promise((resolve, reject) => {
      this.settleReady = (e) => (e ? reject(e) : resolve());
    });
    this.ready.catch(() => undefined);
  }

  /** Starts connecting (once); resolves at the first `welcome`, rejects if the client closes before. */
  connect(): Promise<void> {
    if (this.state === 'idle') void this.open();
    return this.ready;
  }

  /** Closes for good: every unsettled request fails with `closed`. */
  close(): void {
    if (this.state === 'closed') return;
    const ws = this.socket;
    this.socket = undefined;
    if (ws) abandon(ws, CloseCode.Normal);
    this.finish(CloseCode.Normal, 'closed by the application');
  }

  /**
   * Joins `room` (now, or as soon as connected) and keeps it joined across reconnects. Messages go to
   * `onMessage` and the room's `message` event. One `Room` per name: leave it before joining again.
   */
  join(room: string, onMessage?: (m: RoomMessage) => void, opts: JoinOptions = {}): Room {
    if (!isRoomId(room))
      throw new RtgwClientError(ErrorCode.BadRequest, 'a room is 1 to 128 characters of A-Z a-z 0-9 _ - : @ .');
    if (this.rooms.has(room))
      throw new RtgwClientError(ErrorCode.BadRequest, `already in room ${room}; leave it first`);
    const r = new Room(this.roomHost, room, opts);
    if (onMessage) r.on('message', onMessage);
    this.rooms.set(room, r);
    if (this.state === 'connected') r.join();
    return r;
  }

  room(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  /**
   * Publishes to `room` (joined or not); resolves with the message's seq. Kept in the outbox until
   * answered: sent again after a reconnect with the same `mid`, so it is stored once.
   */
  publish(room: string, data: Json, opts: { echo?: boolean; mid?: string } = {}): Promise<number> {
    if (!isRoomId(room)) return Promise.reject(new RtgwClientError(ErrorCode.BadRequest, 'bad room name'));
    const mid = opts.mid ?? this.newMid();
    const frame: Outgoing = { t: 'pub', room, data, mid };
    if (opts.echo) frame.echo = true;
    const r = opts.echo ? undefined : this.rooms.get(room);
    r?.ownSent(mid);
    return this.outbox(frame, (seq) => r?.ownAnswered(mid, seq));
  }

  /** Sends a direct message; resolves with its seq once it is stored for the recipient. Outbox as for `publish`. */
  sendDirect(to: string, data: Json, opts: { mid?: string } = {}): Promise<number> {
    if (!isUserId(to)) return Promise.reject(new RtgwClientError(ErrorCode.BadRequest, 'bad user id'));
    return this.outbox({ t: 'dm', to, data, mid: opts.mid ?? this.newMid() }, () => undefined);
  }

  /** Receives direct messages (those that arrived before a handler was set wait for it). */
  onDirect(handler: DirectHandler, opts: { autoAck?: boolean } = {}): () => void {
    this.inbox.setHandler(handler, opts.autoAck ?? true);
    return () => this.inbox.setHandler(undefined, true);
  }

  presence(room: string): Promise<{ users: string[]; count: number }> {
    return this.ask({ t: 'presence', room }, true).then((f) => ({
      users: f.users as string[],
      count: f.count as number,
    }));
  }

  /** A request to a backend service on `route`; resolves with its answer. Not repeated after a lost connection. */
  send(route: string, data: Json): Promise<Json> {
    return this.ask({ t: 'send', route, data }, false).then((f) => f.data as Json);
  }

  /** Publishes and direct messages waiting for their answer (sent, or waiting for a connection). */
  get pending(): number {
    return this.requests.size;
  }

  // --- connection lifecycle ---------------------------------------------------------------------------

  /** The gateway of the current attempt: each retry moves on to the next. */
  private get url(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  private async open(): Promise<void> {
    const url = this.url;
    this.setState('connecting');
    this.emit('connecting', { url, attempt: this.attempt });
    let token: string;
    try {
      token = await this.currentToken();
    } catch (e) {
      if (this.state !== 'connecting') return;
      this.emit('error', asError(e));
      if (this.opts.getToken === undefined)
        return this.finish(CloseCode.Unauthorized, 'the token was refused and there is no getToken');
      return this.retry(CLIENT_DEAD, 'getToken failed', fullJitter(this.attempt++, this.backoff));
    }
    if (this.state !== 'connecting') return; // closed meanwhile
    const target = new URL(url);
    target.searchParams.set('token', token);
    let ws: Socket;
    try {
      ws = new this.WS(target.toString());
    } catch (e) {
      this.emit('error', asError(e));
      return this.retry(CLIENT_DEAD, 'cannot open a WebSocket', fullJitter(this.attempt++, this.backoff));
    }
    this.socket = ws;
    ws.onmessage = (ev) => this.socket === ws && this.onFrame(ev.data);
    ws.onclose = (ev) => this.socket === ws && this.lost(ev.code, ev.reason);
    ws.onerror = () => undefined; // a close follows
    this.timer('connect', this.connectTimeoutMs, () => this.drop(ws, 'no welcome within the connect timeout'));
  }

  private onWelcome(f: { conn: string; user: string; hb: number }): void {
    if (this.state !== 'connecting') return;
    this.clearTimer('connect');
    this.conn = f.conn;
    this.user = f.user;
    this.attempt = 0;
    this.drainMs = undefined;
    const reconnected = this.connectedOnce;
    this.connectedOnce = true;
    this.setState('connected');
    this.heartbeat(f.hb);
    this.scheduleRefresh();
    this.requests.online((text) => this.transmit(text));
    for (const r of this.rooms.values()) r.join();
    this.emit('connected', { url: this.url, conn: f.conn, user: f.user, hb: f.hb, reconnected });
    this.settleReady();
  }

  /** The socket is gone (closed by the server, the network, or dropped by us). */
  private lost(code: number, reason: string): void {
    this.socket = undefined;
    for (const t of ['connect', 'heartbeat', 'pong', 'refresh', 'drain'] as const) this.clearTimer(t);
    this.requests.offline();
    this.conn = undefined;
    if (this.state === 'closed') return;
    if (isTerminalClose(code)) return this.finish(code, reason);
    if (needsNewToken(code)) {
      if (this.opts.getToken === undefined) return this.finish(code, reason);
      this.tokenRefused = true;
    }
    // After a drain the server has spread its closes over the window: come back at once (elsewhere).
    // An expired token is not a failure either. Anything else backs off, with jitter.
    const drained = this.drainMs !== undefined && this.drainMs > 0;
    const delay = drained || code === CloseCode.TokenExpired ? 0 : fullJitter(this.attempt++, this.backoff);
    this.retry(code, reason, delay);
  }

  private retry(code: number, reason: string, delayMs: number): void {
    this.urlIndex++;
    this.setState('disconnected');
    this.emit('disconnected', { code, reason, reconnectInMs: delayMs });
    this.timer('reconnect', delayMs, () => void this.open());
  }

  /** Gives up on a socket without waiting for its close handshake (a dead peer never answers it). */
  private drop(ws: Socket, reason: string): void {
    if (this.socket !== ws) return;
    abandon(ws, 4000);
    this.lost(CLIENT_DEAD, reason);
  }

  private finish(code: number, reason: string): void {
    for (const t of [...this.timers.keys()]) this.clearTimer(t);
    this.setState('closed');
    this.requests.close(new RtgwClientError(ClientErrorCode.Closed, `client closed: ${reason} (${code})`));
    this.settleReady(
      new RtgwClientError(ClientErrorCode.Closed, `client closed before connecting: ${reason} (${code})`),
    );
    this.emit('closed', { code, reason });
  }

  private setState(state: ClientState): void {
    const prev = this.state;
    if (prev === state) return;
    this.state = state;
    this.emit('state', { state, prev });
  }

  /** App-level pings at the server's `hb` (browsers cannot send protocol pings); silence means dead. */
  private heartbeat(hbMs: number): void {
    const pongMs = this.opts.pongTimeoutMs ?? Math.min(hbMs, 10_000);
    const ws = this.socket!;
    const beat = () => {
      this.transmit('{"t":"ping"}');
      if (!this.timers.has('pong')) this.timer('pong', pongMs, () => this.drop(ws, 'no answer from the server'));
      this.timer('heartbeat', hbMs, beat);
    };
    this.timer('heartbeat', hbMs, beat);
  }

  private onFrame(data: unknown): void {
    this.clearTimer('pong'); // anything proves the connection alive
    if (typeof data !== 'string') return; // the server sends only text
    const decoded = decodeServerFrame(data);
    if ('invalid' in decoded)
      return this.emit('error', new Error(`rtgw: unreadable frame from the server (${decoded.invalid})`));
    if ('unknown' in decoded) return; // a newer server's frame: ignored
    const f = decoded.frame;
    switch (f.t) {
      case 'msg':
        return this.rooms.get(f.room)?.onMessage(f);
      case 'dm':
        return this.inbox.onFrame(f);
      case 'ok':
      case 'err':
        if (!this.requests.answer(f) && f.t === 'err') {
          this.emit('error', new RtgwClientError(ErrorCode.BadRequest, `server: ${f.code}: ${f.msg}`));
        }
        return;
      case 'joined':
      case 'left':
        return this.rooms.get(f.room)?.onPresence(f.t, f.user, f.conn);
      case 'epoch':
        return this.rooms.get(f.room)?.onEpoch(f.epoch, f.seq);
      case 'removed':
        return this.rooms.get(f.room)?.onRemoved(f.reason);
      case 'welcome':
        return this.onWelcome(f);
      case 'drain':
        return this.onDrain(f.ms);
    }
  }

  private onDrain(ms: number): void {
    this.drainMs = ms;
    this.emit('drain', { ms });
    // The server closes us within the window; if it does not, leave on our own.
    const ws = this.socket!;
    this.timer('drain', ms + 2000, () => this.drop(ws, 'drain window over'));
  }

  private transmit(text: string): void {
    this.socket?.send(text);
  }

  // --- tokens -----------------------------------------------------------------------------------------

  private setToken(token: string): void {
    this.token = token;
    this.tokenExp = tokenExpiryMs(token);
    this.tokenLifetimeMs = this.tokenExp === undefined ? 0 : Math.max(0, this.tokenExp - Date.now());
    this.tokenRefused = false;
  }

  private refreshBeforeMs(): number {
    return this.opts.refreshBeforeMs ?? Math.min(60_000, this.tokenLifetimeMs / 4);
  }

  private async currentToken(): Promise<string> {
    const usable = this.token !== undefined && !this.tokenRefused;
    const fresh = usable && (this.tokenExp === undefined || this.tokenExp - Date.now() > this.refreshBeforeMs());
    if (fresh || (usable && this.opts.getToken === undefined)) return this.token!;
    if (this.opts.getToken === undefined) throw new RtgwClientError(ErrorCode.Unauthorized, 'the token was refused');
    this.setToken(await this.opts.getToken());
    return this.token!;
  }

  private scheduleRefresh(): void {
    if (this.opts.getToken === undefined || this.tokenExp === undefined) return;
    this.timer('refresh', Math.max(0, this.tokenExp - Date.now() - this.refreshBeforeMs()), () => void this.refresh());
  }

  /** Swaps in a new token on the open connection; if that fails, tries again until the server closes with 4010. */
  private async refresh(): Promise<void> {
    const again = (e: unknown) => {
      this.emit('error', asError(e));
      if (this.state === 'connected')
        this.timer(
          'refresh',
          Math.max(500, Math.min(5000, ((this.tokenExp ?? 0) - Date.now()) / 2)),
          () => void this.refresh(),
        );
    };
    let token: string;
    try {
      token = await this.opts.getToken!();
    } catch (e) {
      return again(e);
    }
    if (this.state !== 'connected') return this.setToken(token); // used for the next connection
    this.requests.add(
      { t: 'refresh', token },
      {
        resend: false,
        timeoutMs: this.requestTimeoutMs,
        onOk: () => {
          this.setToken(token);
          this.emit('token', { expiresAt: this.tokenExp });
          this.scheduleRefresh();
        },
        onErr: (e) => e.code !== ClientErrorCode.Disconnected && again(e),
      },
    );
  }

  // --- requests ---------------------------------------------------------------------------------------

  private outbox(frame: Outgoing, answered: (seq: number | undefined) => void): Promise<number> {
    return new Promise((resolve, reject) =>
      this.requests.add(frame, {
        resend: true,
        timeoutMs: this.outboxTimeoutMs,
        onOk: (f) => {
          answered(f.seq as number);
          resolve(f.seq as number);
        },
        onErr: (e) => {
          answered(undefined);
          reject(e);
        },
      }),
    );
  }

  private ask(frame: Outgoing, resend: boolean): Promise<OkFrame> {
    return new Promise((resolve, reject) =>
      this.requests.add(frame, { resend, timeoutMs: this.requestTimeoutMs, onOk: resolve, onErr: reject }),
    );
  }

  private readonly roomHost: RoomHost = {
    user: () => this.user,
    connected: () => this.state === 'connected',
    request: (frame, o) => this.requests.add(frame, { timeoutMs: this.requestTimeoutMs, ...o }),
    publish: (room, data, o) => this.publish(room, data, o),
    presence: (room) => this.presence(room),
    forget: (r) => {
      if (this.rooms.get(r.name) === r) this.rooms.delete(r.name);
    },
  };

  private newMid(): string {
    return `${this.session}-${(++this.mids).toString(36)}`;
  }

  private timer(name: TimerName, ms: number, fn: () => void): void {
    this.clearTimer(name);
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        fn();
      }, ms),
    );
  }

  private clearTimer(name: TimerName): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }
}

/** Detaches a socket's handlers and closes it; its close event no longer matters. */
function abandon(ws: Socket, code: number): void {
  ws.onmessage = null;
  ws.onclose = null;
  // `ws` throws an error event on a socket closed while connecting; keep a listener for it.
  ws.onerror = () => undefined;
  try {
    ws.close(code);
  } catch {
    // already closed, or still connecting in a runtime that refuses close() then
  }
}

/** What `getToken` or a socket threw, as the Error the `error` event carries. */
function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** 12 random base-36 characters: this client's prefix for its message ids. */
function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => (b % 36).toString(36)).join('');
}
