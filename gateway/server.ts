// The gateway: composes its parts and runs its lifecycle (listen, presence heartbeat, slow-consumer
// sweep, drain, close). Each part owns one concern: sockets.ts the WebSocket endpoint, ingress.ts the
// frames, rooms.ts and direct.ts the streams into sockets, http.ts the plain routes, control.ts what
// backends ask of this node. It holds live sockets only; rooms, seqs and presence live in the router
// tier and the store.
import uWS, { type TemplatedApp, type us_listen_socket } from 'uWebSockets.js';
import { SlotClient } from '../shared/cluster/slot-rpc.js';
import type { GatewayDeps } from '../shared/deps.js';
import { CloseCode } from '../shared/protocol/codes.js';
import { encodeServerFrame } from '../shared/protocol/server-codec.js';
import { createVerifier } from './auth.js';
import { Backpressure } from './backpressure.js';
import { endSocket, type Conn, type ConnData } from './connection.js';
import { listenForControl } from './control.js';
import { DirectHub } from './direct.js';
import { Expiry } from './expiry.js';
import { serveHttp } from './http.js';
import { Ingress } from './ingress.js';
import { Connections } from './registry.js';
import { RoomHub } from './rooms.js';
import { Sockets } from './sockets.js';

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

export async function startGateway(d: GatewayDeps): Promise<Gateway> {
  const { cfg, bus, stores, subj, metrics, log } = d;
  const app: TemplatedApp = uWS.App();
  const conns = new Connections();
  const backpressure = new Backpressure();
  const hub = new RoomHub({
    app,
    bus,
    subj,
    log: stores.log,
    slots: cfg.slots,
    conns,
    backpressure,
    metrics,
    logger: log,
  });
  const direct = new DirectHub({
    bus,
    subj,
    node: cfg.nodeId,
    inbox: stores.inbox,
    slots: cfg.slots,
    conns,
    backpressure,
    metrics,
    log,
  });
  const expiry = new Expiry((conn) => endSocket(conn.ws, CloseCode.TokenExpired, 'token expired'));
  const verify = createVerifier(cfg.jwt);
  const slots = new SlotClient(bus, subj, `gateway-${cfg.nodeId}`, cfg.requestTimeoutMs);
  const ingress = new Ingress({
    cfg,
    bus,
    subj,
    presence: stores.presence,
    hub,
    direct,
    verify,
    slots,
    backpressure,
    metrics,
    log,
    armExpiry: (c) => expiry.arm(c),
  });
  const event = (kind: 'connect' | 'disconnect', conn: Conn) =>
    bus.publish(subj.event(kind), JSON.stringify({ user: conn.user, conn: conn.id, node: cfg.nodeId, ts: Date.now() }));
  const sockets = new Sockets({
    cfg,
    metrics,
    log,
    verify,
    presence: stores.presence,
    conns,
    ingress,
    direct,
    expiry,
    event,
  });
  metrics.observeGateway(() => ({ ...hub.holdings(), dmUsers: direct.userCount }));

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
    ...sockets.handlers(),
  });
  serveHttp(app, cfg, log);
  const control = listenForControl(bus, subj, cfg.nodeId, conns);

  // Presence entries live while this heartbeat does; a dead gateway's members are reaped by routers.
  const beat = () => stores.presence.heartbeat(cfg.nodeId, cfg.presenceTtlMs);
  await beat();
  const heartbeat = setInterval(
    () => beat().catch((e: unknown) => log.warn({ err: e }, 'presence heartbeat failed')),
    Math.max(100, Math.floor(cfg.presenceTtlMs / 3)),
  );

  const stopSweep = backpressure.start(cfg.maxBackpressureBytes, BACKPRESSURE_SWEEP_MS, (c) => {
    metrics.slowConsumerDisconnects.inc();
    log.info({ conn: c.id }, 'closing slow consumer');
    endSocket(c.ws, CloseCode.SlowConsumer, 'slow consumer');
  });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(cfg.host, cfg.port, (s) =>
      s ? resolve(s) : reject(new Error(`cannot listen on ${cfg.host}:${cfg.port} (port in use?)`)),
    );
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
      return sockets.full;
    },
    async drain() {
      if (sockets.draining) return;
      sockets.draining = true;
      uWS.us_listen_socket_close(listenSocket);
      const windowMs = cfg.drainSeconds * 1000;
      const list = [...conns.values()];
      const frame = encodeServerFrame({ t: 'drain', ms: windowMs });
      for (const c of list) ingress.send(c, frame, 'drain');
      // Paced and jittered so the clients' reconnects spread over the window instead of arriving at once.
      const timers = list.map((c, i) =>
        setTimeout(
          () => c.open && endSocket(c.ws, CloseCode.Drain, 'server draining'),
          ((i + Math.random()) / Math.max(1, list.length)) * windowMs,
        ),
      );
      const deadline = Date.now() + windowMs + 1000;
      while (conns.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      timers.forEach(clearTimeout);
      await closeAll();
    },
    async close() {
      sockets.draining = true;
      if (!closed) uWS.us_listen_socket_close(listenSocket);
      await closeAll();
    },
  };
}
