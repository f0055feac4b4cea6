// One-room fan-out bench: rtgw (one router + one gateway over NATS and Redis) against bare uWebSockets.js.
// It starts everything it measures on loopback, joins N members to one room, publishes at stepped rates
// to find the highest rate at which every member gets every message within the step with a bounded p99,
// then measures latency and CPU per delivery at half that rate and at one rate common to both systems.
// Runs interleave (rtgw, bare, rtgw, ...);
// results are medians with min-max, written to bench/results/. See bench/README.md.
//   npm run bench -- [--quick] [--members 1000] [--runs 3] [--systems rtgw,bare] [--profile]
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import {
  cpuSeconds,
  pin,
  findBinary,
  forkWorker,
  freePort,
  httpStatus,
  machineBusySeconds,
  startProc,
  stopAll,
  stopProc,
  tcpProbe,
  waitFor,
  type Proc,
} from './procs.js';
import type { DriverCmd, DriverReply, MemberCounts, MembersCmd, MembersReply, StepReport, System, Target } from './protocol.js';
import { summarizeProfile, type ProfileSummary } from './prof-summary.js';
import { spread, type Spread } from './stats.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // bench/dist
const BENCH = resolve(HERE, '..');
const ROOT = resolve(BENCH, '..');
const HOST = '127.0.0.1';
const SERVER_CPUS = '0';
const LOADGEN_CPUS = cpus().length > 2 ? `1-${cpus().length - 1}` : '1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  preset: 'quick' | 'full';
  members: number;
  runs: number;
  systems: System[];
  stepMs: number;
  halfMs: number;
  graceMs: number;
  maxSteps: number;
  /** The search stops once the first failing rate is within this factor of the last passing one. */
  resolution: number;
  p99MaxMs: number;
  /** First rate of the first run of each system, in deliveries per second. */
  startDeliveries: number;
  /** The equal-load step: the same rate for every system, in deliveries per second (0: none). */
  refDeliveries: number;
  memberProcs: number;
  profile: boolean;
  /** Servers on CPU 0, load generator on the other CPUs (the default with 2 or more CPUs). */
  pin: boolean;
  /** Bare uWS publishes inside the publisher's message callback, or right after it (see bare-uws.ts). */
  barePublish: 'deferred' | 'inline';
  /** Before each run, wait (at most idleWaitSec) for a second in which other processes use less than this share of the machine. */
  busyMax: number;
  idleWaitSec: number;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    preset: quick ? 'quick' : 'full',
    members: 1000,
    runs: 3,
    systems: ['rtgw', 'bare'],
    stepMs: quick ? 1500 : 5000,
    halfMs: quick ? 3000 : 10_000,
    graceMs: quick ? 1000 : 2000,
    maxSteps: quick ? 8 : 12,
    resolution: quick ? 1.25 : 1.1,
    p99MaxMs: 100,
    startDeliveries: 50_000,
    refDeliveries: 100_000,
    memberProcs: 1,
    profile: false,
    pin: cpus().length >= 2,
    barePublish: 'deferred',
    busyMax: 0.25,
    idleWaitSec: quick ? 10 : 60,
  };
  const num = (name: string, v: string | undefined, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${name} must be a number from ${min} to ${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    switch (a) {
      case '--quick':
        continue;
      case '--profile':
        o.profile = true;
        continue;
      case '--no-pin':
        o.pin = false;
        continue;
      case '--members':
        o.members = num(a, v, 2, 20_000);
        break;
      case '--runs':
        o.runs = num(a, v, 1, 20);
        break;
      case '--systems':
        o.systems = (v ?? '').split(',').map((s) => {
          if (s !== 'rtgw' && s !== 'bare') throw new Error('--systems takes rtgw and/or bare, comma-separated');
          return s;
        });
        break;
      case '--step-ms':
        o.stepMs = num(a, v, 200, 60_000);
        break;
      case '--half-ms':
        o.halfMs = num(a, v, 200, 120_000);
        break;
      case '--grace-ms':
        o.graceMs = num(a, v, 100, 30_000);
        break;
      case '--max-steps':
        o.maxSteps = num(a, v, 1, 30);
        break;
      case '--resolution':
        o.resolution = num(a, v, 1.01, 4);
        break;
      case '--p99-max-ms':
        o.p99MaxMs = num(a, v, 1, 10_000);
        break;
      case '--start-deliveries':
        o.startDeliveries = num(a, v, 100, 100_000_000);
        break;
      case '--bare-publish':
        if (v !== 'deferred' && v !== 'inline') throw new Error('--bare-publish takes deferred or inline');
        o.barePublish = v;
        break;
      case '--ref-deliveries':
        o.refDeliveries = num(a, v, 0, 100_000_000);
        break;
      case '--member-procs':
        o.memberProcs = num(a, v, 1, 8);
        break;
      case '--busy-max':
        o.busyMax = num(a, v, 0, 1);
        break;
      case '--idle-wait-sec':
        o.idleWaitSec = num(a, v, 0, 600);
        break;
      default:
        throw new Error(`unknown argument ${a}; see bench/README.md`);
    }
    i++;
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------
// Servers

interface Servers {
  rtgw?: { port: number; procs: Record<'gateway' | 'router' | 'nats' | 'redis', Proc> };
  bare?: { port: number; procs: Record<'bare', Proc> };
  secret: string;
}

/** This environment without any RTGW_* variable of the caller's, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTGW_')) env[k] = v;
  return { ...env, ...extra };
}

async function startServers(o: Options, tmp: string): Promise<Servers> {
  const secret = randomBytes(32).toString('hex');
  const servers: Servers = { secret };
  if (o.systems.includes('rtgw')) {
    const [natsPort, redisPort, gwPort, gwAdmin, rtAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const nats = startProc('nats', findBinary('nats-server'), ['-a', HOST, '-p', String(natsPort)], process.env, join(tmp, 'nats.log'));
    const redis = startProc(
      'redis',
      findBinary('redis-server'),
      ['--port', String(redisPort), '--bind', HOST, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--dir', tmp],
      process.env,
      join(tmp, 'redis.log'),
    );
    if (o.pin) [nats, redis].forEach((p) => pin(p.pid, SERVER_CPUS));
    await waitFor('nats-server answering', nats, () => tcpProbe(natsPort, '', 'INFO'));
    await waitFor('redis-server answering PING', redis, () => tcpProbe(redisPort, 'PING\r\n', '+PONG'));
    const common = {
      RTGW_NATS_URL: `nats://${HOST}:${natsPort}`,
      RTGW_REDIS_URL: `redis://${HOST}:${redisPort}`,
      RTGW_JWT_SECRET: secret,
      RTGW_HOST: HOST,
      RTGW_LOG_LEVEL: 'warn',
      RTGW_RATE_LIMIT: '1000000',
      RTGW_DRAIN_SECONDS: '0',
      RTGW_NATS_PREFIX: 'bench',
    };
    const node = (role: string) => [...(o.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(tmp, 'prof')}`, `--cpu-prof-name=${role}.cpuprofile`] : []), join(ROOT, 'dist/cli.js'), role];
    const router = startProc('router', process.execPath, node('router'), cleanEnv({ ...common, RTGW_ADMIN_PORT: String(rtAdmin), RTGW_NODE_ID: 'bench-router' }), join(tmp, 'router.log'));
    const gateway = startProc(
      'gateway',
      process.execPath,
      node('gateway'),
      cleanEnv({ ...common, RTGW_PORT: String(gwPort), RTGW_ADMIN_PORT: String(gwAdmin), RTGW_NODE_ID: 'bench-gateway' }),
      join(tmp, 'gateway.log'),
    );
    if (o.pin) [router, gateway].forEach((p) => pin(p.pid, SERVER_CPUS));
    await waitFor('router /readyz 200', router, async () => (await httpStatus(rtAdmin, '/readyz')) === 200, 30_000);
    await waitFor('gateway /readyz 200', gateway, async () => (await httpStatus(gwAdmin, '/readyz')) === 200, 30_000);
    servers.rtgw = { port: gwPort, procs: { gateway, router, nats, redis } };
  }
  if (o.systems.includes('bare')) {
    const port = await freePort();
    const bare = startProc('bare', process.execPath, [join(HERE, 'bare-uws.js'), '--host', HOST, '--port', String(port), '--publish', o.barePublish], cleanEnv({}), join(tmp, 'bare.log'));
    if (o.pin) pin(bare.pid, SERVER_CPUS);
    await waitFor('bare uWS /readyz 200', bare, async () => (await httpStatus(port, '/readyz')) === 200);
    servers.bare = { port, procs: { bare } };
  }
  return servers;
}

// ---------------------------------------------------------------------------------------------------
// Workers

/** A forked worker answering one command at a time over IPC. */
class Worker<C, R extends { cmd: string }> {
  private waiting: ((r: R) => void) | undefined;
  constructor(readonly proc: Proc) {
    proc.child.on('message', (m: R) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.(m);
    });
  }
  call(cmd: C, timeoutMs: number): Promise<R> {
    if (this.waiting) throw new Error(`${this.proc.name}: a command is already in flight`);
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`${this.proc.name}: no answer to ${JSON.stringify(cmd).slice(0, 80)} within ${timeoutMs} ms`));
      }, timeoutMs);
      const exit = () => reject(new Error(`${this.proc.name} exited`));
      this.proc.child.once('exit', exit);
      this.waiting = (r) => {
        clearTimeout(timer);
        this.proc.child.off('exit', exit);
        if (r.cmd === 'error') reject(new Error(`${this.proc.name}: ${(r as unknown as { msg: string }).msg}`));
        else resolve(r);
      };
      this.proc.child.send(cmd as object);
    });
  }
}

type MembersWorker = Worker<MembersCmd, MembersReply>;
type DriverWorker = Worker<DriverCmd, DriverReply>;

// ---------------------------------------------------------------------------------------------------
// Steps

interface StepResult {
  kind: 'search' | 'half' | 'ref';
  /** A repeat of the failed step before it (search steps are repeated once before they count as failed). */
  repeat?: boolean;
  rate: number;
  count: number;
  pass: boolean;
  reasons: string[];
  deliveries: number;
  /** Members x the publish rate achieved: deliveries per second sustained through the step. */
  deliveriesPerSec: number;
  /** From the first publish until every member had everything (or the wait gave up). */
  completeMs: number;
  wallS: number;
  driver: StepReport;
  members: MemberCounts;
  /** CPU seconds used during the step, by process. */
  cpuS: Record<string, number>;
  /** CPU seconds of processes the bench did not start (other users of the machine) during the step. */
  otherCpuS: number;
  /** Share of the whole machine (all cores) that was busy during the step, whoever used it. */
  machineBusyShare: number;
  /** Share of the machine used by processes the bench did not start during the step. */
  otherShare: number;
  /** Others used more than `busyMax` of the machine during the step, and repeating it did not help. */
  disturbed?: boolean;
  /** Server-side CPU microseconds per delivery, by process and in total. */
  serverUsPerDelivery: Record<string, number>;
}

interface RunCtx {
  o: Options;
  system: System;
  serverProcs: Record<string, Proc>;
  allProcs: () => Record<string, Proc>;
  members: MembersWorker[];
  driver: DriverWorker;
  stepNo: number;
}

function cpuSnapshot(procs: Record<string, Proc>): Record<string, number> {
  const s: Record<string, number> = {};
  for (const [name, p] of Object.entries(procs)) s[name] = cpuSeconds(p.pid);
  const u = process.cpuUsage();
  s.orchestrator = (u.user + u.system) / 1e6;
  return s;
}

function mergeCounts(list: MemberCounts[]): MemberCounts {
  const closeCodes: Record<string, number> = {};
  for (const c of list) for (const [k, v] of Object.entries(c.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
  return {
    members: list.reduce((a, c) => a + c.members, 0),
    open: list.reduce((a, c) => a + c.open, 0),
    reached: list.reduce((a, c) => a + c.reached, 0),
    min: Math.min(...list.map((c) => c.min)),
    max: Math.max(...list.map((c) => c.max)),
    over: list.reduce((a, c) => a + c.over, 0),
    total: list.reduce((a, c) => a + c.total, 0),
    closeCodes,
  };
}

async function quietMembers(ctx: RunCtx): Promise<boolean> {
  const r = await Promise.all(ctx.members.map((m) => m.call({ cmd: 'quiet', quietMs: 250, maxMs: 20_000 }, 30_000)));
  return r.every((x) => x.cmd === 'quiet' && x.quiet);
}

async function runStep(ctx: RunCtx, kind: StepResult['kind'], rate: number, durationMs: number): Promise<StepResult> {
  const { o } = ctx;
  const reasons: string[] = [];
  if (!(await quietMembers(ctx))) reasons.push('messages of an earlier step were still arriving');
  await Promise.all(ctx.members.map((m) => m.call({ cmd: 'reset' }, 5000)));
  const count = Math.max(2, Math.round((rate * durationMs) / 1000));
  const totalMembers = o.members;
  const procs = ctx.allProcs();
  const cpu0 = cpuSnapshot(procs);
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const step = ++ctx.stepNo;
  const waitMs = durationMs * 2 + o.graceMs;
  const [d, ...m] = await Promise.all([
    ctx.driver.call({ cmd: 'step', step, rate, count, graceMs: o.graceMs }, waitMs + 30_000),
    ...ctx.members.map((w) => w.call({ cmd: 'wait', target: count, timeoutMs: waitMs }, waitMs + 30_000)),
  ]);
  const wallS = (performance.now() - t0) / 1000;
  const cpu1 = cpuSnapshot(procs);
  const busyS = machineBusySeconds() - busy0;
  if (d.cmd !== 'stepped') throw new Error('driver: unexpected answer');
  const waited = m.map((r) => {
    if (r.cmd !== 'waited') throw new Error('members: unexpected answer');
    return r;
  });
  const counts = mergeCounts(waited.map((w) => w.counts));
  // The probe is a member too: it must have every message, in order, once.
  const completeMs = Math.max(d.probeDoneMs, ...waited.map((w) => w.ms));
  if (d.sent !== count) reasons.push(`published ${d.sent} of ${count}`);
  if (d.achievedRate < rate * 0.9) reasons.push(`publisher reached only ${Math.round(d.achievedRate)} of ${Math.round(rate)} msg/s`);
  if (d.probeReceived !== count || !d.probeInOrder) reasons.push(`probe got ${d.probeReceived}/${count}${d.probeInOrder ? '' : ' out of order or duplicated'}`);
  if (ctx.system === 'rtgw' && (d.oks !== count || d.errs !== 0)) reasons.push(`pub answers: ${d.oks} ok, ${d.errs} err ${d.errSample.join(' | ')}`);
  if (counts.min !== count || counts.max !== count || !waited.every((w) => w.done)) {
    reasons.push(`members got ${counts.min}..${counts.max} of ${count} (${counts.members - counts.reached} short, ${counts.over} over)`);
  }
  if (counts.open !== counts.members) reasons.push(`${counts.members - counts.open} members closed ${JSON.stringify(counts.closeCodes)}`);
  if (completeMs > d.sendMs + o.graceMs) reasons.push(`delivery completed ${Math.round(completeMs - d.sendMs)} ms after the last publish`);
  if (!(d.latencyMs.p99 <= o.p99MaxMs)) reasons.push(`p99 ${d.latencyMs.p99} ms > ${o.p99MaxMs} ms`);
  const deliveries = totalMembers * count;
  const cpuS: Record<string, number> = {};
  for (const k of Object.keys(cpu1)) cpuS[k] = Math.round((cpu1[k]! - cpu0[k]!) * 1000) / 1000;
  const ours = Object.values(cpuS).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const serverUsPerDelivery: Record<string, number> = {};
  let serverTotal = 0;
  for (const name of Object.keys(ctx.serverProcs)) {
    serverTotal += cpuS[name]!;
    serverUsPerDelivery[name] = round3((cpuS[name]! / deliveries) * 1e6);
  }
  serverUsPerDelivery.total = round3((serverTotal / deliveries) * 1e6);
  return {
    kind,
    rate: Math.round(rate * 100) / 100,
    count,
    pass: reasons.length === 0,
    reasons,
    deliveries,
    deliveriesPerSec: Math.round(totalMembers * d.achievedRate),
    completeMs: Math.round(completeMs),
    wallS: round3(wallS),
    driver: d,
    members: counts,
    cpuS,
    otherCpuS: round3(Math.max(0, busyS - ours)),
    machineBusyShare: round3(busyS / wallS / cpus().length),
    otherShare: round3(Math.max(0, busyS - ours) / wallS / cpus().length),
    serverUsPerDelivery,
  };
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/**
 * A step on a machine other people use too: when they took more than `busyMax` of it during the step,
 * the step is set aside (kept in `run.disturbed`), the bench waits for a quieter second and repeats it,
 * once in --quick, up to twice otherwise; the last attempt counts, marked `disturbed` if it was disturbed too.
 */
async function runClean(ctx: RunCtx, run: RunResult, kind: StepResult['kind'], rate: number, durationMs: number, log: (s: string) => void): Promise<StepResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await runStep(ctx, kind, rate, durationMs);
    if (r.otherShare <= ctx.o.busyMax) return r;
    if (attempt > (ctx.o.preset === 'quick' ? 1 : 2)) return { ...r, disturbed: true };
    run.disturbed.push(r);
    log(`    (${kind} step at ${fmt(r.rate)} msg/s disturbed: other processes used ${Math.round(r.otherShare * 100)}% of the machine; repeating it)`);
    await waitForIdle(ctx.o);
  }
}

// ---------------------------------------------------------------------------------------------------
// Runs

interface RunResult {
  system: System;
  run: number;
  room: string;
  connectMs: number;
  /** Joins that failed and were tried again (the members' and the probe's). */
  joinRetries: number;
  joinErrors: string[];
  idleBefore: { busyShare: number; waitedS: number };
  steps: StepResult[];
  /** Highest passing search step. */
  max?: { rate: number; deliveriesPerSec: number; /** Index in `steps`. */ step: number };
  half?: StepResult;
  /** The equal-load step (same rate for every system), when it is below this run's max. */
  ref?: StepResult;
  /** Steps set aside because other processes used too much of the machine meanwhile (see runClean). */
  disturbed: StepResult[];
  error?: string;
}

/** Waits, at most `idleWaitSec`, for one second in which the machine's busy share is under `busyMax`. */
async function waitForIdle(o: Options): Promise<{ busyShare: number; waitedS: number }> {
  const t0 = Date.now();
  const cores = cpus().length;
  for (;;) {
    const b0 = machineBusySeconds();
    await sleep(1000);
    const share = (machineBusySeconds() - b0) / cores;
    const waitedS = (Date.now() - t0) / 1000;
    if (share <= o.busyMax || waitedS >= o.idleWaitSec) return { busyShare: round3(share), waitedS: Math.round(waitedS) };
  }
}

async function runOne(o: Options, servers: Servers, system: System, run: number, seedRate: number, log: (s: string) => void): Promise<RunResult> {
  const target: Target = {
    host: HOST,
    port: system === 'rtgw' ? servers.rtgw!.port : servers.bare!.port,
    room: `fanout-${Date.now().toString(36)}-${run}`,
    system,
  };
  const serverProcs: Record<string, Proc> = system === 'rtgw' ? { ...servers.rtgw!.procs } : { ...servers.bare!.procs };
  const idleBefore = await waitForIdle(o);
  const result: RunResult = { system, run, room: target.room, connectMs: 0, joinRetries: 0, joinErrors: [], idleBefore, steps: [], disturbed: [] };
  const env = { ...process.env, BENCH_JWT_SECRET: servers.secret };
  const members: MembersWorker[] = [];
  let driver: DriverWorker | undefined;
  try {
    const plain = o.members - 1; // the probe is the last member
    const t0 = performance.now();
    for (let i = 0; i < o.memberProcs; i++) members.push(new Worker(forkWorker(`members${i}`, join(HERE, 'members.js'), env)));
    driver = new Worker(forkWorker('driver', join(HERE, 'driver.js'), env));
    if (o.pin) [...members, driver].forEach((w) => pin(w.proc.pid, LOADGEN_CPUS));
    const per = Math.ceil(plain / o.memberProcs);
    const connected = await Promise.all(
      members.map((w, i) => w.call({ cmd: 'connect', target, count: Math.max(0, Math.min(per, plain - i * per)), first: i * per, concurrency: 16 }, 120_000)),
    );
    for (const c of connected) {
      if (c.cmd !== 'connected' || c.failed > 0) throw new Error(`members failed to join: ${JSON.stringify(c)}`);
      result.joinRetries += c.retried;
      result.joinErrors.push(...c.errors);
    }
    const d = await driver.call({ cmd: 'connect', target, probeIndex: plain }, 60_000);
    if (d.cmd === 'connected') result.joinRetries += d.retried;
    result.connectMs = Math.round(performance.now() - t0);
    log(
      `  ${system} run ${run + 1}: ${o.members} members joined in ${result.connectMs} ms` +
        (result.joinRetries ? ` after ${result.joinRetries} retried joins (${result.joinErrors.slice(0, 2).join('; ')})` : '') +
        ` (machine busy before: ${Math.round(idleBefore.busyShare * 100)}%)`,
    );

    const ctx: RunCtx = {
      o,
      system,
      serverProcs,
      allProcs: () => ({ ...serverProcs, ...Object.fromEntries([...members, driver!].map((w) => [w.proc.name, w.proc])) }),
      members,
      driver,
      stepNo: 0,
    };
    // Search: double until a step fails, then bisect (geometrically) down to the resolution.
    let rate = seedRate;
    let lastPass = 0;
    let firstFail = Infinity;
    const minRate = 1;
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
        `    step ${s + 1}: ${fmt(r.rate)} msg/s = ${fmt(rate * o.members)} deliveries/s target: ${r.pass ? 'pass' : 'FAIL'}` +
          ` p99 ${r.driver.latencyMs.p99} ms, complete +${Math.max(0, r.completeMs - Math.round(r.driver.sendMs))} ms` +
          (r.pass ? '' : ` (${r.reasons.join('; ')})`),
      );
      if (r.pass) {
        lastPass = Math.max(lastPass, rate);
        if (!result.max || r.deliveriesPerSec > result.max.deliveriesPerSec) result.max = { rate: r.rate, deliveriesPerSec: r.deliveriesPerSec, step: result.steps.length - 1 };
      } else firstFail = Math.min(firstFail, rate);
      if (firstFail === Infinity) rate *= 2;
      else if (lastPass === 0) {
        rate /= 4;
        if (rate < minRate) break;
      } else {
        if (firstFail / lastPass <= o.resolution) break;
        rate = Math.sqrt(lastPass * firstFail);
      }
    }
    const measure = async (kind: 'half' | 'ref', rate: number, label: string) => {
      const r = await runClean(ctx, result, kind, rate, o.halfMs, log);
      const l = r.driver.latencyMs;
      log(
        `    ${label} ${fmt(r.rate)} msg/s: ${r.pass ? 'pass' : 'FAIL (' + r.reasons.join('; ') + ')'}` +
          ` p50/p99/p999 ${l.p50}/${l.p99}/${l.p999} ms, server CPU ${r.serverUsPerDelivery.total} us/delivery`,
      );
      return r;
    };
    if (result.max) {
      result.half = await measure('half', result.max.rate / 2, 'half load');
      const ref = o.refDeliveries / o.members;
      if (ref > 0 && ref <= result.max.rate) result.ref = await measure('ref', ref, 'equal load');
    }
  } catch (e) {
    result.error = e instanceof Error ? e.message : String(e);
    log(`  ${system} run ${run + 1} failed: ${result.error}`);
  } finally {
    await Promise.all([...members, ...(driver ? [driver] : [])].map((w) => stopProc(w.proc)));
  }
  return result;
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : String(Math.round(n * 10) / 10));

// ---------------------------------------------------------------------------------------------------
// Summary

/** Latency and CPU of one kind of measuring step (half of each run's max, or the equal load), over runs. */
interface LoadSummary {
  rate: Spread;
  p50: Spread;
  p99: Spread;
  p999: Spread;
  samples: Spread;
  passed: number;
  of: number;
  /** Server CPU microseconds per delivery, by process and total. */
  serverUsPerDelivery: Record<string, Spread>;
  /** Cores busy during the step, by process (CPU seconds / wall seconds). */
  cores: Record<string, Spread>;
  machineBusyShare: Spread;
}

interface SystemSummary {
  runs: number;
  failedRuns: number;
  joinRetries: number;
  maxDeliveriesPerSec: Spread;
  maxMsgPerSec: Spread;
  /** Server CPU microseconds per delivery in the highest passing step. */
  maxServerUsPerDelivery: Spread;
  half: LoadSummary;
  ref: LoadSummary;
  /** Cores busy per load-generator process in the highest passing step: near 1.0 means the client may be the limit. */
  loadgenCoresAtMax: Record<string, Spread>;
  /** Share of the machine busy in the highest passing step: near 1.0 means the machine, not one process, was the limit. */
  machineBusyAtMax: Spread;
  /** Share of the machine used by processes the bench did not start, per step. */
  otherCpuSharePerStep: Spread;
  /** Steps repeated because others used the machine meanwhile, and steps that counted although disturbed. */
  disturbedRepeated: number;
  disturbedCounted: number;
}

function summarizeLoad(steps: StepResult[]): LoadSummary {
  const keys = new Set(steps.flatMap((h) => Object.keys(h.serverUsPerDelivery)));
  const cpuKeys = new Set(steps.flatMap((h) => Object.keys(h.cpuS)));
  return {
    rate: spread(steps.map((h) => h.rate)),
    p50: spread(steps.map((h) => h.driver.latencyMs.p50)),
    p99: spread(steps.map((h) => h.driver.latencyMs.p99)),
    p999: spread(steps.map((h) => h.driver.latencyMs.p999)),
    samples: spread(steps.map((h) => h.driver.latencyMs.n)),
    passed: steps.filter((h) => h.pass).length,
    of: steps.length,
    serverUsPerDelivery: Object.fromEntries([...keys].map((k) => [k, spread(steps.map((h) => h.serverUsPerDelivery[k]!))])),
    cores: Object.fromEntries([...cpuKeys].map((k) => [k, spread(steps.map((h) => round3(h.cpuS[k]! / h.wallS)))])),
    machineBusyShare: spread(steps.map((h) => h.machineBusyShare)),
  };
}

function summarizeSystem(runs: RunResult[]): SystemSummary {
  const ok = runs.filter((r) => r.max);
  const atMax = ok.map((r) => r.steps[r.max!.step]!);
  const lgKeys = new Set(atMax.flatMap((s) => Object.keys(s.cpuS).filter((k) => k.startsWith('members') || k === 'driver')));
  return {
    runs: runs.length,
    failedRuns: runs.length - ok.length,
    joinRetries: runs.reduce((a, r) => a + r.joinRetries, 0),
    maxDeliveriesPerSec: spread(ok.map((r) => r.max!.deliveriesPerSec)),
    maxMsgPerSec: spread(ok.map((r) => r.max!.rate)),
    maxServerUsPerDelivery: spread(atMax.map((s) => s.serverUsPerDelivery.total!)),
    half: summarizeLoad(ok.flatMap((r) => (r.half ? [r.half] : []))),
    ref: summarizeLoad(ok.flatMap((r) => (r.ref ? [r.ref] : []))),
    loadgenCoresAtMax: Object.fromEntries([...lgKeys].map((k) => [k, spread(atMax.map((s) => round3(s.cpuS[k]! / s.wallS)))])),
    machineBusyAtMax: spread(atMax.map((s) => s.machineBusyShare)),
    otherCpuSharePerStep: spread(runs.flatMap((r) => r.steps.map((s) => s.otherShare))),
    disturbedRepeated: runs.reduce((a, r) => a + r.disturbed.length, 0),
    disturbedCounted: runs.reduce((a, r) => a + [...r.steps, r.half, r.ref].filter((s) => s?.disturbed).length, 0),
  };
}

const sp = (s: Spread | undefined, unit = '', digits = 0) => {
  if (!s || s.n === 0) return 'n/a';
  const f = (v: number) => (digits === 0 && Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits));
  return s.n === 1 ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`;
};
const ratio = (a: Spread | undefined, b: Spread | undefined, digits = 2) =>
  a && b && a.n && b.n && b.median !== 0 ? `${(a.median / b.median).toFixed(digits)}×` : 'n/a';

function markdown(o: Options, meta: Record<string, unknown>, sum: Partial<Record<System, SystemSummary>>, runs: RunResult[], profile?: ProfileSummary[]): string {
  const r = sum.rtgw;
  const b = sum.bare;
  const L: string[] = [];
  const row = (label: string, a: Spread | undefined, c: Spread | undefined, unit = '', digits = 0) =>
    L.push(`| ${label} | ${sp(a, unit, digits)} | ${sp(c, unit, digits)} | ${ratio(a, c)} |`);
  const load = (name: string, pick: (s: SystemSummary) => LoadSummary) => {
    const x = r && pick(r);
    const y = b && pick(b);
    row(`${name}: publish rate, msg/s`, x?.rate, y?.rate, '', 0);
    row(`${name}: p50 latency, ms`, x?.p50, y?.p50, '', 2);
    row(`${name}: p99 latency, ms`, x?.p99, y?.p99, '', 2);
    row(`${name}: p99.9 latency, ms`, x?.p999, y?.p999, '', 2);
    row(`${name}: server CPU per delivery, µs`, x?.serverUsPerDelivery.total, y?.serverUsPerDelivery.total, '', 3);
    for (const k of ['gateway', 'router', 'nats', 'redis']) {
      if (x?.serverUsPerDelivery[k]) L.push(`| … of which ${k}, µs | ${sp(x.serverUsPerDelivery[k], '', 3)} | | |`);
    }
    L.push(`| ${name}: steps passed, latency samples per step | ${x ? `${x.passed}/${x.of}, ${sp(x.samples)}` : 'n/a'} | ${y ? `${y.passed}/${y.of}, ${sp(y.samples)}` : 'n/a'} | |`);
  };
  L.push(`# One-room fan-out: rtgw vs bare uWebSockets.js (${meta.date})`);
  L.push('');
  L.push(
    `${o.members} members in one room (the last to join is the latency probe), one publisher, ~100-byte \`data\`; preset \`${o.preset}\`, ` +
      `${o.runs} interleaved runs per system, search steps of ${o.stepMs} ms, measuring steps of ${o.halfMs} ms; a step passes when every member got every ` +
      `message, in order for the probe, within the step + ${o.graceMs} ms and p99 ≤ ${o.p99MaxMs} ms. Medians with (min–max) over runs. ` +
      (o.pin ? `Servers pinned to CPU ${SERVER_CPUS}, load generator to CPU ${LOADGEN_CPUS}. ` : 'No CPU pinning. ') +
      `Bare uWS publishes ${o.barePublish === 'deferred' ? 'right after' : 'inside'} the publisher's message callback. ` +
      `Machine: ${meta.cpus}, node ${meta.node}, commit ${meta.commit}${meta.dirty ? ' + uncommitted changes' : ''}; load average at start ${meta.loadavg}.`,
  );
  L.push('');
  L.push('| | rtgw (1 gateway + 1 router, NATS, Redis) | bare uWS (1 process) | rtgw / bare |');
  L.push('| --- | --- | --- | --- |');
  row('max deliveries/s (every member got every message)', r?.maxDeliveriesPerSec, b?.maxDeliveriesPerSec);
  row('max publish rate, msg/s', r?.maxMsgPerSec, b?.maxMsgPerSec);
  row('server CPU per delivery at max, µs', r?.maxServerUsPerDelivery, b?.maxServerUsPerDelivery, '', 3);
  load('half of own max', (s) => s.half);
  if (o.refDeliveries > 0) load(`equal load (${fmt(o.refDeliveries)} deliveries/s)`, (s) => s.ref);
  const lg = (s?: SystemSummary) => (s ? Object.entries(s.loadgenCoresAtMax).map(([k, v]) => `${k} ${sp(v, '', 2)}`).join(', ') : 'n/a');
  L.push(`| load-generator cores busy at max | ${lg(r)} | ${lg(b)} | |`);
  L.push(`| machine busy at max (share of all cores) | ${sp(r?.machineBusyAtMax, '', 2)} | ${sp(b?.machineBusyAtMax, '', 2)} | |`);
  L.push(`| other processes' share of the machine per step | ${sp(r?.otherCpuSharePerStep, '', 2)} | ${sp(b?.otherCpuSharePerStep, '', 2)} | |`);
  L.push(`| joins retried (connections dropped at open) | ${r?.joinRetries ?? 'n/a'} | ${b?.joinRetries ?? 'n/a'} | |`);
  const dist = (x?: SystemSummary) => (x ? `${x.disturbedRepeated} repeated, ${x.disturbedCounted} counted anyway (⚠)` : 'n/a');
  L.push(`| steps disturbed by other processes (> ${Math.round(o.busyMax * 100)}% of the machine) | ${dist(r)} | ${dist(b)} | |`);
  L.push('');
  L.push('Cores busy per process during the half-load step (CPU seconds / wall seconds):');
  L.push('');
  for (const [name, s] of Object.entries(sum)) {
    L.push(`- ${name}: ` + Object.entries(s.half.cores).map(([k, v]) => `${k} ${sp(v, '', 2)}`).join(', '));
  }
  L.push('');
  L.push('## Runs');
  L.push('');
  L.push('| # | system | max msg/s | max deliveries/s | search steps, msg/s (✗ failed) | half / equal load: msg/s, p50/p99/p999 ms, server µs/delivery |');
  L.push('| --- | --- | --- | --- | --- | --- |');
  const brief = (h?: StepResult) =>
    h ? `${fmt(h.rate)}${h.pass ? '' : ' ✗'}${h.disturbed ? ' ⚠' : ''}, ${h.driver.latencyMs.p50}/${h.driver.latencyMs.p99}/${h.driver.latencyMs.p999}, ${h.serverUsPerDelivery.total}` : 'n/a';
  runs.forEach((run, i) => {
    const steps = run.steps.map((s) => `${s.repeat ? '(again) ' : ''}${fmt(s.rate)}${s.pass ? '' : '✗'}${s.disturbed ? '⚠' : ''}`).join(' → ');
    L.push(
      `| ${i + 1} | ${run.system} | ${run.max ? fmt(run.max.rate) : 'n/a'} | ${run.max ? fmt(run.max.deliveriesPerSec) : 'n/a'} | ${steps}${run.error ? ` (error: ${run.error})` : ''} | ${brief(run.half)} / ${brief(run.ref)} |`,
    );
  });
  const failures = runs.flatMap((run) =>
    [...run.steps, ...(run.half ? [run.half] : []), ...(run.ref ? [run.ref] : [])]
      .filter((s) => !s.pass)
      .map((s) => `- ${run.system} run ${run.run + 1}, ${s.kind} ${fmt(s.rate)} msg/s: ${s.reasons.join('; ')}`),
  );
  if (failures.length) {
    L.push('');
    L.push('Why steps failed:');
    L.push('');
    L.push(...failures);
  }
  if (profile?.length) {
    L.push('');
    L.push('## Where rtgw spends CPU (`--cpu-prof`, whole session)');
    for (const p of profile) {
      L.push('');
      L.push(`**${p.name}** (${p.totalMs} ms sampled, idle excluded; by module: ${p.byModule.slice(0, 8).map((m) => `${m.module} ${m.pct}%`).join(', ')})`);
      L.push('');
      L.push('| self % | function | where |');
      L.push('| --- | --- | --- |');
      for (const f of p.top.slice(0, 15)) L.push(`| ${f.pct} | ${f.fn} | ${f.where} |`);
    }
  }
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const stamp = date.replace(/[:]/g, '-');
  const resultsDir = join(BENCH, 'results');
  const tmp = join(resultsDir, 'tmp', `fanout-${stamp}`);
  mkdirSync(tmp, { recursive: true });
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return '';
    }
  };
  const meta = {
    date,
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    loadavg: loadavg().map((v) => v.toFixed(2)).join(' '),
  };
  const log = (s: string) => process.stdout.write(s + '\n');
  log(`fan-out bench (${o.preset}): ${o.members} members, ${o.runs} runs of ${o.systems.join(' and ')}, interleaved; load average ${meta.loadavg}; logs in ${tmp}`);
  if (loadavg()[0]! > cpus().length * 0.75) log(`  note: the machine is busy (load ${meta.loadavg} on ${cpus().length} cores); results will be noisier`);

  if (o.pin) pin(process.pid, LOADGEN_CPUS);
  const t0 = Date.now();
  const servers = await startServers(o, tmp);
  log(`servers up in ${Date.now() - t0} ms${servers.rtgw ? `; rtgw gateway :${servers.rtgw.port}` : ''}${servers.bare ? `; bare uWS :${servers.bare.port}` : ''}`);
  const runs: RunResult[] = [];
  const seeds: Record<System, number[]> = { rtgw: [], bare: [] };
  for (let run = 0; run < o.runs; run++) {
    for (const system of o.systems) {
      // Later runs start at half the best so far, which saves the first doublings.
      const prior = spread(seeds[system]);
      const seed = prior.n ? prior.median / 2 : o.startDeliveries / o.members;
      const r = await runOne(o, servers, system, run, seed, log);
      runs.push(r);
      if (r.max) seeds[system].push(r.max.rate);
    }
  }
  const summary: Partial<Record<System, SystemSummary>> = {};
  for (const system of o.systems) summary[system] = summarizeSystem(runs.filter((r) => r.system === system));

  await stopAll();
  let profile: ProfileSummary[] | undefined;
  if (o.profile) {
    const dir = join(tmp, 'prof');
    profile = readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => summarizeProfile(join(dir, f), f.replace(/\.cpuprofile$/, '')));
  }
  const md = markdown(o, meta, summary, runs, profile);
  mkdirSync(resultsDir, { recursive: true });
  const base = join(resultsDir, `fanout-${stamp}${o.preset === 'quick' ? '-quick' : ''}`);
  writeFileSync(base + '.json', JSON.stringify({ meta, options: o, summary, runs, profile }, null, 2) + '\n');
  writeFileSync(base + '.md', md);
  log('');
  log(md);
  log(`written: ${base}.json and .md (total ${Math.round((Date.now() - t0) / 1000)} s)`);
}

let stopping = false;
const abort = (why: string, code: number) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`${why}; stopping every process the bench started\n`);
  void stopAll().finally(() => process.exit(code));
};
process.on('SIGINT', () => abort('interrupted', 130));
process.on('SIGTERM', () => abort('terminated', 143));
main().catch((e: unknown) => abort(`bench failed: ${e instanceof Error ? e.stack : String(e)}`, 1));
