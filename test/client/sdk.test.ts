// The client SDK against a real `rtgw standalone` (memory engine), with a TCP proxy in front of it to
// drop connections at chosen moments: the state machine, rooms with replay and `unrecovered`, the outbox
// (exactly one message however the connection dies), own messages held back, direct messages handed over
// once and acknowledged, tokens refreshed or fetched again, dead connections noticed by heartbeat, and
// refusals that fail a request without touching the connection.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RtgwClientError, type ClientOptions, type DirectMessage, type RoomMessage } from '../../client/index.js';
import { ClientPool } from '../harness/client.js';
import { signToken, startNode, uid, type Node } from '../harness/cluster.js';
import { TcpProxy } from '../harness/proxy.js';
import { SdkPool, type SdkClient } from '../harness/sdk.js';
import { sleep, waitFor } from '../harness/wait.js';

const secret = randomBytes(32).toString('base64url');
const HEARTBEAT_MS = 1000;
const ACK_TIMEOUT_MS = 300;
const HISTORY = 20;
/** Fast reconnects for the tests; the delays' spread is tested against a cluster (cluster.test.ts). */
const RECONNECT = { baseMs: 100, maxMs: 400 };

let node: Node;
let proxy: TcpProxy;
const pool = new SdkPool({ reconnect: RECONNECT });
/** Raw protocol clients, beside the SDK ones. */
const raw = new ClientPool();

beforeAll(async () => {
  node = await startNode('standalone', {
    RTGW_JWT_SECRET: secret,
    RTGW_HEARTBEAT_MS: String(HEARTBEAT_MS),
    RTGW_DM_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
    RTGW_DM_MAX_BACKOFF_MS: '600',
    RTGW_HISTORY_MAX_MESSAGES: String(HISTORY),
  });
  proxy = await TcpProxy.start(node.port);
});
afterEach(async () => {
  pool.closeAll();
  await raw.closeAll();
  proxy.refuse(false);
  proxy.holdDownstream(false);
  proxy.cut();
});
afterAll(async () => {
  await proxy?.close();
  await node?.stop();
});

const token = (user: string, claims: Record<string, unknown> = {}, expIn?: number) =>
  signToken({ secret }, user, claims, { expIn });

/** An SDK client for `user` (a fresh one unless given) on `url`, not connected yet. */
const client = (url: string | string[], user = uid('u'), extra: Partial<ClientOptions> = {}): SdkClient =>
  pool.create({ url, getToken: () => token(user), ...extra });

/** A connected SDK client for `user`, straight to the node. */
async function sdk(user = uid('u'), claims?: Record<string, unknown>): Promise<SdkClient> {
  const c = client(node.url, user, { getToken: () => token(user, claims) });
  await c.client.connect();
  return c;
}

/** Collects a room's messages as the application gets them. */
function collect(c: SdkClient, room: string, presence = false): RoomMessage[] {
  const got: RoomMessage[] = [];
  c.client.join(room, (m) => got.push(m), { presence });
  return got;
}

const sentOf = (c: SdkClient, t: string) => c.tap.sent.filter((s) => s.f.t === t).map((s) => s.f);
const receivedOf = (c: SdkClient, t: string) => c.tap.received.filter((r) => r.f.t === t).map((r) => r.f);

/** Takes the proxy's clients offline: open connections die, new ones are refused until `online()`. */
function offline(): void {
  proxy.refuse(true);
  proxy.cut();
}
function online(): void {
  proxy.refuse(false);
}

describe('connection and rooms', () => {
  it('goes idle → connecting → connected, and members get each message once in seq order; the sender only with echo', async () => {
    const room = uid('room');
    const a = client(node.url, 'alice-' + room);
    const aGot = collect(a, room);
    await a.client.connect();
    expect(a.eventsOf('state').map((e) => e.ev.state)).toEqual(['connecting', 'connected']);
    expect(a.eventsOf('connected')[0]!.ev).toMatchObject({
      url: node.url,
      user: 'alice-' + room,
      hb: HEARTBEAT_MS,
      reconnected: false,
    });
    const b = await sdk();
    const bGot = collect(b, room);
    await Promise.all([a.client.room(room)!.joined, b.client.room(room)!.joined]);

    const seqs = [];
    for (let i = 0; i < 5; i++) seqs.push(await a.client.publish(room, { i }));
    const echoed = await a.client.publish(room, { i: 'echo' }, { echo: true });
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    await waitFor(() => bGot.length === 6 && aGot.length === 1, 3000, 'deliveries');
    expect(bGot.map((m) => [m.seq, m.data, m.from])).toEqual([
      ...seqs.map((s, i) => [s, { i }, 'alice-' + room]),
      [echoed, { i: 'echo' }, 'alice-' + room],
    ]);
    expect(aGot.map((m) => m.seq)).toEqual([echoed]);
    // Each carried a mid the SDK made, unique per publish.
    const mids = sentOf(a, 'pub').map((f) => f.mid as string);
    expect(new Set(mids).size).toBe(6);
    expect(bGot.map((m) => m.mid)).toEqual(mids);
  });

  it('after a lost connection it reconnects to the next URL, re-joins with since and gets exactly what it missed', async () => {
    const room = uid('room');
    const m = client([proxy.url, node.url]);
    const got = collect(m, room);
    await m.client.connect();
    await m.client.room(room)!.joined;
    const pub = await sdk();
    await pub.client.publish(room, { n: 1 });
    await waitFor(() => got.length === 1, 3000, 'first message');

    offline();
    const d = await m.event('disconnected', 3000);
    expect(d.code).toBe(1006);
    for (let n = 2; n <= 6; n++) await pub.client.publish(room, { n });
    await m.event('connected', 3000, (e) => e.reconnected);
    expect(m.eventsOf('connected').at(-1)!.ev.url).toBe(node.url);
    await waitFor(() => got.length === 6, 3000, 'the missed messages');
    expect(got.map((x) => x.data)).toEqual([1, 2, 3, 4, 5, 6].map((n) => ({ n })));
    const joins = sentOf(m, 'join');
    expect(joins.at(-1)).toMatchObject({ room, since: 1 });
    // One more live message, then nothing repeated.
    await pub.client.publish(room, { n: 7 });
    await waitFor(() => got.length === 7, 3000, 'a live message after the replay');
    expect(new Set(got.map((x) => x.seq)).size).toBe(7);
  });

  it('beyond history it says `unrecovered` (why: history) and goes on live from the head', async () => {
    const room = uid('room');
    const m = client(proxy.url);
    const got = collect(m, room);
    const lost: unknown[] = [];
    m.client.room(room)!.on('unrecovered', (u) => lost.push(u));
    await m.client.connect();
    const first = await m.client.room(room)!.joined;
    expect(first).toMatchObject({ recovering: false, recovered: false, seq: 0 });
    const pub = await sdk();
    await pub.client.publish(room, { n: 1 });
    await waitFor(() => got.length === 1, 3000, 'first message');

    offline();
    await m.event('disconnected', 3000);
    for (let n = 2; n <= HISTORY + 5; n++) await pub.client.publish(room, { n });
    const resubscribed = new Promise((resolve) => m.client.room(room)!.on('subscribed', resolve));
    online();
    expect(await resubscribed).toMatchObject({ recovering: true, recovered: false, seq: HISTORY + 5 });
    expect(lost).toEqual([{ since: 1, epoch: first.epoch, seq: HISTORY + 5, newEpoch: first.epoch, why: 'history' }]);
    await pub.client.publish(room, { n: 'live' });
    await waitFor(() => got.length === 2, 3000, 'the live message');
    expect(got.map((x) => x.data)).toEqual([{ n: 1 }, { n: 'live' }]);
  });

  it('presence: `presence` events for joins and leaves, and presence() lists the users', async () => {
    const room = uid('room');
    const watcher = await sdk();
    const changes: unknown[] = [];
    watcher.client.join(room, undefined, { presence: true }).on('presence', (p) => changes.push(p));
    await watcher.client.room(room)!.joined;
    const other = await sdk('bob-' + room);
    const r = other.client.join(room);
    await r.joined;
    await waitFor(() => changes.length === 1, 3000, 'joined event');
    expect(changes[0]).toEqual({ type: 'joined', user: 'bob-' + room, conn: other.client.conn });
    expect((await watcher.client.presence(room)).users).toContain('bob-' + room);
    await r.leave();
    expect(r.state).toBe('left');
    await waitFor(() => changes.length === 2, 3000, 'left event');
    expect(changes[1]).toEqual({ type: 'left', user: 'bob-' + room, conn: other.client.conn });
    expect((await watcher.client.presence(room)).users).not.toContain('bob-' + room);
  });
});

describe('the outbox', () => {
  it('a connection that dies between sending and `ok` publishes exactly once, and the sender does not get its own message back', async () => {
    const room = uid('room');
    const member = await raw.connect(node.url, { token: await token(uid('member')) });
    await member.ok({ t: 'join', room });
    const s = client(proxy.url, uid('sender'));
    const sGot = collect(s, room);
    await s.client.connect();
    await s.client.room(room)!.joined;

    proxy.holdDownstream(true); // the server gets the pub, its `ok` never comes back
    const published = s.client.publish(room, { text: 'once' });
    const [msg] = await member.waitForMsgs(room, 1, 3000);
    proxy.cut();
    proxy.holdDownstream(false);
    const seq = await published;

    expect(seq).toBe(msg!.seq);
    const pubs = sentOf(s, 'pub');
    expect(pubs.length, 'sent again after the reconnect').toBe(2);
    expect(pubs[0]!.mid).toBe(pubs[1]!.mid);
    // Stored once: a marker published after it arrives, and nothing else came in between.
    const marker = await s.client.publish(room, { text: 'marker' });
    await member.next((f) => f.t === 'msg' && f.seq === marker, 3000);
    expect(member.msgs(room).map((f) => f.seq)).toEqual([seq, marker]);
    // The re-join replayed the sender's own message (the raw frame came), but the application never saw it.
    expect(receivedOf(s, 'msg').map((f) => f.seq)).toContain(seq);
    expect(sGot).toEqual([]);
  });

  it('publishes and direct messages made while offline are sent once when a connection comes', async () => {
    const room = uid('room');
    const rcpt = uid('rcpt');
    const member = await sdk();
    const mGot = collect(member, room);
    await member.client.room(room)!.joined;
    const dmsGot: DirectMessage[] = [];
    const r = await sdk(rcpt);
    r.client.onDirect((dm) => void dmsGot.push(dm));

    const s = client(proxy.url, uid('s'));
    offline();
    void s.client.connect();
    await s.event('disconnected', 3000);
    const pubs = [1, 2, 3].map((n) => s.client.publish(room, { n }));
    const dms = [1, 2].map((n) => s.client.sendDirect(rcpt, { n }));
    expect(s.client.pending).toBe(5);
    online();
    const seqs = await Promise.all(pubs);
    const dmSeqs = await Promise.all(dms);
    expect(s.client.pending).toBe(0);
    await waitFor(() => mGot.length === 3 && dmsGot.length === 2, 3000, 'deliveries');
    expect(mGot.map((m) => [m.seq, m.data])).toEqual(seqs.map((q, i) => [q, { n: i + 1 }]));
    expect(dmsGot.map((d) => [d.seq, d.data])).toEqual(dmSeqs.map((q, i) => [q, { n: i + 1 }]));
    expect(sentOf(s, 'pub')).toHaveLength(3);
  });

  it('a refused publish fails at once and is not sent again; the connection stays usable', async () => {
    const s = await sdk(uid('s'), { rooms: ['ok-*'] });
    await expect(s.client.publish('nope', { x: 1 })).rejects.toMatchObject({ code: 'forbidden' });
    await expect(s.client.publish('bad room!', { x: 1 })).rejects.toMatchObject({ code: 'bad_request' });
    const refused = s.client.join('nope');
    const errors: RtgwClientError[] = [];
    refused.on('error', (e) => errors.push(e));
    await expect(refused.joined).rejects.toMatchObject({ code: 'forbidden' });
    expect(refused.state).toBe('left');
    expect(errors.map((e) => e.code)).toEqual(['forbidden']);
    expect(s.client.room('nope')).toBeUndefined();
    expect(() => s.client.join('bad room!')).toThrow(RtgwClientError);
    expect(await s.client.publish('ok-1', { x: 1 })).toBe(1);
    expect(sentOf(s, 'pub')).toHaveLength(2); // `bad room!` never left the client
    expect(s.client.state).toBe('connected');
    expect(s.eventsOf('disconnected')).toEqual([]);
  });
});

describe('direct messages', () => {
  const dmsTo = async (to: string, n: number) => {
    const s = await sdk();
    const seqs = [];
    for (let i = 1; i <= n; i++) seqs.push(await s.client.sendDirect(to, { i }));
    return seqs;
  };

  it('are handed over once, in seq order, and acknowledged after the handler: the server stops sending them', async () => {
    const user = uid('r');
    const r = await sdk(user);
    const got: number[] = [];
    r.client.onDirect(async (dm) => {
      await new Promise((res) => setTimeout(res, 5)); // the next waits for this one
      got.push(dm.seq);
    });
    const seqs = await dmsTo(user, 5);
    await waitFor(() => got.length === 5 && sentOf(r, 'ack').length === 5, 3000, 'five handled and acked');
    expect(got).toEqual(seqs);
    expect(sentOf(r, 'ack').map((f) => f.seq)).toEqual(seqs);
    // Past several ack timeouts: no copy came (acks arrived), and the application got nothing more.
    await sleep(4 * ACK_TIMEOUT_MS);
    expect(receivedOf(r, 'dm')).toHaveLength(5);
    expect(got).toHaveLength(5);
  });

  it('with autoAck off, copies are not handed over again, and ack() stops them', async () => {
    const user = uid('r');
    const r = await sdk(user);
    const got: DirectMessage[] = [];
    r.client.onDirect((dm) => void got.push(dm), { autoAck: false });
    const [seq] = await dmsTo(user, 1);
    await waitFor(() => receivedOf(r, 'dm').length >= 2, 5000, 'a redelivery');
    expect(got.map((d) => d.seq)).toEqual([seq]);
    expect(sentOf(r, 'ack')).toEqual([]);
    got[0]!.ack();
    got[0]!.ack();
    expect(sentOf(r, 'ack')).toEqual([{ t: 'ack', seq }]);
    // A copy already on its way may still come: it is acknowledged again, never handed over.
    const copies = receivedOf(r, 'dm').length;
    await sleep(4 * ACK_TIMEOUT_MS); // several ack timeouts
    expect(receivedOf(r, 'dm').length).toBeLessThanOrEqual(copies + 1);
    expect(got).toHaveLength(1);
  });

  it('a handler that throws gets the message again when the server redelivers it', async () => {
    const user = uid('r');
    const r = await sdk(user);
    const calls: number[] = [];
    r.client.onDirect((dm) => {
      calls.push(dm.seq);
      if (calls.length === 1) throw new Error('handler failed');
    });
    const errors: Error[] = [];
    r.client.on('error', (e) => errors.push(e));
    const [seq] = await dmsTo(user, 1);
    await waitFor(() => calls.length === 2 && sentOf(r, 'ack').length === 1, 5000, 'the second try, acked');
    expect(calls).toEqual([seq, seq]);
    expect(errors.map((e) => e.message)).toEqual(['handler failed']);
  });

  it('messages sent while the recipient was away, and those that arrived before a handler was set, are delivered', async () => {
    const user = uid('r');
    const seqs = await dmsTo(user, 3);
    const r = await sdk(user); // the pending ones arrive right after welcome
    await waitFor(() => receivedOf(r, 'dm').length >= 3, 3000, 'pending dms');
    const got: number[] = [];
    r.client.onDirect((dm) => void got.push(dm.seq));
    await waitFor(() => got.length === 3, 3000, 'handed over');
    expect(got).toEqual(seqs);
  });
});

describe('tokens and heartbeats', () => {
  it('refreshes before expiry: one connection outlives several short tokens', async () => {
    const user = uid('t');
    let issued = 0;
    const c = client(node.url, user, { getToken: () => (issued++, token(user, {}, 2)) });
    await c.client.connect();
    await sleep(5000); // past two token lifetimes
    expect(c.eventsOf('disconnected')).toEqual([]);
    expect(c.eventsOf('token').length).toBeGreaterThanOrEqual(2);
    // One getToken per refresh (plus the first connect); one refresh may be under way right now.
    const refreshes = sentOf(c, 'refresh').length;
    expect(c.eventsOf('token').length).toBeGreaterThanOrEqual(refreshes - 1);
    expect(issued - 1 - refreshes).toBeGreaterThanOrEqual(0);
    expect(issued - 1 - refreshes).toBeLessThanOrEqual(1);
    expect(await c.client.publish(uid('room'), { still: 'here' })).toBe(1);
  }, 15_000);

  it('a refreshed token that no longer allows a joined room: the room is left (error forbidden), the others go on', async () => {
    const user = uid('t');
    const [kept, dropped] = [uid('kept'), uid('dropped')];
    let rooms = [kept, dropped];
    const c = client(node.url, user, { getToken: () => token(user, { rooms }, 3) });
    await c.client.connect();
    const got = { kept: collect(c, kept), dropped: collect(c, dropped) };
    const errors: RtgwClientError[] = [];
    c.client.room(dropped)!.on('error', (e) => errors.push(e));
    await waitFor(
      () => receivedOf(c, 'ok').filter((f) => f.room !== undefined).length === 2,
      3000,
      'both rooms joined',
    );
    rooms = [kept]; // the next refresh (the token lives 3 s) narrows it
    await waitFor(() => errors.length === 1, 6000, 'the room removed');
    expect(errors[0]!.code).toBe('forbidden');
    expect(c.client.room(dropped)).toBeUndefined();
    const publisher = await sdk();
    await publisher.client.publish(dropped, 'gone');
    await publisher.client.publish(kept, 'here');
    await waitFor(() => got.kept.length === 1, 3000, 'the kept room goes on');
    await sleep(200);
    expect(got.dropped).toEqual([]);
    expect(c.eventsOf('disconnected')).toEqual([]);
  }, 15_000);

  it('when refreshing fails until the server closes with 4010, it reconnects with a fresh token', async () => {
    const user = uid('t');
    let failing = true;
    const c = pool.create({
      url: node.url,
      getToken: () => {
        if (c.client.state === 'connected' && failing) throw new Error('token service down');
        return token(user, {}, 2);
      },
    });
    await c.client.connect();
    const d = await c.event('disconnected', 5000);
    expect(d).toMatchObject({ code: 4010, reconnectInMs: 0 });
    failing = false;
    await c.event('connected', 3000, (e) => e.reconnected);
    expect(c.eventsOf('error').some((e) => e.ev.message === 'token service down')).toBe(true);
  }, 15_000);

  it('a refused token (4001) makes it ask getToken again; a fixed bad token ends the client', async () => {
    const user = uid('t');
    let calls = 0;
    const c = client(node.url, user, {
      getToken: () => (++calls === 1 ? signToken({ secret: 'x'.repeat(32) }, user) : token(user)),
    });
    await c.client.connect();
    expect(c.eventsOf('disconnected').map((e) => e.ev.code)).toEqual([4001]);
    expect(calls).toBe(2);

    const fixed = pool.create({ url: node.url, token: await signToken({ secret: 'x'.repeat(32) }, user) });
    await expect(fixed.client.connect()).rejects.toMatchObject({ code: 'closed' });
    expect(fixed.client.state).toBe('closed');
    expect(fixed.eventsOf('closed').map((e) => e.ev.code)).toEqual([4001]);
    await expect(fixed.client.publish(uid('room'), 1)).rejects.toMatchObject({ code: 'closed' });
  });

  it('pings at the server’s hb; a connection that stops answering is given up and replaced', async () => {
    const c = client(proxy.url, uid('h'), { pongTimeoutMs: 500 });
    await c.client.connect();
    await waitFor(() => sentOf(c, 'ping').length >= 2, 3 * HEARTBEAT_MS, 'two pings');
    const pings = c.tap.sent.filter((s) => s.f.t === 'ping').map((s) => s.at);
    expect(pings[1]! - pings[0]!).toBeGreaterThanOrEqual(HEARTBEAT_MS - 50);
    expect(receivedOf(c, 'pong').length).toBeGreaterThanOrEqual(1);

    proxy.holdDownstream(true); // the TCP connection stays up; nothing comes back
    const heldAt = Date.now();
    // Let the next connection through (the listener runs before the reconnect is scheduled).
    c.client.on('disconnected', () => proxy.holdDownstream(false));
    const d = await c.event('disconnected', 3 * HEARTBEAT_MS);
    expect(d).toMatchObject({ code: 1006, reason: 'no answer from the server' });
    expect(c.eventsOf('disconnected')[0]!.at - heldAt).toBeLessThanOrEqual(HEARTBEAT_MS + 500 + 300);
    await c.event('connected', 3000, (e) => e.reconnected);
  });
});
