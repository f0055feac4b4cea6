// loadConfig / describeConfig: defaults, refusals with the offending variable named, development mode,
// and a description that is safe to log. loadBusClientConfig: the NATS URL and prefix alone, validated alike.
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadBusClientConfig, loadConfig, type Config } from '../../shared/config.js';

const SECRET = 's3cret-'.padEnd(40, 'x');
const cluster = { RTGW_NATS_URL: 'nats://127.0.0.1:4222', RTGW_REDIS_URL: 'redis://127.0.0.1:6379' };

/** Runs fn and returns the ConfigError it throws; fails the test when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).name).toBe('ConfigError');
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('defaults', () => {
  it('standalone with an empty environment', () => {
    const c = loadConfig('standalone', {});
    expect(c).toMatchObject({
      role: 'standalone',
      host: '0.0.0.0',
      port: 8080,
      adminPort: 8081,
      prefix: 'rtgw',
      logLevel: 'info',
      drainSeconds: 10,
      maxMessageBytes: 65536,
      rateLimit: 500,
      maxBackpressureBytes: 1048576,
      historyMaxMessages: 1000,
      historyMaxAgeMs: 24 * 3600 * 1000,
      dedupWindowMs: 3600 * 1000,
    });
    expect(c.natsUrls).toBeUndefined();
    expect(c.redisUrl).toBeUndefined();
    expect(c.nodeId).toMatch(/^[A-Za-z0-9_\-:@.]{1,128}$/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('node ids differ between two loads when RTGW_NODE_ID is not set', () => {
    expect(loadConfig('standalone', {}).nodeId).not.toBe(loadConfig('standalone', {}).nodeId);
  });

  it('reads every documented variable', () => {
    const c = loadConfig('gateway', {
      ...cluster,
      RTGW_NATS_URL: 'nats://a:4222, nats://b:4222',
      RTGW_JWT_SECRET: SECRET,
      RTGW_JWT_ISSUER: 'iss',
      RTGW_JWT_AUDIENCE: 'aud',
      RTGW_PORT: '9000',
      RTGW_HOST: '127.0.0.1',
      RTGW_ADMIN_PORT: '9001',
      RTGW_ALLOWED_ORIGINS: 'https://a.example, https://b.example',
      RTGW_NATS_PREFIX: 'blue_1',
      RTGW_NODE_ID: 'gw-1',
      RTGW_LOG_LEVEL: 'debug',
      RTGW_DRAIN_SECONDS: '3',
      RTGW_MAX_MESSAGE_BYTES: '1024',
      RTGW_RATE_LIMIT: '7',
      RTGW_MAX_BACKPRESSURE_BYTES: '4096',
    });
    expect(c).toMatchObject({
      role: 'gateway',
      natsUrls: ['nats://a:4222', 'nats://b:4222'],
      redisUrl: 'redis://127.0.0.1:6379',
      port: 9000,
      host: '127.0.0.1',
      adminPort: 9001,
      allowedOrigins: ['https://a.example', 'https://b.example'],
      prefix: 'blue_1',
      nodeId: 'gw-1',
      logLevel: 'debug',
      drainSeconds: 3,
      maxMessageBytes: 1024,
      rateLimit: 7,
      maxBackpressureBytes: 4096,
      devMode: false,
    });
    expect(c.jwt).toMatchObject({ secret: SECRET, issuer: 'iss', audience: 'aud' });
  });

  it('a gateway with a key allows no browser origin by default', () => {
    const c = loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: SECRET });
    expect(c.devMode).toBe(false);
    expect(c.allowedOrigins).toEqual([]);
  });
});

describe('bad integers name the variable', () => {
  it.each([
    ['RTGW_PORT', 'abc'],
    ['RTGW_PORT', '80.5'],
    ['RTGW_PORT', '-1'],
    ['RTGW_PORT', '65536'],
    ['RTGW_PORT', '12abc'],
    ['RTGW_ADMIN_PORT', 'x'],
    ['RTGW_RATE_LIMIT', '0'],
    ['RTGW_RATE_LIMIT', 'fast'],
    ['RTGW_MAX_MESSAGE_BYTES', '1.5'],
    ['RTGW_MAX_BACKPRESSURE_BYTES', 'NaN'],
    ['RTGW_DRAIN_SECONDS', 'Infinity'],
    ['RTGW_DRAIN_SECONDS', '-5'],
    ['RTGW_PORT', '  '],
    ['RTGW_PORT', '0x1F90'],
    ['RTGW_PORT', '1e3'],
  ])('%s=%j', (name, value) => {
    const e = configError(() => loadConfig('standalone', { [name]: value }));
    expect(e.message).toContain(name);
    expect(e.message).toContain(value);
  });

  it('a byte rate that could never let a frame of the largest size through is refused', () => {
    expect(configError(() => loadConfig('standalone', { RTGW_RATE_LIMIT_BYTES: '16384' })).message).toContain(
      'RTGW_RATE_LIMIT_BYTES',
    );
    expect(loadConfig('standalone', { RTGW_RATE_LIMIT_BYTES: '32768' }).rateLimitBytes).toBe(32768); // bursts of 64 KiB
  });

  it('an empty value means the default', () => {
    expect(loadConfig('standalone', { RTGW_PORT: '' }).port).toBe(8080);
  });
});

describe('roles and services', () => {
  it('refuses an unknown role', () => {
    expect(configError(() => loadConfig('proxy', {})).message).toContain('proxy');
  });

  it.each(['gateway', 'router'])('%s without NATS and Redis', (role) => {
    const e = configError(() => loadConfig(role, { RTGW_JWT_SECRET: SECRET }));
    expect(e.message).toMatch(/RTGW_NATS_URL/);
    expect(e.message).toMatch(/RTGW_REDIS_URL/);
  });

  it.each([
    ['gateway', 'NATS only', { RTGW_NATS_URL: cluster.RTGW_NATS_URL }],
    ['gateway', 'Redis only', { RTGW_REDIS_URL: cluster.RTGW_REDIS_URL }],
    ['router', 'NATS only', { RTGW_NATS_URL: cluster.RTGW_NATS_URL }],
    ['router', 'Redis only', { RTGW_REDIS_URL: cluster.RTGW_REDIS_URL }],
    ['standalone', 'NATS only', { RTGW_NATS_URL: cluster.RTGW_NATS_URL }],
    ['standalone', 'Redis only', { RTGW_REDIS_URL: cluster.RTGW_REDIS_URL }],
  ])('%s with %s', (role, _n, env) => {
    configError(() => loadConfig(role, { RTGW_JWT_SECRET: SECRET, ...env }));
  });

  it('standalone with both NATS and Redis is a cluster node', () => {
    const c = loadConfig('standalone', { ...cluster, RTGW_JWT_SECRET: SECRET });
    expect(c.natsUrls).toEqual([cluster.RTGW_NATS_URL]);
    expect(c.redisUrl).toBe(cluster.RTGW_REDIS_URL);
    expect(c.devMode).toBe(false);
  });

  it('refuses a prefix that could add subject tokens or key separators', () => {
    for (const p of ['a.b', 'a*', 'a:b', 'a{b}', 'x'.repeat(33)]) {
      expect(configError(() => loadConfig('standalone', { RTGW_NATS_PREFIX: p })).message).toContain(
        'RTGW_NATS_PREFIX',
      );
    }
  });

  it('refuses a node id outside the name alphabet', () => {
    expect(configError(() => loadConfig('standalone', { RTGW_NODE_ID: 'a b' })).message).toContain('RTGW_NODE_ID');
  });

  it('refuses an unknown log level', () => {
    expect(configError(() => loadConfig('standalone', { RTGW_LOG_LEVEL: 'loud' })).message).toContain('RTGW_LOG_LEVEL');
  });
});

describe('token keys', () => {
  it('a gateway without a key refuses to start, naming the variables', () => {
    const e = configError(() => loadConfig('gateway', cluster));
    expect(e.message).toContain('RTGW_JWT_SECRET');
  });

  it('a router without a key refuses to start too (the contract: every role but standalone)', () => {
    expect(configError(() => loadConfig('router', cluster)).message).toContain('RTGW_JWT_SECRET');
  });

  it.each([
    ['secret', { RTGW_JWT_SECRET: SECRET }],
    ['public key', { RTGW_JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----' }],
    ['JWKS URL', { RTGW_JWT_JWKS_URL: 'https://issuer.example/.well-known/jwks.json' }],
  ])('a gateway starts with one key: %s', (_n, env) => {
    const c = loadConfig('gateway', { ...cluster, ...env });
    expect(c.devMode).toBe(false);
  });

  it('standalone without a key is development mode with a random secret and every origin allowed', () => {
    const a = loadConfig('standalone', {});
    const b = loadConfig('standalone', {});
    expect(a.devMode).toBe(true);
    expect(a.allowedOrigins).toEqual(['*']);
    expect(typeof a.jwt.secret).toBe('string');
    expect(Buffer.byteLength(a.jwt.secret!)).toBeGreaterThanOrEqual(32);
    expect(a.jwt.secret).not.toBe(b.jwt.secret);
  });

  it('development mode still honours RTGW_ALLOWED_ORIGINS', () => {
    expect(loadConfig('standalone', { RTGW_ALLOWED_ORIGINS: 'https://x.example' }).allowedOrigins).toEqual([
      'https://x.example',
    ]);
  });

  it('standalone with a key is not development mode and allows no browser origin by default', () => {
    const c = loadConfig('standalone', { RTGW_JWT_SECRET: SECRET });
    expect(c.devMode).toBe(false);
    expect(c.jwt.secret).toBe(SECRET);
    expect(c.allowedOrigins).toEqual([]);
  });

  it.each([
    { RTGW_JWT_SECRET: SECRET, RTGW_JWT_PUBLIC_KEY: 'pem' },
    { RTGW_JWT_SECRET: SECRET, RTGW_JWT_JWKS_URL: 'https://x/jwks' },
    { RTGW_JWT_PUBLIC_KEY: 'pem', RTGW_JWT_JWKS_URL: 'https://x/jwks' },
    { RTGW_JWT_SECRET: SECRET, RTGW_JWT_PUBLIC_KEY: 'pem', RTGW_JWT_JWKS_URL: 'https://x/jwks' },
  ])('more than one key is refused: %j', (env) => {
    configError(() => loadConfig('standalone', env));
    configError(() => loadConfig('gateway', { ...cluster, ...env }));
  });

  it('a JWKS URL over plain http:// is refused, naming the variable (section 7.1)', () => {
    for (const role of ['gateway', 'router', 'standalone'] as const) {
      const e = configError(() =>
        loadConfig(role, { ...cluster, RTGW_JWT_JWKS_URL: 'http://issuer.example/.well-known/jwks.json' }),
      );
      expect(e.message).toContain('RTGW_JWT_JWKS_URL');
    }
    expect(loadConfig('gateway', { ...cluster, RTGW_JWT_JWKS_URL: 'https://issuer.example/jwks' }).jwt.jwksUrl).toBe(
      'https://issuer.example/jwks',
    );
  });

  it('RTGW_JWT_MAX_AGE_SEC is read in seconds; unset or 0 means no maximum age; a bad value names it', () => {
    expect(
      loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: SECRET, RTGW_JWT_MAX_AGE_SEC: '3600' }).jwt.maxAgeSec,
    ).toBe(3600);
    expect(loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: SECRET }).jwt.maxAgeSec).toBeUndefined();
    expect(
      loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: SECRET, RTGW_JWT_MAX_AGE_SEC: '0' }).jwt.maxAgeSec,
    ).toBeUndefined();
    for (const bad of ['-1', '1h', '1.5']) {
      const e = configError(() =>
        loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: SECRET, RTGW_JWT_MAX_AGE_SEC: bad }),
      );
      expect(e.message).toContain('RTGW_JWT_MAX_AGE_SEC');
    }
  });

  it('a HS256 secret under 32 bytes is refused', () => {
    const e = configError(() => loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: 'x'.repeat(31) }));
    expect(e.message).toContain('RTGW_JWT_SECRET');
    expect(e.message).not.toContain('x'.repeat(31));
    expect(loadConfig('gateway', { ...cluster, RTGW_JWT_SECRET: 'x'.repeat(32) }).jwt.secret).toBe('x'.repeat(32));
  });
});

describe('describeConfig', () => {
  const natsPass = 'natsPassw0rd';
  const redisPass = 'redisPassw0rd';
  const cases: [string, Record<string, string>][] = [
    ['secret', { ...cluster, RTGW_JWT_SECRET: SECRET }],
    [
      'public key',
      { ...cluster, RTGW_JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nPEMBODY123\n-----END PUBLIC KEY-----' },
    ],
    [
      'credentials in URLs',
      {
        RTGW_JWT_SECRET: SECRET,
        RTGW_NATS_URL: `nats://alice:${natsPass}@n1:4222,nats://bob:${natsPass}2@n2:4222`,
        RTGW_REDIS_URL: `redis://default:${redisPass}@r1:6379/0`,
      },
    ],
    [
      'a password-only Redis URL',
      { RTGW_JWT_SECRET: SECRET, RTGW_NATS_URL: 'nats://n1', RTGW_REDIS_URL: `rediss://:${redisPass}@r1` },
    ],
    [
      'a NATS token URL',
      { RTGW_JWT_SECRET: SECRET, RTGW_NATS_URL: `nats://${natsPass}@n1`, RTGW_REDIS_URL: 'redis://r1' },
    ],
    [
      'a raw @ in a Redis password',
      { RTGW_JWT_SECRET: SECRET, RTGW_NATS_URL: 'nats://n1', RTGW_REDIS_URL: `redis://u:${redisPass}@x@r1:6379` },
    ],
    [
      'a NATS URL without a scheme',
      { RTGW_JWT_SECRET: SECRET, RTGW_NATS_URL: `alice:${natsPass}@n1:4222`, RTGW_REDIS_URL: 'redis://r1' },
    ],
    [
      'a percent-encoded @ in a password',
      { RTGW_JWT_SECRET: SECRET, RTGW_NATS_URL: 'nats://n1', RTGW_REDIS_URL: `redis://u:${redisPass}%40x@r1` },
    ],
  ];

  it.each(cases)('never shows the %s', (_n, env) => {
    const c = loadConfig('router', env);
    const text = JSON.stringify(describeConfig(c as Config));
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('PEMBODY123');
    expect(text).not.toContain(natsPass);
    expect(text).not.toContain(redisPass);
  });

  it('never shows the development-mode secret', () => {
    const c = loadConfig('standalone', {});
    const text = JSON.stringify(describeConfig(c as Config));
    expect(text).not.toContain(c.jwt.secret!);
  });

  it('keeps what an operator needs to see', () => {
    const c = loadConfig('router', {
      RTGW_JWT_SECRET: SECRET,
      RTGW_NATS_URL: `nats://alice:${natsPass}@n1:4222`,
      RTGW_REDIS_URL: `redis://default:${redisPass}@r1:6379/0`,
      RTGW_NODE_ID: 'router-7',
    });
    const d = describeConfig(c as Config);
    expect(d).toMatchObject({ role: 'router', nodeId: 'router-7', port: 8080 });
    const text = JSON.stringify(d);
    expect(text).toContain('n1:4222');
    expect(text).toContain('r1:6379/0');
    // describing does not change the configuration itself
    expect(c.jwt.secret).toBe(SECRET);
    expect(c.redisUrl).toContain(redisPass);
  });
});

describe('loadBusClientConfig (rtgw deadletters)', () => {
  it('reads the NATS URLs and the prefix, and needs nothing else (no Redis, no token key)', () => {
    const c = loadBusClientConfig({ RTGW_NATS_URL: ' nats://a:4222, nats://b:4222 ', RTGW_NATS_PREFIX: 'blue_1' });
    expect(c).toEqual({ natsUrls: ['nats://a:4222', 'nats://b:4222'], prefix: 'blue_1' });
    expect(Object.isFrozen(c)).toBe(true);
    expect(loadBusClientConfig({ RTGW_NATS_URL: 'nats://a:4222', RTGW_NATS_PREFIX: '' }).prefix).toBe('rtgw');
  });

  it('refuses a missing NATS URL and, as loadConfig does, a prefix that could add subject tokens', () => {
    for (const url of [undefined, '', ' , ']) {
      expect(configError(() => loadBusClientConfig({ RTGW_NATS_URL: url })).message).toContain('RTGW_NATS_URL');
    }
    for (const p of ['a.b', 'a*', 'a:b', 'x'.repeat(33)]) {
      expect(
        configError(() => loadBusClientConfig({ RTGW_NATS_URL: 'nats://a:4222', RTGW_NATS_PREFIX: p })).message,
      ).toContain('RTGW_NATS_PREFIX');
    }
  });
});
