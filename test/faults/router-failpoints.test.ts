// Guarantees 1–4 across a router SIGKILLed at a chosen moment (shared/failpoints.ts, honoured only with
// NODE_ENV=test): before sequencing, after the durable write but before the fan-out, and in the middle
// of a retry sweep. Each run adds one router armed with one failpoint next to a healthy one, gives it
// rooms and recipients, and drives publishers and dm senders (reliable: an error or no answer is sent
// again with the same mid) on both gateways until the failpoint kills it. The history checker then
// finds, per room and per recipient, zero lost, unexpected, duplicated or inverted messages, and every
// ok'd dm acknowledged; the mid-sweep run adds a slow-acking recipient (so retries are due) and one
// that is offline until the end and then receives its whole inbox in seq order. A fourth run kills the
// router right after storing the first dm of a recipient that connected with an empty inbox, and a
// fifth checks that an armed router ignores its failpoints outside NODE_ENV=test.
import { describe, expect, it } from 'vitest';
import { type Cluster, type Node } from '../harness/cluster.js';
import { History } from '../harness/history.js';
import { roomsByOwner, usersOwnedBy, waitBalanced } from '../harness/nodes.js';
import { FAST_ENV, REQUEST_TIMEOUT_MS, useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const RUN_MS = 5000;
/** A reliable sender keeps resending an unanswered message this long after the run. */
const RESEND_FOR_MS = 8000;
const ANSWER_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 3000;
/** Lease lapse, takeover, resends and the sweeper's backoff (at most 1 s) with room to spare. */
const SETTLE_MS = 12_000;

let healthy: Node;
const suite = useScenario({
  gateways: 2,
  routers: 1,
  env: FAST_ENV,
  logLines: 60,
  ready: (c) => {
    healthy = c.routers[0]!;
  },
});
const { client } = suite;

/** The cluster with only the live routers, for the node helpers and the builder. */
const withRouters = (routers: Node[]): Cluster => ({ ...suite.cluster, routers });

interface Failpoint {
  failpoint: string;
  /** The n-th time the point is reached kills the router. */
  hit: number;
  /** Recipients that ack late (after a retry was due), so sweeps claim entries all the time. */
  slowAckers?: number;
  /** A recipient offline for the whole run that connects at the end. */
  offline?: boolean;
}

async function run(s: Failpoint): Promise<void> {
  const victim = await suite.cluster.add('router', { NODE_ENV: 'test', RTGW_FAILPOINTS: `${s.failpoint}:${s.hit}` });
  try {
    const routers = [healthy, victim];
    const ids = routers.map((r) => r.nodeId!);
    await waitBalanced(withRouters(routers));
    const victimUsers = usersOwnedBy(ids, victim.nodeId!, 3 + (s.slowAckers ?? 0) + (s.offline ? 1 : 0), 'rcpt');
    const healthyUsers = usersOwnedBy(ids, healthy.nodeId!, 1, 'rcpt');
    const offline = s.offline ? victimUsers.pop()! : undefined;
    const slow = victimUsers.splice(0, s.slowAckers ?? 0);

    // Rooms on both routers, a member on each gateway; recipients spread over the gateways, every one
    // acking what it gets (the slow ones 450 ms later); a publisher and a dm sender on each gateway.
    const w = await suite.build(
      {
        roomsPerRouter: 2,
        roomBase: 'fp',
        membersPerGateway: 1,
        recipients: [...victimUsers, ...healthyUsers, ...slow],
        recipientWatch: (user) => (slow.includes(user) ? { ackDelayMs: 450 } : {}),
        publishersPerGateway: 1,
        dmSendersPerGateway: 1,
        extraDmTargets: offline === undefined ? [] : [offline],
      },
      withRouters(routers),
    );
    const { history } = w;

    // The failpoint fires during the run: the victim dies by SIGKILL from inside, and says where.
    const { victimDiedAt, diedAfterMs } = (await w.drive(
      {
        durationMs: RUN_MS,
        everyMs: 25,
        maxInFlight: 100,
        answerTimeoutMs: ANSWER_TIMEOUT_MS,
        resendForMs: RESEND_FOR_MS,
      },
      {
        atMs: 0,
        strike: async () => {
          const died = await Promise.race([
            victim.exited.then(() => true),
            new Promise<boolean>((r) => setTimeout(() => r(false), RUN_MS + 3000)),
          ]);
          const at = Date.now();
          expect(
            died,
            `${s.failpoint}:${s.hit} never fired (victim still running ${at - w.startedAt} ms into the run)`,
          ).toBe(true);
          expect(victim.exitSignal).toBe('SIGKILL');
          expect(victim.logs().some((l) => l.includes(`failpoint ${s.failpoint}: killing the process`))).toBe(true);
          return { victimDiedAt: at, diedAfterMs: at - w.startedAt };
        },
      },
    ))!;

    if (offline !== undefined) {
      // Offline the whole run: it connects now and gets its whole inbox, in seq order, and acks it.
      const late = await client(1, offline);
      history.watch(late, offline);
    }
    // Everyone resends until ok: nothing may be left without an ok (and nothing answered but with
    // `unavailable`); every ok'd message delivered and acknowledged.
    const victimRooms = w.byOwner.get(victim.nodeId!)!;
    await w.verify({
      reliable: true,
      settleMs: SETTLE_MS,
      onProblems: () =>
        console.error(
          `${s.failpoint}: the victim died ${diedAfterMs} ms into the run (+${victimDiedAt - history.events[0]!.atMs}ms below)`,
        ),
      report: (result) => [
        `router failpoint ${s.failpoint}:${s.hit}:`,
        {
          diedAfterMs,
          pubs: history.summary('pub'),
          dms: history.summary('dm'),
          victimRooms: victimRooms.map((r) => result.rooms[r]!.stats),
          recipients: Object.fromEntries(
            Object.entries(result.recipients).map(([u, v]) => [
              u === offline ? `${u} (offline)` : slow.includes(u) ? `${u} (slow)` : u,
              v.stats,
            ]),
          ),
        },
      ],
    });
    // The victim's rooms and recipients were really in play: they got traffic before and after the kill.
    for (const room of victimRooms) expect(history.oks(room).length).toBeGreaterThan(10);
  } finally {
    victim.kill('SIGKILL');
    await victim.exited;
  }
}

describe.sequential('a router killed by a failpoint', () => {
  it('before sequencing (router.before-append)', () => run({ failpoint: 'router.before-append', hit: 150 }), 60_000);
  it(
    'after the durable write, before the fan-out (router.after-append)',
    () => run({ failpoint: 'router.after-append', hit: 150 }),
    60_000,
  );
  it(
    'in the middle of a retry sweep (router.mid-sweep)',
    () => run({ failpoint: 'router.mid-sweep', hit: 40, slowAckers: 2, offline: true }),
    60_000,
  );

  it('after the durable write of the first dm to a recipient that connected with an empty inbox', async () => {
    // The gateway knows no last seq for this recipient yet: seq 1 is stored and its first delivery dies
    // with the router; dms sent meanwhile get seqs 2, 3, ... from the new owner. The recipient must
    // still get 1 before them.
    const victim = await suite.cluster.add('router', { NODE_ENV: 'test', RTGW_FAILPOINTS: 'router.after-append:1' });
    try {
      const routers = [healthy, victim];
      await waitBalanced(withRouters(routers));
      const to = usersOwnedBy(
        routers.map((r) => r.nodeId!),
        victim.nodeId!,
        1,
        'fresh',
      )[0]!;
      const history = new History();
      history.watch(await client(0, to), to);
      const [first, others] = [await client(1), await client(1)];
      const lost = history.dm(first, 'first', to, { answerTimeoutMs: ANSWER_TIMEOUT_MS });
      await victim.exited;
      // Sent while nobody owns the slot: the gateway retries each until the new owner takes the slot.
      // Staggered over the gateway's longest retry wait (250 ms), one lands soon after the takeover.
      const MEANWHILE = 30;
      const meanwhile = Array.from({ length: MEANWHILE }, async (_, i) => {
        await new Promise((r) => setTimeout(r, (i * 250) / MEANWHILE));
        return history.dmUntilOk(others, 'others', to, 10_000, { answerTimeoutMs: ANSWER_TIMEOUT_MS });
      });
      await history.resendUntilOk(first, await lost, 10_000, { answerTimeoutMs: ANSWER_TIMEOUT_MS });
      await Promise.all(meanwhile);
      expect(history.dmOks(to).map((d) => d.outcome.seq)).toEqual(
        Array.from({ length: MEANWHILE + 1 }, (_, i) => i + 1),
      );
      const result = await history.settle(SETTLE_MS, 'every ok’d dm delivered and acknowledged');
      history.logProblems(result, 1, undefined, 30);
      console.info('router failpoint router.after-append:1 (first dm):', {
        dms: history.summary('dm'),
        firstArrivals: [...new Set(history.receives({ user: to }).map((e) => e.frame.seq as number))].join(' '),
      });
      expect(result.lines()).toEqual([]);
    } finally {
      victim.kill('SIGKILL');
      await victim.exited;
    }
  }, 40_000);

  it('is ignored outside NODE_ENV=test: an armed router in production keeps serving', async () => {
    const armed = await suite.cluster.add('router', {
      NODE_ENV: 'production',
      RTGW_FAILPOINTS: 'router.before-append:1,router.after-append:1,router.mid-sweep:1',
    });
    try {
      const routers = [healthy, armed];
      await waitBalanced(withRouters(routers));
      const room = roomsByOwner(withRouters(routers), 1, 'prod').get(armed.nodeId!)![0]!;
      const to = usersOwnedBy(
        routers.map((r) => r.nodeId!),
        armed.nodeId!,
        1,
        'prod',
      )[0]!;
      const history = new History();
      const sender = await client(0);
      const recipient = await client(1, to);
      history.watch(recipient, to, { ack: false }); // unacknowledged: its retry goes through a sweep
      for (let i = 0; i < 3; i++) {
        expect((await history.pub(sender, 'prod', room)).outcome?.kind).toBe('ok');
        expect((await history.dm(sender, 'prod', to)).outcome?.kind).toBe('ok');
      }
      await waitFor(
        () => history.receives({ user: to }).length > 3,
        5000,
        'a retry of an unacknowledged dm (a sweep that claimed it)',
      );
      expect(armed.hasExited, `armed router exited (${String(armed.exitSignal)})`).toBe(false);
      expect(armed.logs().filter((l) => l.includes('failpoint'))).toEqual([]);
    } finally {
      await armed.stop();
    }
  }, 30_000);
});
