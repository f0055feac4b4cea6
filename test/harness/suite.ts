// The per-file cluster setup of the cluster, ops and fault tests, registered with one call:
// a cluster started before the file's tests (and, when asked, a NATS bus for the backend API), every
// node's last log lines printed when a test fails, clients closed after each test or after the file,
// and bus and cluster stopped at the end.
//
//   const { pool, client, api } = useCluster({ gateways: 2, routers: 1, env: { ... } });
//   it('...', async () => { const c = await client(0); ... });
//
// `cluster` and `bus` exist only once beforeAll has run: read them from the handle inside hooks and
// tests (`suite.cluster`), never at module level.
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { toJson } from '../../shared/bus/bus.js';
import { connectNats, NatsBus } from '../../shared/bus/nats.js';
import { subjects, type Subjects } from '../../shared/cluster/subjects.js';
import { ClientPool, type TestClient } from './client.js';
import { startCluster, uid, type Cluster, type ClusterOptions } from './cluster.js';

/** The backend API operations (`<prefix>.api.<op>`). */
export type ApiOp = Parameters<Subjects['api']>[0];

export interface UseClusterOptions extends ClusterOptions {
  /** Log lines per node printed when a test fails (default: `Cluster.logs`' own, 60). */
  logLines?: number;
  /** Close the pool's clients after every test too (they are always closed after the file). */
  closeClientsAfterEach?: boolean;
  /** Connect a NatsBus to the cluster's nats-server under this client name; `bus` and `api` need it. */
  bus?: string;
  /** `client()` proves each connection usable with a ping round trip (`connectClient`). */
  pingOnConnect?: boolean;
  /** Awaited at the end of beforeAll, once the cluster (and bus) are up, e.g. `waitBalanced`. */
  ready?: (cluster: Cluster) => void | Promise<void>;
  /** Awaited first in afterAll when the cluster was started, e.g. to resume a paused server. */
  beforeStop?: (cluster: Cluster) => void | Promise<void>;
  /** Deadline for beforeAll (default 60 s). */
  startTimeoutMs?: number;
}

export interface ClusterSuite {
  /** The running cluster; throws before beforeAll started it. */
  readonly cluster: Cluster;
  /** Every client `client()` opened; closed after the file (and after each test with `closeClientsAfterEach`). */
  readonly pool: ClientPool;
  /** The NatsBus of the `bus` option; throws without it. */
  readonly bus: NatsBus;
  /** The NATS subjects of the cluster's prefix. */
  readonly subjects: Subjects;
  /** A pooled client on gateway `gw` for `user` (a fresh id by default), with optional extra token claims. */
  client(gw: number, user?: string, claims?: Record<string, unknown>): Promise<TestClient>;
  /** A backend API request (`<prefix>.api.<op>`): `body` as JSON (a string is sent as is); resolves the parsed reply. */
  api<T = Record<string, unknown>>(op: ApiOp, body: unknown, timeoutMs?: number): Promise<T>;
}

/** Registers the hooks of a cluster test file (call it at module level, once) and returns its handle. */
export function useCluster(opts: UseClusterOptions = {}): ClusterSuite {
  const {
    logLines,
    closeClientsAfterEach,
    bus: busName,
    pingOnConnect,
    ready,
    beforeStop,
    startTimeoutMs,
    ...clusterOpts
  } = opts;
  const pool = new ClientPool();
  let cluster: Cluster | undefined;
  let bus: NatsBus | undefined;

  beforeAll(async () => {
    cluster = await startCluster(clusterOpts);
    if (busName !== undefined) bus = new NatsBus(await connectNats([cluster.nats.url], busName));
    await ready?.(cluster);
  }, startTimeoutMs ?? 60_000);
  afterAll(async () => {
    if (cluster !== undefined) await beforeStop?.(cluster);
    await pool.closeAll();
    await bus?.close().catch(() => undefined);
    await cluster?.stop();
  });
  beforeEach(({ onTestFailed }) => onTestFailed(() => console.error(started().logs(logLines))));
  if (closeClientsAfterEach) afterEach(() => pool.closeAll());

  function started(): Cluster {
    if (cluster === undefined) throw new Error('useCluster: no cluster yet (beforeAll has not run, or it failed)');
    return cluster;
  }
  function connected(): NatsBus {
    if (bus === undefined)
      throw new Error(
        busName === undefined
          ? 'useCluster: no bus (pass the `bus` option)'
          : 'useCluster: no bus yet (beforeAll has not run, or it failed)',
      );
    return bus;
  }

  return {
    get cluster() {
      return started();
    },
    pool,
    get bus() {
      return connected();
    },
    get subjects() {
      return subjects(started().prefix);
    },
    async client(gw, user = uid('u'), claims) {
      const c = started();
      if (pingOnConnect) return connectClient(c, pool, gw, user, claims);
      return pool.connect(c.gateways[gw]!.url, { token: await c.token(user, claims) });
    },
    async api<T = Record<string, unknown>>(op: ApiOp, body: unknown, timeoutMs = 3000): Promise<T> {
      const reply = await connected().request(
        subjects(started().prefix).api(op),
        typeof body === 'string' ? body : JSON.stringify(body),
        timeoutMs,
      );
      return toJson<T>(reply);
    },
  };
}

/**
 * Connects a client to gateway `gw` and proves the connection usable with a ping round trip. A gateway
 * that drops the socket right after `welcome` fails here with a pointed message instead of failing a
 * later join far from the cause.
 */
export async function connectClient(
  cluster: Cluster,
  pool: ClientPool,
  gw: number,
  user = uid('u'),
  claims?: Record<string, unknown>,
): Promise<TestClient> {
  const gateway = cluster.gateways[gw]!;
  const c = await pool.connect(gateway.url, { token: await cluster.token(user, claims) });
  try {
    await c.ping(3000);
  } catch (e) {
    throw new Error(
      `gateway ${gateway.nodeId} dropped connection ${c.conn} right after its welcome (${c.describeClose()}). ` +
        'A 1006 with no close frame here is the signature of uWebSockets.js closing a socket upgraded inside ' +
        'res.cork() after an async upgrade when the open handler sends (uNetworking/uWebSockets#1928).',
      { cause: e },
    );
  }
  return c;
}
