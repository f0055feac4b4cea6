// The bus goes away and comes back: nats-server is restarted on its port under traffic while every
// client stays connected. Every node reconnects and resubscribes by itself: requests get ok again
// within a bound, nobody needs to rejoin or reconnect, and whatever the restart swallowed (requests,
// replies, fan-outs, first deliveries, acks in flight) is repaired.
// 1. Room traffic (guarantee 1): every ok'd message — including ones ok'd around the restart whose
//    fan-out the restart swallowed, which the next message's gap fill recovers from history — reaches
//    every member once, in seq order. The publishers are members too (without `echo`), so the second
//    step checks the echo rule on the gap-fill path: a sender never gets its own message back, whichever
//    way it reached its gateway. The steps run in order and the second reads what the first recorded.
// 2. Pubs and dms (guarantees 1 and 2), with members, recipients (acking everything) and reliable senders
//    (resending errors with the same mid): every ok'd pub reaches every member and every ok'd dm its
//    recipient, nothing stored twice, nothing out of order, every dm acked.
// Each part has its own cluster: their timing knobs differ (lease and request timeout).
import { describe, expect, it } from 'vitest';
import { allReady, metricSum } from '../harness/nodes.js';
import { FAST_ENV, useScenario, type World } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

/** Client reconnect wait (250 ms + up to 250 ms jitter, a few attempts) plus a request timeout of slack. */
const BACK_BOUND_MS = 5000;

describe.sequential('nats-server restart under room traffic', () => {
  const REQUEST_TIMEOUT_MS = 5000;
  const sc = useScenario({
    gateways: 2,
    routers: 2,
    env: { RTGW_LEASE_MS: '2000', RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  });
  /** What the restart step recorded, for the echo step. */
  let world: World | undefined;
  const sumOver = (name: string) => metricSum(sc.cluster.gateways, name);

  it('pubs get ok again within the bound and every ok’d message reaches every member once, in order, without any rejoin', async () => {
    const w = await sc.build({
      roomsPerRouter: 2,
      membersPerGateway: 2,
      publishersPerGateway: 1,
      publishersJoin: true,
    });
    const { history, rooms } = w;
    const gapFillsBefore = await sumOver('rtgw_gap_fills_total');
    const restart = await w.drive(
      { durationMs: 9000, everyMs: 10, maxInFlight: 200, answerTimeoutMs: REQUEST_TIMEOUT_MS + 5000 },
      {
        atMs: 2500,
        strike: async () => {
          const began = Date.now();
          await sc.cluster.nats.restart();
          const done = Date.now();
          // Back within the bound: some pub sent after the server is up again is answered ok, in every room.
          await waitFor(
            () => rooms.every((room) => history.oks(room).some((p) => p.sentAtMs >= done)),
            BACK_BOUND_MS,
            'an ok for a pub sent after the restart, in every room',
          );
          const backAfterMs = Date.now() - done;
          await waitFor(() => allReady(sc.cluster), BACK_BOUND_MS, 'every node ready after the NATS restart');
          return { began, done, backAfterMs };
        },
      },
    );
    const { began, done, backAfterMs } = restart!;

    // The clients did nothing: still open, no rejoin; one more pub per room (verify) lets the gateways
    // fill any gap from history, and then every member holds every ok'd message once, in order.
    for (const c of [...w.members, ...w.publishers]) expect(c.client.isOpen, `${c.name} still connected`).toBe(true);
    await w.verify({
      report: async () => {
        const errs = history.pubs.filter((p) => p.outcome?.kind === 'err');
        return [
          'nats-restart:',
          {
            outcomes: history.summary(),
            unansweredButStored: w.unansweredButStored(),
            restartTookMs: done - began,
            backAfterMs,
            longestSilenceMs: history.longestSilence(w.startedAt, w.endedAt).ms,
            gapFills: (await sumOver('rtgw_gap_fills_total')) - gapFillsBefore,
            unavailableSentMsAfterRestartBegan:
              errs.length === 0
                ? []
                : [Math.min(...errs.map((p) => p.sentAtMs - began)), Math.max(...errs.map((p) => p.sentAtMs - began))],
            unavailable: [
              ...new Set(
                errs.map(
                  (p) =>
                    `${(p.outcome as { msg: string }).msg} after ~${Math.round((p.answeredAtMs! - p.sentAtMs) / 500) * 500} ms`,
                ),
              ),
            ],
          },
        ];
      },
    });
    world = w;
  }, 90_000);

  // A pub answered `ok` is known to the sender's gateway (the ok reaches it before the next stream message
  // of the same router), so even a copy filled from history is kept from the sender. A pub whose ok was lost
  // with NATS (answered `unavailable`) may come back to its sender: the gateway never learned its seq, and
  // the sender could not know whether it was stored.
  it('a publisher (a member without echo) never receives its own ok’d messages, even when its gateway fills a gap from history; it gets everyone else’s once, in order', () => {
    const w = world;
    if (w === undefined) throw new Error('the restart step did not complete; nothing to check');
    const { history, rooms } = w;
    const problems: string[] = [];
    for (const { name, client } of w.publishers) {
      for (const room of rooms) {
        const got = client.msgs(room);
        const own = got.filter((f) => {
          const r = history.recordOf(f);
          return r?.by === name && r.outcome?.kind === 'ok';
        });
        if (own.length > 0)
          problems.push(
            `${name} in ${room} received ${own.length} of its own ok'd messages without echo, e.g. ${JSON.stringify(own[0])}`,
          );
        const others = got.filter((f) => history.recordOf(f)?.by !== name).map((f) => f.seq as number);
        const disorder = others.findIndex((q, i) => i > 0 && q <= others[i - 1]!);
        if (disorder > 0)
          problems.push(`${name} in ${room}: seq ${others[disorder]} after seq ${others[disorder - 1]}`);
        const missing = history.oks(room).filter((p) => p.by !== name && !others.includes(p.outcome.seq));
        if (missing.length > 0)
          problems.push(
            `${name} in ${room}: ${missing.length} ok'd messages of others missing, e.g. seq ${missing[0]!.outcome.seq}`,
          );
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('nats-server restart under pubs and dms', () => {
  const sc = useScenario({ gateways: 2, routers: 2, env: FAST_ENV });

  it('after nats-server restarts, every ok’d pub and dm is delivered once per seq, in order, and every dm acknowledged', async () => {
    const w = await sc.build({
      roomsPerRouter: 2,
      roomBase: 'nr',
      membersPerGateway: 1,
      recipients: 4,
      publishersPerGateway: 1,
      dmSendersPerGateway: 1,
    });
    const { history } = w;
    const restart = await w.drive(
      { durationMs: 6000, everyMs: 20, maxInFlight: 100, answerTimeoutMs: 6000, resendForMs: 8000 },
      {
        atMs: 1500,
        strike: async () => {
          const began = Date.now();
          await sc.cluster.nats.restart();
          const done = Date.now();
          await waitFor(
            () => history.dmOks().some((d) => d.sentAtMs >= done) && history.oks().some((p) => p.sentAtMs >= done),
            BACK_BOUND_MS,
            'an ok for a pub and a dm sent after the restart',
          );
          const backAfterMs = Date.now() - done;
          await waitFor(() => allReady(sc.cluster), BACK_BOUND_MS, 'every node ready after the NATS restart');
          return { began, done, backAfterMs };
        },
      },
    );
    const { began, done, backAfterMs } = restart!;

    // Nobody had to reconnect; every request was answered, errors only `unavailable`, and every message ok'd in the end.
    for (const c of [
      ...w.recipientClients.values(),
      ...w.members.map((m) => m.client),
      ...w.senders.map((s) => s.client),
    ])
      expect(c.isOpen).toBe(true);
    await w.verify({
      reliable: true,
      onProblems: () =>
        console.error(
          `NATS restart began +${began - history.events[0]!.atMs}ms, done +${done - history.events[0]!.atMs}ms`,
        ),
      report: (result) => [
        'nats-restart:',
        {
          restartTookMs: done - began,
          backAfterMs,
          pubs: history.summary('pub'),
          dms: history.summary('dm'),
          recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
        },
      ],
    });
  }, 60_000);
});
