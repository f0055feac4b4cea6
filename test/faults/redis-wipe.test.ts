// History lost (protocol §4 `epoch`, guarantee 4's "serves again"): Redis is restarted empty under a
// running cluster. Within a bound every node is ready again and pubs get ok; the rooms have a new
// epoch; a join with the old epoch and a `since` answers `recovered: false` and replays nothing from
// the old history; and live members, who stayed joined throughout, see the new epoch's seqs start at
// 1 again, gapless, in order and without duplicates — every ok'd message exactly once — after one
// `epoch` frame that says where the new seqs start.
import { expect, it } from 'vitest';
import { range, seqs } from '../harness/client.js';
import { History } from '../harness/history.js';
import { allReady, roomsByOwner } from '../harness/nodes.js';
import { useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const LEASE_MS = 2000;
const REQUEST_TIMEOUT_MS = 3000;
/** Reconnect backoff of the Redis client (≤ 2 s), a lease round, and one request timeout of slack. */
const RECOVERY_BOUND_MS = 2000 + LEASE_MS + REQUEST_TIMEOUT_MS + 3000;
const BEFORE = 5;
const AFTER = 5;

// Not on the scenario's traffic and oracles: the room's seqs start again at 1 in the new epoch, which
// the checker would take for one seq carrying two messages. The epoch-aware checks are below.
const suite = useScenario({
  gateways: 2,
  routers: 2,
  env: { RTGW_LEASE_MS: String(LEASE_MS), RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
});
const { client } = suite;

it('after Redis restarts empty the cluster serves again, rooms get a new epoch, old-epoch joins are not recovered, and live members see seqs restart at 1 exactly once', async () => {
  const { cluster } = suite;
  const rooms = [...roomsByOwner(cluster, 1, 'rw').values()].flat(); // one room per router
  const members = [await client(0), await client(1)];
  const oldEpoch = new Map<string, string>();
  for (const m of members)
    for (const room of rooms) oldEpoch.set(room, (await m.ok({ t: 'join', room })).epoch as string);
  const publisher = await client(0);
  const history = new History();
  for (const room of rooms) {
    for (let i = 0; i < BEFORE; i++) {
      const r = await history.pub(publisher, 'before', room, { tag: 'before' });
      expect(r.outcome).toEqual({ kind: 'ok', seq: i + 1 });
    }
  }
  for (const m of members)
    for (const room of rooms) expect(seqs(await m.waitForMsgs(room, BEFORE))).toEqual(range(1, BEFORE));
  const framesBefore = members.map((m) => m.frames.length);

  const restartStarted = Date.now();
  await cluster.redis.restart();
  const restartedAt = Date.now();

  // Serving again: a pub per room gets ok (earlier attempts may be `unavailable`), and every node is ready.
  for (const room of rooms)
    await history.pubUntilOk(publisher, 'after', room, RECOVERY_BOUND_MS, {
      tag: 'after',
      answerTimeoutMs: REQUEST_TIMEOUT_MS + 3000,
    });
  const servingAfterMs = Date.now() - restartedAt;
  await waitFor(
    () => allReady(cluster),
    Math.max(1, restartedAt + RECOVERY_BOUND_MS - Date.now()),
    'every node ready after the Redis restart',
  );
  const readyAfterMs = Date.now() - restartedAt;
  expect(servingAfterMs).toBeLessThan(RECOVERY_BOUND_MS);

  // A new join sees a new epoch; a join with the old epoch and a since is not recovered, and replays nothing.
  const fresh = await client(1);
  const stale = await client(0);
  const staleJoinSeq = new Map<string, number>();
  const newEpochOf = new Map<string, string>();
  for (const room of rooms) {
    const j = await fresh.ok({ t: 'join', room });
    newEpochOf.set(room, j.epoch as string);
    expect(typeof j.epoch).toBe('string');
    expect(j.epoch, `${room} epoch after the wipe`).not.toBe(oldEpoch.get(room));
    const s = await stale.ok({ t: 'join', room, since: BEFORE, epoch: oldEpoch.get(room) });
    expect(s, room).toMatchObject({ room, recovered: false, epoch: j.epoch });
    staleJoinSeq.set(room, s.seq as number);
  }

  for (const room of rooms) {
    for (let i = 0; i < AFTER; i++) {
      const r = await history.pub(publisher, 'after', room, {
        tag: 'after',
        answerTimeoutMs: REQUEST_TIMEOUT_MS + 3000,
      });
      expect(r.outcome?.kind, JSON.stringify(r.outcome)).toBe('ok');
    }
  }
  expect(history.answerProblems(['unavailable'], [publisher], (p) => (p.tag === 'before' ? 'old' : 'new'))).toEqual([]);

  // Live members: the old epoch's 1..5, then the new epoch's 1..N without a gap or a duplicate, and
  // every ok'd pub of the new epoch at the seq it was answered with.
  for (const room of rooms) {
    const head = history.maxOkSeq(room, 'after');
    for (const [i, m] of members.entries()) {
      await m.next(
        (f) => f.t === 'msg' && f.room === room && f.seq === head,
        10_000,
        framesBefore[i]!,
        `seq ${head} of the new epoch in ${room}`,
      );
      const newEpoch = m.frames.slice(framesBefore[i]!);
      expect(seqs(m.msgs(room).slice(0, BEFORE))).toEqual(range(1, BEFORE));
      expect(
        history.receiverProblems(`member ${i} (new epoch)`, newEpoch, {
          room,
          through: head,
          expected: history.oks(room, 'after'),
        }),
      ).toEqual([]);
      // Told once, before the new epoch's first message, where its seqs start (`msg` frames carry no epoch).
      const told = newEpoch.filter((f) => f.t === 'epoch' && f.room === room);
      expect(told, `epoch frames at member ${i} in ${room}`).toHaveLength(1);
      expect(told[0]).toMatchObject({ epoch: newEpochOf.get(room) });
      const firstNew = newEpoch.findIndex((f) => f.t === 'msg' && f.room === room);
      expect(newEpoch.indexOf(told[0]!)).toBeLessThan(firstNew);
      expect(newEpoch[firstNew]!.seq).toBe(told[0]!.seq + 1);
    }
    // The stale joiner got no replay of the old history, only new-epoch messages after its join.
    for (const f of stale.msgs(room))
      expect(history.recordOf(f)?.tag, `stale joiner got ${JSON.stringify(f)}`).toBe('after');
    await stale.next(
      (f) => f.t === 'msg' && f.room === room && f.seq === head,
      10_000,
      0,
      `seq ${head} at the stale joiner`,
    );
    expect(
      history.receiverProblems('stale joiner', stale.frames, {
        room,
        after: staleJoinSeq.get(room)!,
        through: head,
        expected: history.oks(room, 'after').filter((p) => p.outcome.seq > staleJoinSeq.get(room)!),
      }),
    ).toEqual([]);
  }
  console.info('redis-wipe:', {
    outcomes: history.summary(),
    restartTookMs: restartedAt - restartStarted,
    servingAfterMs,
    readyAfterMs,
    boundMs: RECOVERY_BOUND_MS,
  });
}, 90_000);
