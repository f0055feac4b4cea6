// Guarantees 1 and 2 across a NATS restart under traffic, judged by the history checker. nats-server is
// restarted on its port while members, recipients (acking everything) and reliable senders (resending
// errors with the same mid) stay connected to both gateways. Whatever the restart swallowed (requests,
// replies, fan-outs, first deliveries, acks in flight) must be repaired: every ok'd pub reaches every
// member and every ok'd dm its recipient, nothing stored twice, nothing out of order, every dm acked.
import { expect, it } from 'vitest';
import type { TestClient } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { History, type Sender } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { allReady, roomsByOwner, waitBalanced } from '../fault/kit.js';
import { ENV } from './env.js';

const RUN_MS = 6000;
const RESTART_AFTER_MS = 1500;
const ANSWER_TIMEOUT_MS = 6000;
const SETTLE_MS = 12_000;
/** Client reconnect wait (250 ms + up to 250 ms jitter, a few attempts) plus a request timeout. */
const BACK_BOUND_MS = 5000;

const suite = useCluster({ gateways: 2, routers: 2, env: ENV, pingOnConnect: true, ready: (c) => waitBalanced(c) });
const { client } = suite;

it('after nats-server restarts, every ok’d pub and dm is delivered once per seq, in order, and every dm acknowledged', async () => {
  const { cluster } = suite;
  const rooms = [...roomsByOwner(cluster, 2, 'nr').values()].flat();
  const history = new History();
  for (const gw of [0, 1]) {
    const m = await client(gw);
    history.watch(m, `member${gw}`);
    for (const room of rooms) await history.join(m, `member${gw}`, room);
  }
  const recipients = [uid('rcpt'), uid('rcpt'), uid('rcpt'), uid('rcpt')];
  const conns: TestClient[] = [];
  for (const [i, user] of recipients.entries()) {
    const c = await client(i % 2, user);
    history.watch(c, user);
    conns.push(c);
  }
  const pubSenders: Sender[] = [{ name: 'p0', client: await client(0) }, { name: 'p1', client: await client(1) }];
  const dmSenders: Sender[] = [{ name: 'd0', client: await client(0) }, { name: 'd1', client: await client(1) }];

  const loop = { durationMs: RUN_MS, everyMs: 20, maxInFlight: 100, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: 8000 };
  const startedAt = Date.now();
  const traffic = Promise.all([
    history.sendFor({ ...loop, op: 'pub', senders: pubSenders, targets: rooms }),
    history.sendFor({ ...loop, op: 'dm', senders: dmSenders, targets: recipients }),
  ]);
  await waitFor(() => Date.now() - startedAt >= RESTART_AFTER_MS, RESTART_AFTER_MS + 1000, 'the restart point');
  const restartBegan = Date.now();
  await cluster.nats.restart();
  const restartedAt = Date.now();
  await waitFor(() => history.dmOks().some((d) => d.sentAtMs >= restartedAt) && history.oks().some((p) => p.sentAtMs >= restartedAt), BACK_BOUND_MS, 'an ok for a pub and a dm sent after the restart');
  const backAfterMs = Date.now() - restartedAt;
  await waitFor(() => allReady(cluster), BACK_BOUND_MS, 'every node ready after the NATS restart');
  await traffic;

  // Nobody had to reconnect; every request was answered, errors only `unavailable`, and every message ok'd in the end.
  for (const c of [...conns, ...pubSenders.map((s) => s.client), ...dmSenders.map((s) => s.client)]) expect(c.isOpen).toBe(true);
  expect(history.answerProblems(['unavailable'], [...pubSenders, ...dmSenders].map((s) => s.client))).toEqual([]);
  const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
  expect(history.sends.filter((x) => !okd.has(x.mid)).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual([]);

  for (const room of rooms) await history.pubUntilOk(pubSenders[0]!.client, 'closer', room, 10_000, { tag: 'final' });
  const result = await history.settle(SETTLE_MS);
  if (result.problems.length > 0) {
    console.error(`NATS restart began +${restartBegan - history.events[0]!.atMs}ms, done +${restartedAt - history.events[0]!.atMs}ms`);
    history.logProblems(result, 4);
  }
  console.info('nats-restart:', {
    restartTookMs: restartedAt - restartBegan,
    backAfterMs,
    pubs: history.summary('pub'),
    dms: history.summary('dm'),
    recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
  });
  expect(result.lines()).toEqual([]);
}, 60_000);
