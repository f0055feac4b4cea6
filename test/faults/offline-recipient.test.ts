// Guarantee 2 for recipients that were never connected while dms to them were sent (their retries come
// due and are parked, not spent).
// 1. One connects at the end, to either gateway, once its senders are done: it receives its whole inbox,
//    every ok'd dm, in seq order, each once; it acks, and nothing is retried afterwards, nor replayed
//    on its next connection.
// 2. One connects while its senders are still sending: the pending replay and the live dms must still
//    reach it in seq order (first arrivals increasing), each ok'd one at least once, all acknowledged.
//    Whether live dms actually raced the pending replay of a given connection (were routed to its gateway
//    while the replay was being read) cannot be seen from the client, so it is not claimed: the test logs
//    how many dms were answered ok between the connection's welcome and its first dm, a hint only.
import { describe, expect, it } from 'vitest';
import { uid } from '../harness/cluster.js';
import { History, type CheckResult, type Sender } from '../harness/history.js';
import { expectRetryQueueEmpty, metricSum } from '../harness/nodes.js';
import { prng, TEST_SEED } from '../harness/random.js';
import { ACK_TIMEOUT_MS, FAST_ENV, MAX_BACKOFF_MS, useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const RUN_MS = 3000;
/** The busy recipient connects this long before its senders stop. */
const BUSY_CONNECTS_BEFORE_END_MS = 1000;
const SETTLE_MS = 10_000;
const LOOP = { durationMs: RUN_MS, everyMs: 15, maxInFlight: 50, answerTimeoutMs: 6000, resendForMs: 8000 };

const suite = useScenario({ gateways: 2, routers: 2, env: FAST_ENV, logLines: 60 });
const { client } = suite;

const sumMetric = (name: string) => metricSum(suite.cluster.routers, name);
/** Either gateway, drawn from the run's seed (a run covers one of them; another seed, the other). */
const anyGateway = () => Math.floor(prng('offline-recipient-gateway')() * 2);

/** Waits until every ok'd dm is delivered and acknowledged (or the deadline), then checks, explaining the first problems. */
async function settle(history: History): Promise<CheckResult> {
  const result = await history.settle(SETTLE_MS, 'every ok’d dm delivered and acknowledged');
  history.logProblems(result, 2, undefined, 12);
  return result;
}

describe.sequential('a recipient offline for the whole run', () => {
  it('connects at the end to either gateway, gets every ok’d dm once in seq order, acks, and nothing is retried after', async () => {
    // The fault: a dm sender on each gateway, the only target never connected.
    const quiet = uid('quiet');
    const w = await suite.build({ dmSendersPerGateway: 1, extraDmTargets: [quiet] });
    const { history } = w;
    const parkedBefore = await sumMetric('rtgw_dm_parked_total');
    await w.drive(LOOP);
    expect(w.answerProblems()).toEqual([]);
    expect(history.summary('dm')).toEqual({ ok: history.dms.length });
    // Its retries came due while it was away and were parked, not spent.
    expect(await sumMetric('rtgw_dm_parked_total'), 'rtgw_dm_parked_total (routers)').toBeGreaterThan(parkedBefore);

    const n = history.dmOks(quiet).length;
    const gw = anyGateway();
    const conn = await client(gw, quiet);
    history.watch(conn, quiet);
    await waitFor(() => new Set(conn.of('dm').map((f) => f.seq)).size >= n, 10_000, `${n} dms for ${quiet}`);
    // First arrivals: a seq whose ack is still on its way may legitimately come again (the client drops it).
    const firsts = [...new Set(conn.of('dm').map((f) => f.seq as number))];
    expect(firsts, `the inbox as replayed on gateway ${gw} (seed ${TEST_SEED})`).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
    const result = await settle(history);
    expect(result.lines()).toEqual([]);

    // Nothing is retried after the acks: the retry queue drains, no dm arrives, a new connection gets no replay.
    await expectRetryQueueEmpty(suite.cluster.routers);
    const again = await client(1 - gw, quiet);
    const count = conn.of('dm').length;
    // Absence needs a window: one ack timeout plus the longest backoff, in which any retry would come
    // (and the new connection's pending replay, sent right after its welcome).
    await new Promise((r) => setTimeout(r, ACK_TIMEOUT_MS + MAX_BACKOFF_MS));
    expect(conn.of('dm').length, 'dms after everything was acknowledged').toBe(count);
    expect(again.of('dm'), 'replayed to a new connection after everything was acknowledged').toEqual([]);
    console.info('offline-recipient (at the end):', {
      gateway: gw,
      parked: (await sumMetric('rtgw_dm_parked_total')) - parkedBefore,
      ...result.recipients[quiet]?.stats,
    });
  }, 40_000);

  it('connects while dms to it are still being sent: the pending replay and the live ones arrive in seq order', async () => {
    // The busy recipients connect one after the other while all of them are being sent to, each with a
    // pending replay to receive (asserted below) and live dms still coming.
    const history = new History();
    const busy = [uid('busy'), uid('busy'), uid('busy')];
    const senders: Sender[][] = [];
    for (const _ of busy)
      senders.push([
        { name: uid('s'), client: await client(0) },
        { name: uid('s'), client: await client(1) },
      ]);
    const startedAt = Date.now();
    // Fast enough that live dms keep coming while the recipients connect (whether one races a replay read is not observable).
    const traffic = Promise.all(
      busy.map((user, i) => history.sendFor({ ...LOOP, everyMs: 5, op: 'dm', senders: senders[i]!, targets: [user] })),
    );
    const okBeforeConnect: number[] = [];
    const connects: { user: string; conn: string; welcomeAtMs: number }[] = [];
    for (const [i, user] of busy.entries()) {
      await waitFor(
        () => Date.now() - startedAt >= RUN_MS - BUSY_CONNECTS_BEFORE_END_MS - (busy.length - 1 - i) * 400,
        RUN_MS,
        'the connect point',
      );
      okBeforeConnect.push(history.dmOks(user).length);
      const c = await client(i % 2, user);
      connects.push({ user, conn: c.conn, welcomeAtMs: Date.now() });
      history.watch(c, user);
    }
    await traffic;
    expect(
      history.answerProblems(
        ['unavailable'],
        senders.flat().map((s) => s.client),
      ),
    ).toEqual([]);
    const result = await settle(history);
    // A hint of the overlap, not asserted: dms answered ok between the connection's welcome and its first
    // dm frame were stored and fanned out around the time the gateway read the pending replay. It cannot
    // be asserted: the window is ~0-50 ms (0 when the first dms came in the read that carried welcome),
    // shorter than a dm's answer time under this load, and a dm answered in it may have been stored
    // before the replay was read (then it is simply pending). Runs showed 0 to 9 per connection.
    const overlap = connects.map(({ user, conn, welcomeAtMs }) => {
      const firstDmAtMs = history.receives({ user }).find((e) => e.conn === conn)?.atMs ?? Infinity;
      const answered = history.dms.filter(
        (d) =>
          d.to === user && d.outcome?.kind === 'ok' && d.answeredAtMs! > welcomeAtMs && d.answeredAtMs! < firstDmAtMs,
      );
      return {
        attachMs: firstDmAtMs - welcomeAtMs,
        answeredDuring: answered.length,
        sentAndAnsweredDuring: answered.filter((d) => d.sentAtMs > welcomeAtMs).length,
      };
    });
    console.info(
      'offline-recipient (while sending):',
      busy.map((u, i) => ({
        okBeforeConnect: okBeforeConnect[i],
        ...overlap[i],
        ...result.recipients[u]?.stats,
        problems: result.problems.filter((p) => p.target === u).length,
      })),
    );
    expect(result.lines()).toEqual([]);
    expect(
      okBeforeConnect.filter((n) => n === 0),
      'connections that had no pending replay',
    ).toEqual([]);
    expect(
      busy.filter((u, i) => history.dmOks(u).length <= okBeforeConnect[i]!),
      'connections after which no more dms were ok’d (nothing live)',
    ).toEqual([]);
  }, 40_000);
});
