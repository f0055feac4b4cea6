// Starts real rtgw processes (`node dist/cli.js <role>`) on free loopback ports and waits for /readyz.
// Every child is tracked by PID and SIGKILLed when the test worker exits, so a failing test never leaves
// one behind. Ports are picked here (bind 127.0.0.1:0, close): RTGW_PORT=0 is not part of the contract.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { freePort } from '../../bench/launcher.js';
import { startNats } from './nats.js';
import { startRedis } from './redis.js';

export type Role = 'standalone' | 'gateway' | 'router';
export type Env = Record<string, string | undefined>;
export type NatsServer = Awaited<ReturnType<typeof startNats>>;
export type RedisServer = Awaited<ReturnType<typeof startRedis>>;

const root = fileURLToPath(new URL('../../', import.meta.url));
const cliPath = join(root, 'dist', 'cli.js');
const LOG_LINES = 1000;
const ERROR_LOG_LINES = 200;

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping: whatever is still alive when the worker exits is killed by PID.

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      if (c.pid === undefined) continue;
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Free ports: the launcher's, so a node never gets a port it handed to nats-server or redis-server.

export { freePort } from '../../bench/launcher.js';

// ---------------------------------------------------------------------------------------------------
// One node

export interface Node {
  readonly role: Role;
  readonly pid: number;
  /** Public ws/http port (unused by routers, still reserved). */
  readonly port: number;
  readonly adminPort: number;
  /** ws://127.0.0.1:port/ws */
  readonly url: string;
  /** http://127.0.0.1:port */
  readonly httpUrl: string;
  /** http://127.0.0.1:adminPort */
  readonly adminUrl: string;
  /** RTGW_NODE_ID when it was given, else undefined. */
  readonly nodeId: string | undefined;
  /** The environment the process was started with (RTGW_* part). */
  readonly env: Readonly<Env>;
  /** Last stdout/stderr lines (stderr lines prefixed with `[stderr] `). */
  logs(): string[];
  /** Log lines parsed as JSON (pino); unparseable lines are skipped. */
  logRecords(): Record<string, unknown>[];
  /** Sends a signal (default SIGKILL) by PID; no-op once exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM (after SIGCONT if paused), waits for exit (SIGKILL after `timeoutMs`); resolves the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  pause(): void;
  resume(): void;
  /** Exit code, or null when ended by a signal. Never rejects. */
  readonly exited: Promise<number | null>;
  /** True once the process has exited. */
  readonly hasExited: boolean;
  /** Signal that ended it, when one did. */
  readonly exitSignal: NodeJS.Signals | null;
}

export interface StartNodeOptions {
  /** Deadline for /readyz = 200 (default 20 s). */
  readyTimeoutMs?: number;
  /** Skip waiting for /readyz (still waits for /healthz). */
  waitReady?: boolean;
}

/** Last log lines of a node, for error messages. */
export function tail(node: Pick<Node, 'logs'>, n = ERROR_LOG_LINES): string {
  return node.logs().slice(-n).join('\n');
}

/**
 * Spawns `node dist/cli.js <role>` with a clean RTGW_* environment (the parent's RTGW_* variables are
 * dropped; `env` is added). RTGW_HOST defaults to 127.0.0.1, RTGW_PORT / RTGW_ADMIN_PORT to free ports.
 * Resolves once GET /readyz answers 200; rejects (and kills the process) on early exit or after the
 * deadline, with the captured log in the message.
 */
export async function startNode(role: Role, env: Env = {}, opts: StartNodeOptions = {}): Promise<Node> {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} not found: run \`npm run build\` first`);
  const port = env.RTGW_PORT !== undefined ? Number(env.RTGW_PORT) : await freePort();
  const adminPort = env.RTGW_ADMIN_PORT !== undefined ? Number(env.RTGW_ADMIN_PORT) : await freePort();
  const rtgwEnv: Env = {
    RTGW_HOST: '127.0.0.1',
    RTGW_DRAIN_SECONDS: '1',
    ...env,
    RTGW_PORT: String(port),
    RTGW_ADMIN_PORT: String(adminPort),
  };
  const childEnv: Env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTGW_')) childEnv[k] = v;
  for (const [k, v] of Object.entries(rtgwEnv)) if (v !== undefined) childEnv[k] = v;

  const child = spawn(process.execPath, [cliPath, role], {
    cwd: root,
    env: childEnv as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const lines: string[] = [];
  const push = (l: string) => {
    lines.push(l);
    if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
  };
  createInterface({ input: child.stdout! }).on('line', push);
  createInterface({ input: child.stderr! }).on('line', (l) => push(`[stderr] ${l}`));

  let hasExited = false;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      exitSignal = signal;
      resolve(code);
    });
    child.once('error', (err) => {
      push(`[spawn error] ${err.message}`);
      hasExited = true;
      resolve(null);
    });
  });
  if (child.pid === undefined) {
    await exited;
    throw new Error(`could not spawn ${role}: ${lines.join('\n')}`);
  }
  const pid = child.pid;
  const signal = (sig: NodeJS.Signals) => {
    if (hasExited) return;
    try {
      process.kill(pid, sig);
    } catch {
      // raced with exit
    }
  };

  const node: Node = {
    role,
    pid,
    port,
    adminPort,
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    nodeId: rtgwEnv.RTGW_NODE_ID,
    env: Object.freeze({ ...rtgwEnv }),
    logs: () => lines.slice(),
    logRecords: () => {
      const out: Record<string, unknown>[] = [];
      for (const l of lines) {
        if (!l.startsWith('{')) continue;
        try {
          out.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // not JSON
        }
      }
      return out;
    },
    kill: (sig: NodeJS.Signals = 'SIGKILL') => signal(sig),
    stop: async (timeoutMs = 15_000) => {
      if (!hasExited) {
        signal('SIGCONT');
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), timeoutMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    exited,
    get hasExited() {
      return hasExited;
    },
    get exitSignal() {
      return exitSignal;
    },
  };

  const deadlineMs = opts.readyTimeoutMs ?? 20_000;
  const path = opts.waitReady === false ? '/healthz' : '/readyz';
  try {
    await waitHttp200(`${node.adminUrl}${path}`, deadlineMs, exited);
    // Readiness is the contract's signal, but a test also needs the public port: wait for it too, so a
    // node that reports ready before it listens fails here with a clear message instead of ECONNREFUSED
    // in some test (admin.test.ts checks that ordering itself).
    if (role !== 'router' && opts.waitReady !== false) await waitTcp(port, 10_000, exited);
  } catch (err) {
    signal('SIGKILL');
    await exited;
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `rtgw ${role} (pid ${pid}, port ${port}, admin ${adminPort}) did not become ready: ${why}\n` +
        `--- last log lines ---\n${tail(node)}`,
      { cause: err },
    );
  }
  return node;
}

/** Polls `url` until it answers 200; rejects on `exited` or after `timeoutMs`. */
async function waitHttp200(url: string, timeoutMs: number, exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone: string | undefined;
  void exited.then((code) => {
    gone = `process exited early with code ${code}`;
  });
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(gone);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200) return;
      last = `${res.status} ${body.slice(0, 300)}`;
    } catch (err) {
      last = err instanceof Error ? `${err.message}` : String(err);
    }
    if (gone !== undefined) throw new Error(gone);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`GET ${url} not 200 within ${timeoutMs} ms (last: ${last})`);
}

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; rejects on `exited` or after `timeoutMs`. */
export async function waitTcp(port: number, timeoutMs: number, exited?: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited?.then(() => (gone = true));
  while (Date.now() < deadline && !gone) {
    if (await tcpOpen(port)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    gone
      ? 'process exited before its public port accepted connections'
      : `public port ${port} not accepting connections within ${timeoutMs} ms`,
  );
}

/** True when a TCP connection to 127.0.0.1:`port` succeeds (it is closed at once). */
export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connectTcp({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** GET an admin/public URL: status, body text and parsed JSON when it is JSON. */
export async function httpGet(
  url: string,
  timeoutMs = 3000,
): Promise<{ status: number; body: string; json?: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: res.status, body, json };
}

// ---------------------------------------------------------------------------------------------------
// Tokens

export interface TokenOptions {
  /** Seconds from now until `exp` (default 3600); negative gives an expired token. */
  expIn?: number;
  /** Leave `exp` out. */
  noExp?: boolean;
  /** `nbf` this many seconds from now. */
  nbfIn?: number;
  /** `iss` to put in (default the cluster's issuer); null leaves it out. */
  iss?: string | null;
  /** `aud` to put in (default the cluster's audience); null leaves it out. */
  aud?: string | null;
  /** Signing algorithm (default HS256); 'none' makes an unsigned token. */
  alg?: 'HS256' | 'HS384' | 'HS512' | 'none';
  /** Sign with this secret instead of the configured one (bad signature). */
  secret?: string;
}

export interface TokenDefaults {
  secret: string;
  issuer?: string;
  audience?: string;
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * An HS256 JWT for `sub` (null leaves `sub` out) with extra `claims` (e.g. `rooms`, `pub`). Claims
 * given in `claims` override the computed ones.
 */
export async function signToken(
  defaults: TokenDefaults,
  sub: string | null,
  claims: Record<string, unknown> = {},
  opts: TokenOptions = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { iat: now };
  if (sub !== null) payload.sub = sub;
  if (!opts.noExp) payload.exp = now + (opts.expIn ?? 3600);
  if (opts.nbfIn !== undefined) payload.nbf = now + opts.nbfIn;
  const iss = opts.iss === undefined ? defaults.issuer : opts.iss;
  const aud = opts.aud === undefined ? defaults.audience : opts.aud;
  if (iss !== null && iss !== undefined) payload.iss = iss;
  if (aud !== null && aud !== undefined) payload.aud = aud;
  Object.assign(payload, claims);
  const alg = opts.alg ?? 'HS256';
  if (alg === 'none') return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`;
  const key = new TextEncoder().encode(opts.secret ?? defaults.secret);
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

// ---------------------------------------------------------------------------------------------------
// A cluster: nats-server + redis-server + routers + gateways, one prefix, one secret

export interface ClusterOptions {
  gateways?: number;
  routers?: number;
  /** Extra RTGW_* settings for every node. */
  env?: Env;
  /** Extra settings per node, applied after `env`. */
  nodeEnv?: (role: Role, index: number) => Env;
}

export interface Cluster {
  readonly prefix: string;
  readonly secret: string;
  readonly issuer: string;
  readonly audience: string;
  readonly nats: NatsServer;
  readonly redis: RedisServer;
  readonly routers: Node[];
  readonly gateways: Node[];
  /** Every node started through this cluster, including ones added with `add`. */
  readonly nodes: Node[];
  /** The environment every node gets (before per-node settings). */
  readonly env: Readonly<Env>;
  token(sub: string | null, claims?: Record<string, unknown>, opts?: TokenOptions): Promise<string>;
  /** Starts one more node of this cluster (its own ports, the cluster's prefix, secret and servers). */
  add(role: Role, env?: Env): Promise<Node>;
  /** Last log lines of every node, for failure messages. */
  logs(n?: number): string;
  /** Stops gateways, routers, then the servers. Safe to call twice; never throws. */
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  const issuer = 'rtgw-test-issuer';
  const audience = 'rtgw-test-audience';
  const nodes: Node[] = [];
  const routers: Node[] = [];
  const gateways: Node[] = [];
  let nats: NatsServer | undefined;
  let redis: RedisServer | undefined;
  let stopping: Promise<void> | undefined;

  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      const byRole = (r: Role) => nodes.filter((n) => n.role === r);
      for (const group of [byRole('gateway'), byRole('standalone'), byRole('router')]) {
        await Promise.all(group.map((n) => n.stop(5000).catch(() => null)));
      }
      await Promise.all([nats?.stop().catch(() => undefined), redis?.stop().catch(() => undefined)]);
    })();
    return stopping;
  };

  try {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env: Env = {
      RTGW_NATS_URL: nats.url,
      RTGW_REDIS_URL: redis.url,
      RTGW_NATS_PREFIX: prefix,
      RTGW_JWT_SECRET: secret,
      RTGW_JWT_ISSUER: issuer,
      RTGW_JWT_AUDIENCE: audience,
      RTGW_LOG_LEVEL: 'info',
      ...opts.env,
    };
    const counters: Record<Role, number> = { standalone: 0, gateway: 0, router: 0 };
    const add = async (role: Role, extra: Env = {}, index?: number): Promise<Node> => {
      const i = index ?? counters[role]++;
      const node = await startNode(role, {
        RTGW_NODE_ID: `${prefix}-${role}-${i}`,
        ...env,
        ...opts.nodeEnv?.(role, i),
        ...extra,
      });
      nodes.push(node);
      (role === 'router' ? routers : role === 'gateway' ? gateways : []).push(node);
      return node;
    };
    const nRouters = opts.routers ?? 2;
    const nGateways = opts.gateways ?? 2;
    // Started together per tier and reordered by index, so routers[i] / gateways[i] are stable names.
    const rs = await Promise.allSettled(Array.from({ length: nRouters }, () => add('router')));
    throwFirst(rs);
    routers.sort(byNodeId);
    const gs = await Promise.allSettled(Array.from({ length: nGateways }, () => add('gateway')));
    throwFirst(gs);
    gateways.sort(byNodeId);

    const n = nats;
    const r = redis;
    return {
      prefix,
      secret,
      issuer,
      audience,
      nats: n,
      redis: r,
      routers,
      gateways,
      nodes,
      env: Object.freeze({ ...env }),
      token: (sub, claims, o) => signToken({ secret, issuer, audience }, sub, claims, o),
      add: (role, extra) => add(role, extra),
      logs: (lines = 60) =>
        nodes.map((nd) => `--- ${nd.role} ${nd.nodeId ?? ''} pid ${nd.pid} ---\n${tail(nd, lines)}`).join('\n'),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function byNodeId(a: Node, b: Node): number {
  return (a.nodeId ?? '').localeCompare(b.nodeId ?? '', 'en', { numeric: true });
}

function throwFirst(results: PromiseSettledResult<unknown>[]): void {
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** A unique name for a test's room or user: `<base>-<8 hex>` (the contract's alphabet). */
export function uid(base = 'x'): string {
  return `${base}-${randomBytes(4).toString('hex')}`;
}
