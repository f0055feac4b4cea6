// The client SDK against a real multi-process cluster (2 gateways, 2 routers, nats-server, redis-server):
// a gateway killed with SIGKILL under active clients (they come back on the other gateway within a bound,
// at moments spread by jitter, and the application loses and repeats nothing: the history checker judges
// what each application saw), a gateway draining on SIGTERM, a gateway frozen (SIGSTOP: only the
// heartbeat notices), a backend disconnecting a user (4011 ends the client), backend requests, and Redis
// losing history under joined rooms (the `epoch` frame: `unrecovered`, then the new epoch's messages).
import { afterEach, expect, it } from 'vitest';
import type { Unrecovered } from '../../client/index.js';
import { uid, type Node } from '../harness/cluster.js';
import { History } from '../harness/history.js';
import { recordApp, SdkPool, type SdkClient } from '../harness/sdk.js';
import { useCluster } from '../harness/suite.js';
import { prng } from '../harness/random.js';
import { sleep, waitFor } from '../harness/wait.js';
import { waitBalanced } from '../harness/nodes.js';

const HEARTBEAT_MS = 1000;
/** The reconnect backoff of the clients: the first delay after a loss is uniform in [0, base). */
const RECONNECT = { baseMs: 1000, maxMs: 4000 };

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: {
    RTGW_HEARTBEAT_MS: String(HEARTBEAT_MS),
    RTGW_DM_ACK_TIMEOUT_MS: '500',
    RTGW_DRAIN_SECONDS: '2',
    RTGW_PRESENCE_TTL_MS: '3000',
  },
  bus: 'rtgw-sdk-cluster-test',
  logLines: 60,
  ready: (c) => waitBalanced(c),
});
const pool = new SdkPool({ reconnect: RECONNECT });
afterEach(() => pool.closeAll());

interface Member {
  who: string;
  user: string;
  c: SdkClient;
}

/** SDK clients for `n` fresh users, each with `urls(i)` and joined to `room`, recorded into `history`. */
async function members(
  history: History,
  room: string,
  n: number,
  urls: (i: number) => string[],
  tag: string,
): Promise<Member[]> {
  const out: Member[] = [];
  for (let i = 0; i < n; i++) {
    const who = `${tag}${i}`;
    const user = uid(who);
    const c = pool.create({ url: urls(i), getToken: () => suite.cluster.token(user) });
    c.client.join(room);
    recordApp(history, who, c).room(room);
    out.push({ who, user, c });
  }
  await Promise.all(out.map((m) => m.c.client.connect()));
  await Promise.all(out.map((m) => m.c.client.room(room)!.joined));
  return out;
}

/**
 * Every member publishes to `room` every ~`everyMs` and sends a dm to another member every third time,
 * until `stopAt`; each send and answer is recorded. Resolves once every send has its answer.
 */
async function traffic(history: History, room: string, ms: Member[], stopAt: number, everyMs: number): Promise<void> {
  const answers: Promise<void>[] = [];
  const record = (rec: ReturnType<History['recordSend']>, sent: Promise<number>) =>
    answers.push(
      sent.then(
        (seq) => history.recordAnswer(rec, { kind: 'ok', seq }),
        (e: Error & { code?: string }) =>
          history.recordAnswer(rec, { kind: 'err', code: e.code ?? 'none', msg: e.message }),
      ),
    );
  await Promise.all(
    ms.map(async (m, i) => {
      // Seeded pauses, one generator per member: the same spread on every run.
      const jitter = prng(`sdk-traffic-${m.who}`);
      for (let n = 0; Date.now() < stopAt; n++) {
        const rec = history.recordSend('pub', m.who, room);
        record(rec, m.c.client.publish(room, { id: rec.mid }, { mid: rec.mid }));
        if (n % 3 === 0) {
          const to = ms[(i + 1 + n) % ms.length]!;
          const dm = history.recordSend('dm', m.who, to.user);
          record(dm, m.c.client.sendDirect(to.user, { id: dm.mid }, { mid: dm.mid }));
        }
        await sleep(everyMs * (0.5 + jitter()));
      }
    }),
  );
  await Promise.all(answers);
}

/** The checker's verdict on what the applications saw, with app-level repeats (which the SDK must drop). */
async function verdict(history: History): Promise<string[]> {
  const r = await history.settle(15_000, 'every ok’d message handed to its applications', { withoutEcho: true });
  const repeats = [...Object.entries(r.rooms), ...Object.entries(r.recipients)]
    .filter(([, v]) => v.stats.redelivered > 0)
    .map(([k, v]) => `${k}: ${v.stats.redelivered} repeated to an application`);
  return [...history.answerProblems([]), ...r.lines(), ...repeats];
}

it('a gateway killed with SIGKILL: its SDK clients come back on the other within a bound, spread by jitter, and no application loses or repeats a message', async () => {
  const { cluster } = suite;
  const [A, B] = [cluster.gateways[0]!, cluster.gateways[1]!];
  const room = uid('sdk-kill');
  const history = new History();
  const onA = await members(history, room, 24, () => [A.url, B.url], 'a');
  const onB = await members(history, room, 6, () => [B.url, A.url], 'b');
  const everyone = [...onA, ...onB];
  const unrecovered: [string, Unrecovered][] = [];
  for (const m of everyone) m.c.client.room(room)!.on('unrecovered', (u) => unrecovered.push([m.who, u]));
  const disconnectsBefore = onA.map((m) => m.c.eventsOf('disconnected').length);

  const startedAt = Date.now();
  const run = traffic(history, room, everyone, startedAt + 7000, 200);
  await sleep(2000); // the kill point, with traffic running
  const killedAt = Date.now();
  A.kill('SIGKILL');
  await A.exited;

  // Each of A's clients comes back on B; B's never noticed.
  await waitFor(
    () => onA.every((m) => m.c.eventsOf('connected').some((e) => e.at > killedAt)),
    RECONNECT.baseMs + 5000,
    'every client of A reconnected',
  );
  const back = onA.map((m) => m.c.eventsOf('connected').find((e) => e.at > killedAt)!);
  const firstDelays = onA.map((m, i) => m.c.eventsOf('disconnected')[disconnectsBefore[i]!]!.ev.reconnectInMs);
  const afterMs = back.map((e) => e.at - killedAt).sort((x, y) => x - y);
  for (const e of back) expect(e.ev).toMatchObject({ url: B.url, reconnected: true });
  for (const m of onB) expect(m.c.eventsOf('disconnected')).toEqual([]);
  await run;
  const problems = await verdict(history);

  console.info('sdk gateway kill:', {
    reconnectedAfterMs: afterMs,
    firstDelaysMs: firstDelays.sort((x, y) => x - y),
    outcomes: history.summary(),
    unrecovered: unrecovered.length,
  });
  expect(problems).toEqual([]);
  expect(unrecovered).toEqual([]);
  // Bounded: the first retry waits less than the backoff base; all of them were back well within it plus slack.
  for (const d of firstDelays) expect(d).toBeLessThan(RECONNECT.baseMs);
  expect(afterMs.at(-1)!).toBeLessThan(RECONNECT.baseMs + 3000);
  // Spread, not synchronized: a wide range, and no tenth of the backoff window holds half of them.
  expect(afterMs.at(-1)! - afterMs[0]!).toBeGreaterThan(RECONNECT.baseMs / 3);
  const crowd = Math.max(...afterMs.map((t) => afterMs.filter((u) => u >= t && u < t + RECONNECT.baseMs / 10).length));
  expect(crowd).toBeLessThanOrEqual(onA.length / 2);
}, 60_000);

/** A fresh gateway X beside gateway B, with `onX` members on X (then B) and `onB` on B (then X), in one room. */
async function fresh(tag: string, onX: number, onB: number) {
  const [X, B] = [await suite.cluster.add('gateway'), suite.cluster.gateways[1]!];
  const room = uid(`sdk-${tag}`);
  const history = new History();
  const x = await members(history, room, onX, () => [X.url, B.url], tag);
  const b = await members(history, room, onB, () => [B.url, X.url], 'b');
  return { X, B, room, history, x, b };
}

it('a gateway draining on SIGTERM: its SDK clients get `drain` and move to the other gateway within the window, losing nothing', async () => {
  const { X: C, B, room, history, x: onC, b: onB } = await fresh('c', 8, 2);
  const startedAt = Date.now();
  const run = traffic(history, room, [...onC, ...onB], startedAt + 4000, 200);
  await sleep(1000); // the drain point, with traffic running
  const drainAt = Date.now();
  const exited = C.stop();
  await waitFor(
    () => onC.every((m) => m.c.eventsOf('connected').some((e) => e.at > drainAt)),
    5000,
    'every client of C reconnected',
  );
  expect(await exited).toBe(0);
  for (const m of onC) {
    expect(m.c.eventsOf('drain').map((e) => e.ev)).toEqual([{ ms: 2000 }]);
    const d = m.c.eventsOf('disconnected').at(-1)!;
    expect(d.ev).toMatchObject({ code: 1001, reconnectInMs: 0 });
    expect(d.at - drainAt).toBeLessThan(2000 + 1000);
    expect(m.c.eventsOf('connected').at(-1)!.ev.url).toBe(B.url);
  }
  await run;
  expect(await verdict(history)).toEqual([]);
}, 60_000);

it('a gateway frozen with SIGSTOP: only the heartbeat can tell, and its SDK clients move to the other gateway', async () => {
  const { X: D, B, room, history, x: onD, b: onB } = await fresh('d', 4, 2);
  let frozen: Node | undefined;
  try {
    D.pause();
    frozen = D;
    const pausedAt = Date.now();
    await waitFor(
      () => onD.every((m) => m.c.eventsOf('connected').some((e) => e.at > pausedAt)),
      2 * HEARTBEAT_MS + RECONNECT.baseMs + 3000,
      'every client of D reconnected',
    );
    for (const m of onD) {
      expect(m.c.eventsOf('disconnected').at(-1)!.ev).toMatchObject({
        code: 1006,
        reason: 'no answer from the server',
      });
      expect(m.c.eventsOf('connected').at(-1)!.ev.url).toBe(B.url);
    }
    // Everything published after the freeze reaches everyone, through B.
    const startedAt = Date.now();
    await traffic(history, room, [...onD, ...onB], startedAt + 1500, 200);
    expect(await verdict(history)).toEqual([]);
  } finally {
    frozen?.kill('SIGKILL');
  }
}, 60_000);

it('a backend disconnecting the user (4011) ends the client for good; backend requests answer through send()', async () => {
  const { cluster, bus, subjects } = suite;
  const B = cluster.gateways[1]!;
  const user = uid('kick');
  const c = pool.create({ url: B.url, getToken: () => cluster.token(user) });
  await c.client.connect();

  const route = `sdk.${uid('echo')}`;
  const sub = bus.subscribe(subjects.route(route), (msg) => {
    const req = JSON.parse(Buffer.from(msg.data).toString()) as { user: string; data: unknown };
    msg.respond(JSON.stringify({ user: req.user, echo: req.data }));
  });
  await bus.flush();
  try {
    expect(await c.client.send(route, { ping: 1 })).toEqual({ user, echo: { ping: 1 } });
    await expect(c.client.send(`sdk.${uid('nobody')}`, {})).rejects.toMatchObject({ code: 'no_route' });
  } finally {
    sub.unsubscribe();
  }

  expect(await suite.api('disconnect', { user, reason: 'banned' })).toEqual({ count: 1 });
  const closed = await c.event('closed', 3000);
  expect(closed).toEqual({ code: 4011, reason: 'banned' });
  expect(c.client.state).toBe('closed');
  await sleep(RECONNECT.baseMs);
  expect(c.eventsOf('connecting')).toHaveLength(1);
  await expect(c.client.publish(uid('room'), 1)).rejects.toMatchObject({ code: 'closed' });
});

it('Redis losing history under joined SDK clients: `unrecovered` (why: epoch), then every message of the new epoch once', async () => {
  const { cluster } = suite;
  const B = cluster.gateways[1]!;
  const room = uid('sdk-epoch');
  const history = new History();
  const ms = await members(history, room, 3, () => [B.url], 'e');
  const unrecovered: Unrecovered[] = [];
  for (const m of ms) m.c.client.room(room)!.on('unrecovered', (u) => unrecovered.push(u));
  for (let i = 0; i < 3; i++) {
    const rec = history.recordSend('pub', ms[0]!.who, room, { tag: 'old' });
    history.recordAnswer(rec, {
      kind: 'ok',
      seq: await ms[0]!.c.client.publish(room, { id: rec.mid }, { mid: rec.mid }),
    });
  }
  const oldEpoch = ms[1]!.c.client.room(room)!.position.epoch;
  await waitFor(() => ms.every((m) => m.c.client.room(room)!.position.seq === 3), 3000, 'the old epoch delivered');

  await cluster.redis.restart();
  const after = new History();
  for (const m of ms) recordApp(after, m.who, m.c).room(room);
  for (let i = 0; i < 4; i++) {
    const rec = after.recordSend('pub', ms[0]!.who, room);
    // The first tries after the restart may be refused (`unavailable`): the outbox sends them again.
    after.recordAnswer(rec, {
      kind: 'ok',
      seq: await ms[0]!.c.client.publish(room, { id: rec.mid }, { mid: rec.mid }),
    });
  }
  // Every member, the publisher too (its position is past its own messages), hears of the loss once.
  await waitFor(
    () => unrecovered.length === 3 && ms.every((m) => m.c.client.room(room)!.position.seq === 4),
    10_000,
    'the new epoch delivered',
  );
  expect(unrecovered.map((u) => [u.why, u.since, u.epoch])).toEqual([
    ['epoch', 3, oldEpoch],
    ['epoch', 3, oldEpoch],
    ['epoch', 3, oldEpoch],
  ]);
  expect(new Set(unrecovered.map((u) => u.newEpoch)).size).toBe(1);
  expect(unrecovered[0]!.newEpoch).not.toBe(oldEpoch);
  const r = after.check({ withoutEcho: true });
  expect(r.lines()).toEqual([]);
  expect(r.rooms[room]!.stats).toMatchObject({ ok: 4, redelivered: 0 });
}, 60_000);
