// A client with a valid token that means harm (contract section 7.1), against a real 2 gateway + 2 router
// cluster: deep frames, joins overtaken by a leave or a close, caps on rooms and connections, expensive
// frames, a refresh that narrows the token's rooms, close codes a client chose. Each case failed before
// the change that made it pass.
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { TestClient } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { metrics, sum } from '../harness/metrics.js';
import { useCluster } from '../harness/suite.js';
import { sleep, waitFor } from '../harness/wait.js';

const MAX_ROOMS = 5;
const MAX_CONNS_PER_USER = 3;
const RATE_LIMIT = 100; // bursts of 200
const RATE_LIMIT_BYTES = 64 * 1024; // bursts of 128 KiB

const suite = useCluster({
  gateways: 2,
  routers: 2,
  bus: 'hostile-test',
  closeClientsAfterEach: true,
  env: {
    RTGW_MAX_ROOMS_PER_CONN: String(MAX_ROOMS),
    RTGW_MAX_CONNS_PER_USER: String(MAX_CONNS_PER_USER),
    RTGW_RATE_LIMIT: String(RATE_LIMIT),
    RTGW_RATE_LIMIT_BYTES: String(RATE_LIMIT_BYTES),
  },
});
const { client, api } = suite;

/** Sends every frame and then a close frame in one TCP write, as a client dropping off mid-join does. */
function sendThenClose(c: TestClient, frames: Record<string, unknown>[]): void {
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const f of frames) c.sendJson(f);
  c.ws.close(1000);
  socket.uncork();
}

/** Sends every frame in one TCP write. */
function sendThenKeep(c: TestClient, frames: Record<string, unknown>[]): void {
  const socket = (c.ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const f of frames) c.sendJson(f);
  socket.uncork();
}

/** The gateway's holdings gauges (rtgw_gateway_*). */
async function holdings(gw: number) {
  const e = await metrics(suite.cluster.gateways[gw]!);
  return {
    rooms: sum(e, 'rtgw_gateway_rooms'),
    members: sum(e, 'rtgw_gateway_room_members'),
    joiners: sum(e, 'rtgw_gateway_joiners'),
    buffered: sum(e, 'rtgw_gateway_joiner_buffered_messages'),
  };
}

/** Error-level lines (pino level >= 50) a node logged. */
const errorLines = (gw: number) => suite.cluster.gateways[gw]!.logRecords().filter((r) => Number(r.level) >= 50);

describe('deeply nested data', () => {
  it('past 32 levels is bad_request (a strike), never internal and never an error log; at the limit it is published', async () => {
    const c = await client(0);
    const errorsBefore = errorLines(0).length;
    const room = uid('deep');
    const deep = '['.repeat(40) + ']'.repeat(40);
    for (const t of ['pub', 'dm', 'send']) {
      const target = t === 'pub' ? { room } : t === 'dm' ? { to: 'someone' } : { route: 'svc.x' };
      c.send(`{"t":"${t}","id":${t.length},${JSON.stringify(target).slice(1, -1)},"data":${deep}}`);
      expect(await c.next((f) => f.t === 'err' && f.id === t.length, 3000)).toMatchObject({ code: 'bad_request' });
    }
    // 31 levels of data inside the frame object: 32 in all.
    const legal = '['.repeat(31) + '"x"' + ']'.repeat(31);
    const member = await client(1);
    await member.ok({ t: 'join', room });
    c.send(`{"t":"pub","id":9,"room":"${room}","data":${legal}}`);
    expect(await c.next((f) => f.t === 'ok' && f.id === 9, 5000)).toMatchObject({ seq: 1 });
    const [m] = await member.waitForMsgs(room, 1);
    expect(JSON.stringify(m!.data)).toBe(legal);
    expect(errorLines(0).length).toBe(errorsBefore);
  });
});

describe('no state outlives a join that a leave or a close overtook', () => {
  const ROOMS = 30;

  it('join then leave in the same write, in fresh rooms: no member left in presence', async () => {
    const c = await client(0);
    const rooms = Array.from({ length: ROOMS }, () => uid('jl'));
    const socket = (c.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    const ids = rooms.flatMap((room) => [c.fire({ t: 'join', room, presence: true }), c.fire({ t: 'leave', room })]);
    socket.uncork();
    await waitFor(() => ids.every((id) => c.answers.get(id) === 1), 5000, 'every join and leave answered');
    await sleep(1200); // presence may show a gone member for at most 1 s
    const counts = await Promise.all(rooms.map((room) => api<{ count: number }>('presence', { room })));
    expect(counts.map((p) => p.count)).toEqual(rooms.map(() => 0));
    expect(await holdings(0)).toMatchObject({ members: 0, joiners: 0 });
  });

  it('joins then close in the same write: no presence, no membership, no joiner', async () => {
    const c = await client(0);
    const rooms = Array.from({ length: ROOMS }, () => uid('jc'));
    sendThenClose(
      c,
      rooms.map((room, i) => ({ t: 'join', id: i + 1, room, presence: true, since: i % 2 === 0 ? 0 : undefined })),
    );
    await c.closed;
    await sleep(1200);
    const counts = await Promise.all(rooms.map((room) => api<{ count: number }>('presence', { room })));
    expect(counts.map((p) => p.count)).toEqual(rooms.map(() => 0));
    await waitFor(async () => (await holdings(0)).members === 0, 3000, 'no memberships left');
    expect(await holdings(0)).toMatchObject({ rooms: 0, members: 0, joiners: 0, buffered: 0 });
  });

  it('a join with since that a close overtook, in a room another member keeps open, holds nothing afterwards', async () => {
    const rounds = 10;
    const rooms = Array.from({ length: rounds }, () => uid('js'));
    const stayers: TestClient[] = [];
    for (const room of rooms) {
      const stayer = await client(0);
      const leaver = await client(0);
      // The stayer's join opens the room on this gateway (a NATS and Redis round trip); the leaver's
      // join with since and its close arrive meanwhile.
      stayer.fire({ t: 'join', room });
      sendThenClose(leaver, [{ t: 'join', id: 1, room, since: 0 }]);
      await leaver.closed;
      await stayer.next((f) => f.t === 'ok');
      stayers.push(stayer);
    }
    const publisher = await client(1);
    for (const room of rooms) for (let i = 0; i < 5; i++) await publisher.ok({ t: 'pub', room, data: i });
    for (const [i, s] of stayers.entries()) await s.waitForMsgs(rooms[i]!, 5);
    // Every room still has its stayer; nothing waits for a replay or buffers the room's messages.
    expect(await holdings(0)).toMatchObject({ rooms: rounds, members: rounds, joiners: 0, buffered: 0 });
  });
});

describe('caps', () => {
  it(`a connection joins at most ${MAX_ROOMS} rooms: the next join is answered limit; a repeat or one after a leave is fine`, async () => {
    const c = await client(0);
    const rooms = Array.from({ length: MAX_ROOMS + 1 }, () => uid('cap'));
    for (const room of rooms.slice(0, MAX_ROOMS)) await c.ok({ t: 'join', room });
    expect(await c.request({ t: 'join', room: rooms[MAX_ROOMS] })).toMatchObject({ t: 'err', code: 'limit' });
    await c.ok({ t: 'join', room: rooms[0], since: 0 }); // already in it: not a new room
    await c.ok({ t: 'leave', room: rooms[1] });
    await c.ok({ t: 'join', room: rooms[MAX_ROOMS] });
    expect(c.isOpen).toBe(true); // `limit` is an answer, not a strike
  });

  it(`a user has at most ${MAX_CONNS_PER_USER} connections on one gateway: the next is closed with 4012 and no welcome`, async () => {
    const user = uid('many');
    const token = await suite.cluster.token(user);
    const gw0 = suite.cluster.gateways[0]!.url;
    const open = [];
    for (let i = 0; i < MAX_CONNS_PER_USER; i++) open.push(await suite.pool.connect(gw0, { token }));
    const refused = await suite.pool.refused(gw0, { token });
    expect(refused.code).toBe(4012);
    expect(refused.frames.filter((f) => f.t === 'welcome')).toEqual([]);
    // Another gateway counts its own; a closed connection frees its place.
    await suite.pool.connect(suite.cluster.gateways[1]!.url, { token });
    await open[0]!.close();
    await waitFor(
      async () => {
        const c = await suite.pool.connectRaw(gw0, { token });
        const outcome = await Promise.race([c.welcomed.then(() => 'welcome'), c.closed.then(() => 'closed')]);
        return outcome === 'welcome';
      },
      3000,
      'a place freed on gateway 0',
    );
  });

  it('a join with since and a presence read cost 10 frames of the rate limit, a ping one', async () => {
    const c = await client(0);
    const room = uid('cost');
    const burst = 2 * RATE_LIMIT;
    const ids = Array.from({ length: burst / 10 + 1 }, () => c.fire({ t: 'presence', room }));
    await waitFor(() => ids.every((id) => c.answers.has(id)), 5000, 'every presence answered');
    const answers = ids.map((id) => c.frames.find((f) => (f.t === 'ok' || f.t === 'err') && f.id === id)!);
    expect(answers.filter((f) => f.t === 'ok').length).toBe(burst / 10);
    expect(answers.filter((f) => f.code === 'rate_limited').length).toBe(1);
    await sleep(2 * 1000 * (burst / RATE_LIMIT)); // refilled
    const joins = Array.from({ length: burst / 10 + 1 }, () => c.fire({ t: 'join', room, since: 0 }));
    await waitFor(() => joins.every((id) => c.answers.has(id)), 5000, 'every join answered');
    expect(
      joins.filter((id) => c.frames.some((f) => f.t === 'err' && f.id === id && f.code === 'rate_limited')).length,
    ).toBe(1);
  });
});

describe('bytes', () => {
  it('frames past the byte rate are answered rate_limited, though each is legal and within the frame rate', async () => {
    const c = await client(0);
    const room = uid('bytes');
    const pad = 'p'.repeat(16 * 1024 - 100); // frames of about 16 KiB: 8 fill the burst of 128 KiB
    const ids = Array.from({ length: 10 }, () => c.fire({ t: 'pub', room, data: pad }));
    await waitFor(() => ids.every((id) => c.answers.has(id)), 5000, 'every pub answered');
    const limited = ids.filter((id) => c.frames.some((f) => f.t === 'err' && f.id === id && f.code === 'rate_limited'));
    expect(limited.length).toBeGreaterThanOrEqual(1);
    expect(limited.length).toBeLessThanOrEqual(3);
    expect(c.isOpen).toBe(true);
  });
});

describe('refresh with a narrower rooms claim', () => {
  it('removes the connection from rooms the new token no longer allows, at once and for good', async () => {
    const user = uid('narrow');
    const [kept, dropped] = [uid('kept'), uid('dropped')];
    const c = await client(0, user, { rooms: [kept, dropped] });
    await c.ok({ t: 'join', room: kept, presence: true });
    await c.ok({ t: 'join', room: dropped, presence: true });
    const from = c.frames.length;
    const answer = await c.ok({ t: 'refresh', token: await suite.cluster.token(user, { rooms: [kept] }) });
    const removed = c.frames.slice(from).findIndex((f) => f.t === 'removed');
    expect(c.frames[from + removed]).toEqual({ t: 'removed', room: dropped, reason: 'forbidden' });
    expect(from + removed).toBeLessThan(c.frames.indexOf(answer));
    await waitFor(
      async () => (await api<{ count: number }>('presence', { room: dropped })).count === 0,
      2000,
      'gone from presence',
    );
    const publisher = await client(1);
    await publisher.ok({ t: 'pub', room: dropped, data: 'not for you' });
    await publisher.ok({ t: 'pub', room: kept, data: 'still yours' });
    await c.waitForMsgs(kept, 1);
    await c.ping();
    expect(c.msgs(dropped)).toEqual([]);
    expect(await c.request({ t: 'join', room: dropped })).toMatchObject({ t: 'err', code: 'forbidden' });
  });
});

describe('answers a racing or refused request gets', () => {
  it('a join under way when a refresh takes its room away is answered forbidden, after removed, and holds nothing', async () => {
    const user = uid('racer');
    const [kept, dropped] = [uid('kept'), uid('dropped')];
    const c = await client(0, user, { rooms: [kept, dropped] });
    const token = await suite.cluster.token(user, { rooms: [kept] });
    // The join waits for a history read; the refresh is checked meanwhile.
    sendThenKeep(c, [
      { t: 'join', id: 1, room: dropped, since: 0 },
      { t: 'refresh', id: 2, token },
    ]);
    const answer = await c.next((f) => f.id === 1 && (f.t === 'ok' || f.t === 'err'));
    expect(answer).toMatchObject({ t: 'err', code: 'forbidden' });
    const removedAt = c.frames.findIndex((f) => f.t === 'removed' && f.room === dropped);
    expect(removedAt).toBeGreaterThanOrEqual(0);
    expect(removedAt).toBeLessThan(c.frames.indexOf(answer));
    await c.next((f) => f.id === 2 && f.t === 'ok');
    await sleep(300);
    expect((await api<{ count: number }>('presence', { room: dropped })).count).toBe(0);
    expect(await holdings(0)).toMatchObject({ joiners: 0, buffered: 0 });
  });

  it('a frame refused by the rate limit is answered with its own id, not one inside its data', async () => {
    const c = await client(0);
    const room = uid('rl');
    // The burst of twice the rate in cheap frames and a few more (refused: strikes, fewer than ten), then a
    // publish whose data holds an "id" before the frame's: refused too, unless the bucket refilled meanwhile.
    const flood = Array.from({ length: 2 * RATE_LIMIT + 5 }, () => ({ t: 'ping' }));
    sendThenKeep(c, [...flood, { t: 'pub', room, data: { id: 3 }, id: 7 }]);
    // The pings carry no id: the only refusal with one is the publish's.
    const err = await c.next((f) => f.t === 'err' && f.code === 'rate_limited' && f.id !== undefined);
    expect(err.id).toBe(7);
  });
});

describe('metric labels', () => {
  it('close codes a client chose are counted as other, even ones the server uses itself', async () => {
    const gw = suite.cluster.gateways[1]!;
    const closed = async () => sum(await metrics(gw), 'rtgw_connections_closed_total', { code: 'other' });
    const series = async () =>
      new Set(
        (await metrics(gw)).samples.filter((s) => s.name === 'rtgw_connections_closed_total').map((s) => s.labels.code),
      );
    const before = { other: await closed(), series: await series() };
    const codes = [4123, 4321, 4999, 4009, 1008];
    for (const code of codes) await (await client(1)).close(code);
    await waitFor(async () => (await closed()) >= before.other + codes.length, 3000, 'counted as other');
    const after = await series();
    for (const code of codes) expect(after.has(String(code)) && !before.series.has(String(code))).toBe(false);
    expect(await closed()).toBe(before.other + codes.length);
  });
});
