// Redis stalls (SIGSTOP: the socket stays open, nothing answers) under traffic, longer than the request
// timeout and the slot lease. While it is stopped nothing can be stored, so no request sent during the
// stall may be answered `ok` before it resumes: the answers are `unavailable` (the gateway's request
// timeout). After SIGCONT the service comes back by itself, and the history checker finds every ok'd
// pub with every member and every ok'd dm with its recipient, once per seq, in order, acknowledged.
import { expect, it } from 'vitest';
import { uid } from '../harness/cluster.js';
import { History, type Sender } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { roomsByOwner, waitBalanced } from '../fault/kit.js';
import { ENV, REQUEST_TIMEOUT_MS } from './env.js';

const PAUSE_AFTER_MS = 1500;
/** Past the request timeout (so stalled requests are answered while Redis is still stopped) and the lease. */
const PAUSE_MS = 4000;
const RUN_MS = PAUSE_AFTER_MS + PAUSE_MS + 2000;
const ANSWER_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 3000;
const SETTLE_MS = 12_000;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: ENV,
  pingOnConnect: true,
  ready: (c) => waitBalanced(c),
  // A test that fails during the pause leaves Redis stopped: resume it so the cluster can stop.
  beforeStop: (c) => c.redis.resume(),
});
const { client } = suite;

it('while Redis is stopped nothing is answered ok; after SIGCONT every ok’d pub and dm is delivered in order and acknowledged', async () => {
  const { cluster } = suite;
  const rooms = [...roomsByOwner(cluster, 1, 'rp').values()].flat();
  const history = new History();
  for (const gw of [0, 1]) {
    const m = await client(gw);
    history.watch(m, `member${gw}`);
    for (const room of rooms) await history.join(m, `member${gw}`, room);
  }
  const recipients = [uid('rcpt'), uid('rcpt'), uid('rcpt'), uid('rcpt')];
  for (const [i, user] of recipients.entries()) history.watch(await client(i % 2, user), user);
  const pubSenders: Sender[] = [{ name: 'p0', client: await client(0) }, { name: 'p1', client: await client(1) }];
  const dmSenders: Sender[] = [{ name: 'd0', client: await client(0) }, { name: 'd1', client: await client(1) }];

  const loop = { durationMs: RUN_MS, everyMs: 25, maxInFlight: 200, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: 8000, resendAfterMs: 250 };
  const startedAt = Date.now();
  const traffic = Promise.all([
    history.sendFor({ ...loop, op: 'pub', senders: pubSenders, targets: rooms }),
    history.sendFor({ ...loop, op: 'dm', senders: dmSenders, targets: recipients }),
  ]);
  await waitFor(() => Date.now() - startedAt >= PAUSE_AFTER_MS, PAUSE_AFTER_MS + 1000, 'the pause point');
  cluster.redis.pause();
  const pausedAt = Date.now();
  await waitFor(() => Date.now() - pausedAt >= PAUSE_MS, PAUSE_MS + 1000, 'the end of the pause');
  cluster.redis.resume();
  const resumedAt = Date.now();
  await traffic;

  // Sent while Redis was stopped and answered before it resumed: never ok.
  const duringPause = history.sends.filter((x) => x.sentAtMs >= pausedAt && x.answeredAtMs !== undefined && x.answeredAtMs < resumedAt);
  expect(duringPause.filter((x) => x.outcome?.kind === 'ok').map((x) => `${x.op} ${x.mid} ok'd ${x.answeredAtMs! - pausedAt} ms into the pause: ${JSON.stringify(x.outcome)}`)).toEqual([]);
  expect(duringPause.length, 'requests sent and answered during the pause').toBeGreaterThan(0);
  expect(new Set(duringPause.map((x) => (x.outcome?.kind === 'err' ? x.outcome.code : x.outcome?.kind)))).toEqual(new Set(['unavailable']));
  // Every request answered once, errors only `unavailable`; every message ok'd in the end.
  expect(history.answerProblems(['unavailable'], [...pubSenders, ...dmSenders].map((s) => s.client))).toEqual([]);
  const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
  expect(history.sends.filter((x) => !okd.has(x.mid)).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual([]);

  for (const room of rooms) await history.pubUntilOk(pubSenders[0]!.client, 'closer', room, 10_000, { tag: 'final' });
  const result = await history.settle(SETTLE_MS);
  const t0 = history.events[0]!.atMs;
  if (result.problems.length > 0) {
    console.error(`Redis paused +${pausedAt - t0}ms, resumed +${resumedAt - t0}ms`);
    history.logProblems(result, 4, t0);
  }
  console.info('redis-pause:', {
    pausedMs: resumedAt - pausedAt,
    answeredDuringPause: duringPause.reduce<Record<string, number>>((a, x) => {
      const k = x.outcome?.kind === 'err' ? `err:${x.outcome.code}` : String(x.outcome?.kind);
      return { ...a, [k]: (a[k] ?? 0) + 1 };
    }, {}),
    pubs: history.summary('pub'),
    dms: history.summary('dm'),
    recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
    firstOkAfterResumeMs: Math.min(...history.sends.filter((x) => x.outcome?.kind === 'ok' && x.answeredAtMs! >= resumedAt).map((x) => x.answeredAtMs! - resumedAt)),
  });
  expect(result.lines()).toEqual([]);
}, 60_000);
