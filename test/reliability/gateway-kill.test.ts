// Guarantees 1, 2 and 4 across a gateway SIGKILLed under traffic, judged by the history checker.
// 1. The gateway holding recipients (and a room member) dies: they reconnect to the other gateway at once
//    (the member rejoins with since/epoch) and get every ok'd dm and pub, none twice under two seqs,
//    none out of order; a recipient that comes back only after the presence TTL gets everything too.
// 2. The gateway holding senders dies with requests in flight: the senders reconnect elsewhere and
//    resend what was unanswered with the same mid; every message ends up stored exactly once and
//    delivered in order.
// One cluster run: the second kill takes a gateway added after the first.
import { describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../shared/store/ports.js';
import type { TestClient } from '../harness/client.js';
import { uid, type Node } from '../harness/cluster.js';
import { History, type CheckResult, type Sender } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { lastSeq, roomsByOwner, waitBalanced } from '../fault/kit.js';
import { ENV, PRESENCE_TTL_MS } from './env.js';

const RUN_MS = 5000;
const KILL_AFTER_MS = 1500;
const ANSWER_TIMEOUT_MS = 6000;
const SETTLE_MS = 12_000;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: ENV,
  bus: 'rtgw-reliability-gateway-kill',
  pingOnConnect: true,
  ready: (c) => waitBalanced(c),
});
const { client, api } = suite;

const onGateway = (gw: Node, user = uid('u')): Promise<TestClient> => client(suite.cluster.gateways.indexOf(gw), user);

async function deadLetters(user: string): Promise<DeadLetter[]> {
  return (await api<{ deadLetters: DeadLetter[] }>('deadletters', { user }, 3000)).deadLetters;
}

/** Waits until nothing ok'd is undelivered or unacknowledged (or the deadline), then checks. */
async function settle(history: History): Promise<CheckResult> {
  const result = await history.settle(SETTLE_MS);
  history.logProblems(result, 4);
  return result;
}

/** What the first test leaves for the late recipient's check. */
let late: { history: History; user: string; killedAt: number } | undefined;

describe.sequential('a gateway killed with SIGKILL', () => {
  it('the recipients’ gateway: they reconnect elsewhere at once and miss nothing, in order; a member resumes with since', async () => {
    const { cluster } = suite;
    const [A, B] = [cluster.gateways[0]!, cluster.gateways[1]!];
    const rooms = [...roomsByOwner(cluster, 1, 'gk').values()].flat();
    const history = new History();
    const lateHistory = new History();

    // On A: recipients (acking everything), a room member, and the late recipient. On B: a member and the senders.
    const recipients = [uid('rcpt'), uid('rcpt'), uid('rcpt')];
    const onA = new Map<string, TestClient>();
    for (const user of recipients) {
      const c = await onGateway(A, user);
      history.watch(c, user);
      onA.set(user, c);
    }
    const lateUser = uid('late');
    lateHistory.watch(await onGateway(A, lateUser), lateUser);
    const roamer = await onGateway(A);
    history.watch(roamer, 'roamer');
    const stay = await onGateway(B);
    history.watch(stay, 'stay');
    const epochs = new Map<string, string>();
    for (const room of rooms) {
      epochs.set(room, (await history.join(roamer, 'roamer', room)).epoch as string);
      await history.join(stay, 'stay', room);
    }
    const pubSenders: Sender[] = [{ name: 'pB', client: await onGateway(B) }];
    const dmSenders: Sender[] = [{ name: 'dB', client: await onGateway(B) }];
    const lateSender: Sender = { name: 'lateB', client: await onGateway(B) };

    const loop = { durationMs: RUN_MS, everyMs: 20, maxInFlight: 100, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: 8000 };
    const startedAt = Date.now();
    const traffic = Promise.all([
      history.sendFor({ ...loop, op: 'pub', senders: pubSenders, targets: rooms }),
      history.sendFor({ ...loop, op: 'dm', senders: dmSenders, targets: recipients }),
      lateHistory.sendFor({ ...loop, everyMs: 100, op: 'dm', senders: [lateSender], targets: [lateUser] }),
    ]);

    await waitFor(() => Date.now() - startedAt >= KILL_AFTER_MS, KILL_AFTER_MS + 1000, 'the kill point');
    expect(history.dmOks().length, 'dms ok’d before the kill').toBeGreaterThan(20);
    A.kill('SIGKILL');
    await A.exited;
    const killedAt = Date.now();
    // Each client of A reconnects to B as soon as it sees the close, like a real client would.
    await Promise.all(
      recipients.map(async (user) => {
        expect((await onA.get(user)!.closed).code).toBe(1006);
        history.watch(await onGateway(B, user), user);
      }),
    );
    expect((await roamer.closed).code).toBe(1006);
    const back = await onGateway(B, roamer.user);
    history.watch(back, 'roamer');
    for (const room of rooms) {
      const since = lastSeq(roamer.frames, room);
      const j = await history.join(back, 'roamer', room, { since, epoch: epochs.get(room) });
      expect(j, room).toMatchObject({ recovered: true, epoch: epochs.get(room) });
    }
    late = { history: lateHistory, user: lateUser, killedAt };

    await traffic;
    expect(history.answerProblems(['unavailable'], [...pubSenders, ...dmSenders].map((s) => s.client))).toEqual([]);
    for (const room of rooms) await history.pubUntilOk(pubSenders[0]!.client, 'closer', room, 10_000, { tag: 'final' });
    const result = await settle(history);
    expect(result.lines()).toEqual([]);
    console.info('gateway-kill (recipients):', {
      pubs: history.summary('pub'),
      dms: history.summary('dm'),
      recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
      rooms: Object.fromEntries(Object.entries(result.rooms).map(([r, v]) => [r, v.stats])),
    });
  }, 60_000);

  it('a recipient that reconnects only after the presence TTL still gets every dm ok’d while it was away', async () => {
    if (late === undefined) throw new Error('the first step did not get to the kill; nothing to check');
    const { history, user, killedAt } = late;
    // Away past the TTL and the reaper: the cluster has had every chance to notice it is gone.
    await waitFor(() => Date.now() - killedAt >= PRESENCE_TTL_MS + 1000, PRESENCE_TTL_MS + 2000, 'the presence TTL to pass');
    history.watch(await onGateway(suite.cluster.gateways[1]!, user), user);
    const result = await settle(history);
    const letters = await deadLetters(user);
    console.info('gateway-kill (late recipient):', { dms: history.summary('dm'), stats: result.recipients[user]?.stats, deadLetters: letters.length });
    expect(
      letters.map((d) => `seq ${d.seq} dead-lettered (${d.reason}, ${d.attempts} attempts) ${d.ts - killedAt} ms after the kill, stored ${d.sentTs - killedAt} ms after it`),
      'dead letters of a recipient that was offline (its gateway dead), not connected',
    ).toEqual([]);
    expect(result.lines()).toEqual([]);
  }, 30_000);

  it('the senders’ gateway, with requests in flight: resent with their mid, every message is stored once and delivered in order', async () => {
    const { cluster } = suite;
    const C = await cluster.add('gateway');
    const B = cluster.gateways[1]!;
    const rooms = [...roomsByOwner(cluster, 1, 'gs').values()].flat();
    const history = new History();
    const recipients = [uid('rcpt'), uid('rcpt')];
    for (const user of recipients) history.watch(await onGateway(B, user), user);
    const member = await onGateway(B);
    history.watch(member, 'member');
    for (const room of rooms) await history.join(member, 'member', room);
    // Senders on C, each with its own user id (a resend is deduplicated per sender user and mid).
    const senders = [
      { op: 'pub' as const, s: { name: 'pC', client: await onGateway(C) } as Sender },
      { op: 'dm' as const, s: { name: 'dC', client: await onGateway(C) } as Sender },
    ];
    const startedAt = Date.now();
    const traffic = Promise.all(
      senders.map(({ op, s }) =>
        history.sendFor({ op, senders: [s], targets: op === 'pub' ? rooms : recipients, durationMs: RUN_MS, everyMs: 5, maxInFlight: 40, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: 8000 }),
      ),
    );
    await waitFor(() => Date.now() - startedAt >= KILL_AFTER_MS, KILL_AFTER_MS + 1000, 'the kill point');
    // A burst on top of the loop, and the kill as soon as the first of it is answered (only microtasks
    // run in between): the rest is in flight at every stage, from the socket buffers to the routers.
    // The routers answer a burst in one message, so all of it may be answered at once: a second burst
    // written right before the kill is in flight whatever the timing.
    const [pubber, dmer] = [senders[0]!.s, senders[1]!.s];
    const burstFrom = history.sends.length;
    const sendBurst = (n: number) =>
      Array.from({ length: n }, (_, i) => [history.pub(pubber.client, pubber.name, rooms[i % rooms.length]!), history.dm(dmer.client, dmer.name, recipients[i % recipients.length]!)]).flat();
    const burst = sendBurst(30);
    await Promise.race(burst);
    burst.push(...sendBurst(5));
    const burstRecs = history.sends.slice(burstFrom);
    const sentBeforeKill = history.sends.length;
    const oldClients = new Set<TestClient>();
    C.kill('SIGKILL');
    await C.exited;
    // The senders come back on B under the same user ids; the loop resends whatever had no answer.
    await Promise.all(
      senders.map(async ({ s }) => {
        const old = s.client;
        oldClients.add(old);
        expect((await old.closed).code).toBe(1006);
        s.client = await onGateway(B, old.user);
      }),
    );
    const reconnectedAt = Date.now();
    // The burst's unanswered messages are resent like the loop's: same mid, on the new connection.
    await Promise.all(burst);
    await Promise.all(
      burstRecs.map((rec) => history.resendUntilOk(() => (rec.op === 'pub' ? pubber : dmer).client, rec, 10_000, { answerTimeoutMs: ANSWER_TIMEOUT_MS })),
    );
    await traffic;

    const inFlight = history.sends.slice(0, sentBeforeKill).filter((x) => x.outcome?.kind === 'unanswered');
    expect(inFlight.length, 'requests in flight when the senders’ gateway died').toBeGreaterThan(0);
    // Only requests on the dead gateway's connections went unanswered; every other answer is ok or `unavailable`, once.
    expect(history.sends.filter((x) => x.outcome?.kind === 'unanswered' && x.sentAtMs >= reconnectedAt).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual([]);
    expect(history.sends.filter((x) => x.outcome?.kind === 'err' && x.outcome.code !== 'unavailable').map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual([]);
    for (const c of [...oldClients, ...senders.map(({ s }) => s.client)]) for (const [id, n] of c.answers) expect(n, `request ${id} answered ${n} times`).toBe(1);
    // Every message got its ok in the end (a resend of an unanswered one answers the first seq).
    const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
    expect(history.sends.filter((x) => !okd.has(x.mid)).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual([]);
    for (const room of rooms) await history.pubUntilOk(senders[0]!.s.client, 'closer', room, 10_000, { tag: 'final' });
    const result = await settle(history);
    expect(result.lines()).toEqual([]);
    console.info('gateway-kill (senders):', {
      inFlightAtKill: inFlight.length,
      pubs: history.summary('pub'),
      dms: history.summary('dm'),
    });
  }, 60_000);
});
