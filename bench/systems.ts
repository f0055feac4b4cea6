// The server systems the bench measures: it starts each on loopback on free ports (with its own
// nats-server / redis-server where it needs one), knows which of its processes hold the client
// connections, and stops them by PID. Every process of a system counts in its server CPU.
import { join } from 'node:path';
import {
  findBinary,
  freePort,
  HERE,
  HOST,
  httpStatus,
  pin,
  redisServerArgs,
  ROOT,
  SERVER_CPUS,
  startProc,
  stopProc,
  tcpProbe,
  waitFor,
  type Proc,
} from './procs.js';
import type { ClientKind, Endpoint, Target } from './conn.js';
import type { WireName } from './wire.js';

export const SYSTEM_KINDS = ['rtgw', 'rtgw2', 'standalone', 'socketio', 'bare', 'bare-nats'] as const;
export type SystemKind = (typeof SYSTEM_KINDS)[number];

export const SYSTEMS: Record<SystemKind, { label: string; wire: WireName }> = {
  rtgw: { label: 'rtgw 1+1 (gateway + router, NATS, Redis)', wire: 'rtgw' },
  rtgw2: { label: 'rtgw 2+2 (2 gateways + 2 routers, NATS, Redis)', wire: 'rtgw' },
  standalone: { label: 'rtgw standalone (memory engine, 1 process)', wire: 'rtgw' },
  socketio: { label: 'Socket.IO 4.8 + redis-adapter, 2 nodes + Redis', wire: 'socketio' },
  bare: { label: 'bare uWS (1 process)', wire: 'bare' },
  'bare-nats': { label: 'bare uWS behind one NATS hop (+ nats-server)', wire: 'bare' },
};

export interface StartContext {
  tmp: string;
  secret: string;
  pin: boolean;
  /** rtgw processes run with `node --cpu-prof` into tmp/prof. */
  profile: boolean;
  barePublish: 'deferred' | 'inline';
}

export interface RunningSystem {
  kind: SystemKind;
  wire: WireName;
  /** Where clients connect: gateways or Socket.IO nodes; members are spread over them round-robin. */
  endpoints: Endpoint[];
  /** Every server process by name (gateway, router2, nats, redis, sio1...). */
  procs: Record<string, Proc>;
  /** The names in `procs` of the processes that hold client connections, endpoint by endpoint. */
  edge: string[];
  /** The names of rtgw router processes (router ingest is per router). */
  routers: string[];
  /** Stops endpoint i's process with SIGTERM (an rtgw gateway drains: `drain`, then 1001) and resolves when it exited. */
  stopEdge(i: number): Promise<void>;
  /** Starts endpoint i's process again on the same port; resolves when it is ready. */
  startEdge(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** What a load-generator worker needs to reach `sys` with `client`. */
export const targetOf = (sys: RunningSystem, client: ClientKind): Target => ({
  endpoints: sys.endpoints,
  wire: sys.wire,
  client,
});

/** This environment without any RTGW_* variable of the caller's, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTGW_')) env[k] = v;
  return { ...env, ...extra };
}

const name = (role: string, i: number, n: number) => (n === 1 ? role : `${role}${i + 1}`);

/** A system's processes as they are started, and its stop. */
class Builder {
  readonly procs: Record<string, Proc> = {};
  constructor(
    private readonly c: StartContext,
    readonly tag: string,
  ) {}

  proc(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    const p = startProc(`${this.tag}:${label}`, cmd, args, env, join(this.c.tmp, `${this.tag}-${label}.log`));
    if (this.c.pin) pin(p.pid, SERVER_CPUS);
    this.procs[label] = p;
    return p;
  }

  async nats(): Promise<string> {
    const port = await freePort();
    const p = this.proc('nats', findBinary('nats-server'), ['-a', HOST, '-p', String(port)], process.env);
    await waitFor('nats-server answering', p, () => tcpProbe(port, '', 'INFO'));
    return `nats://${HOST}:${port}`;
  }

  async redis(): Promise<string> {
    const port = await freePort();
    const p = this.proc('redis', findBinary('redis-server'), redisServerArgs(port, this.c.tmp), process.env);
    await waitFor('redis-server answering PING', p, () => tcpProbe(port, 'PING\r\n', '+PONG'));
    return `redis://${HOST}:${port}`;
  }

  /** `node <args>`, with --cpu-prof for rtgw roles when profiling. */
  node(label: string, args: string[], env: Record<string, string>, rtgw: boolean): Proc {
    const prof =
      rtgw && this.c.profile
        ? [
            '--cpu-prof',
            `--cpu-prof-dir=${join(this.c.tmp, 'prof')}`,
            `--cpu-prof-name=${this.tag}-${label}.cpuprofile`,
          ]
        : [];
    return this.proc(label, process.execPath, [...prof, ...args], cleanEnv(env));
  }

  stop = async () => {
    // Clients' servers first, then what they use.
    for (const p of Object.values(this.procs).reverse()) await stopProc(p);
  };
}

interface EdgeSpec {
  label: string;
  port: number;
  start: () => Proc;
  ready: (p: Proc) => Promise<void>;
}

function running(kind: SystemKind, b: Builder, edges: EdgeSpec[], routers: string[]): RunningSystem {
  const byIndex = (i: number) => {
    const e = edges[i];
    if (!e) throw new Error(`${kind} has no endpoint ${i}`);
    return e;
  };
  return {
    kind,
    wire: SYSTEMS[kind].wire,
    endpoints: edges.map((e) => ({ host: HOST, port: e.port })),
    procs: b.procs,
    edge: edges.map((e) => e.label),
    routers,
    stopEdge: (i) => stopProc(b.procs[byIndex(i).label]!),
    startEdge: async (i) => {
      const e = byIndex(i);
      await e.ready(e.start());
    },
    stop: b.stop,
  };
}

/** Ready once `port` answers /readyz with 200 (an rtgw node's admin port, or a baseline server's own). */
const readyz = (port: number, what: string, timeoutMs?: number) => (p: Proc) =>
  waitFor(`${what} /readyz 200`, p, async () => (await httpStatus(port, '/readyz')) === 200, timeoutMs);
const rtgwReady = (adminPort: number, what: string) => readyz(adminPort, what, 30_000);

/** What every rtgw process of the bench runs with. */
const rtgwEnv = (c: StartContext) => ({
  RTGW_JWT_SECRET: c.secret,
  RTGW_HOST: HOST,
  RTGW_LOG_LEVEL: 'warn',
  RTGW_RATE_LIMIT: '1000000',
  RTGW_RATE_LIMIT_BYTES: String(1024 ** 3),
  RTGW_DRAIN_SECONDS: '0',
});

async function startRtgw(
  kind: SystemKind,
  b: Builder,
  c: StartContext,
  gateways: number,
  routers: number,
): Promise<RunningSystem> {
  const [natsUrl, redisUrl] = await Promise.all([b.nats(), b.redis()]);
  const common = { ...rtgwEnv(c), RTGW_NATS_URL: natsUrl, RTGW_REDIS_URL: redisUrl, RTGW_NATS_PREFIX: 'bench' };
  const cli = join(ROOT, 'dist/cli.js');
  const routerNames: string[] = [];
  const routerReady: Promise<void>[] = [];
  for (let i = 0; i < routers; i++) {
    const label = name('router', i, routers);
    const admin = await freePort();
    const p = b.node(
      label,
      [cli, 'router'],
      { ...common, RTGW_ADMIN_PORT: String(admin), RTGW_NODE_ID: `bench-${label}` },
      true,
    );
    routerNames.push(label);
    routerReady.push(rtgwReady(admin, label)(p));
  }
  await Promise.all(routerReady);
  const edges: EdgeSpec[] = [];
  for (let i = 0; i < gateways; i++) {
    const label = name('gateway', i, gateways);
    const [port, admin] = [await freePort(), await freePort()];
    const env = { ...common, RTGW_PORT: String(port), RTGW_ADMIN_PORT: String(admin), RTGW_NODE_ID: `bench-${label}` };
    edges.push({
      label,
      port,
      start: () => b.node(label, [cli, 'gateway'], env, true),
      ready: rtgwReady(admin, label),
    });
  }
  await Promise.all(edges.map((e) => e.ready(e.start())));
  return running(kind, b, edges, routerNames);
}

async function startStandalone(b: Builder, c: StartContext): Promise<RunningSystem> {
  const [port, admin] = [await freePort(), await freePort()];
  const env = {
    ...rtgwEnv(c),
    RTGW_PORT: String(port),
    RTGW_ADMIN_PORT: String(admin),
    RTGW_NODE_ID: 'bench-standalone',
  };
  const edge: EdgeSpec = {
    label: 'standalone',
    port,
    start: () => b.node('standalone', [join(ROOT, 'dist/cli.js'), 'standalone'], env, true),
    ready: rtgwReady(admin, 'standalone'),
  };
  await edge.ready(edge.start());
  return running('standalone', b, [edge], []);
}

async function startSocketIo(b: Builder): Promise<RunningSystem> {
  const redisUrl = await b.redis();
  const edges: EdgeSpec[] = [];
  for (let i = 0; i < 2; i++) {
    const label = `sio${i + 1}`;
    const port = await freePort();
    edges.push({
      label,
      port,
      start: () =>
        b.node(
          label,
          [join(HERE, 'socketio-server.js'), '--host', HOST, '--port', String(port), '--redis', redisUrl],
          {},
          false,
        ),
      ready: readyz(port, label),
    });
  }
  await Promise.all(edges.map((e) => e.ready(e.start())));
  return running('socketio', b, edges, []);
}

async function startBare(kind: SystemKind, b: Builder, c: StartContext): Promise<RunningSystem> {
  const natsUrl = kind === 'bare-nats' ? await b.nats() : undefined;
  const port = await freePort();
  const args = [
    join(HERE, 'bare-uws.js'),
    '--host',
    HOST,
    '--port',
    String(port),
    '--publish',
    c.barePublish,
    ...(natsUrl ? ['--nats', natsUrl] : []),
  ];
  const edge: EdgeSpec = {
    label: 'bare',
    port,
    start: () => b.node('bare', args, {}, false),
    ready: readyz(port, 'bare uWS'),
  };
  await edge.ready(edge.start());
  return running(kind, b, [edge], []);
}

/** Starts `kind` and waits until it is ready; on failure stops what it had started. */
export async function startSystem(kind: SystemKind, c: StartContext): Promise<RunningSystem> {
  const b = new Builder(c, kind);
  try {
    switch (kind) {
      case 'rtgw':
        return await startRtgw(kind, b, c, 1, 1);
      case 'rtgw2':
        return await startRtgw(kind, b, c, 2, 2);
      case 'standalone':
        return await startStandalone(b, c);
      case 'socketio':
        return await startSocketIo(b);
      case 'bare':
      case 'bare-nats':
        return await startBare(kind, b, c);
    }
  } catch (e) {
    await b.stop();
    throw e;
  }
}
