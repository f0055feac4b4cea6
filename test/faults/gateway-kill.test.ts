// Guarantees 1, 2 and 4 across a gateway SIGKILLed under traffic.
// 1. Presence: clients on gateways A and B share rooms with presence; A is SIGKILLed while B's publisher
//    keeps publishing. Presence (the client `presence` request on B and the backend's `<prefix>.api.presence`)
//    drops A's connections within the heartbeat TTL plus a reaper round, B's presence watcher gets `left`
//    once for each of A's connections and none for B's, B's members keep receiving every ok'd message in
//    order, and a client of A that reconnects to B with since/epoch recovers everything it missed.
// 2. The gateway holding recipients (and a room member) dies: they reconnect to the other gateway at once
//    (the member rejoins with since/epoch) and get every ok'd dm and pub, none twice under two seqs,
//    none out of order; a recipient that comes back only after the presence TTL gets everything too.
// 3. The gateway holding senders dies with requests in flight: the senders reconnect elsewhere and
//    resend what was unanswered with the same mid; every message ends up stored exactly once and
//    delivered in order (judged by the history checker).
// Two clusters: the presence run's (only the presence TTL set; its presence clients are set up by hand),
// and the fast-knobs one for 2 and 3 (the scenario builder places each kind of client on a given
// gateway), where the second kill takes a gateway added after the first.
import { describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../shared/store/ports.js';
import type { Frame, TestClient } from '../harness/client.js';
import { uid, type Node } from '../harness/cluster.js';
import { History, type CheckResult, type Sender } from '../harness/history.js';
import { lastSeq, roomsByOwner } from '../harness/nodes.js';
import { FAST_ENV, PRESENCE_TTL_MS, roomProblems, useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

describe('a gateway killed with SIGKILL, with presence', () => {
  /** Routers reap every TTL/4 (router/index.ts); the margin covers Redis round trips and 2 busy cores. */
  const REAPER_EVERY_MS = PRESENCE_TTL_MS / 4;
  const REAP_BOUND_MS = PRESENCE_TTL_MS + REAPER_EVERY_MS + 2000;
  const RUN_MS = 10_000;
  const KILL_AFTER_MS = 2000;

  const sc = useScenario({
    gateways: 2,
    routers: 2,
    env: { RTGW_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) },
    bus: 'rtgw-faults-gateway-kill-presence',
  });
  const { client, api } = sc;

  interface Presence {
    users: string[];
    count: number;
  }

  it('a gateway killed with SIGKILL leaves no presence ghosts past the TTL bound, each of its members is `left` once, and its clients recover on the other gateway', async () => {
    const { cluster } = sc;
    const A = cluster.gateways[0]!; // B, gateway 1, is where the others connect (client(1))
    const rooms = [...roomsByOwner(cluster, 1, 'gk').values()].flat(); // one room per router
    const apiPresence = (room: string): Promise<Presence> => api<Presence>('presence', { room }, 2000);

    // B: a presence watcher and two plain members. A: two connections of one user, one of another.
    const watcher = await client(1);
    for (const room of rooms) await watcher.ok({ t: 'join', room, presence: true });
    const bMembers = [await client(1), await client(1)];
    for (const m of bMembers) for (const room of rooms) await m.ok({ t: 'join', room });
    const [ua, ub] = [uid('ua'), uid('ub')];
    const aClients = [await client(0, ua), await client(0, ua), await client(0, ub)];
    const epochs = new Map<string, string>();
    for (const [i, c] of aClients.entries()) {
      for (const room of rooms) epochs.set(room, (await c.ok({ t: 'join', room, presence: i !== 1 })).epoch as string);
    }
    const aConns = aClients.map((c) => c.conn);
    const bConns = [watcher, ...bMembers].map((c) => c.conn);
    const bUsers = [watcher, ...bMembers].map((c) => c.user).sort();
    const everyone = [...new Set([...bUsers, ua, ub])].sort();

    // Before the kill: presence shows everyone, both ways; the watcher saw each of A's joins.
    for (const room of rooms) {
      await waitFor(
        async () => (await watcher.ok({ t: 'presence', room })).count === 6,
        3000,
        `presence of ${room} to count 6`,
      );
      expect(await watcher.ok({ t: 'presence', room })).toMatchObject({ users: everyone, count: 6 });
      expect(await apiPresence(room)).toEqual({ users: everyone, count: 6 });
      for (const conn of aConns)
        await watcher.next(
          (f) => f.t === 'joined' && f.room === room && f.conn === conn,
          3000,
          0,
          `joined of ${conn} in ${room}`,
        );
    }

    const history = new History();
    const publisher = await client(1);
    const startedAt = Date.now();
    const run = history.publishFor({
      publishers: [{ client: publisher, name: 'pB' }],
      rooms,
      durationMs: RUN_MS,
      everyMs: 10,
      maxInFlight: 50,
      answerTimeoutMs: 10_000,
    });

    await waitFor(() => Date.now() - startedAt >= KILL_AFTER_MS, KILL_AFTER_MS + 1000, 'the kill point');
    const bCountAtKill = bMembers.map((m) => m.frames.length);
    const killedAt = Date.now();
    A.kill('SIGKILL');
    await A.exited;
    for (const c of aClients) expect((await c.closed).code).toBe(1006);
    // Where A's first client was when its gateway died: it resumes from there.
    const aSeen = new Map(rooms.map((room) => [room, lastSeq(aClients[0]!.frames, room)]));
    expect(
      [...aSeen.values()].every((s) => s > 0),
      'A’s members received messages before the kill',
    ).toBe(true);

    // B's members keep receiving right through the kill.
    await waitFor(
      () => bMembers.every((m, i) => m.frames.length > bCountAtKill[i]! + 20),
      2000,
      'B’s members to receive messages published after the kill',
    );

    // Presence drops A's connections (and only those) within the bound, on both read paths.
    const gone = (p: Presence) => p.count === 3 && p.users.join() === bUsers.join();
    await waitFor(
      async () => {
        for (const room of rooms)
          if (!gone((await watcher.ok({ t: 'presence', room })) as unknown as Presence)) return false;
        return true;
      },
      REAP_BOUND_MS,
      `client presence on B to drop A's connections within ${REAP_BOUND_MS} ms`,
    );
    const reapedAfterMs = Date.now() - killedAt;
    for (const room of rooms)
      expect(await apiPresence(room), `api.presence of ${room}`).toEqual({ users: bUsers, count: 3 });
    expect(reapedAfterMs).toBeLessThan(REAP_BOUND_MS);
    // `left` reaches the watcher within the same bound.
    for (const room of rooms) {
      for (const conn of aConns) {
        await watcher.next(
          (f) => f.t === 'left' && f.room === room && f.conn === conn,
          Math.max(1, killedAt + REAP_BOUND_MS - Date.now()),
          0,
          `left of ${conn} in ${room}`,
        );
      }
    }

    await run;
    expect(history.answerProblems(['unavailable'], [publisher])).toEqual([]);
    // Nothing is wrong with the rooms' routers: no pub failed and none waited long.
    expect(history.summary()).toEqual({ ok: history.pubs.length });
    expect(history.longestSilence(startedAt, Date.now()).ms).toBeLessThan(1500);

    // Each of A's connections is `left` exactly once per room (several routers reap), B's never.
    const lefts = watcher.of('left');
    for (const room of rooms) {
      for (const conn of aConns) {
        const mine = lefts.filter((f: Frame) => f.room === room && f.conn === conn);
        expect(mine.length, `left of ${conn} in ${room}`).toBe(1);
        expect(mine[0]).toMatchObject({ t: 'left', room, conn, user: conn === aConns[2] ? ub : ua });
      }
      for (const conn of bConns)
        expect(
          lefts.filter((f: Frame) => f.room === room && f.conn === conn),
          `left of B’s ${conn}`,
        ).toEqual([]);
    }
    // Presence is a set of live connections again: no ghosts, and a B join is reflected.
    for (const room of rooms)
      expect(await watcher.ok({ t: 'presence', room })).toMatchObject({ users: bUsers, count: 3 });

    // B's members (and the watcher) got every ok'd message, 1..N, in order, once.
    const t = {
      members: [...bMembers, watcher].map((client, i) => ({ name: i < bMembers.length ? `b${i}` : 'watcher', client })),
    };
    expect(await roomProblems(cluster, history, rooms, t.members, { name: 'pB', client: publisher })).toEqual([]);

    // A's first client comes back on B with since/epoch and recovers exactly what it missed.
    const back = await client(1, ua);
    for (const room of rooms) {
      const since = aSeen.get(room)!;
      expect(history.receiverProblems('A client before the kill', aClients[0]!.frames, { room, expected: [] })).toEqual(
        [],
      );
      const from = back.frames.length;
      const j = await back.ok({ t: 'join', room, since, epoch: epochs.get(room) });
      expect(j, room).toMatchObject({ room, recovered: true, epoch: epochs.get(room), seq: history.maxOkSeq(room) });
      await back.waitForMsgs(room, (j.seq as number) - since, 10_000);
      const replay = back.frames.slice(from);
      expect(
        history.receiverProblems('A client on B', replay, { room, after: since, through: j.seq as number }),
      ).toEqual([]);
      expect(
        history.agreementProblems(room, [
          { who: 'A client on B', frames: replay },
          ...t.members.map((m) => ({ who: m.name, frames: m.client.frames })),
        ]),
      ).toEqual([]);
    }
    console.info('gateway-kill:', {
      outcomes: history.summary(),
      reapedAfterMs,
      boundMs: REAP_BOUND_MS,
      lefts: lefts.length,
    });
  }, 90_000);
});

const RUN_MS = 5000;
const KILL_AFTER_MS = 1500;
const ANSWER_TIMEOUT_MS = 6000;
const SETTLE_MS = 12_000;

describe.sequential('a gateway killed with SIGKILL under pubs and dms', () => {
  const suite = useScenario({ gateways: 2, routers: 2, env: FAST_ENV, bus: 'rtgw-faults-gateway-kill', logLines: 60 });
  const onGateway = (gw: Node, user = uid('u')): Promise<TestClient> =>
    suite.client(suite.cluster.gateways.indexOf(gw), user);

  async function deadLetters(user: string): Promise<DeadLetter[]> {
    return (await suite.api<{ deadLetters: DeadLetter[] }>('deadletters', { user }, 3000)).deadLetters;
  }

  /** Waits until nothing ok'd is undelivered or unacknowledged (or the deadline), then checks. */
  async function settle(history: History): Promise<CheckResult> {
    const result = await history.settle(SETTLE_MS);
    history.logProblems(result, 4);
    return result;
  }

  /** What the first test leaves for the late recipient's check. */
  let late: { history: History; user: string; killedAt: number } | undefined;

  it('the recipients’ gateway: they reconnect elsewhere at once and miss nothing, in order; a member resumes with since', async () => {
    const { cluster } = suite;
    const [A, B] = [cluster.gateways[0]!, cluster.gateways[1]!];
    // On A: recipients (acking everything), a room member (the roamer), and the late recipient. On B: a member and the senders.
    const w = await suite.build({
      roomsPerRouter: 1,
      roomBase: 'gk',
      membersPerGateway: 1,
      recipients: 3,
      publishersPerGateway: 1,
      dmSendersPerGateway: 1,
      on: { members: [0, 1], recipients: [0], publishers: [1], dmSenders: [1] },
    });
    const { history, rooms, recipients } = w;
    const [roamer, stay] = [w.members[0]!, w.members[1]!];
    const lateHistory = new History();
    const lateUser = uid('late');
    lateHistory.watch(await onGateway(A, lateUser), lateUser);
    const lateSender: Sender = { name: 'lateB', client: await onGateway(B) };

    const loop = {
      durationMs: RUN_MS,
      everyMs: 20,
      maxInFlight: 100,
      answerTimeoutMs: ANSWER_TIMEOUT_MS,
      resendForMs: 8000,
    };
    const lateTraffic = lateHistory.sendFor({
      ...loop,
      everyMs: 100,
      op: 'dm',
      senders: [lateSender],
      targets: [lateUser],
    });
    await w.drive(loop, {
      atMs: KILL_AFTER_MS,
      strike: async () => {
        expect(history.dmOks().length, 'dms ok’d before the kill').toBeGreaterThan(20);
        A.kill('SIGKILL');
        await A.exited;
        const killedAt = Date.now();
        // Each client of A reconnects to B as soon as it sees the close, like a real client would.
        await Promise.all(
          recipients.map(async (user) => {
            expect((await w.recipientClients.get(user)!.closed).code).toBe(1006);
            history.watch(await onGateway(B, user), user);
          }),
        );
        expect((await roamer.client.closed).code).toBe(1006);
        const back = await onGateway(B, roamer.client.user);
        history.watch(back, roamer.name);
        for (const room of rooms) {
          const since = lastSeq(roamer.client.frames, room);
          const j = await history.join(back, roamer.name, room, { since, epoch: w.epochs.get(room) });
          expect(j, room).toMatchObject({ recovered: true, epoch: w.epochs.get(room) });
        }
        late = { history: lateHistory, user: lateUser, killedAt };
      },
    });
    await lateTraffic;

    // The roamer's copy spans two connections: the checker judges it per join; the room oracle reads the member on B.
    await w.verify({
      roomMembers: [stay],
      settleMs: SETTLE_MS,
      report: (result) => [
        'gateway-kill (recipients):',
        {
          pubs: history.summary('pub'),
          dms: history.summary('dm'),
          recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
          rooms: Object.fromEntries(Object.entries(result.rooms).map(([r, v]) => [r, v.stats])),
        },
      ],
    });
  }, 60_000);

  it('a recipient that reconnects only after the presence TTL still gets every dm ok’d while it was away', async () => {
    if (late === undefined) throw new Error('the first step did not get to the kill; nothing to check');
    const { history, user, killedAt } = late;
    // Away past the TTL and the reaper: the cluster has had every chance to notice it is gone.
    await waitFor(
      () => Date.now() - killedAt >= PRESENCE_TTL_MS + 1000,
      PRESENCE_TTL_MS + 2000,
      'the presence TTL to pass',
    );
    history.watch(await onGateway(suite.cluster.gateways[1]!, user), user);
    const result = await settle(history);
    const letters = await deadLetters(user);
    console.info('gateway-kill (late recipient):', {
      dms: history.summary('dm'),
      stats: result.recipients[user]?.stats,
      deadLetters: letters.length,
    });
    expect(
      letters.map(
        (d) =>
          `seq ${d.seq} dead-lettered (${d.reason}, ${d.attempts} attempts) ${d.ts - killedAt} ms after the kill, stored ${d.sentTs - killedAt} ms after it`,
      ),
      'dead letters of a recipient that was offline (its gateway dead), not connected',
    ).toEqual([]);
    expect(result.lines()).toEqual([]);
  }, 30_000);

  it('the senders’ gateway, with requests in flight: resent with their mid, every message is stored once and delivered in order', async () => {
    const { cluster } = suite;
    const C = await cluster.add('gateway');
    const B = cluster.gateways[1]!;
    const c = cluster.gateways.indexOf(C);
    // On B: recipients and a member. On C: the senders, each with its own user id (a resend is deduplicated per sender user and mid).
    const w = await suite.build({
      roomsPerRouter: 1,
      roomBase: 'gs',
      membersPerGateway: 1,
      recipients: 2,
      publishersPerGateway: 1,
      dmSendersPerGateway: 1,
      on: { members: [1], recipients: [1], publishers: [c], dmSenders: [c] },
    });
    const { history, rooms, recipients } = w;
    const [pubber, dmer] = [w.publishers[0]!, w.dmSenders[0]!];
    const oldClients = new Set<TestClient>();
    const { sentBeforeKill, reconnectedAt } = (await w.drive(
      { durationMs: RUN_MS, everyMs: 5, maxInFlight: 40, answerTimeoutMs: ANSWER_TIMEOUT_MS, resendForMs: 8000 },
      {
        atMs: KILL_AFTER_MS,
        strike: async () => {
          // A burst on top of the loop, and the kill as soon as the first of it is answered (only microtasks
          // run in between): the rest is in flight at every stage, from the socket buffers to the routers.
          // The routers answer a burst in one message, so all of it may be answered at once: a second burst
          // written right before the kill is in flight whatever the timing.
          const burstFrom = history.sends.length;
          const sendBurst = (n: number) =>
            Array.from({ length: n }, (_, i) => [
              history.pub(pubber.client, pubber.name, rooms[i % rooms.length]!),
              history.dm(dmer.client, dmer.name, recipients[i % recipients.length]!),
            ]).flat();
          const burst = sendBurst(30);
          await Promise.race(burst);
          burst.push(...sendBurst(5));
          const burstRecs = history.sends.slice(burstFrom);
          const sentBeforeKill = history.sends.length;
          C.kill('SIGKILL');
          await C.exited;
          // The senders come back on B under the same user ids; the loop resends whatever had no answer.
          await Promise.all(
            w.senders.map(async (s) => {
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
            burstRecs.map((rec) =>
              history.resendUntilOk(() => (rec.op === 'pub' ? pubber : dmer).client, rec, 10_000, {
                answerTimeoutMs: ANSWER_TIMEOUT_MS,
              }),
            ),
          );
          return { sentBeforeKill, reconnectedAt };
        },
      },
    ))!;

    const inFlight = history.sends.slice(0, sentBeforeKill).filter((x) => x.outcome?.kind === 'unanswered');
    expect(inFlight.length, 'requests in flight when the senders’ gateway died').toBeGreaterThan(0);
    // Only requests on the dead gateway's connections went unanswered; every other answer is ok or `unavailable`, once.
    expect(
      history.sends
        .filter((x) => x.outcome?.kind === 'unanswered' && x.sentAtMs >= reconnectedAt)
        .map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`),
    ).toEqual([]);
    expect(
      history.sends
        .filter((x) => x.outcome?.kind === 'err' && x.outcome.code !== 'unavailable')
        .map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`),
    ).toEqual([]);
    for (const cl of [...oldClients, ...w.senders.map((s) => s.client)])
      for (const [id, n] of cl.answers) expect(n, `request ${id} answered ${n} times`).toBe(1);
    // Every message got its ok in the end (a resend of an unanswered one answers the first seq).
    const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
    expect(history.sends.filter((x) => !okd.has(x.mid)).map((x) => `${x.mid}: ${JSON.stringify(x.outcome)}`)).toEqual(
      [],
    );
    // The standard oracles, but for the answers: some went with the dead gateway, judged above.
    await w.verify({
      answers: false,
      settleMs: SETTLE_MS,
      report: () => [
        'gateway-kill (senders):',
        { inFlightAtKill: inFlight.length, pubs: history.summary('pub'), dms: history.summary('dm') },
      ],
    });
  }, 60_000);
});
