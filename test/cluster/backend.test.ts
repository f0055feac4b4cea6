// Backend services over NATS against a real cluster: the api.* requests, client `send` to routes served
// by a test responder, and the connect/disconnect events. NATS is reached only through shared/bus/nats.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { toJson, toText, type BusMsg, type Subscription } from '../../shared/bus/bus.js';
import { uid } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';

const REQUEST_TIMEOUT_MS = 800;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: { RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  bus: 'rtgw-backend-test',
  closeClientsAfterEach: true,
});
const { client, api } = suite;
const subs: Subscription[] = [];

// Registered after useCluster's hooks, so it runs before their afterEach closes the clients.
afterEach(() => {
  for (const s of subs.splice(0)) s.unsubscribe();
});

/** Subscribes for the test's duration; returns the list the messages are collected into. */
function collect(subject: string, onMsg?: (m: BusMsg) => void): { subject: string; data: unknown }[] {
  const got: { subject: string; data: unknown }[] = [];
  subs.push(
    suite.bus.subscribe(subject, (m) => {
      let data: unknown;
      try {
        data = toJson(m.data);
      } catch {
        data = toText(m.data);
      }
      got.push({ subject: m.subject, data });
      onMsg?.(m);
    }),
  );
  return got;
}

describe('api.publish', () => {
  it('answers seq and every member on both gateways receives the message with the backend `from`', async () => {
    const room = uid('bp');
    const a = await client(0);
    const b = await client(1);
    await a.ok({ t: 'join', room });
    await b.ok({ t: 'join', room });
    expect(await api('publish', { room, data: { n: 1 }, from: 'billing' })).toMatchObject({ seq: 1 });
    expect(await api('publish', { room, data: { n: 2 }, from: 'billing', mid: 'bm-2' })).toMatchObject({ seq: 2 });
    for (const m of [a, b]) {
      const msgs = await m.waitForMsgs(room, 2);
      expect(msgs[0]).toMatchObject({ room, seq: 1, from: 'billing', data: { n: 1 } });
      expect(msgs[1]).toMatchObject({ room, seq: 2, from: 'billing', data: { n: 2 }, mid: 'bm-2' });
      expect(typeof msgs[0]!.ts).toBe('number');
    }
  });

  it('publishes a repeated mid only once and answers it with the first seq', async () => {
    const room = uid('bdup');
    const a = await client(1);
    await a.ok({ t: 'join', room });
    const mid = uid('mid');
    const first = await api('publish', { room, data: 'once', from: 'svc', mid });
    const again = await api('publish', { room, data: 'twice', from: 'svc', mid });
    expect(first.seq).toBe(1);
    expect(again.seq).toBe(first.seq);
    expect(await api('publish', { room, data: 'next', from: 'svc' })).toMatchObject({ seq: 2 });
    const msgs = await a.waitForMsgs(room, 2);
    expect(msgs.map((f) => [f.seq, f.data])).toEqual([
      [1, 'once'],
      [2, 'next'],
    ]);
  });

  it('answers errors as {"error":{"code","msg"}}', async () => {
    const cases: [unknown, string][] = [
      [{ room: 'bad room', data: 1 }, 'bad_request'],
      [{ room: 'a.*', data: 1 }, 'bad_request'],
      [{ data: 1 }, 'bad_request'],
      ['{not json', 'bad_request'],
    ];
    for (const [body, code] of cases) {
      const reply = await api('publish', body);
      expect(reply, JSON.stringify(body)).toEqual({ error: { code, msg: expect.any(String) } });
    }
    const pres = await api('presence', { room: '>' });
    expect(pres).toEqual({ error: { code: 'bad_request', msg: expect.any(String) } });
  });
});

describe('api.dm', () => {
  it('answers seq and delivers a dm frame to the online recipient', async () => {
    const user = uid('dm');
    const c = await client(1, user);
    const res = await api('dm', { to: user, data: { hello: 1 }, from: 'svc' });
    expect(typeof res.seq, `api.dm reply ${JSON.stringify(res)}`).toBe('number');
    const dm = await c.next((f) => f.t === 'dm' && f.seq === res.seq, 5000, 0, 'dm');
    expect(dm).toMatchObject({ from: 'svc', data: { hello: 1 } });
    c.sendJson({ t: 'ack', seq: dm.seq });
    await c.ping();
  });
});

describe('api.presence', () => {
  it('answers distinct users and the connection count', async () => {
    const room = uid('bpr');
    const [u1, u2] = [uid('u1'), uid('u2')];
    const cs = [await client(0, u1), await client(1, u1), await client(1, u2)];
    for (const c of cs) await c.ok({ t: 'join', room });
    await waitFor(async () => (await api('presence', { room })).count === 3, 2000, 'presence count 3');
    const res = await api('presence', { room });
    expect(res.count).toBe(3);
    expect([...(res.users as string[])].sort()).toEqual([u1, u2].sort());
  });
});

describe('api.disconnect', () => {
  it('closes every connection of the user with 4011 and answers their count', async () => {
    const user = uid('gone');
    const victims = [await client(0, user), await client(1, user)];
    const bystander = await client(0);
    const res = await api('disconnect', { user, reason: 'banned' });
    expect(res).toMatchObject({ count: 2 });
    for (const v of victims) expect((await v.closed).code).toBe(4011);
    await bystander.ping();
    expect(bystander.isOpen).toBe(true);
  });

  it('answers count 0 for a user with no connection', async () => {
    expect(await api('disconnect', { user: uid('nobody') })).toMatchObject({ count: 0 });
  });
});

describe('send to routes', () => {
  it('returns the responder data as ok data; the responder sees user, conn and data', async () => {
    const route = `${uid('svc')}.echo`;
    const seen = collect(suite.subjects.route(route), (m) => {
      const body = toJson<Record<string, unknown>>(m.data);
      m.respond(JSON.stringify({ echo: body.data, by: 'echo-svc' }));
    });
    const c = await client(1);
    const res = await c.request({ t: 'send', route, data: { x: [1, 2] } });
    expect(res).toMatchObject({ t: 'ok', data: { echo: { x: [1, 2] }, by: 'echo-svc' } });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.data).toMatchObject({ user: c.user, conn: c.conn, data: { x: [1, 2] } });
  });

  it('answers no_route when nobody serves the route', async () => {
    const c = await client(0);
    expect(await c.request({ t: 'send', route: uid('nobody-serves'), data: 1 })).toMatchObject({
      t: 'err',
      code: 'no_route',
    });
    await c.ping();
  });

  it('answers timeout when the responder never answers', async () => {
    const route = uid('silent');
    const seen = collect(suite.subjects.route(route));
    const c = await client(1);
    const t0 = Date.now();
    const res = await c.request({ t: 'send', route, data: 'hello?' }, 10_000);
    const took = Date.now() - t0;
    expect(res).toMatchObject({ t: 'err', code: 'timeout' });
    expect(seen).toHaveLength(1);
    expect(took).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(took).toBeLessThan(REQUEST_TIMEOUT_MS + 4000);
    await c.ping();
  });
});

describe('events', () => {
  it('publishes events.connect and events.disconnect with user, conn, node and ts', async () => {
    const connects = collect(suite.subjects.event('connect'));
    const disconnects = collect(suite.subjects.event('disconnect'));
    await suite.bus.flush();
    const user = uid('ev');
    const t0 = Date.now();
    const c = await client(1, user);
    const conn = c.conn;
    await waitFor(() => connects.some((e) => (e.data as { user?: string }).user === user), 3000, 'connect event');
    const ev = connects.find((e) => (e.data as { user?: string }).user === user)!.data as Record<string, unknown>;
    expect(ev).toMatchObject({ user, conn, node: suite.cluster.gateways[1]!.nodeId });
    expect(ev.ts).toBeGreaterThanOrEqual(t0 - 5000);
    expect(ev.ts).toBeLessThanOrEqual(Date.now() + 5000);

    await c.close();
    await waitFor(() => disconnects.some((e) => (e.data as { conn?: string }).conn === conn), 3000, 'disconnect event');
    const dev = disconnects.find((e) => (e.data as { conn?: string }).conn === conn)!.data as Record<string, unknown>;
    expect(dev).toMatchObject({ user, conn, node: suite.cluster.gateways[1]!.nodeId });
    expect(typeof dev.ts).toBe('number');
  });
});
