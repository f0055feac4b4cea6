// Bad input against a real cluster: malformed frames, binary garbage, hostile user ids and routes, tokens
// with a hostile sub, oversized frames, floods. Each gets its error or close code (a `forbidden` is not a
// strike; a rate-limited pub is dropped), and none of it disturbs another connection in the same room.
// The WebSocket layer itself (framing, UTF-8, control frames) is fuzzed in ws-fuzz.test.ts.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConnectError, type TestClient } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';

const MAX_MESSAGE_BYTES = 4096;
const RATE_LIMIT = 20; // frames per second, bursts of 40

const suite = useCluster({
  gateways: 2,
  routers: 1,
  env: { RTGW_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES), RTGW_RATE_LIMIT: String(RATE_LIMIT) },
  closeClientsAfterEach: true,
});
const { client } = suite;

/** Sends `raw` and resolves the next `err` frame after it. */
async function errFor(c: TestClient, raw: string | Buffer) {
  const from = c.frames.length;
  c.send(raw);
  return c.next((f) => f.t === 'err', 3000, from, `err for ${String(raw).slice(0, 80)}`);
}

/** The connection still works: ping → pong and a request → ok. */
async function usable(c: TestClient) {
  await c.ping();
  expect(await c.request({ t: 'presence', room: uid('probe') })).toMatchObject({ t: 'ok' });
  expect(c.isOpen).toBe(true);
}

describe('malformed frames', () => {
  const unparseable: [string, string][] = [
    ['truncated JSON', '{"t":"join","id":1,'],
    ['not JSON', 'hello there'],
    ['JSON null', 'null'],
    ['JSON array', '[{"t":"ping"}]'],
    ['JSON number', '42'],
    ['JSON string', '"ping"'],
    ['no t', '{"id":7}'],
    ['t not a string', '{"t":5,"id":8}'],
    ['empty text frame', ''],
  ];
  it.each(unparseable)('%s → err bad_request, connection stays usable', async (_label, raw) => {
    const c = await client(0);
    const err = await errFor(c, raw);
    expect(err).toMatchObject({ code: 'bad_request' });
    expect(typeof err.msg).toBe('string');
    await usable(c);
  });

  const invalid: [string, Record<string, unknown>][] = [
    ['unknown t', { t: 'explode', id: 11 }],
    ['join without room', { t: 'join', id: 12 }],
    ['pub without data', { t: 'pub', id: 13, room: 'r1' }],
    ['pub without room', { t: 'pub', id: 14, data: 1 }],
    ['dm without to', { t: 'dm', id: 15, data: 1 }],
    ['send without route', { t: 'send', id: 16, data: 1 }],
    ['refresh without token', { t: 'refresh', id: 17 }],
    ['presence without room', { t: 'presence', id: 18 }],
    ['leave without room', { t: 'leave', id: 19 }],
    ['join with since not a number', { t: 'join', id: 20, room: 'r1', since: 'yesterday' }],
    ['mid over 64 characters', { t: 'pub', id: 21, room: 'r1', data: 1, mid: 'm'.repeat(65) }],
    ['dm to a user id outside the alphabet', { t: 'dm', id: 22, to: 'a/b', data: 1 }],
    ['dm to a 129-character user id', { t: 'dm', id: 23, to: 'u'.repeat(129), data: 1 }],
    ['send to a wildcard route', { t: 'send', id: 24, route: 'svc.>', data: 1 }],
    ['send to a route with an empty token', { t: 'send', id: 25, route: 'svc..x', data: 1 }],
    ['send to a route with a * token', { t: 'send', id: 26, route: 'svc.*', data: 1 }],
  ];
  it.each(invalid)('%s → err bad_request answering the id, connection stays usable', async (_label, frame) => {
    const c = await client(1);
    const err = await errFor(c, JSON.stringify(frame));
    expect(err).toMatchObject({ t: 'err', code: 'bad_request', id: frame.id });
    await usable(c);
  });

  it.each([
    ['id not an integer', '{"t":"join","id":"five","room":"r1"}'],
    ['ack without seq', '{"t":"ack"}'],
  ])('%s → err bad_request, connection stays usable', async (_label, raw) => {
    const c = await client(0);
    expect(await errFor(c, raw)).toMatchObject({ t: 'err', code: 'bad_request' });
    await usable(c);
  });

  it('forbidden answers are not strikes: 15 forbidden joins in a row leave the connection open', async () => {
    const c = await client(0, uid('u'), { rooms: ['only-this'] });
    for (let i = 0; i < 15; i++)
      expect(await c.request({ t: 'join', room: uid('elsewhere') })).toMatchObject({ t: 'err', code: 'forbidden' });
    await c.ping();
    expect(await c.request({ t: 'join', room: 'only-this' })).toMatchObject({ t: 'ok' });
    expect(c.isOpen).toBe(true);
  });

  it.each(['a b', 'a/b', 'a.*', 'x'.repeat(129), 'caf\u00e9'])(
    'a token whose sub is not a valid user id (%j) is closed with 4001, nothing sent',
    async (sub) => {
      const err = await suite.pool.refused(suite.cluster.gateways[1]!.url, { token: await suite.cluster.token(sub) });
      expect(err).toBeInstanceOf(ConnectError);
      expect(err.code).toBe(4001);
      expect(err.frames).toEqual([]);
    },
  );

  it('binary garbage → err bad_request, connection stays usable', async () => {
    const c = await client(1);
    expect(await errFor(c, randomBytes(200))).toMatchObject({ t: 'err', code: 'bad_request' });
    await usable(c);
  });

  it('closes with 1008 after more than 10 bad frames within 10 s, not before', async () => {
    const c = await client(0);
    for (let i = 0; i < 10; i++) expect(await errFor(c, `bad ${i}`)).toMatchObject({ code: 'bad_request' });
    await c.ping();
    expect(c.isOpen).toBe(true);
    c.send('bad 11');
    expect((await c.closed).code).toBe(1008);
  });
});

describe('size limit', () => {
  it('accepts a frame under RTGW_MAX_MESSAGE_BYTES', async () => {
    const c = await client(0);
    const frame = JSON.stringify({ t: 'pub', id: 1, room: uid('big'), data: 'x'.repeat(MAX_MESSAGE_BYTES - 200) });
    expect(Buffer.byteLength(frame)).toBeLessThan(MAX_MESSAGE_BYTES);
    c.send(frame);
    expect(await c.next((f) => f.id === 1)).toMatchObject({ t: 'ok', seq: 1 });
  });

  it('closes a connection sending a frame over RTGW_MAX_MESSAGE_BYTES with 1009', async () => {
    const c = await client(1);
    c.sendJson({ t: 'pub', id: 1, room: uid('big'), data: 'x'.repeat(MAX_MESSAGE_BYTES + 100) });
    const closed = await c.closed;
    expect(closed.code).toBe(1009);
    expect(c.of('ok')).toEqual([]);
  });

  it('closes with 1009 for an oversized binary frame too', async () => {
    const c = await client(0);
    c.send(randomBytes(MAX_MESSAGE_BYTES * 2));
    expect((await c.closed).code).toBe(1009);
  });
});

describe('rate limit', () => {
  it('answers frames over RTGW_RATE_LIMIT with rate_limited, then closes with 1008', async () => {
    const c = await client(1);
    const N = RATE_LIMIT * 2 + 40;
    for (let i = 0; i < N; i++) c.sendJson({ t: 'presence', id: i + 1, room: 'flood' });
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    const limited = c.of('err', (f) => f.code === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(1);
    // Requests over the limit are answered (with their id), not silently dropped: until the close,
    // every answer is ok or rate_limited.
    for (const f of limited) expect(typeof f.id).toBe('number');
    for (const f of c.of('err')) expect(f.code).toBe('rate_limited');
  });

  it('drops a frame answered rate_limited: only the pubs answered ok reach the room', async () => {
    const room = uid('dropped');
    const observer = await client(0);
    await observer.ok({ t: 'join', room });
    const flood = await client(1);
    const N = RATE_LIMIT * 2 + 6; // past the burst, under the 10-strike close
    for (let i = 0; i < N; i++) flood.sendJson({ t: 'pub', id: i + 1, room, data: i + 1 });
    await flood.next(() => flood.answers.size === N, 10_000, 0, `answers to all ${N} pubs`);
    const okIds = flood.of('ok').map((f) => f.id as number);
    expect(flood.of('err').every((f) => f.code === 'rate_limited')).toBe(true);
    expect(okIds.length).toBeLessThan(N);
    const marker = await client(0);
    const last = await marker.ok({ t: 'pub', room, data: 'end' });
    const msgs = await observer.waitForMsgs(room, last.seq as number, 10_000);
    expect(
      msgs
        .filter((m) => m.from === flood.user)
        .map((m) => m.data)
        .sort((a, b) => a - b),
    ).toEqual(okIds.sort((a, b) => a - b));
  });

  it('keeps a connection under the rate limit open', async () => {
    const c = await client(0);
    // Frames that cost one each (a presence read costs 10).
    for (let i = 0; i < RATE_LIMIT; i++) await c.ok({ t: 'leave', room: 'calm' });
    await c.ping();
    expect(c.isOpen).toBe(true);
    expect(c.of('err')).toEqual([]);
  });
});

describe('isolation', () => {
  it('a member of the same room keeps receiving everything in order while others misbehave', async () => {
    const room = uid('iso');
    const observer = await client(1);
    const publisher = await client(0);
    const attackers = [await client(0), await client(1), await client(0), await client(1)];
    await observer.ok({ t: 'join', room });
    for (const a of attackers) await a.ok({ t: 'join', room });

    const N = 30;
    const publishing = (async () => {
      for (let i = 1; i <= N; i++) await publisher.ok({ t: 'pub', room, data: i });
    })();
    const [garbage, oversize, flood, binary] = attackers as [TestClient, TestClient, TestClient, TestClient];
    for (let i = 0; i < 12; i++) garbage.send(`{"t":"pub","room":"${room}",`);
    oversize.sendJson({ t: 'pub', id: 1, room, data: 'y'.repeat(MAX_MESSAGE_BYTES * 2) });
    for (let i = 0; i < RATE_LIMIT * 3; i++) flood.sendJson({ t: 'pub', id: i + 1, room, data: 'spam' });
    for (let i = 0; i < 12; i++) binary.send(randomBytes(64));
    await publishing;

    const closes = await Promise.all([garbage.closed, oversize.closed, flood.closed, binary.closed]);
    expect(closes.map((c) => c.code)).toEqual([1008, 1009, 1008, 1008]);

    // A last marker, sequenced after everything above: once the observer has it, it has the whole room.
    const marker = await publisher.ok({ t: 'pub', room, data: 'end' });
    const msgs = await observer.waitForMsgs(room, marker.seq as number, 10_000);
    // Gap-free, in order, the publisher's N messages all there; anything else is the flooder's accepted spam.
    expect(msgs.map((f) => f.seq)).toEqual(Array.from({ length: marker.seq as number }, (_, i) => i + 1));
    expect(msgs.filter((f) => f.from === publisher.user).map((f) => f.data)).toEqual([
      ...Array.from({ length: N }, (_, i) => i + 1),
      'end',
    ]);
    for (const f of msgs.filter((m) => m.from !== publisher.user))
      expect(f).toMatchObject({ from: flood.user, data: 'spam' });
    expect(observer.isOpen).toBe(true);
    await observer.ping();
    expect(observer.of('err')).toEqual([]);
  });
});
