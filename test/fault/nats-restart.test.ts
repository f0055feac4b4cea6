// The bus goes away and comes back (guarantee 1 across a NATS restart): nats-server is restarted on
// its port while clients stay connected to the gateways and publishers keep publishing. Every node
// reconnects and resubscribes by itself: pubs get ok again within a bound, nobody needs to rejoin, and
// every ok'd message — including ones ok'd around the restart whose fan-out the restart swallowed,
// which the next message's gap fill recovers from history — reaches every member once, in seq order.
// The publishers are members too (without `echo`), so the second step checks the echo rule on the
// gap-fill path: a sender never gets its own message back, whichever way it reached its gateway.
// One cluster run; the steps run in order and the second reads what the first recorded.
import { describe, expect, it } from 'vitest';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { allReady, closeAndCheck, metricSum, setupTraffic, unansweredButStored, waitBalanced, type Traffic } from './kit.js';

const REQUEST_TIMEOUT_MS = 5000;
/** Client reconnect wait (250 ms + up to 250 ms jitter, a few attempts) plus a request timeout of slack. */
const BACK_BOUND_MS = 5000;
const RUN_MS = 9000;
const RESTART_AFTER_MS = 2500;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: { RTGW_LEASE_MS: '2000', RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  logLines: 80,
});
/** What the restart step recorded, for the echo step. */
let traffic: Traffic | undefined;

const sumOver = (name: string) => metricSum(suite.cluster.gateways, name);

describe.sequential('nats-server restart under load', () => {
  it('pubs get ok again within the bound and every ok’d message reaches every member once, in order, without any rejoin', async () => {
    const { cluster, pool } = suite;
    await waitBalanced(cluster);
    const t = await setupTraffic(cluster, pool, { roomsPerRouter: 2, membersPerGateway: 2, publishersPerGateway: 1 });
    const { history, rooms } = t;
    for (const { client } of t.publishers) for (const room of rooms) await client.ok({ t: 'join', room });
    const gapFillsBefore = await sumOver('rtgw_gap_fills_total');

    const startedAt = Date.now();
    const run = history.publishFor({ publishers: t.publishers, rooms, durationMs: RUN_MS, everyMs: 10, maxInFlight: 200, answerTimeoutMs: REQUEST_TIMEOUT_MS + 5000 });

    await waitFor(() => Date.now() - startedAt >= RESTART_AFTER_MS, RESTART_AFTER_MS + 1000, 'the restart point');
    const restartStarted = Date.now();
    await cluster.nats.restart();
    const restartedAt = Date.now();

    // Back within the bound: some pub sent after the server is up again is answered ok, in every room.
    await waitFor(() => rooms.every((room) => history.oks(room).some((p) => p.sentAtMs >= restartedAt)), BACK_BOUND_MS, 'an ok for a pub sent after the restart, in every room');
    const backAfterMs = Date.now() - restartedAt;
    await waitFor(() => allReady(cluster), BACK_BOUND_MS, 'every node ready after the NATS restart');

    await run;
    const endedAt = Date.now();
    expect(history.answerProblems(['unavailable'], t.publishers.map((p) => p.client))).toEqual([]);

    // The clients did nothing: still open, no rejoin; one more pub per room (closeAndCheck) lets the
    // gateways fill any gap from history, and then every member holds every ok'd message once, in order.
    for (const c of [...t.members, ...t.publishers]) expect(c.client.isOpen, `${c.name} still connected`).toBe(true);
    expect(await closeAndCheck(cluster, t)).toEqual([]);
    traffic = t;

    const errs = history.pubs.filter((p) => p.outcome?.kind === 'err');
    console.info('nats-restart:', {
      outcomes: history.summary(),
      unansweredButStored: unansweredButStored(t),
      restartTookMs: restartedAt - restartStarted,
      backAfterMs,
      longestSilenceMs: history.longestSilence(startedAt, endedAt).ms,
      gapFills: (await sumOver('rtgw_gap_fills_total')) - gapFillsBefore,
      unavailableSentMsAfterRestartBegan: errs.length === 0 ? [] : [Math.min(...errs.map((p) => p.sentAtMs - restartStarted)), Math.max(...errs.map((p) => p.sentAtMs - restartStarted))],
      unavailable: [...new Set(errs.map((p) => `${(p.outcome as { msg: string }).msg} after ~${Math.round((p.answeredAtMs! - p.sentAtMs) / 500) * 500} ms`))],
    });
  }, 90_000);

  // A pub answered `ok` is known to the sender's gateway (the ok reaches it before the next stream message
  // of the same router), so even a copy filled from history is kept from the sender. A pub whose ok was lost
  // with NATS (answered `unavailable`) may come back to its sender: the gateway never learned its seq, and
  // the sender could not know whether it was stored.
  it('a publisher (a member without echo) never receives its own ok’d messages, even when its gateway fills a gap from history; it gets everyone else’s once, in order', () => {
    const t = traffic;
    if (t === undefined) throw new Error('the restart step did not complete; nothing to check');
    const { history, rooms } = t;
    const problems: string[] = [];
    for (const { name, client } of t.publishers) {
      for (const room of rooms) {
        const got = client.msgs(room);
        const own = got.filter((f) => {
          const r = history.recordOf(f);
          return r?.by === name && r.outcome?.kind === 'ok';
        });
        if (own.length > 0) problems.push(`${name} in ${room} received ${own.length} of its own ok'd messages without echo, e.g. ${JSON.stringify(own[0])}`);
        const others = got.filter((f) => history.recordOf(f)?.by !== name).map((f) => f.seq as number);
        const disorder = others.findIndex((q, i) => i > 0 && q <= others[i - 1]!);
        if (disorder > 0) problems.push(`${name} in ${room}: seq ${others[disorder]} after seq ${others[disorder - 1]}`);
        const missing = history.oks(room).filter((p) => p.by !== name && !others.includes(p.outcome.seq));
        if (missing.length > 0) problems.push(`${name} in ${room}: ${missing.length} ok'd messages of others missing, e.g. seq ${missing[0]!.outcome.seq}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
