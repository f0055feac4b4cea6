#!/usr/bin/env node
// `rtgw standalone|gateway|router`: loads configuration, opens the connections (the only place that
// does), composes the roles, serves the admin endpoints, and shuts down cleanly on SIGTERM/SIGINT.
import { MemoryBus } from './shared/bus/memory.js';
import type { Bus } from './shared/bus/bus.js';
import { startAdmin, type ReadyCheck } from './shared/admin.js';
import { subjects } from './shared/cluster/subjects.js';
import { ConfigError, ROLES, describeConfig, loadConfig, type Config } from './shared/config.js';
import { createLogger, type Logger } from './shared/log.js';
import { createMetrics, type Metrics } from './shared/metrics.js';
import { memoryStores } from './shared/store/memory.js';
import type { DeadLetterReason, StoreLimits, Stores } from './shared/store/ports.js';

const USAGE = `usage: rtgw <${ROLES.join('|')}>
  standalone  gateway and router in one process (memory engine unless RTGW_NATS_URL and RTGW_REDIS_URL are set)
  gateway     public WebSocket endpoint (needs NATS and Redis)
  router      rooms, sequencing, history, presence, direct-message retries (needs NATS and Redis)
  deadletters list|redrive   inspect and re-send dead-lettered direct messages (needs RTGW_NATS_URL)
Configuration is by RTGW_* environment variables; see README.md.`;

async function openEngine(cfg: Config, log: Logger, metrics: Metrics): Promise<{ bus: Bus; stores: Stores }> {
  const limits: StoreLimits = {
    maxMessages: cfg.historyMaxMessages,
    maxAgeMs: cfg.historyMaxAgeMs,
    dedupWindowMs: cfg.dedupWindowMs,
    ackTimeoutMs: cfg.dmAckTimeoutMs,
    maxBackoffMs: cfg.dmMaxBackoffMs,
    maxAttempts: cfg.dmMaxAttempts,
    inboxMaxAgeMs: cfg.inboxMaxAgeMs,
    inboxMaxMessages: cfg.inboxMaxMessages,
    inboxMaxPerSender: cfg.inboxMaxPerSender,
    deadLettersMaxPerSlot: cfg.deadLettersMaxPerSlot,
    slots: cfg.slots,
  };
  const onDeadLetter = (reason: DeadLetterReason | 'dropped', count: number) =>
    reason === 'dropped' ? metrics.deadLettersDropped.inc(count) : metrics.deadLetters.inc({ reason }, count);
  if (!cfg.natsUrls || !cfg.redisUrl) {
    log.info('memory engine: no NATS or Redis configured; state lives in this process only');
    return { bus: new MemoryBus(), stores: memoryStores(limits, { onDeadLetter }) };
  }
  // Loaded only in cluster mode so a bare standalone never touches the NATS or Redis client code.
  const [{ connectNats, NatsBus }, { openRedis, assertNoEviction }, { redisStores }] = await Promise.all([
    import('./shared/bus/nats.js'),
    import('./shared/redis/connection.js'),
    import('./shared/store/redis.js'),
  ]);
  const nc = await connectNats(cfg.natsUrls, `rtgw-${cfg.role}-${cfg.nodeId}`, (s) => {
    metrics.upstreamUp.set({ dep: 'nats' }, s.connected ? 1 : 0);
    log[s.connected ? 'info' : 'warn']({ nats: s.detail }, s.connected ? 'NATS connected' : 'NATS disconnected');
  });
  const bus = new NatsBus(nc, { onError: (e) => log.error({ err: e }, 'bus handler failed') });
  const redis = await openRedis(cfg.redisUrl, `rtgw-${cfg.role}-${cfg.nodeId}`);
  const warning = await assertNoEviction(redis);
  if (warning) log.warn(warning);
  return { bus, stores: redisStores(redis, cfg.prefix, limits, { onDeadLetter }) };
}

async function main(role: string): Promise<void> {
  let cfg: Config;
  try {
    cfg = loadConfig(role);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(JSON.stringify({ level: 60, msg: `bad configuration: ${e.message}` }) + '\n');
    process.exit(2);
  }
  const log = createLogger(cfg.logLevel, { node: cfg.nodeId, role: cfg.role });
  const fail = (msg: string, err?: unknown) => {
    log.fatal({ err }, msg);
    process.exit(1);
  };
  process.on('uncaughtException', (e) => fail('uncaught exception', e));
  // A failed request must not take every other connection down with the process.
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'));

  const hasGateway = cfg.role !== 'router';
  const hasRouter = cfg.role !== 'gateway';
  if (hasGateway) {
    try {
      (await import('./gateway/native.js')).assertNativeUws();
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e));
    }
  }
  const metrics = createMetrics(cfg.role);
  log.info({ config: describeConfig(cfg) }, 'starting');
  if (cfg.devMode && hasGateway) {
    log.warn(
      'DEVELOPMENT MODE: no token key configured; a random key was made and /dev/token hands out tokens to anyone. Never expose this.',
    );
  }

  const { bus, stores } = await openEngine(cfg, log, metrics).catch(
    (e: unknown) => fail(`cannot connect: ${e instanceof Error ? e.message : String(e)}`, e) as never,
  );
  let draining = false;
  let serving = false;
  const checks: ReadyCheck[] = [
    () => (serving ? undefined : 'starting'),
    () => (draining ? 'draining' : undefined),
    () => (bus.connected ? undefined : 'NATS not connected'),
    () => (stores.connected ? undefined : 'Redis not connected'),
  ];
  const admin = await startAdmin(cfg.host, cfg.adminPort, metrics, checks).catch(
    (e: unknown) =>
      fail(
        `cannot serve admin endpoints on ${cfg.host}:${cfg.adminPort}: ${e instanceof Error ? e.message : String(e)}`,
      ) as never,
  );

  const subj = subjects(cfg.prefix);
  const deps = { cfg, bus, stores, subj, metrics, log };
  const router = hasRouter ? await (await import('./router/index.js')).startRouter(deps) : undefined;
  if (router) checks.push(() => (router.settled ? undefined : 'slot ownership not settled'));
  const gateway = hasGateway
    ? await (
        await import('./gateway/server.js')
      )
        .startGateway(deps)
        .catch((e: unknown) => fail(e instanceof Error ? e.message : String(e), e) as never)
    : undefined;
  // Full: the load balancer should send new clients elsewhere (existing ones are fine).
  if (gateway) checks.push(() => (gateway.full ? 'full' : undefined));
  const upstream = setInterval(() => {
    metrics.upstreamUp.set({ dep: 'nats' }, bus.connected ? 1 : 0);
    metrics.upstreamUp.set({ dep: 'redis' }, stores.connected ? 1 : 0);
  }, 1000).unref();

  serving = true;
  log.info({ port: gateway?.port, adminPort: admin.port }, 'ready');
  if (cfg.role === 'standalone' && gateway) {
    const host = cfg.host === '0.0.0.0' ? 'localhost' : cfg.host;
    process.stdout.write(
      `\nrtgw standalone is listening on ws://${host}:${gateway.port}/ws (admin: http://${host}:${admin.port}/metrics)\n` +
        (cfg.devMode
          ? `demo page: http://${host}:${gateway.port}/\nget a development token: curl 'http://${host}:${gateway.port}/dev/token?user=alice'\n\n`
          : '\n'),
    );
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    draining = true;
    log.info({ signal }, 'shutting down');
    setTimeout(() => fail('shutdown took too long; forcing exit'), (cfg.drainSeconds + 15) * 1000).unref();
    clearInterval(upstream);
    await gateway?.drain();
    await router?.close();
    await bus.close().catch((e: unknown) => log.warn({ err: e }, 'bus close failed'));
    await stores.close().catch((e: unknown) => log.warn({ err: e }, 'store close failed'));
    await admin.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

const role = process.argv[2] ?? 'standalone';
if (role === '--help' || role === '-h' || role === 'help') {
  process.stdout.write(USAGE + '\n');
} else if (role === 'deadletters') {
  void import('./router/deadletters-cli.js')
    .then(({ deadLettersCommand }) => deadLettersCommand(process.argv.slice(3)))
    .then((code) => process.exit(code));
} else {
  main(role).catch((e: unknown) => {
    // Anything main did not handle itself is a startup failure: one line, non-zero exit.
    process.stderr.write(
      JSON.stringify({ level: 60, msg: `startup failed: ${e instanceof Error ? e.message : String(e)}` }) + '\n',
    );
    process.exit(1);
  });
}
