// Guarantee 4 for a gateway crash: clients on gateways A and B share rooms with presence; A is
// SIGKILLed while B's publisher keeps publishing. Presence (the client `presence` request on B and the
// backend's `<prefix>.api.presence`) drops A's connections within the heartbeat TTL plus a reaper
// round, B's presence watcher gets `left` once for each of A's connections and none for B's, B's
// members keep receiving every ok'd message in order, and a client of A that reconnects to B with
// since/epoch recovers everything it missed.
import { expect, it } from 'vitest';
import type { Frame } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { History } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { closeAndCheck, lastSeq, roomsByOwner, type Traffic, waitBalanced } from './kit.js';

const PRESENCE_TTL_MS = 3000;
/** Routers reap every TTL/4 (router/index.ts); the margin covers Redis round trips and 2 busy cores. */
const REAPER_EVERY_MS = PRESENCE_TTL_MS / 4;
const REAP_BOUND_MS = PRESENCE_TTL_MS + REAPER_EVERY_MS + 2000;
const RUN_MS = 10_000;
const KILL_AFTER_MS = 2000;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: { RTGW_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) },
  bus: 'rtgw-fault-gateway-kill',
  pingOnConnect: true,
  logLines: 80,
});
const { client, api } = suite;

interface Presence {
  users: string[];
  count: number;
}

it('a gateway killed with SIGKILL leaves no presence ghosts past the TTL bound, each of its members is `left` once, and its clients recover on the other gateway', async () => {
  const { cluster } = suite;
  await waitBalanced(cluster);
  const [A, B] = [cluster.gateways[0]!, cluster.gateways[1]!];
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
    await waitFor(async () => (await watcher.ok({ t: 'presence', room })).count === 6, 3000, `presence of ${room} to count 6`);
    expect(await watcher.ok({ t: 'presence', room })).toMatchObject({ users: everyone, count: 6 });
    expect(await apiPresence(room)).toEqual({ users: everyone, count: 6 });
    for (const conn of aConns) await watcher.next((f) => f.t === 'joined' && f.room === room && f.conn === conn, 3000, 0, `joined of ${conn} in ${room}`);
  }

  const history = new History();
  const publisher = await client(1);
  const startedAt = Date.now();
  const run = history.publishFor({ publishers: [{ client: publisher, name: 'pB' }], rooms, durationMs: RUN_MS, everyMs: 10, maxInFlight: 50, answerTimeoutMs: 10_000 });

  await waitFor(() => Date.now() - startedAt >= KILL_AFTER_MS, KILL_AFTER_MS + 1000, 'the kill point');
  const bCountAtKill = bMembers.map((m) => m.frames.length);
  const killedAt = Date.now();
  A.kill('SIGKILL');
  await A.exited;
  for (const c of aClients) expect((await c.closed).code).toBe(1006);
  // Where A's first client was when its gateway died: it resumes from there.
  const aSeen = new Map(rooms.map((room) => [room, lastSeq(aClients[0]!.frames, room)]));
  expect([...aSeen.values()].every((s) => s > 0), 'A’s members received messages before the kill').toBe(true);

  // B's members keep receiving right through the kill.
  await waitFor(() => bMembers.every((m, i) => m.frames.length > bCountAtKill[i]! + 20), 2000, 'B’s members to receive messages published after the kill');

  // Presence drops A's connections (and only those) within the bound, on both read paths.
  const gone = (p: Presence) => p.count === 3 && p.users.join() === bUsers.join();
  await waitFor(
    async () => {
      for (const room of rooms) if (!gone((await watcher.ok({ t: 'presence', room })) as unknown as Presence)) return false;
      return true;
    },
    REAP_BOUND_MS,
    `client presence on B to drop A's connections within ${REAP_BOUND_MS} ms`,
  );
  const reapedAfterMs = Date.now() - killedAt;
  for (const room of rooms) expect(await apiPresence(room), `api.presence of ${room}`).toEqual({ users: bUsers, count: 3 });
  expect(reapedAfterMs).toBeLessThan(REAP_BOUND_MS);
  // `left` reaches the watcher within the same bound.
  for (const room of rooms) {
    for (const conn of aConns) {
      await watcher.next((f) => f.t === 'left' && f.room === room && f.conn === conn, Math.max(1, killedAt + REAP_BOUND_MS - Date.now()), 0, `left of ${conn} in ${room}`);
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
    for (const conn of bConns) expect(lefts.filter((f: Frame) => f.room === room && f.conn === conn), `left of B’s ${conn}`).toEqual([]);
  }
  // Presence is a set of live connections again: no ghosts, and a B join is reflected.
  for (const room of rooms) expect(await watcher.ok({ t: 'presence', room })).toMatchObject({ users: bUsers, count: 3 });

  // B's members (and the watcher) got every ok'd message, 1..N, in order, once.
  const t: Traffic = {
    rooms,
    byOwner: new Map(),
    members: [...bMembers, watcher].map((client, i) => ({ name: i < bMembers.length ? `b${i}` : 'watcher', client })),
    publishers: [{ name: 'pB', client: publisher }],
    history,
  };
  expect(await closeAndCheck(cluster, t)).toEqual([]);

  // A's first client comes back on B with since/epoch and recovers exactly what it missed.
  const back = await client(1, ua);
  for (const room of rooms) {
    const since = aSeen.get(room)!;
    expect(history.receiverProblems('A client before the kill', aClients[0]!.frames, { room, expected: [] })).toEqual([]);
    const from = back.frames.length;
    const j = await back.ok({ t: 'join', room, since, epoch: epochs.get(room) });
    expect(j, room).toMatchObject({ room, recovered: true, epoch: epochs.get(room), seq: history.maxOkSeq(room) });
    await back.waitForMsgs(room, (j.seq as number) - since, 10_000);
    const replay = back.frames.slice(from);
    expect(history.receiverProblems('A client on B', replay, { room, after: since, through: j.seq as number })).toEqual([]);
    expect(history.agreementProblems(room, [{ who: 'A client on B', frames: replay }, ...t.members.map((m) => ({ who: m.name, frames: m.client.frames }))])).toEqual([]);
  }
  console.info('gateway-kill:', { outcomes: history.summary(), reapedAfterMs, boundMs: REAP_BOUND_MS, lefts: lefts.length });
}, 90_000);
