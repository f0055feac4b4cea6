// Fenced leases under a stalled router (guarantees 1 and 4): one router is SIGSTOPped for longer than
// its lease while publishing goes on, the other takes its slots, then the stalled one is SIGCONTed
// with requests, timers and Redis replies still queued from before the pause. Nothing it does with
// its stale lease may reach a room: seqs stay gapless, each seq is one message everywhere (receivers
// and history agree), every ok'd pub is delivered once and in order, errors are only `unavailable`,
// and the resumed router notices it lost its slots. The pubs carry no `mid`, so dedup cannot hide a
// request that both the new owner and the stale one acted on: it would show as one pub at two seqs.
import { expect, it } from 'vitest';
import { allReady, metric, warnings } from '../harness/nodes.js';
import { useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const LEASE_MS = 1500;
const PAUSE_MS = 4000;
const REQUEST_TIMEOUT_MS = 5000;
const OUTAGE_BOUND_MS = LEASE_MS * 2 + 2000;
const PAUSE_AFTER_MS = 2000;
const AFTER_RESUME_MS = 4000;

const sc = useScenario({
  gateways: 2,
  routers: 2,
  env: { RTGW_LEASE_MS: String(LEASE_MS), RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  logLines: 120,
});

it('a router paused past its lease and resumed never writes with its stale lease: no duplicate seq, no gap, no reordering, no lost ok', async () => {
  const [stalled, other] = [sc.cluster.routers[0]!, sc.cluster.routers[1]!];
  const w = await sc.build({ roomsPerRouter: 3, membersPerGateway: 2, publishersPerGateway: 2 });
  const { history, rooms } = w;
  const stalledRooms = w.byOwner.get(stalled.nodeId!)!;
  let sequencedBefore = 0;
  let lostBefore = 0;
  let pausedAt = 0;

  const resumedAt = await w.drive(
    // No mid: dedup cannot absorb a request acted on by both the stale and the new owner, so a
    // write under the stale lease would show as one pub at two seqs.
    {
      durationMs: PAUSE_AFTER_MS + PAUSE_MS + AFTER_RESUME_MS,
      everyMs: 12,
      maxInFlight: 300,
      answerTimeoutMs: REQUEST_TIMEOUT_MS + 5000,
      noMid: true,
    },
    {
      atMs: PAUSE_AFTER_MS,
      strike: async () => {
        expect(
          history.oks().filter((p) => stalledRooms.includes(p.room)).length,
          'ok’d pubs in the stalled router’s rooms',
        ).toBeGreaterThan(20);
        sequencedBefore = await metric(stalled, 'rtgw_messages_sequenced_total');
        expect(sequencedBefore).toBeGreaterThan(0);
        lostBefore = warnings(stalled, 'slot lease lost').length;
        stalled.pause();
        pausedAt = Date.now();
        try {
          // The point is elapsed time: the lease (and the router's heartbeat) must run out while it sleeps.
          await waitFor(() => Date.now() - pausedAt >= PAUSE_MS, PAUSE_MS + 1000, 'the end of the pause');
          // By now the other router owns the stalled router's rooms and serves them.
          expect(
            history.oks().some((p) => stalledRooms.includes(p.room) && p.sentAtMs > pausedAt + LEASE_MS),
            'stalled router’s rooms served by the other router during the pause',
          ).toBe(true);
        } finally {
          stalled.resume();
        }
        return Date.now();
      },
    },
  );

  // The resumed router found its leases gone (renewal refused, or a fenced append refused).
  await waitFor(
    () => warnings(stalled, 'slot lease lost').length > lostBefore,
    5000,
    "the resumed router's 'slot lease lost' warning",
  );
  await waitFor(() => allReady(sc.cluster), 5000, 'every node ready after the resume');

  const gaps = new Map(rooms.map((room) => [room, history.longestSilence(w.startedAt, w.endedAt, [room])]));
  for (const [room, g] of gaps) expect(g.ms, `${room} went ${g.ms} ms without an ok`).toBeLessThan(OUTAGE_BOUND_MS);
  // Pubs sent after the resume get ok in every room (wherever ownership settled).
  for (const room of rooms)
    expect(
      history.oks(room).some((p) => p.sentAtMs > resumedAt!),
      `${room} served after the resume`,
    ).toBe(true);

  // The heart of it: gapless, in order, once; one message per seq across members and history.
  await w.verify({
    report: async () => [
      'router-pause:',
      {
        outcomes: history.summary(),
        unansweredButStored: w.unansweredButStored(),
        leaseLostWarnings: warnings(stalled, 'slot lease lost').length - lostBefore,
        sequencedByStalledBefore: sequencedBefore,
        sequencedByStalledAtEnd: await metric(stalled, 'rtgw_messages_sequenced_total'),
        longestSilenceMs: Object.fromEntries(
          [...gaps].map(([room, g]) => [
            `${room} (${stalledRooms.includes(room) ? 'stalled' : 'other'})`,
            `${g.ms} ms from ${g.startMs - pausedAt} ms after the pause`,
          ]),
        ),
        resumedAfterPauseMs: resumedAt! - pausedAt,
        otherRouterOwnsAtEnd: await metric(other, 'rtgw_slots_owned'),
      },
    ],
  });
}, 90_000);
