// Summaries over runs (medians with min-max), the issue's targets as ratios measured in the same
// session with pass/fail, and the markdown of the results file.
import type { BarGroup } from './chart.js';
import { fmt, type RunResult, type StepResult } from './load.js';
import type { IngestResult, RateScenario, StormResult } from './scenarios.js';
import { round3, spread, type Histogram, type Spread } from './stats.js';
import { SYSTEMS, type SystemKind } from './systems.js';

/** Latency and CPU of one kind of measuring step (half of each run's max, or the equal load), over runs. */
export interface LoadSummary {
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
  /** Latency histogram of every sample of every run's step. */
  histogram?: Histogram;
}

export interface SystemSummary {
  system: string;
  /** Runs the medians are of, and runs left out because others disturbed most of their steps. */
  runs: number;
  excludedRuns: number;
  /** Every run was disturbed: the medians are of all of them, and say little. */
  allDisturbed: boolean;
  failedRuns: number;
  joinRetries: number;
  maxDeliveriesPerSec: Spread;
  maxMsgPerSec: Spread;
  maxServerUsPerDelivery: Spread;
  /** Cores busy in the highest passing step, by process: the servers' sum near 1.0 means their core was full. */
  coresAtMax: Record<string, Spread>;
  serverCoresAtMax: Spread;
  loadgenCoresAtMax: Spread;
  machineBusyAtMax: Spread;
  half: LoadSummary;
  ref: LoadSummary;
  /** RSS growth of the processes holding connections, per joined member, bytes. */
  edgeRssPerMember: Spread;
  otherCpuSharePerStep: Spread;
  disturbedRepeated: number;
  disturbedCounted: number;
}

const isLoadgen = (k: string) => k.startsWith('members') || k === 'driver';
const isServer = (k: string) => !isLoadgen(k) && k !== 'orchestrator';

function mergeHistograms(hs: (Histogram | undefined)[]): Histogram | undefined {
  const list = hs.filter((h): h is Histogram => h !== undefined);
  if (list.length === 0) return undefined;
  return {
    edgesMs: list[0]!.edgesMs,
    counts: list[0]!.counts.map((_, i) => list.reduce((a, h) => a + h.counts[i]!, 0)),
  };
}

/** Every step a run counted: the search, then the half-load and equal-load steps. */
const stepsOf = (r: RunResult): StepResult[] => [...r.steps, ...(r.half ? [r.half] : []), ...(r.ref ? [r.ref] : [])];

/** Cores each process used, by process, over `steps`. */
function coresBy(steps: StepResult[]): Record<string, Spread> {
  const keys = new Set(steps.flatMap((s) => Object.keys(s.cpuS)));
  return Object.fromEntries([...keys].map((k) => [k, spread(steps.map((s) => round3(s.cpuS[k]! / s.wallS)))]));
}

function summarizeLoad(steps: StepResult[]): LoadSummary {
  const keys = new Set(steps.flatMap((h) => Object.keys(h.serverUsPerDelivery)));
  return {
    rate: spread(steps.map((h) => h.rate)),
    p50: spread(steps.map((h) => h.latencyMs.p50)),
    p99: spread(steps.map((h) => h.latencyMs.p99)),
    p999: spread(steps.map((h) => h.latencyMs.p999)),
    samples: spread(steps.map((h) => h.latencyMs.n)),
    passed: steps.filter((h) => h.pass).length,
    of: steps.length,
    serverUsPerDelivery: Object.fromEntries(
      [...keys].map((k) => [k, spread(steps.map((h) => h.serverUsPerDelivery[k]!))]),
    ),
    cores: coresBy(steps),
    histogram: mergeHistograms(steps.map((h) => h.histogram)),
  };
}

/**
 * A run more than half of whose steps were disturbed (others used more than `--busy-max` of the machine,
 * and the repeats did not help) says more about them than about the system.
 */
export function runDisturbed(r: RunResult): boolean {
  const steps = stepsOf(r);
  return steps.length > 0 && steps.filter((s) => s.disturbed).length * 2 > steps.length;
}

/** Medians over the undisturbed runs (over all of them when every run was disturbed). */
export function summarizeSystem(system: string, edge: string[], all: RunResult[]): SystemSummary {
  const quiet = all.filter((r) => !runDisturbed(r));
  const runs = quiet.length ? quiet : all;
  const ok = runs.filter((r) => r.max);
  const atMax = ok.map((r) => r.steps[r.max!.step]!);
  const sumCores = (s: StepResult, pick: (k: string) => boolean) =>
    round3(Object.entries(s.cpuS).reduce((a, [k, v]) => a + (pick(k) ? v : 0), 0) / s.wallS);
  return {
    system,
    runs: runs.length,
    excludedRuns: all.length - runs.length,
    allDisturbed: quiet.length === 0 && all.length > 0,
    failedRuns: runs.length - ok.length,
    joinRetries: runs.reduce((a, r) => a + r.joinRetries, 0),
    maxDeliveriesPerSec: spread(ok.map((r) => r.max!.deliveriesPerSec)),
    maxMsgPerSec: spread(ok.map((r) => r.max!.rate)),
    maxServerUsPerDelivery: spread(atMax.map((s) => s.serverUsPerDelivery.total!)),
    coresAtMax: coresBy(atMax),
    serverCoresAtMax: spread(atMax.map((s) => sumCores(s, isServer))),
    loadgenCoresAtMax: spread(atMax.map((s) => sumCores(s, isLoadgen))),
    machineBusyAtMax: spread(atMax.map((s) => s.machineBusyShare)),
    half: summarizeLoad(ok.flatMap((r) => (r.half ? [r.half] : []))),
    ref: summarizeLoad(ok.flatMap((r) => (r.ref ? [r.ref] : []))),
    edgeRssPerMember: spread(
      runs
        .filter((r) => Object.keys(r.rssJoined).length)
        .map(
          (r) =>
            edge.reduce((a, k) => a + (r.rssJoined[k]! - r.rssBefore[k]!), 0) /
            Math.max(1, r.steps[0]?.members.members ?? 1),
        ),
    ),
    otherCpuSharePerStep: spread(runs.flatMap((r) => r.steps.map((s) => s.otherShare))),
    disturbedRepeated: runs.reduce((a, r) => a + r.disturbed.length, 0),
    disturbedCounted: runs.reduce((a, r) => a + stepsOf(r).filter((s) => s.disturbed).length, 0),
  };
}

// ---------------------------------------------------------------------------------------------------
// Targets

export interface Target {
  what: string;
  /** The ratio or figure measured, and the bound it must meet. */
  value: number | undefined;
  bound: number;
  cmp: '≥' | '≤';
  unit: string;
  pass: boolean | undefined;
  detail: string;
}

export interface Results {
  rates: RateScenario[];
  summaries: Record<string, Record<string, SystemSummary>>;
  storms: StormResult[];
  ingests: IngestResult[];
}

const med = (s: Spread | undefined) => (s && s.n ? s.median : undefined);
const div = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && b !== 0 ? a / b : undefined;

function target(
  what: string,
  value: number | undefined,
  cmp: Target['cmp'],
  bound: number,
  unit: string,
  detail: string,
): Target {
  const pass =
    value === undefined || !Number.isFinite(value) ? undefined : cmp === '≥' ? value >= bound : value <= bound;
  return { what, value: value === undefined ? undefined : round3(value), bound, cmp, unit, pass, detail };
}

export function targets(r: Results, busyMax: number): Target[] {
  const f = r.summaries.fanout ?? {};
  const chat = r.summaries.chat ?? {};
  /** A note on figures that rest on runs, storms or ingests that other processes disturbed. */
  const warn = (sums: (SystemSummary | undefined)[], others: number[] = []) =>
    sums.some((s) => s?.allDisturbed) || others.some((x) => x > busyMax) ? ' ⚠ others used the machine meanwhile' : '';
  const max = (s: Record<string, SystemSummary>, k: SystemKind) => med(s[k]?.maxDeliveriesPerSec);
  const stormOf = (k: SystemKind) => r.storms.find((s) => s.system === k);
  const rt = stormOf('rtgw');
  const gwBytes = rt?.bytesPerConn.gateway;
  const ing = r.ingests.filter((i) => i.report);
  const worstRouter = ing.length ? Math.min(...ing.map((i) => i.report!.perRouter)) : undefined;
  const c1 = chat.rtgw;
  const c2 = chat.rtgw2;
  const limit = c2
    ? `at 2+2's max the servers used ${fmt(med(c2.serverCoresAtMax) ?? NaN)} cores (pinned to one) and the load generator ${fmt(med(c2.loadgenCoresAtMax) ?? NaN)}; ` +
      `1+1: servers ${fmt(med(c1?.serverCoresAtMax) ?? NaN)}, load generator ${fmt(med(c1?.loadgenCoresAtMax) ?? NaN)}`
    : 'not measured';
  const limitNote = c2 ? warn([c1, c2]) : '';
  return [
    target(
      'one-room fan-out: rtgw 1+1 / Socket.IO 2 nodes, max deliveries/s',
      div(max(f, 'rtgw'), max(f, 'socketio')),
      '≥',
      10,
      '×',
      `${fmt(max(f, 'rtgw') ?? NaN)} vs ${fmt(max(f, 'socketio') ?? NaN)}${warn([f.rtgw, f.socketio])}`,
    ),
    target(
      'one-room fan-out: rtgw 1+1 / bare uWS behind NATS, max deliveries/s',
      div(max(f, 'rtgw'), max(f, 'bare-nats')),
      '≥',
      0.4,
      '×',
      `${fmt(max(f, 'rtgw') ?? NaN)} vs ${fmt(max(f, 'bare-nats') ?? NaN)}${warn([f.rtgw, f['bare-nats']])}`,
    ),
    target(
      'server CPU per delivery at the same light load: rtgw 1+1 / bare uWS',
      div(med(f.rtgw?.ref.serverUsPerDelivery.total), med(f.bare?.ref.serverUsPerDelivery.total)),
      '≤',
      1.3,
      '×',
      `${med(f.rtgw?.ref.serverUsPerDelivery.total) ?? 'n/a'} vs ${med(f.bare?.ref.serverUsPerDelivery.total) ?? 'n/a'} µs at ${fmt(med(f.rtgw?.ref.rate) ?? NaN)} msg/s${warn([f.rtgw, f.bare])}`,
    ),
    target(
      'p99 at half of own max: rtgw 1+1 / bare uWS behind NATS',
      div(med(f.rtgw?.half.p99), med(f['bare-nats']?.half.p99)),
      '≤',
      2,
      '×',
      `${med(f.rtgw?.half.p99) ?? 'n/a'} vs ${med(f['bare-nats']?.half.p99) ?? 'n/a'} ms${warn([f.rtgw, f['bare-nats']])}`,
    ),
    target(
      'gateway RSS per idle connection (rtgw 1+1)',
      gwBytes === undefined ? undefined : gwBytes / 1024,
      '≤',
      4,
      'KB',
      `${rt?.storm?.ok ?? 0} idle connections${warn([], [rt?.storm?.cpu.otherShare ?? 0])}`,
    ),
    target(
      'connection accept with HS256 JWT (rtgw 1+1)',
      rt?.storm?.perSec,
      '≥',
      10_000,
      '/s',
      rt?.storm
        ? `load generator ${rt.storm.cpu.cores.members0} cores, gateway ${rt.storm.cpu.cores.gateway} cores${warn([], [rt.storm.cpu.otherShare])}`
        : 'not measured',
    ),
    target(
      'router ingest: acked pubs/s per router process (lowest of the rtgw systems)',
      worstRouter,
      '≥',
      50_000,
      '/s',
      ing
        .map((i) => {
          const cores = (role: string) =>
            Object.entries(i.report!.cpu.cores)
              .filter(([k]) => k.startsWith(role))
              .map(([, v]) => v)
              .join('+');
          return `${i.system}: ${fmt(i.report!.perRouter)}/router, router cores ${cores('router')}, gateway cores ${cores('gateway')}, redis ${cores('redis')}${warn([], [i.report!.cpu.otherShare])}`;
        })
        .join('; ') || 'not measured',
    ),
    target(
      'many rooms (chat): rtgw 2+2 / rtgw 1+1, max deliveries/s',
      div(max(chat, 'rtgw2'), max(chat, 'rtgw')),
      '≥',
      1.6,
      '×',
      limit + limitNote,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Markdown

const sp = (s: Spread | undefined, unit = '', digits = 0) => {
  if (!s || s.n === 0) return 'n/a';
  const f = (v: number) =>
    digits === 0 && Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);
  return s.n === 1 ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`;
};
/** Deliveries per second in M (or k below a million), with the spread. */
const mega = (s: Spread | undefined) => {
  if (!s || !s.n) return 'n/a';
  const [d, unit, digits] = s.median >= 1e6 ? [1e6, ' M', 2] : [1e3, ' k', 0];
  return sp({ median: s.median / d, min: s.min / d, max: s.max / d, n: s.n }, unit, digits);
};
const kb = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? 'n/a' : `${(b / 1024).toFixed(2)} KB`);

function rateTable(L: string[], sc: RateScenario, sums: Record<string, SystemSummary>): void {
  const title =
    sc.scenario === 'chat'
      ? `Many small rooms (chat): ${sc.layout.rooms} rooms of ${sc.layout.roomSize}, every member publishing (echo on)`
      : sc.scenario === 'record'
        ? `For the record: one room of ${sc.layout.roomSize} with ${sc.client} as members, publisher and probe`
        : `One big room: ${sc.layout.roomSize} members`;
  L.push(`### ${title}`, '');
  L.push(
    '| system | runs counted | max deliveries/s | max msg/s | server µs/delivery at max | server cores at max (by process) | load-gen cores at max | half load: msg/s, p50 / p99 / p99.9 ms | half load: server µs/delivery | equal load: msg/s, p99 ms, server µs/delivery | RSS per member (edge) |',
  );
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const k of sc.systems) {
    const s = sums[k];
    if (!s) continue;
    const byProc = Object.entries(s.coresAtMax)
      .filter(([p]) => isServer(p))
      .map(([p, v]) => `${p} ${sp(v, '', 2)}`)
      .join(', ');
    L.push(
      `| ${SYSTEMS[k].label} | ${s.runs}${s.excludedRuns ? ` (${s.excludedRuns} disturbed, left out)` : ''}${s.allDisturbed ? ' ⚠ all disturbed' : ''} | ${mega(s.maxDeliveriesPerSec)} | ${sp(s.maxMsgPerSec)} | ${sp(s.maxServerUsPerDelivery, '', 3)} | ${sp(s.serverCoresAtMax, '', 2)} (${byProc}) | ${sp(s.loadgenCoresAtMax, '', 2)} | ` +
        `${sp(s.half.rate)}: ${sp(s.half.p50, '', 1)} / ${sp(s.half.p99, '', 1)} / ${sp(s.half.p999, '', 1)} | ${sp(s.half.serverUsPerDelivery.total, '', 3)} | ` +
        `${s.ref.of ? `${sp(s.ref.rate)}: ${sp(s.ref.p99, '', 1)}, ${sp(s.ref.serverUsPerDelivery.total, '', 3)}` : 'n/a'} | ${kb(med(s.edgeRssPerMember))} |`,
    );
  }
  L.push('');
  const failed = [
    ...Object.entries(sc.notStarted).map(([k, why]) => `- ${k} did not start: ${why}`),
    ...sc.runs.filter((r) => r.error).map((r) => `- ${r.system} run ${r.run + 1}: ${r.error}`),
  ];
  if (failed.length) L.push('Runs that failed:', '', ...failed, '');
}

/** Cumulative share of the half-load step's messages delivered within each bound: the latency histogram, in text. */
function histogramTable(L: string[], sc: RateScenario, sums: Record<string, SystemSummary>): void {
  const bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500];
  const rows = sc.systems.flatMap((k) => {
    const h = sums[k]?.half.histogram;
    if (!h) return [];
    const total = h.counts.reduce((a, b) => a + b, 0);
    if (total === 0) return [];
    const within = (ms: number) => h.counts.reduce((a, c, i) => a + (h.edgesMs[i]! <= ms * 1.01 ? c : 0), 0) / total;
    return [`| ${k} | ${fmt(total)} | ${bounds.map((b) => `${(within(b) * 100).toFixed(1)}%`).join(' | ')} |`];
  });
  if (!rows.length) return;
  L.push(
    `Latency at half of own max, share of messages delivered within (probe or samplers, every message of every run):`,
    '',
  );
  L.push(
    `| system | messages | ${bounds.map((b) => `≤ ${b} ms`).join(' | ')} |`,
    `| --- | --- | ${bounds.map(() => '---').join(' | ')} |`,
    ...rows,
    '',
  );
}

function ratioLines(L: string[], sc: RateScenario, sums: Record<string, SystemSummary>): void {
  const base = ['socketio', 'bare', 'bare-nats'].filter((b) => sums[b]);
  const rt = sc.systems.filter((k) => k.startsWith('rtgw') || k === 'standalone');
  const rows: string[] = [];
  for (const a of rt) {
    for (const b of base) {
      const x = sums[a]!;
      const y = sums[b]!;
      const r = (p: (s: SystemSummary) => Spread | undefined) => {
        const v = div(med(p(x)), med(p(y)));
        return v === undefined ? 'n/a' : `${v.toFixed(2)}×`;
      };
      rows.push(
        `| ${a} / ${b} | ${r((s) => s.maxDeliveriesPerSec)} | ${r((s) => s.half.p99)} | ${r((s) => s.ref.serverUsPerDelivery.total)} | ${r((s) => s.maxServerUsPerDelivery)} |`,
      );
    }
  }
  if (!rows.length) return;
  L.push(
    '| ratio (medians, same session) | max deliveries/s | p99 at half own max | server CPU/delivery at equal load | server CPU/delivery at max |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  );
}

/** Where a rate scenario's summaries are kept: one entry per scenario, and per client for the record runs. */
export const summaryKey = (sc: Pick<RateScenario, 'scenario' | 'client'>): string =>
  sc.scenario === 'record' ? `record ${sc.client}` : sc.scenario;

export function markdown(
  meta: Record<string, unknown>,
  optionsLine: string,
  r: Results,
  t: Target[],
  chartFile?: string,
): string {
  const L: string[] = [];
  L.push(`# rtgw bench (${meta.date}, ${meta.preset})`, '');
  L.push(optionsLine, '');
  L.push('## Targets (ratios measured in this session)', '');
  L.push('| target | measured | bound | result | detail |', '| --- | --- | --- | --- | --- |');
  for (const x of t) {
    const show = (v: number) => (x.unit === '/s' ? fmt(v) + '/s' : `${v}${x.unit === '×' ? '×' : ' ' + x.unit}`);
    L.push(
      `| ${x.what} | ${x.value === undefined ? 'n/a' : show(x.value)} | ${x.cmp} ${show(x.bound)} | ${x.pass === undefined ? 'not measured' : x.pass ? 'pass' : '**FAIL**'} | ${x.detail} |`,
    );
  }
  L.push('');
  if (chartFile) L.push(`![chart](${chartFile})`, '');
  for (const sc of r.rates) {
    const sums = r.summaries[summaryKey(sc)] ?? {};
    rateTable(L, sc, sums);
    ratioLines(L, sc, sums);
    histogramTable(L, sc, sums);
  }
  if (r.storms.length) {
    L.push('### Connection storm and idle memory', '');
    L.push(
      "| system | connects/s (HS256 JWT for rtgw) | connect p50 / p99 ms | failed | server µs CPU per connect | load-gen cores | others' share of the machine | idle RSS per connection: holders of connections | by process |",
    );
    L.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const s of r.storms) {
      const st = s.storm;
      L.push(
        `| ${SYSTEMS[s.system].label} | ${st ? fmt(st.perSec) : 'n/a'} | ${st ? `${st.latencyMs.p50} / ${st.latencyMs.p99}` : 'n/a'} | ${st?.failed ?? 'n/a'} | ${st?.serverUsPerConnect ?? 'n/a'} | ${st?.cpu.cores.members0 ?? 'n/a'} | ${st?.cpu.otherShare ?? 'n/a'} | ` +
          `${kb(s.bytesPerConn.edge)} | ${Object.entries(s.bytesPerConn)
            .filter(([k]) => k !== 'edge')
            .map(([k, v]) => `${k} ${kb(v)}`)
            .join(', ')}${s.error ? ` (error: ${s.error})` : ''} |`,
      );
    }
    L.push('');
    for (const s of r.storms.filter((x) => x.restart)) {
      const rc = s.restart!.reconnect;
      L.push(
        `Gateway restart (${s.system}): ${rc.closed} clients of the stopped gateway closed (${JSON.stringify(rc.closeCodes)}), ${rc.reconnected} reconnected to the other in ${Math.round(rc.ms)} ms = **${fmt(rc.perSec)} connects/s**; ` +
          `close-to-ready gap p50 / p99 / max ${rc.gapMs.p50} / ${rc.gapMs.p99} / ${rc.gapMs.max} ms; ${rc.failedAttempts} failed attempts; the gateway was ready again ${s.restart!.restartMs} ms after starting.`,
        '',
      );
    }
  }
  if (r.ingests.length) {
    L.push('### Router ingest (acknowledged pubs, many rooms, no members)', '');
    L.push(
      "| system | acked pubs/s | per router process | errors | mean ack latency ms | cores by process | others' share of the machine |",
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const i of r.ingests) {
      const x = i.report;
      L.push(
        `| ${SYSTEMS[i.system].label} | ${x ? fmt(x.ackedPerSec) : 'n/a'} | ${x ? fmt(x.perRouter) : 'n/a'} | ${x?.errs ?? 'n/a'} | ${x?.meanAckMs ?? 'n/a'} | ` +
          `${
            x
              ? Object.entries(x.cpu.cores)
                  .map(([k, v]) => `${k} ${v}`)
                  .join(', ')
              : (i.error ?? '')
          } | ${x?.cpu.otherShare ?? 'n/a'} |`,
      );
    }
    L.push('');
  }
  L.push('## Runs', '');
  L.push(
    '| scenario | system | run | max msg/s | search steps, msg/s (✗ failed, ⚠ disturbed) | half / equal load: msg/s, p50/p99/p999 ms, server µs/delivery |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  const brief = (h?: StepResult) =>
    h
      ? `${fmt(h.rate)}${h.pass ? '' : ' ✗'}${h.disturbed ? ' ⚠' : ''}, ${h.latencyMs.p50}/${h.latencyMs.p99}/${h.latencyMs.p999}, ${h.serverUsPerDelivery.total}`
      : 'n/a';
  for (const sc of r.rates) {
    for (const run of sc.runs) {
      const steps = run.steps
        .map((s) => `${s.repeat ? '(again) ' : ''}${fmt(s.rate)}${s.pass ? '' : '✗'}${s.disturbed ? '⚠' : ''}`)
        .join(' → ');
      L.push(
        `| ${sc.scenario} | ${run.system} | ${run.run + 1} | ${run.max ? fmt(run.max.rate) : 'n/a'} | ${steps}${run.error ? ` (error: ${run.error})` : ''} | ${brief(run.half)} / ${brief(run.ref)} |`,
      );
    }
  }
  const failures = r.rates.flatMap((sc) =>
    sc.runs.flatMap((run) =>
      stepsOf(run)
        .filter((s) => !s.pass)
        .map(
          (s) =>
            `- ${sc.scenario} ${run.system} run ${run.run + 1}, ${s.kind} ${fmt(s.rate)} msg/s: ${s.reasons.join('; ')}`,
        ),
    ),
  );
  if (failures.length) L.push('', 'Why steps failed:', '', ...failures);
  L.push('');
  return L.join('\n');
}

const one = (v: number | undefined): Spread => spread(v === undefined ? [] : [v]);
const per = (unit: string) => (v: number) =>
  v >= 1e6
    ? `${+(v / 1e6).toFixed(2)} M${unit}`
    : v >= 1e3
      ? `${+(v / 1e3).toFixed(1)} k${unit}`
      : `${+v.toFixed(1)}${unit}`;

/** The chart's bar panels (chart.ts draws them): max deliveries/s of each rate scenario, connects/s, idle memory, ingest. */
export function chartGroups(results: Results): BarGroup[] {
  const groups: BarGroup[] = results.rates.map((r) => ({
    title: `max deliveries/s: ${r.scenario === 'chat' ? `${r.layout.rooms} rooms of ${r.layout.roomSize}, every member publishing` : `${r.scenario === 'record' ? `${r.client}, ` : ''}one room of ${r.layout.roomSize}`}`,
    bars: r.systems.flatMap((k) => {
      const s = results.summaries[summaryKey(r)]?.[k];
      return s ? [{ name: k, value: s.maxDeliveriesPerSec }] : [];
    }),
    format: per('/s'),
  }));
  if (results.storms.length) {
    groups.push({
      title: 'connects/s (storm of idle connections; rtgw verifies an HS256 JWT each)',
      bars: results.storms.map((s) => ({ name: s.system, value: one(s.storm?.perSec) })),
      format: per('/s'),
    });
    groups.push({
      title: 'idle RSS per connection, processes holding the connections',
      bars: results.storms.map((s) => ({
        name: s.system,
        value: one(s.bytesPerConn.edge === undefined ? undefined : s.bytesPerConn.edge / 1024),
      })),
      format: (v) => `${+v.toFixed(1)} KB`,
    });
  }
  if (results.ingests.length) {
    groups.push({
      title: 'router ingest: acked pubs/s per router process',
      bars: results.ingests.map((i) => ({ name: i.system, value: one(i.report?.perRouter) })),
      format: per('/s'),
    });
  }
  return groups;
}
