// `npm run bench`: rtgw (1+1 and 2+2 clusters, standalone) against Socket.IO + redis-adapter, bare uWS,
// and bare uWS behind one NATS hop, all started here on loopback and stopped again. Scenarios: one big
// room, many small rooms, connection storm with idle memory and a gateway restart, router ingest, and a
// record run with socket.io-client. Writes bench/results/bench-<date>[-quick].{json,md,svg} and prints
// the issue's targets as ratios measured in this session. See bench/README.md.
//   npm run bench -- [--quick] [--scenarios fanout,chat,...] [--systems rtgw,bare,...] [--runs N] [--profile]
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { chart } from './chart.js';
import { parseArgs, type Options } from './options.js';
import { BENCH, LOADGEN_CPUS, pin, ROOT, SERVER_CPUS, stopAll } from './procs.js';
import { summarizeProfile, type ProfileSummary } from './prof-summary.js';
import {
  chartGroups,
  markdown,
  summarizeSystem,
  summaryKey,
  targets,
  type Results,
  type SystemSummary,
} from './report.js';
import { ingests, rates, storms, type Env } from './scenarios.js';

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return '';
  }
}

function optionsLine(o: Options, meta: Record<string, unknown>): string {
  return (
    `Preset \`${o.preset}\`: scenarios ${o.scenarios.join(', ')}; one big room of ${o.members} (${o.runs} interleaved runs per system) and of ${o.bigMembers}; ` +
    `chat ${o.chatMembers} members in rooms of ${o.roomSize}; other rate scenarios ${o.runsBig} run(s) per system. Search steps ${o.stepMs} ms (×${o.growth} until a failure, ` +
    `then bisecting to ${o.resolution}×, at most ${o.maxSteps} steps), measuring steps ${o.halfMs} ms; a step passes when every member got every message, in order for the probe, ` +
    `every publish was answered (rtgw, Socket.IO), within the step + ${o.graceMs} ms, with p99 ≤ ${o.p99MaxMs} ms (${o.p99MaxMsBig} ms in the room of ${o.bigMembers}). Medians with (min–max) over runs. ` +
    (o.pin ? `Servers pinned to CPU ${SERVER_CPUS}, load generator to CPU ${LOADGEN_CPUS}. ` : 'No CPU pinning. ') +
    `Machine: ${meta.cpus}, node ${meta.node}, commit ${meta.commit}${meta.dirty ? ' + uncommitted changes' : ''}; load average at start ${meta.loadavg}.`
  );
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const stamp = date.replace(/[:]/g, '-');
  const resultsDir = join(BENCH, 'results');
  const tmp = join(resultsDir, 'tmp', `bench-${stamp}`);
  mkdirSync(tmp, { recursive: true });
  const meta = {
    date,
    preset: o.preset,
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    loadavg: loadavg()
      .map((v) => v.toFixed(2))
      .join(' '),
  };
  const log = (s: string) => process.stdout.write(s + '\n');
  log(`rtgw bench (${o.preset}): ${o.scenarios.join(', ')}; load average ${meta.loadavg}; server logs in ${tmp}`);
  if (loadavg()[0]! > cpus().length * 0.75)
    log(`  note: the machine is busy (load ${meta.loadavg} on ${cpus().length} cores); results will be noisier`);
  if (o.pin) pin(process.pid, LOADGEN_CPUS);
  const env: Env = {
    o,
    start: { tmp, secret: randomBytes(32).toString('hex'), pin: o.pin, profile: o.profile, barePublish: o.barePublish },
    log,
  };
  const t0 = Date.now();

  const results: Results = { rates: [], summaries: {}, storms: [], ingests: [] };
  const elapsedS: Record<string, number> = {};
  for (const sc of o.scenarios) {
    const s0 = Date.now();
    if (sc === 'storm') results.storms = await storms(env);
    else if (sc === 'ingest') results.ingests = await ingests(env);
    else {
      for (const client of sc === 'record' ? o.recordClients : (['lean'] as const)) {
        const r = await rates(env, sc, client);
        results.rates.push(r);
        const sums: Record<string, SystemSummary> = {};
        for (const k of r.systems)
          sums[k] = summarizeSystem(
            k,
            r.edges[k] ?? [],
            r.runs.filter((x) => x.system === k),
          );
        results.summaries[summaryKey(r)] = sums;
      }
    }
    elapsedS[sc] = Math.round((Date.now() - s0) / 1000);
    log(`== ${sc} took ${elapsedS[sc]} s`);
  }
  await stopAll();

  let profile: ProfileSummary[] | undefined;
  const profDir = join(tmp, 'prof');
  if (o.profile && existsSync(profDir)) {
    profile = readdirSync(profDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => summarizeProfile(join(profDir, f), f.replace(/\.cpuprofile$/, '')));
  }
  const t = targets(results, o.busyMax);
  mkdirSync(resultsDir, { recursive: true });
  const base = `bench-${stamp}${o.preset === 'quick' ? '-quick' : ''}`;
  const svg = chart(
    `rtgw bench ${date} (${o.preset}), commit ${meta.commit}: medians of runs, whiskers min–max`,
    chartGroups(results),
    Object.values(results.summaries.fanout ?? {}).flatMap((s) =>
      s.half.histogram ? [{ name: s.system, h: s.half.histogram }] : [],
    ),
  );
  let md = markdown(meta, optionsLine(o, meta), results, t, `${base}.svg`);
  if (profile?.length) md += profileMarkdown(profile);
  writeFileSync(
    join(resultsDir, `${base}.json`),
    JSON.stringify(
      { meta: { ...meta, elapsedS }, options: o, targets: t, summaries: results.summaries, results, profile },
      null,
      2,
    ) + '\n',
  );
  writeFileSync(join(resultsDir, `${base}.md`), md);
  writeFileSync(join(resultsDir, `${base}.svg`), svg);
  log('');
  log(md);
  log('Targets:');
  for (const x of t)
    log(
      `  ${x.pass === undefined ? 'n/a ' : x.pass ? 'pass' : 'FAIL'}  ${x.what}: ${x.value ?? 'n/a'} ${x.unit} (${x.cmp} ${x.bound}) — ${x.detail}`,
    );
  log(`written: bench/results/${base}.json, .md and .svg (total ${Math.round((Date.now() - t0) / 1000)} s)`);
}

function profileMarkdown(profile: ProfileSummary[]): string {
  const L: string[] = ['', '## Where rtgw spends CPU (`--cpu-prof`, whole session)'];
  for (const p of profile) {
    L.push(
      '',
      `**${p.name}** (${p.totalMs} ms sampled, idle excluded; by module: ${p.byModule
        .slice(0, 8)
        .map((m) => `${m.module} ${m.pct}%`)
        .join(', ')})`,
      '',
    );
    L.push('| self % | function | where |', '| --- | --- | --- |');
    for (const f of p.top.slice(0, 15)) L.push(`| ${f.pct} | ${f.fn} | ${f.where} |`);
  }
  return L.join('\n') + '\n';
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
