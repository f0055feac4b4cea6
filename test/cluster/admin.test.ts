// Admin endpoints of every role: /healthz, /readyz (including 503 with a reason when Redis or NATS is
// gone, on nodes of their own so the shared cluster stays whole), /metrics names, growth and labels,
// and the SIGTERM sequence (readiness off at once, drain, 1001, exit 0).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClientPool, type TestClient } from '../harness/client.js';
import { httpGet, startCluster, startNode, tcpOpen, uid, type Cluster, type Node } from '../harness/cluster.js';
import { startNats } from '../harness/nats.js';
import { startRedis } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';
import { metrics, sum, type Exposition } from '../harness/metrics.js';

let cluster: Cluster;
let standalone: Node;
const pool = new ClientPool();
const extraNodes: Node[] = [];

beforeAll(async () => {
  cluster = await startCluster({ gateways: 1, routers: 1 });
  // A memory-engine standalone (no NATS/Redis URLs), with a key so it is not in development mode.
  standalone = await startNode('standalone', { RTGW_JWT_SECRET: cluster.secret, RTGW_NODE_ID: uid('standalone') });
  extraNodes.push(standalone);
}, 60_000);
afterAll(async () => {
  await pool.closeAll();
  await Promise.all(extraNodes.map((n) => n.stop(5000)));
  await cluster?.stop();
});
beforeEach(({ onTestFailed }) =>
  onTestFailed(() =>
    console.error(
      cluster.logs(),
      ...extraNodes.map((n) => `--- ${n.role} ${n.pid}\n${n.logs().slice(-60).join('\n')}`),
    ),
  ),
);
afterEach(() => pool.closeAll());

const roles = () => [cluster.gateways[0]!, cluster.routers[0]!, standalone];

describe('/healthz and /readyz', () => {
  it('answers /healthz 200 on every role', async () => {
    for (const n of roles()) expect((await httpGet(`${n.adminUrl}/healthz`)).status, n.role).toBe(200);
  });

  it('answers /readyz 200 on a healthy node of every role', async () => {
    for (const n of roles()) expect((await httpGet(`${n.adminUrl}/readyz`)).status, n.role).toBe(200);
  });

  it('answers /readyz 503 with a JSON reason while Redis, then NATS, is gone, and 200 again once it is back', async () => {
    const [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const nodes: Node[] = [];
    try {
      const env = {
        RTGW_NATS_URL: nats.url,
        RTGW_REDIS_URL: redis.url,
        RTGW_JWT_SECRET: cluster.secret,
        RTGW_LOG_LEVEL: 'info',
      };
      const prefix = uid('rdy').replace('-', '');
      const started = await Promise.allSettled([
        startNode('router', { ...env, RTGW_NATS_PREFIX: prefix, RTGW_NODE_ID: `${prefix}-r`, RTGW_LEASE_MS: '1000' }),
        startNode('standalone', {
          ...env,
          RTGW_NATS_PREFIX: `${prefix}s`,
          RTGW_NODE_ID: `${prefix}-s`,
          RTGW_LEASE_MS: '1000',
        }),
      ]);
      for (const s of started) {
        if (s.status !== 'fulfilled') continue;
        nodes.push(s.value);
        extraNodes.push(s.value);
      }
      for (const s of started) if (s.status === 'rejected') throw s.reason;
      const gwNode = await startNode('gateway', { ...env, RTGW_NATS_PREFIX: prefix, RTGW_NODE_ID: `${prefix}-g` });
      nodes.push(gwNode);
      extraNodes.push(gwNode);

      const readyz = (n: Node) => httpGet(`${n.adminUrl}/readyz`);
      const allAre = async (status: number) => (await Promise.all(nodes.map(readyz))).every((r) => r.status === status);

      for (const [dep, server, name] of [
        ['Redis', redis, /redis/i],
        ['NATS', nats, /nats/i],
      ] as const) {
        await server.kill('SIGKILL');
        await waitFor(() => allAre(503), 15_000, `/readyz 503 on every role after ${dep} died`);
        for (const n of nodes) {
          const r = await readyz(n);
          expect(r.status, `${n.role} readyz`).toBe(503);
          expect(r.json, `${n.role} readyz body is JSON: ${r.body}`).toBeTypeOf('object');
          expect(r.body, `${n.role} readyz names ${dep}`).toMatch(name);
          expect((await httpGet(`${n.adminUrl}/healthz`)).status, `${n.role} healthz while ${dep} is gone`).toBe(200);
          expect(n.hasExited, `${n.role} exited when ${dep} went away`).toBe(false);
        }
        await server.restart();
        await waitFor(() => allAre(200), 30_000, `/readyz 200 on every role after ${dep} came back`);
      }
    } finally {
      await Promise.all(nodes.map((n) => n.stop(5000)));
      await Promise.all([nats.stop(), redis.stop()]);
    }
  }, 120_000);
});

describe('readiness at startup', () => {
  it.each(['gateway', 'standalone'] as const)(
    'answers /readyz 200 on a %s only once its public port accepts connections',
    async (role) => {
      // Waits only for /healthz, then watches the first /readyz 200 and checks the public port at that moment.
      const env = role === 'gateway' ? { ...cluster.env } : { RTGW_JWT_SECRET: cluster.secret };
      const node = await startNode(role, { ...env, RTGW_NODE_ID: uid('late') }, { waitReady: false });
      extraNodes.push(node);
      // A tight loop (no sleep): the window between "ready" and "listening" may be a few milliseconds.
      const deadline = Date.now() + 20_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        status = await httpGet(`${node.adminUrl}/readyz`, 500).then(
          (r) => r.status,
          () => 0,
        );
      }
      expect(status, 'first /readyz 200').toBe(200);
      expect(await tcpOpen(node.port), `public port ${node.port} refused connections while /readyz said 200`).toBe(
        true,
      );
      await node.stop();
    },
  );
});

describe('SIGTERM', () => {
  it('turns readiness off at once, sends drain and closes clients with 1001, then exits 0', async () => {
    const node = await startNode('standalone', {
      RTGW_JWT_SECRET: cluster.secret,
      RTGW_DRAIN_SECONDS: '2',
      RTGW_NODE_ID: uid('term'),
    });
    extraNodes.push(node);
    const token = await cluster.token(uid('u'), {}, { iss: null, aud: null });
    const c = await pool.connect(node.url, { token });
    node.kill('SIGTERM');
    // "At once": the signal is asynchronous, so allow the node a moment to take it, not the drain time.
    let last = '';
    await waitFor(
      async () => {
        const r = await httpGet(`${node.adminUrl}/readyz`, 500).catch((e: unknown) => ({
          status: -1,
          body: String(e),
        }));
        last = `${r.status} ${r.body}`;
        return r.status === 503;
      },
      1000,
      'readyz 503 after SIGTERM',
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; last /readyz: ${last}`);
    });
    const drain = await c.next((f) => f.t === 'drain', 5000, 0, 'drain');
    expect(typeof drain.ms).toBe('number');
    expect((await c.closed).code).toBe(1001);
    expect(await node.exited).toBe(0);
  });
});

// -----------------------------------------------------------------------------------------------------
// /metrics

const CONTRACT_METRICS: [string, string][] = [
  ['rtgw_connections', 'gauge'],
  ['rtgw_connections_opened_total', 'counter'],
  ['rtgw_connections_rejected_total', 'counter'],
  ['rtgw_frames_received_total', 'counter'],
  ['rtgw_frames_sent_total', 'counter'],
  ['rtgw_delivery_latency_seconds', 'histogram'],
  ['rtgw_retry_queue_size', 'gauge'],
  ['rtgw_dead_letters_total', 'counter'],
  ['rtgw_slow_consumer_disconnects_total', 'counter'],
];
const GATEWAY_METRICS = [
  'rtgw_connections',
  'rtgw_connections_opened_total',
  'rtgw_connections_rejected_total',
  'rtgw_frames_received_total',
  'rtgw_frames_sent_total',
  'rtgw_delivery_latency_seconds',
  'rtgw_slow_consumer_disconnects_total',
];
const ROUTER_METRICS = ['rtgw_retry_queue_size', 'rtgw_dead_letters_total'];
const PROCESS_METRICS = [
  'process_cpu_user_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
];

describe('/metrics', () => {
  it('lists every metric the contract names, with its type, and the default process metrics on every role', async () => {
    const [gw, router, sa] = await Promise.all(roles().map(metrics));
    for (const name of GATEWAY_METRICS) expect(gw!.types.has(name), `gateway has ${name}`).toBe(true);
    for (const name of ROUTER_METRICS) expect(router!.types.has(name), `router has ${name}`).toBe(true);
    for (const [name, type] of CONTRACT_METRICS) {
      expect(sa!.types.get(name), `standalone ${name}`).toBe(type);
      for (const e of [gw!, router!]) if (e.types.has(name)) expect(e.types.get(name), name).toBe(type);
    }
    for (const e of [gw!, router!, sa!]) for (const name of PROCESS_METRICS) expect(e.types.has(name), name).toBe(true);
    // rtgw's own metrics all start with rtgw_
    for (const e of [gw!, router!, sa!]) {
      for (const name of e.types.keys())
        expect(/^(rtgw_|process_|nodejs_)/.test(name), `unexpected metric ${name}`).toBe(true);
    }
  });

  it('counts grow after traffic, and no label value is a room, user or connection', async () => {
    const g = cluster.gateways[0]!;
    const before = await metrics(g);
    const room = uid('metricsroom');
    const [ua, ub] = [uid('metricsuser'), uid('metricsuser')];
    const a: TestClient = await pool.connect(g.url, { token: await cluster.token(ua) });
    const b: TestClient = await pool.connect(g.url, { token: await cluster.token(ub) });
    await a.ok({ t: 'join', room });
    await b.ok({ t: 'join', room });
    for (let i = 0; i < 3; i++) await a.ok({ t: 'pub', room, data: i });
    await b.waitForMsgs(room, 3);
    const refusedToken = await pool.refused(g.url, { token: 'garbage' });
    expect(refusedToken.code).toBe(4001);
    const refusedOrigin = await pool.refused(g.url, {
      token: await cluster.token(ua),
      origin: 'https://not-allowed.example.test',
    });
    expect(refusedOrigin.status).toBe(403);

    const grew = (after: Exposition, name: string, labels: Record<string, string>, by: number) =>
      sum(after, name, labels) - sum(before, name, labels) >= by;
    const checks: [string, Record<string, string>, number][] = [
      ['rtgw_connections_opened_total', {}, 2],
      ['rtgw_connections_rejected_total', {}, 2],
      ['rtgw_frames_received_total', { type: 'join' }, 2],
      ['rtgw_frames_received_total', { type: 'pub' }, 3],
      ['rtgw_frames_sent_total', { type: 'welcome' }, 2],
      ['rtgw_frames_sent_total', { type: 'ok' }, 5],
      ['rtgw_frames_sent_total', { type: 'msg' }, 3],
      ['rtgw_delivery_latency_seconds_count', {}, 3],
    ];
    let after = before;
    await waitFor(
      async () => {
        after = await metrics(g);
        return checks.every(([n, l, by]) => grew(after, n, l, by));
      },
      3000,
      'metrics to count the traffic',
    ).catch(() => undefined); // the expectations below say which one did not grow
    for (const [name, labels, by] of checks) {
      expect(
        sum(after, name, labels) - sum(before, name, labels),
        `${name}${JSON.stringify(labels)} grew`,
      ).toBeGreaterThanOrEqual(by);
    }
    expect(sum(after, 'rtgw_connections'), 'rtgw_connections with two open').toBeGreaterThanOrEqual(2);
    expect(sum(after, 'rtgw_delivery_latency_seconds_sum')).toBeGreaterThanOrEqual(0);

    // Labels: fixed sets only. No room, user or connection id anywhere, on any node.
    const forbidden = [room, ua, ub, a.conn, b.conn];
    const expositions = await Promise.all([...cluster.nodes, standalone].map(metrics));
    for (const e of expositions) {
      for (const s of e.samples) {
        for (const [k, v] of Object.entries(s.labels)) {
          expect(['room', 'user', 'conn', 'connection', 'sub'], `label name ${k} on ${s.name}`).not.toContain(k);
          for (const f of forbidden) {
            const carries = v === f || (f.length >= 6 && v.includes(f));
            expect(carries, `${s.name}{${k}="${v}"} carries ${f}`).toBe(false);
          }
        }
      }
    }
    // And the connection gauge falls back when they leave.
    const open = sum(after, 'rtgw_connections');
    await a.close();
    await b.close();
    await waitFor(
      async () => sum(await metrics(g), 'rtgw_connections') <= open - 2,
      3000,
      'rtgw_connections to fall by 2',
    );
  });
});
