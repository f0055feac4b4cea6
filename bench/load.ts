// The rate search shared by the one-room fan-out and the many-rooms chat: steps of a given publish rate
// that pass only when every member got every message in time, CPU per delivery from /proc, a doubling
// (then bisecting) search for the highest passing rate, and the measuring steps at half of it and at an
// equal load. A fan-out is the one-room case: the driver publishes, the members only receive; in a chat
// every member of every room publishes in turn, with echo.
import { cpus } from 'node:os';
import type { ClientKind } from './conn.js';
import type { Options } from './options.js';
import { cpuSeconds, machineBusySeconds, rssBytes, type Proc } from './procs.js';
import type { MemberCounts, PublishReport, RoomPlan, StepReport } from './protocol.js';
import { histogram, round3, spread, summarize, type Histogram, type LatencySummary } from './stats.js';
import { targetOf, type RunningSystem } from './systems.js';
import { errText, sleep } from './util.js';
import { WIRES } from './wire.js';
import { forkDriver, forkMembers, type DriverWorker, type MembersWorker } from './workers.js';

export const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 10) / 10));

export interface Layout {
  kind: 'fanout' | 'chat';
  rooms: number;
  /** Members per room; in a fan-out every member, the probe included. */
  roomSize: number;
  /** A step fails when its p99 is above this. */
  p99MaxMs: number;
}

/** Chat rooms (at most) in which one member decodes every message for latency: ~1/room size of the deliveries. */
const SAMPLING_ROOMS = 1000;

/** Fewer messages per step say nothing about a p99 (and little about a rate): low rates get longer steps. */
const MIN_STEP_MESSAGES = 10;

export interface StepResult {
  kind: 'search' | 'half' | 'ref';
  /** A repeat of the failed step before it (search steps are repeated once before they count as failed). */
  repeat?: boolean;
  /** Publish rate asked for, messages per second over all rooms. */
  rate: number;
  count: number;
  pass: boolean;
  reasons: string[];
  deliveries: number;
  /** Room size x the publish rate achieved: deliveries per second sustained through the step. */
  deliveriesPerSec: number;
  /** From the first publish until every member had everything (or the wait gave up). */
  completeMs: number;
  sendMs: number;
  wallS: number;
  latencyMs: LatencySummary;
  /** Only for measuring steps. */
  histogram?: Histogram;
  members: MemberCounts;
  driver?: Omit<StepReport, 'samples'>;
  publish?: Omit<PublishReport, 'samples'>;
  /** CPU seconds used during the step, by process. */
  cpuS: Record<string, number>;
  /** CPU seconds of processes the bench did not start (other users of the machine) during the step. */
  otherCpuS: number;
  /** Share of the whole machine (all cores) busy during the step, whoever used it, and the share of others. */
  machineBusyShare: number;
  otherShare: number;
  /** Others used more than `busyMax` of the machine during the step, and repeating it did not help. */
  disturbed?: boolean;
  /** Server-side CPU microseconds per delivery, by process and in total. */
  serverUsPerDelivery: Record<string, number>;
}

export interface RunResult {
  system: string;
  client: ClientKind;
  run: number;
  room: string;
  connectMs: number;
  /** Joins that failed and were tried again. */
  joinRetries: number;
  joinErrors: string[];
  idleBefore: { busyShare: number; waitedS: number };
  /** RSS of each server process before the members connected and once they had joined, bytes. */
  rssBefore: Record<string, number>;
  rssJoined: Record<string, number>;
  steps: StepResult[];
  /** Highest passing search step. */
  max?: { rate: number; deliveriesPerSec: number; /** Index in `steps`. */ step: number };
  half?: StepResult;
  ref?: StepResult;
  /** Steps set aside because other processes used too much of the machine meanwhile (see runClean). */
  disturbed: StepResult[];
  error?: string;
}

interface RunCtx {
  o: Options;
  sys: RunningSystem;
  layout: Layout;
  members: MembersWorker[];
  driver?: DriverWorker;
  stepNo: number;
  procs: () => Record<string, Proc>;
}

/**
 * CPU seconds of each of `procs` (and, with `orchestrator`, of this process) from now on, and how busy the
 * machine was meanwhile: the function it returns reads what was used since.
 */
export function cpuMeter(procs: Record<string, { pid: number }>, orchestrator = false) {
  const at = () => {
    const s: Record<string, number> = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSeconds(p.pid)]));
    if (orchestrator) {
      const u = process.cpuUsage();
      s.orchestrator = (u.user + u.system) / 1e6;
    }
    return s;
  };
  const c0 = at();
  const b0 = machineBusySeconds();
  const t0 = performance.now();
  return () => {
    const c1 = at();
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = Object.fromEntries(Object.keys(c1).map((k) => [k, round3(c1[k]! - c0[k]!)]));
    const ours = Object.values(cpuS).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const busy = machineBusySeconds() - b0;
    const other = Math.max(0, busy - ours);
    return {
      wallS: round3(wallS),
      cpuS,
      cores: Object.fromEntries(Object.entries(cpuS).map(([k, v]) => [k, round3(v / wallS)])),
      otherCpuS: round3(other),
      machineBusyShare: round3(busy / wallS / cpus().length),
      otherShare: round3(other / wallS / cpus().length),
    };
  };
}
export type CpuReading = ReturnType<ReturnType<typeof cpuMeter>>;

export const rssOf = (procs: Record<string, Proc>) =>
  Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, rssBytes(p.pid)]));

function mergeCounts(list: MemberCounts[]): MemberCounts {
  const closeCodes: Record<string, number> = {};
  for (const c of list) for (const [k, v] of Object.entries(c.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
  const sum = (f: (c: MemberCounts) => number) => list.reduce((a, c) => a + f(c), 0);
  return {
    members: sum((c) => c.members),
    open: sum((c) => c.open),
    reached: sum((c) => c.reached),
    minShort: Math.min(...list.map((c) => c.minShort)),
    maxOver: Math.max(...list.map((c) => c.maxOver)),
    over: sum((c) => c.over),
    total: sum((c) => c.total),
    expected: sum((c) => c.expected),
    closeCodes,
  };
}

async function quietMembers(ctx: RunCtx): Promise<boolean> {
  const r = await Promise.all(
    ctx.members.map((m) => m.expect({ cmd: 'quiet', quietMs: 250, maxMs: 20_000 }, 'quiet', 30_000)),
  );
  return r.every((x) => x.quiet);
}

/** Share of the layout's rooms that members process i publishes to (chat). */
const roomShare = (ctx: RunCtx, i: number) => roomsOf(ctx.layout, ctx.members.length, i).length / ctx.layout.rooms;

async function runStep(ctx: RunCtx, kind: StepResult['kind'], rate: number, durationMs: number): Promise<StepResult> {
  const { o, layout } = ctx;
  const reasons: string[] = [];
  if (!(await quietMembers(ctx))) reasons.push('messages of an earlier step were still arriving');
  await Promise.all(ctx.members.map((m) => m.expect({ cmd: 'reset' }, 'reset', 5000)));
  const count = Math.max(MIN_STEP_MESSAGES, Math.round((rate * durationMs) / 1000));
  const meter = cpuMeter(ctx.procs(), true);
  const step = ++ctx.stepNo;
  const waitMs = Math.max(durationMs, (count * 1000) / rate) * 2 + o.graceMs;
  const chat = layout.kind === 'chat';
  // In a chat, members process i publishes its share of the rooms' messages.
  const shares = ctx.members.map((_, i) => roomShare(ctx, i));
  const pubCounts = shares.map((share) => Math.max(1, Math.round(count * share)));
  const [d, ...waited] = await Promise.all([
    chat
      ? undefined
      : ctx.driver!.expect({ cmd: 'step', step, rate, count, graceMs: o.graceMs }, 'stepped', waitMs + 30_000),
    ...ctx.members.map((w, i) =>
      w.expect(
        {
          cmd: 'wait',
          base: chat ? 0 : count,
          publish: chat ? { step, rate: rate * shares[i]!, count: pubCounts[i]! } : undefined,
          timeoutMs: waitMs,
        },
        'waited',
        waitMs + 30_000,
      ),
    ),
  ]);
  const { wallS, cpuS, otherCpuS, machineBusyShare, otherShare } = meter();
  const counts = mergeCounts(waited.map((w) => w.counts));
  const pubs = waited.flatMap((w) => (w.publish ? [w.publish] : []));
  const sent = d ? d.sent : pubs.reduce((a, p) => a + p.sent, 0);
  const wanted = chat ? pubCounts.reduce((a, n) => a + n, 0) : count;
  const achieved = d ? d.achievedRate : pubs.reduce((a, p) => a + p.achievedRate, 0);
  const sendMs = Math.max(d?.sendMs ?? 0, ...pubs.map((p) => p.sendMs));
  const completeMs = Math.max(d?.probeDoneMs ?? 0, ...waited.map((w) => w.ms));
  const samples = d ? d.samples : pubs.flatMap((p) => p.samples);
  const latencyMs = summarize(samples);
  if (sent !== wanted) reasons.push(`published ${sent} of ${wanted}`);
  if (achieved < rate * 0.9)
    reasons.push(`publishers reached only ${Math.round(achieved)} of ${Math.round(rate)} msg/s`);
  if (d && (d.probeReceived !== count || !d.probeInOrder))
    reasons.push(`probe got ${d.probeReceived}/${count}${d.probeInOrder ? '' : ' out of order or duplicated'}`);
  const answers = d ? [{ oks: d.oks, errs: d.errs, errSample: d.errSample, sent: d.sent }] : pubs;
  const oks = answers.reduce((a, p) => a + p.oks, 0);
  const errs = answers.reduce((a, p) => a + p.errs, 0);
  if (WIRES[ctx.sys.wire].acksPub && (oks !== sent || errs !== 0)) {
    reasons.push(
      `pub answers: ${oks} ok, ${errs} err of ${sent} ${answers
        .flatMap((p) => p.errSample)
        .slice(0, 3)
        .join(' | ')}`,
    );
  }
  if (counts.minShort !== 0 || counts.maxOver !== 0 || !waited.every((w) => w.done)) {
    reasons.push(
      `${counts.members - counts.reached} members short (by up to ${-Math.min(0, counts.minShort)}), ${counts.over} over (by up to ${Math.max(0, counts.maxOver)})`,
    );
  }
  if (counts.open !== counts.members)
    reasons.push(`${counts.members - counts.open} members closed ${JSON.stringify(counts.closeCodes)}`);
  if (completeMs > sendMs + o.graceMs)
    reasons.push(`delivery completed ${Math.round(completeMs - sendMs)} ms after the last publish`);
  if (!(latencyMs.p99 <= layout.p99MaxMs)) reasons.push(`p99 ${latencyMs.p99} ms > ${layout.p99MaxMs} ms`);
  // Every member's target, plus the probe's (a fan-out's probe is a member held by the driver).
  const deliveries = counts.expected + (d ? count : 0);
  const serverUsPerDelivery: Record<string, number> = {};
  let serverTotal = 0;
  for (const name of Object.keys(ctx.sys.procs)) {
    serverTotal += cpuS[name]!;
    serverUsPerDelivery[name] = round3((cpuS[name]! / deliveries) * 1e6);
  }
  serverUsPerDelivery.total = round3((serverTotal / deliveries) * 1e6);
  const strip = <T extends { samples: number[] }>(x: T): Omit<T, 'samples'> => {
    const { samples: _, ...rest } = x;
    return rest;
  };
  return {
    kind,
    rate: Math.round(rate * 100) / 100,
    count: sent,
    pass: reasons.length === 0,
    reasons,
    deliveries,
    deliveriesPerSec: Math.round(layout.roomSize * achieved),
    completeMs: Math.round(completeMs),
    sendMs: Math.round(sendMs),
    wallS,
    latencyMs,
    histogram: kind === 'search' ? undefined : histogram(samples),
    members: counts,
    driver: d && strip(d),
    publish: pubs.length ? { ...strip(pubs[0]!), sent, achievedRate: achieved, oks, errs } : undefined,
    cpuS,
    otherCpuS,
    machineBusyShare,
    otherShare,
    serverUsPerDelivery,
  };
}

/**
 * A step on a machine other people use too: when they took more than `busyMax` of it during the step,
 * the step is set aside (kept in `run.disturbed`), the bench waits for a quieter second and repeats it,
 * up to `disturbedRepeats` times; the last attempt counts, marked `disturbed` if it was disturbed too.
 */
async function runClean(
  ctx: RunCtx,
  run: RunResult,
  kind: StepResult['kind'],
  rate: number,
  durationMs: number,
  log: (s: string) => void,
): Promise<StepResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await runStep(ctx, kind, rate, durationMs);
    if (r.otherShare <= ctx.o.busyMax) return r;
    if (attempt > ctx.o.disturbedRepeats) return { ...r, disturbed: true };
    run.disturbed.push(r);
    log(
      `    (${kind} step at ${fmt(r.rate)} msg/s disturbed: other processes used ${Math.round(r.otherShare * 100)}% of the machine; repeating it)`,
    );
    await waitForIdle(ctx.o);
  }
}

/** Waits, at most `idleWaitSec`, for one second in which the machine's busy share is under `busyMax`. */
export async function waitForIdle(o: Options): Promise<{ busyShare: number; waitedS: number }> {
  const t0 = Date.now();
  const n = cpus().length;
  for (;;) {
    const b0 = machineBusySeconds();
    await sleep(1000);
    const share = (machineBusySeconds() - b0) / n;
    const waitedS = (Date.now() - t0) / 1000;
    if (share <= o.busyMax || waitedS >= o.idleWaitSec)
      return { busyShare: round3(share), waitedS: Math.round(waitedS) };
  }
}

/** The rooms (indices) members process i of n holds in a chat: contiguous shares. */
function roomsOf(layout: Layout, n: number, i: number): number[] {
  const per = Math.ceil(layout.rooms / n);
  return Array.from({ length: Math.max(0, Math.min(per, layout.rooms - i * per)) }, (_, k) => i * per + k);
}

/** What each members process joins: a fan-out's one room split evenly (the probe is the driver's), a chat's rooms whole. */
function plans(layout: Layout, prefix: string, n: number): { rooms: RoomPlan[]; firstUser: number }[] {
  if (layout.kind === 'fanout') {
    const plain = layout.roomSize - 1;
    const per = Math.ceil(plain / n);
    return Array.from({ length: n }, (_, i) => ({
      rooms: [{ room: prefix, members: Math.max(0, Math.min(per, plain - i * per)), publish: false }],
      firstUser: i * per,
    }));
  }
  return Array.from({ length: n }, (_, i) => {
    const idx = roomsOf(layout, n, i);
    return {
      rooms: idx.map((k) => ({ room: `${prefix}-${k}`, members: layout.roomSize, publish: true })),
      firstUser: (idx[0] ?? 0) * layout.roomSize,
    };
  });
}

export interface RunSpec {
  o: Options;
  sys: RunningSystem;
  layout: Layout;
  client: ClientKind;
  run: number;
  /** First search rate, msg/s over all rooms. */
  seedRate: number;
  /** The equal-load step, msg/s (0: none); measured only when this run passed it. */
  refRate: number;
  secret: string;
  log: (s: string) => void;
}

/** One run: fresh load-generator processes and rooms, the search, then the measuring steps. */
export async function runRates(spec: RunSpec): Promise<RunResult> {
  const { o, sys, layout, run, log } = spec;
  const room = `${layout.kind}-${Date.now().toString(36)}-${run}`;
  const target = targetOf(sys, spec.client);
  const idleBefore = await waitForIdle(o);
  const result: RunResult = {
    system: sys.kind,
    client: spec.client,
    run,
    room,
    connectMs: 0,
    joinRetries: 0,
    joinErrors: [],
    idleBefore,
    rssBefore: rssOf(sys.procs),
    rssJoined: {},
    steps: [],
    disturbed: [],
  };
  const members: MembersWorker[] = [];
  let driver: DriverWorker | undefined;
  try {
    const t0 = performance.now();
    for (let i = 0; i < o.memberProcs; i++) members.push(forkMembers(i, spec.secret, o.pin));
    if (layout.kind === 'fanout') driver = forkDriver(spec.secret, o.pin);
    const connected = await Promise.all(
      plans(layout, room, members.length).map((p, i) =>
        members[i]!.expect(
          {
            cmd: 'connect',
            target,
            rooms: p.rooms,
            firstUser: p.firstUser,
            concurrency: 100,
            samplers: SAMPLING_ROOMS,
          },
          'connected',
          300_000,
        ),
      ),
    );
    for (const c of connected) {
      result.joinRetries += c.retried;
      result.joinErrors.push(...c.errors);
      if (c.failed > 0) throw new Error(`${c.failed} members failed to join: ${c.errors.join('; ')}`);
    }
    if (driver)
      result.joinRetries += (
        await driver.expect({ cmd: 'connect', target, room, probeUser: layout.roomSize - 1 }, 'connected', 60_000)
      ).retried;
    result.connectMs = Math.round(performance.now() - t0);
    result.rssJoined = rssOf(sys.procs);
    log(
      `  ${sys.kind}${spec.client === 'lean' ? '' : ` (${spec.client})`} run ${run + 1}: ${layout.rooms * layout.roomSize} members in ${layout.rooms} room(s) joined in ${result.connectMs} ms` +
        (result.joinRetries
          ? ` after ${result.joinRetries} retried joins (${result.joinErrors.slice(0, 2).join('; ')})`
          : '') +
        ` (machine busy before: ${Math.round(idleBefore.busyShare * 100)}%)`,
    );
    const ctx: RunCtx = {
      o,
      sys,
      layout,
      members,
      driver,
      stepNo: 0,
      procs: () => ({
        ...sys.procs,
        ...Object.fromEntries([...members, ...(driver ? [driver] : [])].map((w) => [w.proc.name, w.proc])),
      }),
    };
    await search(ctx, result, spec.seedRate, log);
    const measure = async (kind: 'half' | 'ref', rate: number, label: string) => {
      const r = await runClean(ctx, result, kind, rate, o.halfMs, log);
      const l = r.latencyMs;
      log(
        `    ${label} ${fmt(r.rate)} msg/s: ${r.pass ? 'pass' : 'FAIL (' + r.reasons.join('; ') + ')'}` +
          ` p50/p99/p999 ${l.p50}/${l.p99}/${l.p999} ms, server CPU ${r.serverUsPerDelivery.total} us/delivery`,
      );
      return r;
    };
    if (result.max) {
      result.half = await measure('half', result.max.rate / 2, 'half load');
      if (spec.refRate > 0 && spec.refRate <= result.max.rate)
        result.ref = await measure('ref', spec.refRate, 'equal load');
    }
  } catch (e) {
    result.error = errText(e);
    log(`  ${sys.kind} run ${run + 1} failed: ${result.error}`);
  } finally {
    await Promise.all([...members, ...(driver ? [driver] : [])].map((w) => w.stop()));
  }
  return result;
}

/** Grow the rate by `growth` until a step fails, then bisect (geometrically) down to the resolution. */
async function search(ctx: RunCtx, result: RunResult, seedRate: number, log: (s: string) => void): Promise<void> {
  const { o } = ctx;
  let rate = seedRate;
  let lastPass = 0;
  let firstFail = Infinity;
  for (let s = 0; s < o.maxSteps; s++) {
    let r = await runClean(ctx, result, 'search', rate, o.stepMs, log);
    if (!r.pass) {
      // One repeat before a rate counts as failed: on a shared machine one noisy step is common.
      result.steps.push(r);
      log(`    step ${s + 1}: ${fmt(r.rate)} msg/s failed (${r.reasons.join('; ')}); repeating it once`);
      r = { ...(await runClean(ctx, result, 'search', rate, o.stepMs, log)), repeat: true };
    }
    result.steps.push(r);
    log(
      `    step ${s + 1}: ${fmt(r.rate)} msg/s = ${fmt(rate * ctx.layout.roomSize)} deliveries/s target: ${r.pass ? 'pass' : 'FAIL'}` +
        ` p99 ${r.latencyMs.p99} ms, complete +${Math.max(0, r.completeMs - r.sendMs)} ms` +
        (r.pass ? '' : ` (${r.reasons.join('; ')})`),
    );
    if (r.pass) {
      lastPass = Math.max(lastPass, rate);
      if (!result.max || r.deliveriesPerSec > result.max.deliveriesPerSec)
        result.max = { rate: r.rate, deliveriesPerSec: r.deliveriesPerSec, step: result.steps.length - 1 };
    } else firstFail = Math.min(firstFail, rate);
    if (firstFail === Infinity) rate *= o.growth;
    else if (lastPass === 0) {
      rate /= o.growth * 2;
      if (rate < 1) break;
    } else {
      if (firstFail / lastPass <= o.resolution) break;
      rate = Math.sqrt(lastPass * firstFail);
    }
  }
}

/** Interleaved runs (system A, B, ..., A, B, ...) of one layout; later runs start at half the median max so far. */
export async function interleave(
  o: Options,
  systems: RunningSystem[],
  layout: Layout,
  runs: number,
  client: ClientKind,
  refRate: number,
  secret: string,
  log: (s: string) => void,
): Promise<RunResult[]> {
  const out: RunResult[] = [];
  const seeds = new Map<string, number[]>();
  for (let run = 0; run < runs; run++) {
    for (const sys of systems) {
      const prior = spread(seeds.get(sys.kind) ?? []);
      const seedRate = prior.n
        ? prior.median / 2
        : (layout.kind === 'chat' ? o.chatStartDeliveries : o.startDeliveries) / layout.roomSize;
      const r = await runRates({ o, sys, layout, client, run, seedRate, refRate, secret, log });
      out.push(r);
      if (r.max) seeds.set(sys.kind, [...(seeds.get(sys.kind) ?? []), r.max.rate]);
    }
  }
  return out;
}
