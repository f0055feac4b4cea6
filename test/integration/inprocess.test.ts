// A router and two gateways in ONE process over a MemoryHub and the memory stores, with a bus wrapper
// that drops, duplicates and reorders room-stream messages on their way to one gateway. Faults that a
// multi-process cluster only hits by chance are made to happen here, deterministically.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { MemoryHub } from '../../shared/bus/memory.js';
import type { Bus, BusMsg, Subscription } from '../../shared/bus/bus.js';
import { decodeStream } from '../../shared/cluster/stream.js';
import { subjects } from '../../shared/cluster/subjects.js';
import { loadConfig } from '../../shared/config.js';
import { createMetrics, type Metrics } from '../../shared/metrics.js';
import { memoryStores } from '../../shared/store/memory.js';
import { startGateway, type Gateway } from '../../gateway/server.js';
import { startRouter, type Router } from '../../router/index.js';
import { connect, type TestClient } from '../harness/client.js';
import { signToken } from '../harness/cluster.js';
import { prng } from '../harness/random.js';
import { waitFor } from '../harness/wait.js';

const SECRET = 'in-process-test-secret-0123456789abcdef';
const silent = pino({ level: 'silent' });

type Fault = 'pass' | 'drop' | 'dup' | 'hold';

/** Passes every bus call through, but lets a test decide the fate of each room-stream message. */
class FaultyBus implements Bus {
  decide: (room: string, seq: number) => Fault = () => 'pass';
  private held: (() => void)[] = [];
  constructor(private readonly inner: Bus) {}
  get connected() {
    return this.inner.connected;
  }
  publish(subject: string, data: Uint8Array | string, reply?: string) {
    this.inner.publish(subject, data, reply);
  }
  request(subject: string, data: Uint8Array | string, timeoutMs: number) {
    return this.inner.request(subject, data, timeoutMs);
  }
  flush() {
    return this.inner.flush();
  }
  close() {
    return this.inner.close();
  }
  subscribe(subject: string, handler: (msg: BusMsg) => void, opts?: { queue?: string }): Subscription {
    const room = subject.split('.')[2];
    if (!subject.includes('.room.')) return this.inner.subscribe(subject, handler, opts);
    return this.inner.subscribe(
      subject,
      (msg) => {
        const ev = decodeStream(msg.data);
        const fate = ev?.kind === 'm' ? this.decide(room!, ev.seq) : 'pass';
        if (fate === 'drop') return;
        if (fate === 'hold') return void this.held.push(() => handler(msg));
        handler(msg);
        if (fate === 'dup') handler(msg);
      },
      opts,
    );
  }
  /** Delivers the held messages (late, after what followed them). */
  release() {
    const held = this.held;
    this.held = [];
    for (const h of held) h();
  }
}

let hub: MemoryHub;
let router: Router;
let gw: Gateway[] = [];
let faulty: FaultyBus;
let gwMetrics: Metrics;
/** While set, history reads and pending-inbox reads of gateway g1 fail (a store that cannot be read). */
let failReads = false;
const clients: TestClient[] = [];

const cfgFor = (node: string) =>
  loadConfig('standalone', {
    RTGW_HOST: '127.0.0.1',
    RTGW_PORT: '0',
    RTGW_ADMIN_PORT: '0',
    RTGW_JWT_SECRET: SECRET,
    RTGW_NODE_ID: node,
    RTGW_SLOTS: '8',
    RTGW_LOG_LEVEL: 'silent',
    RTGW_RATE_LIMIT: '100000',
  });

async function client(gateway: number, user: string): Promise<TestClient> {
  const token = await signToken({ secret: SECRET }, user);
  const c = await connect(`ws://127.0.0.1:${gw[gateway]!.port}/ws`, { token });
  clients.push(c);
  return c;
}

const seqs = (c: TestClient, room: string) => c.msgs(room).map((m) => m.seq as number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

beforeAll(async () => {
  hub = new MemoryHub();
  const stores = memoryStores({
    maxMessages: 1000,
    maxAgeMs: 3600_000,
    dedupWindowMs: 3600_000,
    ackTimeoutMs: 5000,
    maxBackoffMs: 60_000,
    maxAttempts: 8,
    inboxMaxAgeMs: 7 * 24 * 3600_000,
    inboxMaxMessages: 10_000,
    inboxMaxPerSender: 1000,
    deadLettersMaxPerSlot: 10_000,
    slots: 8, // RTGW_SLOTS of cfgFor
  });
  const subj = subjects('rtgw');
  router = await startRouter({
    cfg: cfgFor('r1'),
    bus: hub.connect(),
    stores,
    subj,
    metrics: createMetrics('router'),
    log: silent,
  });
  faulty = new FaultyBus(hub.connect());
  gwMetrics = createMetrics('gateway');
  gw = [
    await startGateway({ cfg: cfgFor('g0'), bus: faulty, stores, subj, metrics: gwMetrics, log: silent }),
    await startGateway({
      cfg: cfgFor('g1'),
      bus: hub.connect(),
      stores: {
        ...stores,
        log: {
          read: (...a: Parameters<typeof stores.log.read>) =>
            failReads ? Promise.reject(new Error('history unreadable (injected)')) : stores.log.read(...a),
        },
        inbox: {
          pending: (...a: Parameters<typeof stores.inbox.pending>) =>
            failReads ? Promise.reject(new Error('inbox unreadable (injected)')) : stores.inbox.pending(...a),
          peek: (...a: Parameters<typeof stores.inbox.peek>) => stores.inbox.peek(...a),
          ack: (...a: Parameters<typeof stores.inbox.ack>) => stores.inbox.ack(...a),
        },
      },
      subj,
      metrics: createMetrics('gateway'),
      log: silent,
    }),
  ];
});

afterAll(async () => {
  for (const c of clients) c.terminate();
  for (const g of gw) await g.close();
  await router?.close();
});

describe('room streams under injected faults (gateway g0 gets the faulty bus)', () => {
  it('fills a dropped message from history before delivering what follows it', async () => {
    const room = 'drop-room';
    const member = await client(0, 'm');
    const sender = await client(1, 's');
    await member.ok({ t: 'join', room });
    faulty.decide = (r, seq) => (r === room && (seq === 2 || seq === 3) ? 'drop' : 'pass');
    const fills = (await gwMetrics.gapFills.get()).values[0]?.value ?? 0;
    for (let i = 1; i <= 5; i++) await sender.ok({ t: 'pub', room, data: { i } });
    await member.waitForMsgs(room, 5);
    expect(seqs(member, room)).toEqual(range(1, 5));
    expect(member.msgs(room).map((m) => m.data.i)).toEqual(range(1, 5));
    expect((await gwMetrics.gapFills.get()).values[0]?.value).toBeGreaterThan(fills);
  });

  it('delivers duplicated stream messages once', async () => {
    const room = 'dup-room';
    const member = await client(0, 'm');
    const sender = await client(1, 's');
    await member.ok({ t: 'join', room });
    faulty.decide = (r) => (r === room ? 'dup' : 'pass');
    for (let i = 1; i <= 6; i++) await sender.ok({ t: 'pub', room, data: { i } });
    await member.waitForMsgs(room, 6);
    await member.ping(); // everything sent before the pong has arrived
    expect(seqs(member, room)).toEqual(range(1, 6));
  });

  it('puts reordered stream messages back in seq order', async () => {
    const room = 'late-room';
    const member = await client(0, 'm');
    const sender = await client(1, 's');
    await member.ok({ t: 'join', room });
    faulty.decide = (r, seq) => (r === room && seq === 2 ? 'hold' : 'pass');
    for (let i = 1; i <= 4; i++) await sender.ok({ t: 'pub', room, data: { i } });
    await member.waitForMsgs(room, 4);
    faulty.release(); // seq 2 arrives last, after the gap fill delivered it
    await member.ping();
    expect(seqs(member, room)).toEqual(range(1, 4));
  });

  it('leaves the sender out unless it asks for echo, and a sender outside the room takes nothing from it', async () => {
    const room = 'echo-room';
    faulty.decide = () => 'pass';
    const a = await client(0, 'a');
    const b = await client(0, 'b');
    await a.ok({ t: 'join', room });
    await b.ok({ t: 'join', room });
    // A publisher on the same gateway that joined nothing: uWS would ignore a publish through its socket.
    const outsider = await client(0, 'outsider');
    await a.ok({ t: 'pub', room, data: 'quiet' });
    await a.ok({ t: 'pub', room, data: 'loud', echo: true });
    await outsider.ok({ t: 'pub', room, data: 'from outside' });
    await b.waitForMsgs(room, 3);
    await a.waitForMsgs(room, 2);
    await a.ping();
    expect(a.msgs(room).map((m) => m.data)).toEqual(['loud', 'from outside']);
    expect(b.msgs(room).map((m) => m.data)).toEqual(['quiet', 'loud', 'from outside']);
  });
});

describe('join with since while the room is busy', () => {
  it('every re-join gets exactly the messages after since, then live ones, with no gap or duplicate', async () => {
    const room = 'busy-room';
    faulty.decide = (r, seq) => (r === room && seq % 7 === 0 ? 'drop' : 'pass'); // gaps keep the fill path busy too
    const sender = await client(1, 'sender');
    const anchor = await client(1, 'anchor');
    const first = await anchor.ok({ t: 'join', room });
    let stop = false;
    let published = 0;
    const publishing = (async () => {
      // Bounded, but never before the rounds below are done: each of them waits for fresh traffic.
      while (!stop && published < 100_000) {
        await sender.ok({ t: 'pub', room, data: published++ });
      }
    })();
    // Random joins on the faulty gateway, each from a random point in the past (seeded), while publishing goes on.
    const draw = prng('inprocess-joins');
    for (let round = 0; round < 40; round++) {
      const c = await client(0, `joiner${round}`);
      await waitFor(() => published > round * 10 + 5, 5000, 'some traffic');
      // Within the last 1000 messages that history keeps (past that, recovered: false is the right answer).
      const since = Math.max(0, published - 1 - Math.floor(draw() * 900));
      const ok = await c.ok({ t: 'join', room, since, epoch: first.epoch });
      expect(ok.recovered).toBe(true);
      await waitFor(() => published >= ok.seq + 5, 5000, 'traffic after the join');
      const target = published;
      await waitFor(() => seqs(c, room).at(-1)! >= target, 5000, `joiner ${round} to catch up to ${target}`);
      const got = seqs(c, room);
      expect(got).toEqual(range(since + 1, got.at(-1)!));
      c.terminate();
    }
    stop = true;
    await publishing;
    await waitFor(() => seqs(anchor, room).length === published, 5000, 'anchor to get everything');
    expect(seqs(anchor, room)).toEqual(range(1, published));
  });
});

describe('requests racing on one connection', () => {
  it('answers a join that a leave overtook, and delivers nothing after the leave', async () => {
    faulty.decide = () => 'pass';
    const room = 'race-leave';
    const c = await client(0, 'racer');
    const sender = await client(1, 'sender2');
    const j = c.fire({ t: 'join', room, since: 0 });
    const l = c.fire({ t: 'leave', room });
    await c.next((f) => f.t === 'ok' && f.id === j);
    await c.next((f) => f.t === 'ok' && f.id === l);
    await sender.ok({ t: 'pub', room, data: 'after the leave' });
    await c.ping();
    await sender.ping();
    expect(c.msgs(room)).toEqual([]);
  });

  it('answers both of two quick joins of one room, and only the last goes live, once', async () => {
    faulty.decide = () => 'pass';
    const room = 'race-join';
    const c = await client(0, 'racer');
    const sender = await client(1, 'sender3');
    await sender.ok({ t: 'pub', room, data: 'before' });
    const j1 = c.fire({ t: 'join', room, since: 0 });
    const j2 = c.fire({ t: 'join', room, since: 0 });
    await c.next((f) => f.t === 'ok' && f.id === j1);
    await c.next((f) => f.t === 'ok' && f.id === j2);
    await sender.ok({ t: 'pub', room, data: 'after' });
    await c.waitForMsgs(room, 2);
    await c.ping();
    expect(c.msgs(room).map((m) => m.data)).toEqual(['before', 'after']);
    for (const id of [j1, j2]) expect(c.answers.get(id)).toBe(1);
  });
});

describe('a join that fails', () => {
  it('a repeated join whose history read fails leaves the room for good: no presence, no messages', async () => {
    const room = 'failing-rejoin';
    const c = await client(1, 'rejoiner');
    const watcher = await client(0, 'watcher');
    await c.ok({ t: 'join', room, presence: true });
    expect((await watcher.ok({ t: 'presence', room })).count).toBe(1);
    failReads = true;
    try {
      expect(await c.request({ t: 'join', room, since: 0 })).toMatchObject({ t: 'err' });
    } finally {
      failReads = false;
    }
    await waitFor(
      async () => (await watcher.ok({ t: 'presence', room })).count === 0,
      2000,
      'the rejoiner gone from presence',
    );
    await watcher.ok({ t: 'pub', room, data: 'after' });
    await c.ping();
    expect(c.msgs(room)).toEqual([]);
  });
});

describe('a connection whose pending direct messages could not be read', () => {
  it('still gets the live ones', async () => {
    failReads = true;
    let c: TestClient;
    try {
      c = await client(1, 'unread-inbox');
      await c.ping(); // attached (and failed to read the inbox) by now
    } finally {
      failReads = false;
    }
    const sender = await client(0, 'dm-sender');
    const { seq } = await sender.ok({ t: 'dm', to: 'unread-inbox', data: 'live' });
    await c.next((f) => f.t === 'dm' && f.seq === seq, 3000);
  });
});
