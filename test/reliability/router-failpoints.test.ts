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
import { preferredOwner } from '../../router/slots.js';
import { DEFAULT_SLOTS, userSlot } from '../../shared/cluster/slots.js';
import { uid, type Cluster, type Node } from '../harness/cluster.js';
import { History, type Sender } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { roomsByOwner, waitBalanced } from '../fault/kit.js';
import { ENV, REQUEST_TIMEOUT_MS } from './env.js';

const RUN_MS = 5000;
/** A reliable sender keeps resending an unanswered message this long after the run. */
const RESEND_FOR_MS = 8000;
const ANSWER_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 3000;
/** Lease lapse, takeover, resends and the sweeper's backoff (at most 1 s) with room to spare. */
const SETTLE_MS = 12_000;

let healthy: Node;
const suite = useCluster({
  gateways: 2,
  routers: 1,
  env: ENV,
  pingOnConnect: true,
  ready: (c) => {
    healthy = c.routers[0]!;
  },
});
const { client } = suite;

/** The cluster as seen by kit's helpers, with only the live routers. */
const withRouters = (routers: Node[]): Cluster => ({ ...suite.cluster, routers });

/** `n` fresh user ids whose slot `owner` is preferred for among `routers`, one per slot. */
function usersOwnedBy(routers: readonly string[], owner: string, n: number, base: string): string[] {
  const out: string[] = [];
  const used = new Set<number>();
  while (out.length < n) {
    const user = uid(base);
    const slot = userSlot(user, DEFAULT_SLOTS);
    if (used.has(slot) || preferredOwner(slot, routers) !== owner) continue;
    used.add(slot);
    out.push(user);
  }
  return out;
}

interface Scenario {
  failpoint: string;
  /** The n-th time the point is reached kills the router. */
  hit: number;
  /** Recipients that ack late (after a retry was due), so sweeps claim entries all the time. */
  slowAckers?: number;
  /** A recipient offline for the whole run that connects at the end. */
  offline?: boolean;
}

async function run(s: Scenario): Promise<void> {
  const victim = await suite.cluster.add('router', { NODE_ENV: 'test', RTGW_FAILPOINTS: `${s.failpoint}:${s.hit}` });
  try {
    const routers = [healthy, victim];
    const ids = routers.map((r) => r.nodeId!);
    await waitBalanced(withRouters(routers));
    const byOwner = roomsByOwner(withRouters(routers), 2, 'fp');
    const rooms = [...byOwner.values()].flat();
    const victimUsers = usersOwnedBy(ids, victim.nodeId!, 3 + (s.slowAckers ?? 0) + (s.offline ? 1 : 0), 'rcpt');
    const healthyUsers = usersOwnedBy(ids, healthy.nodeId!, 1, 'rcpt');
    const offline = s.offline ? victimUsers.pop()! : undefined;
    const slow = victimUsers.splice(0, s.slowAckers ?? 0);
    const recipients = [...victimUsers, ...healthyUsers, ...slow];

    const history = new History();
    // Members on both gateways joined to every room before anything is published.
    for (const gw of [0, 1]) {
      const m = await client(gw);
      history.watch(m, `member${gw}`);
      for (const room of rooms) expect((await history.join(m, `member${gw}`, room)).seq).toBe(0);
    }
    // Recipients spread over the gateways; every one acks what it gets (the slow ones 450 ms later).
    for (const [i, user] of recipients.entries()) {
      const c = await client(i % 2, user);
      history.watch(c, user, slow.includes(user) ? { ackDelayMs: 450 } : {});
    }
    const pubSenders: Sender[] = [{ name: 'pub0', client: await client(0) }, { name: 'pub1', client: await client(1) }];
    const dmSenders: Sender[] = [{ name: 'dm0', client: await client(0) }, { name: 'dm1', client: await client(1) }];
    const dmTargets = offline === undefined ? recipients : [...recipients, offline];

    const startedAt = Date.now();
    const loop = { durationMs: RUN_MS, everyMs: 25, maxInFlight: 100, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: RESEND_FOR_MS };
    const traffic = Promise.all([
      history.sendFor({ ...loop, op: 'pub', senders: pubSenders, targets: rooms }),
      history.sendFor({ ...loop, op: 'dm', senders: dmSenders, targets: dmTargets }),
    ]);

    // The failpoint fires during the run: the victim dies by SIGKILL from inside, and says where.
    const died = await Promise.race([victim.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), RUN_MS + 3000))]);
    const victimDiedAt = Date.now();
    const diedAfterMs = victimDiedAt - startedAt;
    expect(died, `${s.failpoint}:${s.hit} never fired (victim still running ${diedAfterMs} ms into the run)`).toBe(true);
    expect(victim.exitSignal).toBe('SIGKILL');
    expect(victim.logs().some((l) => l.includes(`failpoint ${s.failpoint}: killing the process`))).toBe(true);
    await traffic;

    // Everyone resends until ok: nothing may be left without an ok (and nothing answered but with
    // `unavailable`). One more pub per room flushes each room stream past every earlier seq.
    expect(history.answerProblems(['unavailable'], [...pubSenders, ...dmSenders].map((x) => x.client))).toEqual([]);
    const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
    expect(history.sends.filter((x) => !okd.has(x.mid)).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`), 'messages never ok’d').toEqual([]);
    for (const room of rooms) await history.pubUntilOk(pubSenders[0]!.client, 'closer', room, 10_000, { tag: 'final' });

    if (offline !== undefined) {
      // Offline the whole run: it connects now and gets its whole inbox, in seq order, and acks it.
      const late = await client(1, offline);
      history.watch(late, offline);
    }
    const result = await history.settle(SETTLE_MS, 'every ok’d message to be delivered and acknowledged');
    if (result.problems.length > 0) {
      console.error(`${s.failpoint}: the victim died ${diedAfterMs} ms into the run (+${victimDiedAt - history.events[0]!.atMs}ms below)`);
      history.logProblems(result, 4);
    }
    expect(result.lines()).toEqual([]);
    const victimRooms = byOwner.get(victim.nodeId!)!;
    console.info(`router failpoint ${s.failpoint}:${s.hit}:`, {
      diedAfterMs,
      pubs: history.summary('pub'),
      dms: history.summary('dm'),
      victimRooms: victimRooms.map((r) => result.rooms[r]!.stats),
      recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u === offline ? `${u} (offline)` : slow.includes(u) ? `${u} (slow)` : u, v.stats])),
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
  it('after the durable write, before the fan-out (router.after-append)', () => run({ failpoint: 'router.after-append', hit: 150 }), 60_000);
  it('in the middle of a retry sweep (router.mid-sweep)', () => run({ failpoint: 'router.mid-sweep', hit: 40, slowAckers: 2, offline: true }), 60_000);

  it('after the durable write of the first dm to a recipient that connected with an empty inbox', async () => {
    // The gateway knows no last seq for this recipient yet: seq 1 is stored and its first delivery dies
    // with the router; dms sent meanwhile get seqs 2, 3, ... from the new owner. The recipient must
    // still get 1 before them.
    const victim = await suite.cluster.add('router', { NODE_ENV: 'test', RTGW_FAILPOINTS: 'router.after-append:1' });
    try {
      const routers = [healthy, victim];
      await waitBalanced(withRouters(routers));
      const to = usersOwnedBy(routers.map((r) => r.nodeId!), victim.nodeId!, 1, 'fresh')[0]!;
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
      expect(history.dmOks(to).map((d) => d.outcome.seq)).toEqual(Array.from({ length: MEANWHILE + 1 }, (_, i) => i + 1));
      const result = await history.settle(SETTLE_MS, 'every ok’d dm delivered and acknowledged');
      history.logProblems(result, 1, undefined, 30);
      console.info('router failpoint router.after-append:1 (first dm):', { dms: history.summary('dm'), firstArrivals: [...new Set(history.receives({ user: to }).map((e) => e.frame.seq as number))].join(' ') });
      expect(result.lines()).toEqual([]);
    } finally {
      victim.kill('SIGKILL');
      await victim.exited;
    }
  }, 40_000);

  it('is ignored outside NODE_ENV=test: an armed router in production keeps serving', async () => {
    const armed = await suite.cluster.add('router', { NODE_ENV: 'production', RTGW_FAILPOINTS: 'router.before-append:1,router.after-append:1,router.mid-sweep:1' });
    try {
      const routers = [healthy, armed];
      await waitBalanced(withRouters(routers));
      const room = roomsByOwner(withRouters(routers), 1, 'prod').get(armed.nodeId!)![0]!;
      const to = usersOwnedBy(routers.map((r) => r.nodeId!), armed.nodeId!, 1, 'prod')[0]!;
      const history = new History();
      const sender = await client(0);
      const recipient = await client(1, to);
      history.watch(recipient, to, { ack: false }); // unacknowledged: its retry goes through a sweep
      for (let i = 0; i < 3; i++) {
        expect((await history.pub(sender, 'prod', room)).outcome?.kind).toBe('ok');
        expect((await history.dm(sender, 'prod', to)).outcome?.kind).toBe('ok');
      }
      await waitFor(() => history.receives({ user: to }).length > 3, 5000, 'a retry of an unacknowledged dm (a sweep that claimed it)');
      expect(armed.hasExited, `armed router exited (${String(armed.exitSignal)})`).toBe(false);
      expect(armed.logs().filter((l) => l.includes('failpoint'))).toEqual([]);
    } finally {
      await armed.stop();
    }
  }, 30_000);
});
