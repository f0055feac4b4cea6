// The scenarios of `npm run bench`. Each starts the systems it measures (fresh processes, so that memory
// figures start from a clean server), runs its load, and stops them again.
import type { ClientKind } from './conn.js';
import { cpuMeter, fmt, interleave, rssOf, waitForIdle, type CpuReading, type Layout, type RunResult } from './load.js';
import { systemsFor, type Options, type Scenario } from './options.js';
import type { IngestReport, ReconnectReport, StormReport } from './protocol.js';
import { round3 } from './stats.js';
import { startSystem, targetOf, type RunningSystem, type StartContext, type SystemKind } from './systems.js';
import { errText, sleep } from './util.js';
import { forkMembers } from './workers.js';

/** Publishing before router ingest is counted: JIT warm-up and the routers' first slot moves. */
const INGEST_WARMUP_MS = 1500;

export interface Env {
  o: Options;
  start: StartContext;
  log: (s: string) => void;
}

/**
 * Starts `kinds` one after the other (pinned, on free ports), runs `body` with those that started, and
 * stops them whatever happens. A system that does not start is logged and left out, not fatal.
 */
async function withSystems<T>(
  env: Env,
  kinds: SystemKind[],
  body: (systems: RunningSystem[]) => Promise<T>,
  failed?: (k: SystemKind, why: string) => void,
): Promise<T> {
  const systems: RunningSystem[] = [];
  try {
    for (const k of kinds) {
      try {
        systems.push(await startSystem(k, env.start));
      } catch (e) {
        const why = errText(e);
        env.log(`  ${k} did not start: ${why} (left out; its logs are in ${env.start.tmp})`);
        failed?.(k, why);
      }
    }
    return await body(systems);
  } finally {
    for (const s of systems.reverse()) await s.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Rate scenarios: one big room, many small rooms, the record run with the official client

export interface RateScenario {
  scenario: Scenario;
  layout: Layout;
  client: ClientKind;
  systems: SystemKind[];
  /** Each system's processes that hold the connections. */
  edges: Partial<Record<SystemKind, string[]>>;
  /** Systems that did not start, and why. */
  notStarted: Partial<Record<SystemKind, string>>;
  runs: RunResult[];
}

/** `client`: the record run's client library (every other scenario uses the lean client). */
export async function rates(env: Env, scenario: Scenario, client: ClientKind = 'lean'): Promise<RateScenario> {
  const { o } = env;
  const layout: Layout =
    scenario === 'chat'
      ? { kind: 'chat', rooms: o.chatMembers / o.roomSize, roomSize: o.roomSize, p99MaxMs: o.p99MaxMs }
      : scenario === 'fanout-big'
        ? { kind: 'fanout', rooms: 1, roomSize: o.bigMembers, p99MaxMs: o.p99MaxMsBig }
        : { kind: 'fanout', rooms: 1, roomSize: o.members, p99MaxMs: o.p99MaxMs };
  const runs = scenario === 'fanout' ? o.runs : scenario === 'record' ? 1 : o.runsBig;
  const kinds = systemsFor(o, scenario, client);
  // The equal-load step is the one-room fan-out's at `members` only: the CPU-per-delivery comparison.
  const refRate = scenario === 'fanout' && o.refDeliveries > 0 ? o.refDeliveries / layout.roomSize : 0;
  env.log(
    `\n== ${scenario}: ${layout.rooms} room(s) of ${layout.roomSize}, ${runs} run(s) of ${kinds.join(', ')}${client === 'lean' ? '' : ` with ${client}`}`,
  );
  const edges: RateScenario['edges'] = {};
  const notStarted: RateScenario['notStarted'] = {};
  const result = await withSystems(
    env,
    kinds,
    (systems) => {
      for (const s of systems) edges[s.kind] = s.edge;
      return interleave(o, systems, layout, runs, client, refRate, env.start.secret, env.log);
    },
    (k, why) => (notStarted[k] = why),
  );
  return { scenario, layout, client, systems: kinds, edges, notStarted, runs: result };
}

// ---------------------------------------------------------------------------------------------------
// Connection storm, idle memory, and reconnects while a gateway restarts

export interface StormResult {
  system: SystemKind;
  storm?: StormReport & { perSec: number; cpu: CpuReading; serverUsPerConnect: number };
  /** Resident memory of each server process before the storm and with every connection open and idle, bytes. */
  rssBefore: Record<string, number>;
  rssIdle: Record<string, number>;
  /** (RSS idle - RSS before) / connections, per process and over the processes that hold connections. */
  bytesPerConn: Record<string, number>;
  /** rtgw with 2 gateways: the first gateway stops (SIGTERM: drain, 1001) and starts again. */
  restart?: { reconnect: ReconnectReport & { perSec: number }; restartMs: number };
  error?: string;
}

export async function storms(env: Env): Promise<StormResult[]> {
  const { o } = env;
  const kinds = systemsFor(o, 'storm');
  env.log(
    `\n== storm: ${o.stormConnections} connections (concurrency ${o.stormConcurrency}) to each of ${kinds.join(', ')}`,
  );
  const out: StormResult[] = [];
  // One system at a time, each fresh: the idle-memory delta must not reuse memory an earlier load freed.
  for (const kind of kinds) {
    const r = await withSystems(
      env,
      [kind],
      ([sys]) => (sys ? storm(env, sys) : Promise.resolve(undefined)),
      (k, why) => out.push({ system: k, rssBefore: {}, rssIdle: {}, bytesPerConn: {}, error: `did not start: ${why}` }),
    );
    if (r) out.push(r);
  }
  return out;
}

async function storm(env: Env, sys: RunningSystem): Promise<StormResult> {
  const { o, log } = env;
  await waitForIdle(o);
  const r: StormResult = { system: sys.kind, rssBefore: rssOf(sys.procs), rssIdle: {}, bytesPerConn: {} };
  const m = forkMembers(0, env.start.secret, o.pin);
  try {
    const meter = cpuMeter({ ...sys.procs, members0: m.proc });
    const s = await m.expect(
      {
        cmd: 'storm',
        target: targetOf(sys, 'lean'),
        count: o.stormConnections,
        concurrency: o.stormConcurrency,
        firstUser: 0,
      },
      'stormed',
      300_000,
    );
    const cpu = meter();
    const serverS = Object.keys(sys.procs).reduce((a, k) => a + (cpu.cpuS[k] ?? 0), 0);
    r.storm = {
      ...s,
      perSec: Math.round((s.ok * 1000) / s.ms),
      cpu,
      serverUsPerConnect: round3((serverS / Math.max(1, s.ok)) * 1e6),
    };
    log(
      `  ${sys.kind}: ${s.ok} connected (${s.failed} failed) in ${Math.round(s.ms)} ms = ${fmt(r.storm.perSec)}/s, p50/p99 ${s.latencyMs.p50}/${s.latencyMs.p99} ms; ` +
        `server ${r.storm.serverUsPerConnect} us CPU per connect; load generator ${cpu.cores.members0} cores`,
    );
    // Let the servers settle (timers, lazily grown buffers) before reading their memory.
    await sleep(2000);
    r.rssIdle = rssOf(sys.procs);
    for (const k of Object.keys(sys.procs))
      r.bytesPerConn[k] = Math.round((r.rssIdle[k]! - r.rssBefore[k]!) / Math.max(1, s.ok));
    const edge = sys.edge.reduce((a, k) => a + r.rssIdle[k]! - r.rssBefore[k]!, 0);
    r.bytesPerConn.edge = Math.round(edge / Math.max(1, s.ok));
    log(
      `    idle RSS per connection: ${Object.entries(r.bytesPerConn)
        .map(([k, v]) => `${k} ${fmt(v)} B`)
        .join(', ')}`,
    );
    if (sys.endpoints.length > 1 && sys.kind.startsWith('rtgw')) r.restart = await restart(env, sys, m, s.ok);
  } catch (e) {
    r.error = errText(e);
    log(`  ${sys.kind} storm failed: ${r.error}`);
  } finally {
    await m.call({ cmd: 'drop' }, 30_000).catch(() => undefined);
    await m.stop();
  }
  return r;
}

/** Stops gateway 1 of 2 while its clients are connected; they reconnect to the other at once. */
async function restart(
  env: Env,
  sys: RunningSystem,
  m: ReturnType<typeof forkMembers>,
  connected: number,
): Promise<StormResult['restart']> {
  const onFirst = Math.ceil(connected / sys.endpoints.length);
  const stopped = sys.stopEdge(0);
  const rc = await m.expect({ cmd: 'reconnect', expected: onFirst, timeoutMs: 60_000 }, 'reconnected', 90_000);
  await stopped;
  const t0 = performance.now();
  await sys.startEdge(0);
  const restartMs = Math.round(performance.now() - t0);
  const perSec = Math.round((rc.reconnected * 1000) / rc.ms);
  env.log(
    `    restart of ${sys.edge[0]}: ${rc.closed} closed ${JSON.stringify(rc.closeCodes)}, ${rc.reconnected} reconnected in ${Math.round(rc.ms)} ms = ${fmt(perSec)}/s ` +
      `(gap p50/p99 ${rc.gapMs.p50}/${rc.gapMs.p99} ms, ${rc.failedAttempts} failed attempts); back up in ${restartMs} ms`,
  );
  return { reconnect: { ...rc, perSec }, restartMs };
}

// ---------------------------------------------------------------------------------------------------
// Router ingest

export interface IngestResult {
  system: SystemKind;
  routers: number;
  report?: IngestReport & { ackedPerSec: number; perRouter: number; cpu: CpuReading };
  error?: string;
}

export async function ingests(env: Env): Promise<IngestResult[]> {
  const { o } = env;
  const kinds = systemsFor(o, 'ingest');
  env.log(
    `\n== ingest: ${o.ingestPublishers} publishers, window ${o.ingestWindow}, ${o.ingestRooms} rooms, ${o.ingestMs} ms, on ${kinds.join(', ')}`,
  );
  const out: IngestResult[] = [];
  for (const kind of kinds) {
    out.push(
      await withSystems(env, [kind], async ([sys]) => {
        if (!sys) return { system: kind, routers: 0, error: 'did not start' };
        const routers = Math.max(1, sys.routers.length);
        const r: IngestResult = { system: kind, routers };
        await waitForIdle(o);
        const m = forkMembers(0, env.start.secret, o.pin);
        try {
          await m.expect(
            {
              cmd: 'ingest',
              target: targetOf(sys, 'lean'),
              publishers: o.ingestPublishers,
              rooms: o.ingestRooms,
              window: o.ingestWindow,
              warmupMs: INGEST_WARMUP_MS,
              firstUser: 0,
            },
            'ingesting',
            120_000,
          );
          const meter = cpuMeter({ ...sys.procs, members0: m.proc });
          await sleep(o.ingestMs);
          const rep = await m.expect({ cmd: 'ingest-stop' }, 'ingested', 30_000);
          const cpu = meter();
          const ackedPerSec = Math.round((rep.acked * 1000) / rep.ms);
          r.report = { ...rep, ackedPerSec, perRouter: Math.round(ackedPerSec / routers), cpu };
          env.log(
            `  ${kind}: ${fmt(ackedPerSec)} acked pubs/s (${fmt(r.report.perRouter)} per router), ${rep.errs} errors, mean ack ${rep.meanAckMs} ms; ` +
              `cores: ${Object.entries(cpu.cores)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ')}`,
          );
        } catch (e) {
          r.error = errText(e);
          env.log(`  ${kind} ingest failed: ${r.error}`);
        } finally {
          await m.stop();
        }
        return r;
      }),
    );
  }
  return out;
}
