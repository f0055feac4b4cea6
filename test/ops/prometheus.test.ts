// The monitoring artefacts in deploy/ checked with the real tools of Debian's `prometheus` package:
//  - promtool check rules / test rules on deploy/prometheus/alerts.yml and its unit tests;
//  - the shape of the rules, the runbook and the Grafana dashboard (severity, runbook sections, a
//    datasource variable on every panel, no hard-coded datasource uid);
//  - a real Prometheus scraping a running rtgw cluster (2 gateways, 2 routers) after a little traffic:
//    every PromQL expression of the dashboard returns data, every alert rule evaluates without error,
//    the dead-letter alert fires on the dead letter the test causes and the outage alerts stay quiet.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ClientPool } from '../harness/client.js';
import { freePort, startCluster, uid, type Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import { requireBinary as need } from '../../scripts/prerequisites.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const promDir = join(root, 'deploy', 'prometheus');
const alertsFile = join(promDir, 'alerts.yml');
const alertsTestFile = join(promDir, 'alerts.test.yml');
const runbookFile = join(promDir, 'RUNBOOK.md');
const dashboardFile = join(root, 'deploy', 'grafana', 'rtgw-dashboard.json');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const ruleGroups = (parseYaml(readFileSync(alertsFile, 'utf8')) as { groups: { name: string; rules: Rule[] }[] })
  .groups;
const alerts = ruleGroups
  .flatMap((g) => g.rules)
  .filter((r): r is Rule & { alert: string } => typeof r.alert === 'string');

// ---------------------------------------------------------------------------------------------------
// The dashboard: every PromQL expression, with Grafana's variables replaced by what a query would get.

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string }[] };
};
const allPanels: Panel[] = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const dashboardExprs: { panel: string; expr: string }[] = queryPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })),
);

/** Grafana's built-in interval variables, as a 1 s scrape interval would make them (at least 4 scrapes). */
function substitute(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('${__rate_interval}', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('${__interval}', '15s')
    .replaceAll('$__range', '5m')
    .replaceAll('${__range}', '5m');
}

// ---------------------------------------------------------------------------------------------------

describe('alert rules (promtool)', () => {
  it('promtool check rules accepts alerts.yml and counts every alert in it', () => {
    const r = spawnSync(need('promtool'), ['check', 'rules', alertsFile], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, `promtool check rules failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
  });

  it('promtool test rules passes the unit tests of alerts.test.yml', () => {
    const r = spawnSync(need('promtool'), ['test', 'rules', alertsTestFile], {
      cwd: promDir,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, `promtool test rules failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });

  it('unit tests make every alert fire at least once and stay quiet at least once', () => {
    const tests = (
      parseYaml(readFileSync(alertsTestFile, 'utf8')) as {
        tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
      }
    ).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const a of alerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${a.alert}: no unit test where it fires`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${a.alert}: no unit test where it stays quiet`,
      ).toBe(true);
    }
  });

  it('every alert has a severity, summary, description and a runbook link to its RUNBOOK.md section', () => {
    const runbook = readFileSync(runbookFile, 'utf8');
    const sections = new Set([...runbook.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1]!));
    for (const a of alerts) {
      expect(['page', 'ticket'], `${a.alert} severity`).toContain(a.labels?.severity);
      expect(a.annotations?.summary, `${a.alert} summary`).toBeTruthy();
      expect(a.annotations?.description, `${a.alert} description`).toBeTruthy();
      expect(a.annotations?.runbook, `${a.alert} runbook`).toMatch(
        new RegExp(`RUNBOOK\\.md#${a.alert.toLowerCase()}$`),
      );
      expect(sections.has(a.alert), `RUNBOOK.md has no "## ${a.alert}" section`).toBe(true);
      const body = runbook.split(`## ${a.alert}`)[1]?.split(/^## /m)[0] ?? '';
      for (const part of ['Meaning', 'Check', 'Act']) {
        expect(body, `RUNBOOK.md ${a.alert}: no **${part}** part`).toContain(`**${part}**`);
      }
    }
  });
});

describe('Grafana dashboard', () => {
  it('has a prometheus datasource variable used by every panel and target, and no hard-coded uid', () => {
    const v = dashboard.templating.list.find((t) => t.name === 'datasource');
    expect(v, 'templating variable "datasource"').toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(queryPanels.length).toBeGreaterThan(10);
    for (const p of queryPanels) {
      expect(p.datasource, `panel "${p.title}"`).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect((p.targets ?? []).length, `panel "${p.title}" has no query`).toBeGreaterThan(0);
      for (const t of p.targets ?? [])
        expect(t.datasource, `a target of "${p.title}"`).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
    // Any "uid" of a datasource anywhere in the JSON must be the variable.
    const text = readFileSync(dashboardFile, 'utf8');
    const dsUids = [...text.matchAll(/"datasource":\s*\{[^}]*"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(dsUids.length).toBeGreaterThan(0);
    expect(dsUids.filter((u) => u !== '${datasource}')).toEqual([]);
  });

  it('covers what the issue asks for', () => {
    const all = dashboardExprs.map((e) => e.expr).join('\n');
    for (const metric of [
      'rtgw_connections{',
      'rtgw_connections_opened_total',
      'rtgw_connections_rejected_total',
      'rtgw_frames_received_total',
      'rtgw_frames_sent_total',
      'rtgw_delivery_latency_seconds_bucket',
      'rtgw_retry_queue_size',
      'rtgw_dead_letters_total',
      'rtgw_slots_owned',
      'nodejs_eventloop_lag',
      'process_resident_memory_bytes',
    ]) {
      expect(all, `no dashboard query uses ${metric}`).toContain(metric);
    }
    expect(all).toMatch(/sum by \(reason\) \(rate\(rtgw_connections_rejected_total/);
    for (const q of ['0.5', '0.9', '0.99'])
      expect(all).toContain(`histogram_quantile(${q}, sum by (le) (rate(rtgw_delivery_latency_seconds_bucket`);
    expect(all).toMatch(/by \(instance\) \(rtgw_slots_owned/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('a real Prometheus scraping a running cluster', () => {
  let cluster: Cluster | undefined;
  let prom: ChildProcess | undefined;
  let promExited: Promise<unknown> | undefined;
  let promLog = '';
  let promUrl = '';
  let dir = '';
  const pool = new ClientPool();

  const api = async <T = any>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const res = await fetch(`${promUrl}${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = (q: string) =>
    api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(
      '/api/v1/query',
      { query: q },
    );

  beforeAll(async () => {
    const prometheusBin = need('prometheus');
    need('promtool');
    cluster = await startCluster({
      gateways: 2,
      routers: 2,
      // A dm nobody acks is dead-lettered after one attempt of 300 ms, so rtgw_dead_letters_total exists.
      env: { RTGW_DM_ACK_TIMEOUT_MS: '300', RTGW_DM_MAX_ATTEMPTS: '1' },
    });
    const c = cluster;

    // Traffic, so every labelled series exists: connects on both gateways, join, pub, a dm and its ack,
    // a dm never acked (dead letter), a refused connection (unauthorized), a closed connection.
    const [ua, ub] = [uid('pa'), uid('pb')];
    const room = uid('prom-room');
    const a = await pool.connect(c.gateways[0]!.url, { token: await c.token(ua) });
    const b = await pool.connect(c.gateways[1]!.url, { token: await c.token(ub) });
    await a.ok({ t: 'join', room });
    await b.ok({ t: 'join', room });
    await a.ok({ t: 'pub', room, data: { hello: 1 } });
    await b.waitForMsgs(room, 1);
    const sent = await a.ok({ t: 'dm', to: ub, data: { n: 1 } });
    const dm = await b.next((f) => f.t === 'dm' && f.seq === sent.seq, 5000, 0, 'dm 1');
    b.sendJson({ t: 'ack', seq: dm.seq });
    const unacked = await a.ok({ t: 'dm', to: ub, data: { n: 2 } });
    await b.next((f) => f.t === 'dm' && f.seq === unacked.seq, 5000, 0, 'dm 2');
    const refused = await pool.refused(c.gateways[1]!.url, {});
    expect(refused.status ?? refused.code, `a connection without a token is refused: ${refused.message}`).toBeDefined();
    const extra = await pool.connect(c.gateways[1]!.url, { token: await c.token(uid('pc')) });
    await extra.close();
    await waitFor(
      async () => {
        for (const r of c.routers) {
          const text = await (await fetch(`${r.adminUrl}/metrics`)).text();
          if (/^rtgw_dead_letters_total\{[^}]*reason="attempts"/m.test(text)) return true;
        }
        return false;
      },
      10_000,
      'a router to count the unacknowledged dm as a dead letter',
    );

    // Prometheus on a free loopback port, scraping every node's admin port each second.
    dir = mkdtempSync(join(tmpdir(), 'rtgw-prom-'));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const targets = (nodes: readonly { adminPort: number }[]) =>
      JSON.stringify(nodes.map((n) => `127.0.0.1:${n.adminPort}`));
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(alertsFile)}`,
      'scrape_configs:',
      '  - job_name: rtgw-gateway',
      `    static_configs: [{ targets: ${targets(c.gateways)} }]`,
      '  - job_name: rtgw-router',
      `    static_configs: [{ targets: ${targets(c.routers)} }]`,
      '',
    ].join('\n');
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, config);
    prom = spawn(
      prometheusBin,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer) => {
      promLog = (promLog + d.toString()).slice(-8000);
    };
    prom.stdout!.on('data', keep);
    prom.stderr!.on('data', keep);
    promExited = new Promise((r) => prom!.once('exit', r));
    try {
      await waitFor(
        async () => prom!.exitCode === null && (await fetch(`${promUrl}/-/ready`)).status === 200,
        15_000,
        'prometheus /-/ready',
      );
      await waitFor(
        async () => {
          const t = await api<{ activeTargets: { health: string }[] }>('/api/v1/targets');
          return t.activeTargets.length === c.nodes.length && t.activeTargets.every((x) => x.health === 'up');
        },
        15_000,
        `all ${c.nodes.length} targets up`,
      );
    } catch (err) {
      throw new Error(`prometheus did not come up: ${String(err)}\n--- prometheus log ---\n${promLog}`, { cause: err });
    }
  }, 60_000);

  afterAll(async () => {
    await pool.closeAll();
    if (prom?.pid !== undefined && prom.exitCode === null) {
      process.kill(prom.pid, 'SIGTERM');
      const killer = setTimeout(() => prom?.pid !== undefined && process.kill(prom.pid, 'SIGKILL'), 5000);
      await promExited;
      clearTimeout(killer);
    }
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('every PromQL expression of the dashboard returns data', async () => {
    expect(dashboardExprs.length).toBeGreaterThan(20);
    const empty = new Map<string, string>();
    // Rates need two scrapes of a series; give the freshly created ones a few seconds.
    const deadline = Date.now() + 20_000;
    for (;;) {
      empty.clear();
      for (const { panel, expr } of dashboardExprs) {
        const q = substitute(expr);
        expect(q, `unsubstituted variable in "${panel}"`).not.toMatch(/\$/);
        let res;
        try {
          res = await query(q);
        } catch (err) {
          throw new Error(`panel "${panel}": query ${q} failed: ${String(err)}`, { cause: err });
        }
        if (res.result.length === 0) empty.set(q, panel);
      }
      if (empty.size === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(
      [...empty].map(([q, p]) => `${p}: ${q}`),
      'dashboard queries with an empty result',
    ).toEqual([]);
  }, 40_000);

  it('the dashboard sees the cluster as it is: 2 ready gateways, all slots owned by 2 routers, 2 connections', async () => {
    const ready = await query(
      'count((up{job="rtgw-gateway"} == 1) and on (job, instance) (min by (job, instance) (rtgw_upstream_up{role="gateway"}) == 1))',
    );
    expect(ready.result.map((r) => Number(r.value[1]))).toEqual([2]);
    const owners = await query('max by (instance) (rtgw_slots_owned{role="router"})');
    expect(owners.result).toHaveLength(2);
    const total = await query('max(rtgw_slots_total{role="router"})');
    const owned = owners.result.reduce((s, r) => s + Number(r.value[1]), 0);
    expect(owned).toBe(Number(total.result[0]!.value[1]));
    const conns = await query('sum(rtgw_connections{role=~"gateway|standalone"})');
    expect(Number(conns.result[0]!.value[1])).toBe(2);
    const rejected = await query('sum by (reason) (rtgw_connections_rejected_total)');
    expect(rejected.result.map((r) => r.metric.reason)).toContain('unauthorized');
  });

  it('every alert rule evaluates without error; the dead-letter alert fires and the outage alerts stay quiet', async () => {
    for (const a of alerts) {
      // Straight through the query API: a PromQL error is a failed request.
      await expect(query(a.expr), `${a.alert}: ${a.expr}`).resolves.toBeDefined();
    }
    type ApiRule = {
      name: string;
      type: string;
      health: string;
      lastError?: string;
      state?: string;
      lastEvaluation: string;
    };
    const loaded = async () =>
      (await api<{ groups: { rules: ApiRule[] }[] }>('/api/v1/rules')).groups.flatMap((g) => g.rules);
    await waitFor(
      async () => {
        const rules = await loaded();
        return rules.length === alerts.length && rules.every((r) => !r.lastEvaluation.startsWith('0001'));
      },
      10_000,
      'every rule evaluated once',
    );
    await waitFor(
      async () => (await loaded()).some((r) => r.name === 'RtgwDeadLetters' && r.state === 'firing'),
      10_000,
      'RtgwDeadLetters firing',
    );
    const rules = await loaded();
    expect(rules.map((r) => r.name).sort()).toEqual(alerts.map((a) => a.alert).sort());
    for (const r of rules)
      expect({ name: r.name, health: r.health, lastError: r.lastError ?? '' }).toEqual({
        name: r.name,
        health: 'ok',
        lastError: '',
      });
    const active = rules.filter((r) => r.state !== 'inactive').map((r) => r.name);
    for (const quiet of [
      'RtgwNoReadyGateway',
      'RtgwTargetDown',
      'RtgwUpstreamDisconnected',
      'RtgwSlotsUnowned',
      'RtgwFileDescriptorsNearLimit',
    ]) {
      expect(active, `${quiet} is ${rules.find((r) => r.name === quiet)?.state} on a healthy cluster`).not.toContain(
        quiet,
      );
    }
  });
});
