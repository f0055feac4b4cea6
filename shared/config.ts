// The one typed loader of RTGW_* environment variables: validates, freezes, and describes itself
// with secrets redacted. Bad configuration throws ConfigError; the CLI turns it into one log line.
// loadConfig is a node's whole configuration; loadBusClientConfig the little that a command which only
// talks to the cluster over NATS (`rtgw deadletters`) needs.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DEFAULT_SLOTS } from './cluster/slots.js';

export const ROLES = ['standalone', 'gateway', 'router'] as const;
export type Role = (typeof ROLES)[number];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface JwtConfig {
  secret?: string;
  publicKey?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  clockToleranceSec: number;
  /** Tokens whose `iat` is older than this, or that have no `iat`, are refused; undefined: no limit. */
  maxAgeSec?: number;
}

export interface Config {
  role: Role;
  nodeId: string;
  host: string;
  port: number;
  adminPort: number;
  natsUrls?: string[];
  redisUrl?: string;
  prefix: string;
  jwt: JwtConfig;
  /** No key configured in standalone: a random key is made and /dev/token is served. */
  devMode: boolean;
  /** `*` allows every origin; requests without an Origin header (non-browsers) are always allowed. */
  allowedOrigins: string[];
  logLevel: string;
  drainSeconds: number;
  maxMessageBytes: number;
  rateLimit: number;
  /** Bytes of client frames per second per connection (bursts of twice that). */
  rateLimitBytes: number;
  maxBackpressureBytes: number;
  idleTimeoutSec: number;
  heartbeatMs: number;
  historyMaxMessages: number;
  historyMaxAgeMs: number;
  dedupWindowMs: number;
  slots: number;
  leaseMs: number;
  presenceTtlMs: number;
  requestTimeoutMs: number;
  dmAckTimeoutMs: number;
  dmMaxBackoffMs: number;
  dmMaxAttempts: number;
  inboxMaxAgeMs: number;
  inboxMaxMessages: number;
  /** Pending direct messages one sender may have in one recipient's inbox. */
  inboxMaxPerSender: number;
  /** Dead letters kept per slot; the oldest past it are dropped (and counted). */
  deadLettersMaxPerSlot: number;
  /** Rooms one connection may have joined. */
  maxRoomsPerConn: number;
  /** Connections of one user on one gateway. */
  maxConnsPerUser: number;
  /** Connections on one gateway; 0: no limit. */
  maxConnections: number;
  /** Upgrades accepted per second on one gateway; 0: no limit. */
  maxConnectRate: number;
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const v = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

const str = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
};

const list = (v: string | undefined): string[] | undefined =>
  v
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** RTGW_NATS_PREFIX: it starts every subject and key, so it may hold no subject token or key separator. */
function prefixOf(env: Env): string {
  const prefix = str(env, 'RTGW_NATS_PREFIX') ?? 'rtgw';
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new ConfigError('RTGW_NATS_PREFIX must be 1 to 32 characters of A-Z a-z 0-9 _ -');
  }
  return prefix;
}

/** What a client of the cluster's NATS API needs: where NATS is, and the cluster's prefix. */
export interface BusClientConfig {
  natsUrls: string[];
  prefix: string;
}

/**
 * RTGW_NATS_URL (required) and RTGW_NATS_PREFIX, validated as loadConfig validates them, and nothing
 * else: an operator's command should not need a token key or Redis to reach the cluster's API.
 */
export function loadBusClientConfig(env: Env = process.env): Readonly<BusClientConfig> {
  const natsUrls = list(str(env, 'RTGW_NATS_URL'));
  if (natsUrls === undefined || natsUrls.length === 0) throw new ConfigError('RTGW_NATS_URL is required');
  return Object.freeze({ natsUrls, prefix: prefixOf(env) });
}

export function loadConfig(role: string, env: Env = process.env): Readonly<Config> {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new ConfigError(`unknown role ${JSON.stringify(role)}; expected one of ${ROLES.join(', ')}`);
  }
  const r = role as Role;
  const natsUrls = list(str(env, 'RTGW_NATS_URL'));
  const redisUrl = str(env, 'RTGW_REDIS_URL');
  if (r !== 'standalone' && (!natsUrls || !redisUrl)) {
    throw new ConfigError(`role ${r} needs RTGW_NATS_URL and RTGW_REDIS_URL`);
  }
  if (r === 'standalone' && (natsUrls === undefined) !== (redisUrl === undefined)) {
    throw new ConfigError('standalone needs both RTGW_NATS_URL and RTGW_REDIS_URL, or neither (memory engine)');
  }
  const prefix = prefixOf(env);
  const jwt: JwtConfig = {
    secret: str(env, 'RTGW_JWT_SECRET'),
    publicKey: str(env, 'RTGW_JWT_PUBLIC_KEY'),
    jwksUrl: str(env, 'RTGW_JWT_JWKS_URL'),
    issuer: str(env, 'RTGW_JWT_ISSUER'),
    audience: str(env, 'RTGW_JWT_AUDIENCE'),
    clockToleranceSec: int(env, 'RTGW_JWT_CLOCK_TOLERANCE_SEC', 5, 0, 300),
    maxAgeSec: int(env, 'RTGW_JWT_MAX_AGE_SEC', 0, 0, 10 * 365 * 24 * 3600) || undefined,
  };
  const keyCount = [jwt.secret, jwt.publicKey, jwt.jwksUrl].filter((k) => k !== undefined).length;
  if (keyCount > 1) {
    throw new ConfigError('set only one of RTGW_JWT_SECRET, RTGW_JWT_PUBLIC_KEY, RTGW_JWT_JWKS_URL');
  }
  if (jwt.secret !== undefined && Buffer.byteLength(jwt.secret) < 32) {
    throw new ConfigError('RTGW_JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key)');
  }
  // Keys fetched over plain HTTP could be swapped by anyone on the path: every token would then be forgeable.
  if (jwt.jwksUrl !== undefined && !/^https:\/\//i.test(jwt.jwksUrl)) {
    throw new ConfigError('RTGW_JWT_JWKS_URL must be an https:// URL');
  }
  const devMode = keyCount === 0;
  if (devMode && r !== 'standalone') {
    throw new ConfigError(`role ${r} needs a token key: RTGW_JWT_SECRET, RTGW_JWT_PUBLIC_KEY or RTGW_JWT_JWKS_URL`);
  }
  if (devMode) jwt.secret = randomBytes(32).toString('base64url');
  const origins = list(str(env, 'RTGW_ALLOWED_ORIGINS')) ?? (devMode && r === 'standalone' ? ['*'] : []);
  const nodeId = str(env, 'RTGW_NODE_ID') ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  if (!/^[A-Za-z0-9_\-:@.]{1,128}$/.test(nodeId))
    throw new ConfigError('RTGW_NODE_ID has characters outside A-Z a-z 0-9 _ - : @ .');
  const port = int(env, 'RTGW_PORT', 8080, 0, 65535);
  const adminPort = int(env, 'RTGW_ADMIN_PORT', 8081, 0, 65535);
  if (port !== 0 && port === adminPort && r !== 'router')
    throw new ConfigError('RTGW_PORT and RTGW_ADMIN_PORT must differ');
  const leaseMs = int(env, 'RTGW_LEASE_MS', 5000, 500, 600_000);
  const heartbeatMs = int(env, 'RTGW_HEARTBEAT_MS', 25_000, 1000, 600_000);
  const cfg: Config = {
    role: r,
    nodeId,
    host: str(env, 'RTGW_HOST') ?? '0.0.0.0',
    port,
    adminPort,
    natsUrls,
    redisUrl,
    prefix,
    jwt,
    devMode,
    allowedOrigins: origins,
    logLevel: str(env, 'RTGW_LOG_LEVEL') ?? 'info',
    drainSeconds: int(env, 'RTGW_DRAIN_SECONDS', 10, 0, 3600),
    maxMessageBytes: int(env, 'RTGW_MAX_MESSAGE_BYTES', 64 * 1024, 256, 16 * 1024 * 1024),
    rateLimit: int(env, 'RTGW_RATE_LIMIT', 500, 1, 1_000_000),
    rateLimitBytes: int(env, 'RTGW_RATE_LIMIT_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxBackpressureBytes: int(env, 'RTGW_MAX_BACKPRESSURE_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    idleTimeoutSec: int(env, 'RTGW_IDLE_TIMEOUT_SEC', Math.max(60, Math.ceil((heartbeatMs * 2) / 1000)), 8, 3600),
    heartbeatMs,
    historyMaxMessages: int(env, 'RTGW_HISTORY_MAX_MESSAGES', 1000, 1, 1_000_000),
    historyMaxAgeMs: int(env, 'RTGW_HISTORY_MAX_AGE_MS', 24 * 3600 * 1000, 1000, 365 * 24 * 3600 * 1000),
    dedupWindowMs: int(env, 'RTGW_DEDUP_WINDOW_MS', 3600 * 1000, 1000, 7 * 24 * 3600 * 1000),
    slots: int(env, 'RTGW_SLOTS', DEFAULT_SLOTS, 1, 16384),
    leaseMs,
    presenceTtlMs: int(env, 'RTGW_PRESENCE_TTL_MS', 10_000, 500, 600_000),
    requestTimeoutMs: int(env, 'RTGW_REQUEST_TIMEOUT_MS', 5000, 100, 120_000),
    dmAckTimeoutMs: int(env, 'RTGW_DM_ACK_TIMEOUT_MS', 5000, 10, 3600_000),
    dmMaxBackoffMs: int(env, 'RTGW_DM_MAX_BACKOFF_MS', 60_000, 10, 24 * 3600_000),
    dmMaxAttempts: int(env, 'RTGW_DM_MAX_ATTEMPTS', 8, 1, 1000),
    inboxMaxAgeMs: int(env, 'RTGW_INBOX_MAX_AGE_MS', 7 * 24 * 3600_000, 1000, 365 * 24 * 3600_000),
    inboxMaxMessages: int(env, 'RTGW_INBOX_MAX_MESSAGES', 10_000, 1, 1_000_000),
    inboxMaxPerSender: int(env, 'RTGW_INBOX_MAX_PER_SENDER', 1000, 1, 1_000_000),
    deadLettersMaxPerSlot: int(env, 'RTGW_DEAD_LETTERS_MAX_PER_SLOT', 10_000, 1, 10_000_000),
    maxRoomsPerConn: int(env, 'RTGW_MAX_ROOMS_PER_CONN', 256, 1, 100_000),
    maxConnsPerUser: int(env, 'RTGW_MAX_CONNS_PER_USER', 32, 1, 1_000_000),
    maxConnections: int(env, 'RTGW_MAX_CONNECTIONS', 0, 0, 10_000_000),
    maxConnectRate: int(env, 'RTGW_MAX_CONNECT_RATE', 0, 0, 1_000_000),
  };
  if (cfg.rateLimitBytes * 2 < cfg.maxMessageBytes) {
    throw new ConfigError(
      'RTGW_RATE_LIMIT_BYTES must allow a burst (twice the rate) of at least one frame of RTGW_MAX_MESSAGE_BYTES',
    );
  }
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(cfg.logLevel)) {
    throw new ConfigError('RTGW_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent');
  }
  return Object.freeze(cfg);
}

/** The configuration as safe to log: keys and credentials in URLs replaced. */
export function describeConfig(cfg: Config): Record<string, unknown> {
  // Up to the LAST `@`: passwords may hold a raw `@`, and NATS URLs may come without a scheme.
  const hideAuth = (u: string) => u.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/i, '$1***@');
  return {
    ...cfg,
    natsUrls: cfg.natsUrls?.map(hideAuth),
    redisUrl: cfg.redisUrl && hideAuth(cfg.redisUrl),
    jwt: { ...cfg.jwt, secret: cfg.jwt.secret && '***', publicKey: cfg.jwt.publicKey && '***' },
  };
}
