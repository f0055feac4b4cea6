// The gateway: uWebSockets.js endpoint, connection registry and lifecycle. It holds live sockets
// only; rooms, seqs and presence live in the router tier and the store.
import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from 'uWebSockets.js';
import type { Subscription } from '../shared/bus/bus.js';
import type { NodeRequest } from '../shared/cluster/messages.js';
import { SlotClient } from '../shared/cluster/slot-rpc.js';
import type { GatewayDeps } from '../shared/deps.js';
import { closeCodeLabel } from '../shared/metrics.js';
import { CloseCode, ErrorCode, PROTOCOL_VERSION } from '../shared/protocol/codes.js';
import { isUserId } from '../shared/protocol/names.js';
import { encodeServerFrame } from '../shared/protocol/server-codec.js';
import { AuthError, createVerifier, signDevToken, type Claims } from './auth.js';
import { Backpressure } from './backpressure.js';
import { endSocket, newConnId, type Conn, type ConnData } from './connection.js';
import { serveDemo } from './demo.js';
import { DirectHub } from './direct.js';
import { Expiry } from './expiry.js';
import { Ingress } from './ingress.js';
import { TokenBucket } from './ratelimit.js';
import { RoomHub } from './rooms.js';

export interface Gateway {
  readonly port: number;
  /** At RTGW_MAX_CONNECTIONS: new upgrades are refused, and readiness says so. */
  readonly full: boolean;
  /** Stops accepting, tells clients to go elsewhere and closes them spread over the drain window. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** One native call per connection written to since the last sweep: about 0.3 ms per 10,000 of them. */
const BACKPRESSURE_SWEEP_MS = 50;
const MAX_EARLY_FRAMES = 16;

export async function startGateway(d: GatewayDeps): Promise<Gateway> {
  const { cfg, bus, stores, subj, metrics, log } = d;
  const app: TemplatedApp = uWS.App();
  const conns = new Map<string, Conn>();
  const verify = createVerifier(cfg.jwt);
  const backpressure = new Backpressure();
  const hub = new RoomHub(app, bus, subj, stores.log, cfg.slots, conns, backpressure, metrics, log);
  let draining = false;
  /** Sockets from upgrade to close, verified or not: what RTGW_MAX_CONNECTIONS counts. */
  let sockets = 0;
  const isFull = () => cfg.maxConnections > 0 && sockets >= cfg.maxConnections;
  const connectRate = cfg.maxConnectRate > 0 ? new TokenBucket(cfg.maxConnectRate, cfg.maxConnectRate) : undefined;

  const expiry = new Expiry((conn) => endSocket(conn.ws, CloseCode.TokenExpired, 'token expired'));

  const direct = new DirectHub(bus, subj, cfg.nodeId, stores.inbox, cfg.slots, backpressure, metrics, log);
  const slots = new SlotClient(bus, subj, `gateway-${cfg.nodeId}`, cfg.requestTimeoutMs);
  const ingress = new Ingress({ cfg, bus, subj, presence: stores.presence, hub, direct, verify, slots, backpressure, metrics, log, armExpiry: (c) => expiry.arm(c) });

  metrics.observeGateway(() => ({ ...hub.holdings(), dmUsers: direct.userCount }));

  const originAllowed = (origin: string) => cfg.allowedOrigins.includes('*') || cfg.allowedOrigins.includes(origin);
  const event = (kind: 'connect' | 'disconnect', conn: Conn) =>
    bus.publish(subj.event(kind), JSON.stringify({ user: conn.user, conn: conn.id, node: cfg.nodeId, ts: Date.now() }));

  // The upgrade is completed synchronously inside the upgrade handler, and the token verified right
  // after `open`. Completing it later from a cork (the usual async upgrade) trips a uWS bug in the build
  // we use (uWebSockets#1928, fixed upstream by PR #1929): cork() can mistake the just-upgraded socket
  // for a finished HTTP response and shut it down right after `welcome`. The wire is the same either way:
  // a bad token gets a 4001 close and nothing else.
  function upgrade(res: HttpResponse, req: HttpRequest, context: uWS.us_socket_context_t): void {
    const origin = req.getHeader('origin');
    if (draining) {
      metrics.connectionsRejected.inc({ reason: 'draining' });
      res.writeStatus('503 Service Unavailable').end('draining; connect to another gateway');
      return;
    }
    if (origin !== '' && !originAllowed(origin)) {
      metrics.connectionsRejected.inc({ reason: 'origin' });
      res.writeStatus('403 Forbidden').end('origin not allowed');
      return;
    }
    // Before any token work: a full or stormed gateway sends clients elsewhere for the price of a response.
    if (isFull() || (connectRate && !connectRate.take())) {
      const full = isFull();
      metrics.connectionsRejected.inc({ reason: full ? 'full' : 'connect_rate' });
      res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', full ? '5' : '1').end(full ? 'gateway full; connect to another gateway' : 'too many connects; retry');
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

  function reject(ws: uWS.WebSocket<ConnData>, reason: string): void {
    metrics.connectionsRejected.inc({ reason: 'unauthorized' });
    ws.cork(() => endSocket(ws, CloseCode.Unauthorized, reason));
  }

  function open(ws: uWS.WebSocket<ConnData>): void {
    sockets++;
    const data = ws.getUserData();
    const token = data.token;
    data.token = undefined; // not kept past verification
    if (!token) return reject(ws, 'token missing');
    verify(token).then(
      (claims) => {
        if (data.closed) return;
        if (draining) return ws.cork(() => endSocket(ws, CloseCode.Drain, 'server draining'));
        ws.cork(() => accept(ws, data, claims));
      },
      (e: unknown) => {
        if (!data.closed) reject(ws, e instanceof AuthError ? e.reason : 'invalid token');
      },
    );
  }

  function accept(ws: uWS.WebSocket<ConnData>, data: ConnData, claims: Claims): void {
    if (direct.connCount(claims.sub) >= cfg.maxConnsPerUser) {
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
    conns.set(conn.id, conn);
    metrics.connections.inc();
    metrics.connectionsOpened.inc();
    ingress.send(conn, encodeServerFrame({ t: 'welcome', v: PROTOCOL_VERSION, conn: conn.id, user: conn.user, hb: cfg.heartbeatMs }), 'welcome');
    expiry.arm(conn);
    log.debug({ conn: conn.id, user: conn.user }, 'connection opened');
    const registered = stores.presence.connect(cfg.nodeId, conn.user, conn.id).catch((e: unknown) => log.warn({ err: e, conn: conn.id }, 'presence connect failed'));
    direct.attach(conn, registered).catch((e: unknown) => log.warn({ err: e, conn: conn.id }, 'pending direct messages not delivered; they are retried'));
    event('connect', conn);
    const early = data.early ?? [];
    data.early = undefined;
    for (const f of early) frame(conn, f.text, f.binary, Buffer.byteLength(f.text));
  }

  function frame(conn: Conn, text: string, binary: boolean, bytes: number): void {
    if (binary) return ingress.refuse(conn, undefined, ErrorCode.BadRequest, 'binary frames are not supported; send JSON text');
    ingress.handle(conn, text, bytes);
  }

  function message(ws: uWS.WebSocket<ConnData>, ab: ArrayBuffer, isBinary: boolean): void {
    if (ab.byteLength > cfg.maxMessageBytes) {
      endSocket(ws, CloseCode.TooLarge, 'message too large');
      return;
    }
    // The ArrayBuffer is only valid during this call: decode before anything else.
    const text = Buffer.from(ab).toString('utf8');
    const data = ws.getUserData();
    if (data.conn) return frame(data.conn, text, isBinary, ab.byteLength);
    // Sent before `welcome` (the token is still being verified): kept, a few at most.
    const early = (data.early ??= []);
    if (early.length >= MAX_EARLY_FRAMES) return endSocket(ws, CloseCode.Policy, 'too many frames before welcome');
    early.push({ text, binary: isBinary });
  }

  function close(ws: uWS.WebSocket<ConnData>, code: number): void {
    sockets--;
    const data = ws.getUserData();
    data.closed = true;
    const conn = data.conn;
    if (!conn) return;
    conn.open = false;
    conns.delete(conn.id);
    expiry.disarm(conn);
    direct.detach(conn);
    metrics.connections.dec();
    metrics.connectionsClosed.inc({ code: closeCodeLabel(data.endCode || undefined, code) });
    log.debug({ conn: conn.id, code }, 'connection closed');
    for (const room of [...(conn.rooms?.keys() ?? [])]) {
      ingress.leave(conn, room).catch((e: unknown) => log.warn({ err: e, conn: conn.id, room }, 'presence leave failed'));
    }
    stores.presence.disconnect(cfg.nodeId, conn.user, conn.id).catch((e: unknown) => log.warn({ err: e, conn: conn.id }, 'presence disconnect failed'));
    event('disconnect', conn);
  }

  app.ws<ConnData>('/ws', {
    // uWS drops frames over its own limit without a close frame; it is a hard cap above ours so
    // that the gateway answers an oversized frame with 1009 itself.
    maxPayloadLength: Math.max(cfg.maxMessageBytes * 4, 1024 * 1024),
    idleTimeout: cfg.idleTimeoutSec,
    sendPingsAutomatically: true,
    // Same idea for backpressure: the sweep below closes with 4009 first. uWS's own limit (past which it
    // drops the socket without a close frame) is only a last resort against unbounded memory, set far
    // enough above ours that a flood cannot cross the gap between two sweeps.
    maxBackpressure: Math.max(cfg.maxBackpressureBytes * 16, cfg.maxBackpressureBytes + 8 * 1024 * 1024),
    closeOnBackpressureLimit: 1,
    compression: uWS.DISABLED,
    upgrade,
    open,
    message,
    close,
  });
  app.get('/ws', (res) => {
    res.writeStatus('426 Upgrade Required').end('WebSocket endpoint: connect with an upgrade request');
  });
  if (cfg.devMode) {
    serveDemo(app, log);
    app.get('/dev/token', (res, req) => {
      const user = req.getQuery('user');
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      if (!isUserId(user)) {
        res.writeStatus('400 Bad Request').writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: ErrorCode.BadRequest, msg: 'user must be 1 to 128 characters of A-Z a-z 0-9 _ - : @ .' } }));
        return;
      }
      void signDevToken(cfg.jwt.secret!, user).then((token) => {
        if (aborted) return;
        res.cork(() => res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(JSON.stringify({ token })));
      });
    });
  }
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').end('not found');
  });

  // Backend control of this node's connections.
  const control: Subscription = bus.subscribe(subj.node(cfg.nodeId), (msg) => {
    let req: NodeRequest;
    try {
      req = JSON.parse(Buffer.from(msg.data).toString('utf8')) as NodeRequest;
    } catch {
      return;
    }
    if (req.op !== 'disconnect') return;
    const victims = [...direct.connsOf(req.user)];
    for (const c of victims) endSocket(c.ws, CloseCode.DisconnectedByBackend, (req.reason ?? 'disconnected by backend').slice(0, 120));
    msg.respond(JSON.stringify({ count: victims.length }));
  });

  // Presence entries live while this heartbeat does; a dead gateway's members are reaped by routers.
  const beat = () => stores.presence.heartbeat(cfg.nodeId, cfg.presenceTtlMs);
  await beat();
  const heartbeat = setInterval(() => beat().catch((e: unknown) => log.warn({ err: e }, 'presence heartbeat failed')), Math.max(100, Math.floor(cfg.presenceTtlMs / 3)));

  const stopSweep = backpressure.start(cfg.maxBackpressureBytes, BACKPRESSURE_SWEEP_MS, (c) => {
    metrics.slowConsumerDisconnects.inc();
    log.info({ conn: c.id }, 'closing slow consumer');
    endSocket(c.ws, CloseCode.SlowConsumer, 'slow consumer');
  });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(cfg.host, cfg.port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${cfg.host}:${cfg.port} (port in use?)`))));
  });
  const port = uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  let closed = false;

  const closeAll = async () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    stopSweep();
    expiry.stop();
    slots.close();
    direct.close();
    control.unsubscribe();
    for (const c of [...conns.values()]) endSocket(c.ws, CloseCode.Drain, 'server shutting down');
    // Anything still registered (connections closed before their presence write landed) goes now.
    await stores.presence.removeNode(cfg.nodeId).catch((e: unknown) => log.warn({ err: e }, 'presence cleanup failed'));
  };

  return {
    port,
    get full() {
      return isFull();
    },
    async drain() {
      if (draining) return;
      draining = true;
      uWS.us_listen_socket_close(listenSocket);
      const windowMs = cfg.drainSeconds * 1000;
      const list = [...conns.values()];
      const frame = encodeServerFrame({ t: 'drain', ms: windowMs });
      for (const c of list) ingress.send(c, frame, 'drain');
      // Paced and jittered so the clients' reconnects spread over the window instead of arriving at once.
      const timers = list.map((c, i) =>
        setTimeout(() => c.open && endSocket(c.ws, CloseCode.Drain, 'server draining'), ((i + Math.random()) / Math.max(1, list.length)) * windowMs),
      );
      const deadline = Date.now() + windowMs + 1000;
      while (conns.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      timers.forEach(clearTimeout);
      await closeAll();
    },
    async close() {
      draining = true;
      if (!closed) uWS.us_listen_socket_close(listenSocket);
      await closeAll();
    },
  };
}
