// Load-generator worker: holds many connections and counts what each receives. As room members it joins
// rooms and, in publishing rooms (chat), publishes from every member in turn; it also runs the connection
// storm (and reconnects what a stopping gateway closes) and the router-ingest publishers. Driven over IPC
// by bench.ts; exits when its parent goes away.
import { benchToken, endpointOf, joinMember, openConn, withTimeout, type BenchConn, type Target } from './conn.js';
import type {
  IngestReport,
  MemberCounts,
  MembersCmd,
  MembersReply,
  PublishReport,
  ReconnectReport,
  RoomPlan,
  StormReport,
} from './protocol.js';
import { pace } from './pace.js';
import { summarize } from './stats.js';
import { errText, sleep } from './util.js';
import { stampText, WIRES } from './wire.js';

const POLL_MS = 5;
const MAX_SAMPLES = 200_000;
const reply = (r: MembersReply) => process.send!(r);

interface Room {
  plan: RoomPlan;
  /** Messages this process published to the room in the current step: each member's target. */
  sent: number;
}
interface Member {
  conn: BenchConn;
  room: Room;
}

const members: Member[] = [];
/** Members of publishing rooms, in the order they take turns. */
const publishers: Member[] = [];
/** Close codes of joined members. */
const closeCodes: Record<string, number> = {};
let step = -1;
let samples: number[] = [];
/** Whether the server answers each publish (then a step also waits for every answer). */
let acksPub = false;
/** Publishes of members sent and answered since they connected: a step starts only once they are equal (or quiet). */
let pubsSent = 0;
let pubsAnswered = 0;
/** pubsAnswered at the last reset: the current step's answers are those after it. */
let answeredAtReset = 0;

async function connectAll(
  target: Target,
  plans: RoomPlan[],
  firstUser: number,
  concurrency: number,
  samplers: number,
): Promise<MembersReply> {
  const t0 = performance.now();
  const errors: string[] = [];
  const todo: { room: Room; user: number; sampler: boolean }[] = [];
  let user = firstUser;
  let sampled = 0;
  for (const plan of plans) {
    const room: Room = { plan, sent: 0 };
    const sampler = plan.publish && sampled < samplers;
    if (sampler) sampled++;
    for (let k = 0; k < plan.members; k++) todo.push({ room, user: user++, sampler: sampler && k === 0 });
  }
  let next = 0;
  let failed = 0;
  let retried = 0;
  const worker = async () => {
    while (next < todo.length) {
      const t = todo[next++]!;
      const onStamp = t.sampler
        ? (s: { s: number; ts: number }) => {
            if (s.s === step && samples.length < MAX_SAMPLES) samples.push(performance.now() - s.ts);
          }
        : undefined;
      try {
        const made = await joinMember(
          target,
          t.user,
          t.room.plan.room,
          { onStamp, onAnswer: () => pubsAnswered++ },
          errors,
        );
        retried += made.retried;
        const m: Member = { conn: made.conn, room: t.room };
        made.conn.onClose = (code) => {
          const k = String(code ?? 1006);
          closeCodes[k] = (closeCodes[k] ?? 0) + 1;
        };
        members.push(m);
        if (t.room.plan.publish) publishers.push(m);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  acksPub = WIRES[target.wire].acksPub;
  spreadPublishers();
  return { cmd: 'connected', ok: members.length, failed, retried, errors, ms: Math.round(performance.now() - t0) };
}

/** Orders publishers round-robin over rooms (member 1 of each room, then member 2 of each...), so that consecutive publishes go to different rooms. */
function spreadPublishers(): void {
  const byRoom = new Map<Room, Member[]>();
  for (const m of publishers) byRoom.set(m.room, [...(byRoom.get(m.room) ?? []), m]);
  const lists = [...byRoom.values()];
  publishers.length = 0;
  for (let k = 0; lists.some((l) => k < l.length); k++) for (const l of lists) if (k < l.length) publishers.push(l[k]!);
}

/** `settled`: members that have their target or are closed (none of them can still get further). */
function counts(base: number): MemberCounts & { settled: number } {
  let reached = 0,
    over = 0,
    total = 0,
    open = 0,
    expected = 0,
    settled = 0;
  let minShort = Infinity,
    maxOver = -Infinity;
  for (const m of members) {
    const target = m.room.plan.publish ? m.room.sent : base;
    const d = m.conn.data;
    total += d;
    expected += target;
    if (d >= target) reached++;
    if (d > target) over++;
    minShort = Math.min(minShort, d - target);
    maxOver = Math.max(maxOver, d - target);
    if (m.conn.open) open++;
    if (d >= target || !m.conn.open) settled++;
  }
  const none = members.length === 0;
  return {
    members: members.length,
    open,
    reached,
    minShort: none ? 0 : minShort,
    maxOver: none ? 0 : maxOver,
    over,
    total,
    expected,
    closeCodes: { ...closeCodes },
    settled,
  };
}

/** Publishes `count` messages at `rate` (pace.ts), each from the next publisher in turn, one write each. */
async function publish(plan: {
  step: number;
  rate: number;
  count: number;
}): Promise<Omit<PublishReport, 'oks' | 'errs' | 'errSample' | 'samples'>> {
  if (publishers.length === 0) throw new Error('no publishing members in this process');
  let turn = 0;
  return pace(plan.rate, plan.count, (n) => {
    for (let k = 0; k < n; k++) {
      const m = publishers[turn++ % publishers.length]!;
      m.conn.publish(m.room.plan.room, [stampText(plan.step, m.room.sent++, performance.now())], true);
      pubsSent++;
    }
  });
}

/** Until every member has its target (and every publish its answer), or none still open can get there, or the deadline. */
async function wait(cmd: Extract<MembersCmd, { cmd: 'wait' }>): Promise<MembersReply> {
  const t0 = performance.now();
  let pub: PublishReport | undefined;
  let acked = () => true;
  if (cmd.publish) {
    step = cmd.publish.step;
    const p = await publish(cmd.publish);
    pub = { ...p, oks: 0, errs: 0, errSample: [], samples: [] };
    if (acksPub) acked = () => pubsAnswered - answeredAtReset >= p.sent;
  }
  for (;;) {
    const { settled, ...c } = counts(cmd.base);
    const ms = performance.now() - t0;
    const done = c.reached === c.members && acked();
    const stuck = settled === c.members;
    if (done || (stuck && acked()) || ms > cmd.timeoutMs) {
      if (pub) {
        for (const m of publishers) {
          pub.oks += m.conn.oks;
          pub.errs += m.conn.errs;
          if (pub.errSample.length < 5) pub.errSample.push(...m.conn.errSample.slice(0, 5 - pub.errSample.length));
        }
        pub.samples = samples;
      }
      return { cmd: 'waited', done, ms, counts: c, publish: pub };
    }
    await sleep(POLL_MS);
  }
}

/**
 * Until nothing arrived for `quietMs` and every publish of ours was answered (messages and answers of a
 * failed step still draining), at most `maxMs`.
 */
async function quiet(quietMs: number, maxMs: number): Promise<MembersReply> {
  const t0 = performance.now();
  const start = counts(0).total + pubsAnswered;
  let last = start;
  let since = t0;
  for (;;) {
    await sleep(POLL_MS * 4);
    const now = performance.now();
    const total = counts(0).total + pubsAnswered;
    if (acksPub && pubsAnswered < pubsSent) since = now;
    if (total !== last) {
      last = total;
      since = now;
    } else if (now - since >= quietMs) {
      return { cmd: 'quiet', quiet: true, ms: now - t0, arrived: total - start };
    }
    if (now - t0 > maxMs) return { cmd: 'quiet', quiet: false, ms: now - t0, arrived: total - start };
  }
}

function reset(): void {
  for (const m of members) {
    m.conn.data = 0;
    m.conn.oks = 0;
    m.conn.errs = 0;
    m.room.sent = 0;
  }
  answeredAtReset = pubsAnswered;
  samples = [];
}

/**
 * Router ingest: `publishers` connections that join nothing, each keeping `window` publishes in flight
 * (a new one for each answer) to rooms drawn in turn from `rooms`, until `ingest-stop`. Counting starts
 * after the warm-up (JIT, the routers' first slot moves).
 */
let ingestRun:
  | {
      conns: BenchConn[];
      publishers: number;
      window: number;
      running: boolean;
      sent: number;
      acked: number;
      errs: number;
      closed: number;
      t0: number;
    }
  | undefined;

async function ingest(cmd: Extract<MembersCmd, { cmd: 'ingest' }>): Promise<void> {
  const run = {
    conns: [] as BenchConn[],
    publishers: cmd.publishers,
    window: cmd.window,
    running: false,
    sent: 0,
    acked: 0,
    errs: 0,
    closed: 0,
    t0: 0,
  };
  ingestRun = run;
  let turn = 0;
  const room = () => `ingest-${turn++ % cmd.rooms}`;
  for (let i = 0; i < cmd.publishers; i++) {
    const conn: BenchConn = openConn(cmd.target.client, {
      ...endpointOf(cmd.target, cmd.firstUser + i),
      wire: cmd.target.wire,
      room: 'ingest',
      token: benchToken(`p${cmd.firstUser + i}`),
      onAnswer: (ok) => {
        if (!run.running) return;
        if (ok) run.acked++;
        else run.errs++;
        conn.publish(room(), [stampText(0, run.sent++, 0)], false);
      },
      onClose: () => run.closed++,
    });
    await conn.connect();
    run.conns.push(conn);
  }
  run.running = true;
  for (const c of run.conns)
    c.publish(
      room(),
      Array.from({ length: cmd.window }, () => stampText(0, run.sent++, 0)),
      false,
    );
  await sleep(cmd.warmupMs);
  Object.assign(run, { sent: 0, acked: 0, errs: 0, t0: performance.now() });
}

function ingestStop(): IngestReport {
  const run = ingestRun;
  if (!run) throw new Error('no ingest running');
  ingestRun = undefined;
  run.running = false;
  const ms = performance.now() - run.t0;
  const errSample = run.conns.flatMap((c) => c.errSample).slice(0, 5);
  for (const c of run.conns) c.destroy();
  // Little's law: with every window full, the mean time to an answer is what is in flight over the rate.
  const meanAckMs = run.acked > 0 ? Math.round(((run.publishers * run.window * ms) / run.acked) * 1000) / 1000 : NaN;
  return { sent: run.sent, acked: run.acked, errs: run.errs, errSample, ms, meanAckMs, closed: run.closed };
}

// Connection storm: idle connections (no room), which reconnect elsewhere when a server closes them.
interface Idle {
  conn: BenchConn;
  user: number;
  endpoint: number;
}
const idle: Idle[] = [];
let dropping = false;
const rc = {
  closed: 0,
  reconnected: 0,
  failedAttempts: 0,
  firstClose: 0,
  lastReconnect: 0,
  gaps: [] as number[],
  codes: {} as Record<string, number>,
  errors: [] as string[],
};

function idleConn(target: Target, user: number, endpoint: number, tok: string): Idle {
  const it: Idle = { conn: undefined as unknown as BenchConn, user, endpoint };
  it.conn = openConn(target.client, {
    ...target.endpoints[endpoint]!,
    wire: target.wire,
    room: 'idle',
    token: tok,
    onClose: (code) => void onIdleClose(target, it, code),
  });
  return it;
}

async function onIdleClose(target: Target, it: Idle, code: number | undefined): Promise<void> {
  if (dropping) return;
  const closedAt = performance.now();
  if (rc.closed++ === 0) rc.firstClose = closedAt;
  rc.codes[String(code ?? 1006)] = (rc.codes[String(code ?? 1006)] ?? 0) + 1;
  // Reconnect at once, to the next endpoint, as a client told to drain would; bounded attempts.
  for (let attempt = 1; attempt <= 50 && !dropping; attempt++) {
    const endpoint = (it.endpoint + attempt) % target.endpoints.length;
    const next = idleConn(target, it.user, endpoint, benchToken(`s${it.user}`));
    try {
      await withTimeout(next.conn.connect(), 10_000, 'reconnect timeout');
      Object.assign(it, { conn: next.conn, endpoint });
      next.conn.onClose = (c) => void onIdleClose(target, it, c);
      rc.reconnected++;
      rc.lastReconnect = performance.now();
      rc.gaps.push(rc.lastReconnect - closedAt);
      return;
    } catch (e) {
      next.conn.destroy();
      rc.failedAttempts++;
      if (rc.errors.length < 5) rc.errors.push(errText(e));
      await sleep(20);
    }
  }
}

async function storm(cmd: Extract<MembersCmd, { cmd: 'storm' }>): Promise<StormReport> {
  dropping = false;
  // Tokens are signed before the clock starts: the storm measures the server, not our HMACs.
  const toks = Array.from({ length: cmd.count }, (_, i) => benchToken(`s${cmd.firstUser + i}`));
  const lat = new Float64Array(cmd.count);
  const errors: string[] = [];
  let next = 0,
    ok = 0,
    failed = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < cmd.count) {
      const i = next++;
      const user = cmd.firstUser + i;
      const it = idleConn(cmd.target, user, user % cmd.target.endpoints.length, toks[i]!);
      const c0 = performance.now();
      try {
        await withTimeout(it.conn.connect(), 15_000, 'connect timeout');
        lat[ok++] = performance.now() - c0;
        idle.push(it);
      } catch (e) {
        it.conn.destroy();
        failed++;
        if (errors.length < 5) errors.push(errText(e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.count) }, worker));
  const ms = performance.now() - t0;
  return { ok, failed, ms, latencyMs: summarize(lat.subarray(0, ok)), errors };
}

async function reconnected(expected: number, timeoutMs: number): Promise<ReconnectReport> {
  const t0 = performance.now();
  while (rc.reconnected < expected && performance.now() - t0 < timeoutMs) await sleep(POLL_MS * 4);
  const r: ReconnectReport = {
    closed: rc.closed,
    reconnected: rc.reconnected,
    failedAttempts: rc.failedAttempts,
    ms: rc.reconnected ? rc.lastReconnect - rc.firstClose : NaN,
    closeCodes: { ...rc.codes },
    gapMs: summarize(rc.gaps),
    errors: [...rc.errors],
  };
  Object.assign(rc, {
    closed: 0,
    reconnected: 0,
    failedAttempts: 0,
    firstClose: 0,
    lastReconnect: 0,
    gaps: [],
    codes: {},
    errors: [],
  });
  return r;
}

process.on('message', (m: MembersCmd) => {
  void (async () => {
    switch (m.cmd) {
      case 'connect':
        return reply(await connectAll(m.target, m.rooms, m.firstUser, m.concurrency, m.samplers));
      case 'reset':
        reset();
        return reply({ cmd: 'reset' });
      case 'wait':
        return reply(await wait(m));
      case 'quiet':
        return reply(await quiet(m.quietMs, m.maxMs));
      case 'ingest':
        await ingest(m);
        return reply({ cmd: 'ingesting' });
      case 'ingest-stop':
        return reply({ cmd: 'ingested', ...ingestStop() });
      case 'storm':
        return reply({ cmd: 'stormed', ...(await storm(m)) });
      case 'reconnect':
        return reply({ cmd: 'reconnected', ...(await reconnected(m.expected, m.timeoutMs)) });
      case 'drop':
        dropping = true;
        for (const it of idle.splice(0)) it.conn.destroy();
        return reply({ cmd: 'dropped' });
      case 'shutdown':
        dropping = true;
        for (const x of [...members.map((y) => y.conn), ...idle.map((y) => y.conn), ...(ingestRun?.conns ?? [])])
          x.destroy();
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ cmd: 'error', msg: errText(e) }));
});
process.on('disconnect', () => process.exit(0));
