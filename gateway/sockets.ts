// The WebSocket endpoint's lifecycle, one socket at a time: admission at the upgrade (draining, origin,
// RTGW_MAX_CONNECTIONS, RTGW_MAX_CONNECT_RATE, all before any token work), the token after `open`, the
// connection's registration and `welcome`, its frames handed to Ingress, and everything undone at close.
import uWS, { type HttpRequest, type HttpResponse, type WebSocket, type WebSocketBehavior } from 'uWebSockets.js';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import { closeCodeLabel, type Metrics } from '../shared/metrics.js';
import { CloseCode, PROTOCOL_VERSION } from '../shared/protocol/codes.js';
import { encodeServerFrame } from '../shared/protocol/server-codec.js';
import type { GatewayStores } from '../shared/store/ports.js';
import { AuthError, type Claims, type Verifier } from './auth.js';
import { endSocket, newConnId, type Conn, type ConnData } from './connection.js';
import type { DirectHub } from './direct.js';
import type { Expiry } from './expiry.js';
import type { Ingress } from './ingress.js';
import type { Connections } from './registry.js';
import { TokenBucket } from './ratelimit.js';

const MAX_EARLY_FRAMES = 16;

export interface SocketDeps {
  cfg: Config;
  metrics: Metrics;
  log: Logger;
  verify: Verifier;
  presence: GatewayStores['presence'];
  conns: Connections;
  ingress: Ingress;
  direct: DirectHub;
  expiry: Expiry;
  /** Publishes `rtgw.events.connect` / `disconnect`. */
  event: (kind: 'connect' | 'disconnect', conn: Conn) => void;
}

export class Sockets {
  /** Set once the gateway drains: upgrades are refused, sockets still verifying are closed with 1001. */
  draining = false;
  /** Sockets from upgrade to close, verified or not: what RTGW_MAX_CONNECTIONS counts. */
  #sockets = 0;
  readonly #connectRate: TokenBucket | undefined;

  constructor(private readonly d: SocketDeps) {
    const rate = d.cfg.maxConnectRate;
    this.#connectRate = rate > 0 ? new TokenBucket(rate, rate) : undefined;
  }

  /** At RTGW_MAX_CONNECTIONS. */
  get full(): boolean {
    return this.d.cfg.maxConnections > 0 && this.#sockets >= this.d.cfg.maxConnections;
  }

  /** The handlers of uWS's WebSocket behaviour. */
  handlers(): Pick<WebSocketBehavior<ConnData>, 'upgrade' | 'open' | 'message' | 'close'> {
    return {
      upgrade: (res, req, context) => this.#upgrade(res, req, context),
      open: (ws) => this.#open(ws),
      message: (ws, ab, isBinary) => this.#message(ws, ab, isBinary),
      close: (ws, code) => this.#close(ws, code),
    };
  }

  // The upgrade is completed synchronously inside the upgrade handler, and the token verified right
  // after `open`. Completing it later from a cork (the usual async upgrade) trips a uWS bug in the build
  // we use (uWebSockets#1928, fixed upstream by PR #1929): cork() can mistake the just-upgraded socket
  // for a finished HTTP response and shut it down right after `welcome`. The wire is the same either way:
  // a bad token gets a 4001 close and nothing else.
  #upgrade(res: HttpResponse, req: HttpRequest, context: uWS.us_socket_context_t): void {
    const { cfg, metrics } = this.d;
    const origin = req.getHeader('origin');
    if (this.draining) {
      metrics.connectionsRejected.inc({ reason: 'draining' });
      res.writeStatus('503 Service Unavailable').end('draining; connect to another gateway');
      return;
    }
    if (origin !== '' && !cfg.allowedOrigins.includes('*') && !cfg.allowedOrigins.includes(origin)) {
      metrics.connectionsRejected.inc({ reason: 'origin' });
      res.writeStatus('403 Forbidden').end('origin not allowed');
      return;
    }
    // Before any token work: a full or stormed gateway sends clients elsewhere for the price of a response.
    const full = this.full;
    if (full || (this.#connectRate && !this.#connectRate.take())) {
      metrics.connectionsRejected.inc({ reason: full ? 'full' : 'connect_rate' });
      res
        .writeStatus('503 Service Unavailable')
        .writeHeader('Retry-After', full ? '5' : '1')
        .end(full ? 'gateway full; connect to another gateway' : 'too many connects; retry');
      return;
    }
    const auth = req.getHeader('authorization');
    const token = auth.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : req.getQuery('token') || undefined;
    res.upgrade<ConnData>(
      { token: token ?? '', early: undefined, closed: false, endCode: 0, conn: undefined },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  }

  #open(ws: WebSocket<ConnData>): void {
    this.#sockets++;
    const data = ws.getUserData();
    const token = data.token;
    data.token = undefined; // not kept past verification
    if (!token) return this.#reject(ws, 'token missing');
    this.d.verify(token).then(
      (claims) => {
        if (data.closed) return;
        if (this.draining) return ws.cork(() => endSocket(ws, CloseCode.Drain, 'server draining'));
        ws.cork(() => this.#accept(ws, data, claims));
      },
      (e: unknown) => {
        if (!data.closed) this.#reject(ws, e instanceof AuthError ? e.reason : 'invalid token');
      },
    );
  }

  #reject(ws: WebSocket<ConnData>, reason: string): void {
    this.d.metrics.connectionsRejected.inc({ reason: 'unauthorized' });
    ws.cork(() => endSocket(ws, CloseCode.Unauthorized, reason));
  }

  #accept(ws: WebSocket<ConnData>, data: ConnData, claims: Claims): void {
    const { cfg, metrics, log, direct } = this.d;
    if (this.d.conns.ofUser(claims.sub).size >= cfg.maxConnsPerUser) {
      metrics.connectionsRejected.inc({ reason: 'user_limit' });
      endSocket(ws, CloseCode.TooManyConnections, 'too many connections for this user on this gateway');
      return;
    }
    const conn: Conn = {
      id: newConnId(cfg.nodeId),
      user: claims.sub,
      claims,
      ws,
      open: true,
      dmLive: false,
      rooms: undefined,
      bucket: new TokenBucket(cfg.rateLimit),
      byteBucket: new TokenBucket(cfg.rateLimitBytes),
      strikes: undefined,
      expirySecond: 0,
    };
    data.conn = conn;
    this.d.conns.add(conn);
    metrics.connections.inc();
    metrics.connectionsOpened.inc();
    this.d.ingress.send(
      conn,
      encodeServerFrame({ t: 'welcome', v: PROTOCOL_VERSION, conn: conn.id, user: conn.user, hb: cfg.heartbeatMs }),
      'welcome',
    );
    this.d.expiry.arm(conn);
    log.debug({ conn: conn.id, user: conn.user }, 'connection opened');
    const registered = this.d.presence
      .connect(cfg.nodeId, conn.user, conn.id)
      .catch((e: unknown) => log.warn({ err: e, conn: conn.id }, 'presence connect failed'));
    direct
      .attach(conn, registered)
      .catch((e: unknown) =>
        log.warn({ err: e, conn: conn.id }, 'pending direct messages not delivered; they are retried'),
      );
    this.d.event('connect', conn);
    const early = data.early ?? [];
    data.early = undefined;
    for (const f of early) this.d.ingress.handle(conn, f.text, Buffer.byteLength(f.text), f.binary);
  }

  #message(ws: WebSocket<ConnData>, ab: ArrayBuffer, isBinary: boolean): void {
    if (ab.byteLength > this.d.cfg.maxMessageBytes) {
      endSocket(ws, CloseCode.TooLarge, 'message too large');
      return;
    }
    // The ArrayBuffer is only valid during this call: decode before anything else.
    const text = Buffer.from(ab).toString('utf8');
    const data = ws.getUserData();
    if (data.conn) return this.d.ingress.handle(data.conn, text, ab.byteLength, isBinary);
    // Sent before `welcome` (the token is still being verified): kept, a few at most.
    const early = (data.early ??= []);
    if (early.length >= MAX_EARLY_FRAMES) return endSocket(ws, CloseCode.Policy, 'too many frames before welcome');
    early.push({ text, binary: isBinary });
  }

  #close(ws: WebSocket<ConnData>, code: number): void {
    this.#sockets--;
    const data = ws.getUserData();
    data.closed = true;
    const conn = data.conn;
    if (!conn) return;
    const { cfg, metrics, log, ingress } = this.d;
    conn.open = false;
    this.d.conns.remove(conn);
    this.d.expiry.disarm(conn);
    this.d.direct.detach(conn);
    metrics.connections.dec();
    metrics.connectionsClosed.inc({ code: closeCodeLabel(data.endCode || undefined, code) });
    log.debug({ conn: conn.id, code }, 'connection closed');
    for (const room of [...(conn.rooms?.keys() ?? [])]) {
      ingress
        .leave(conn, room)
        .catch((e: unknown) => log.warn({ err: e, conn: conn.id, room }, 'presence leave failed'));
    }
    this.d.presence
      .disconnect(cfg.nodeId, conn.user, conn.id)
      .catch((e: unknown) => log.warn({ err: e, conn: conn.id }, 'presence disconnect failed'));
    this.d.event('disconnect', conn);
  }
}
