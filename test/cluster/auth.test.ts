// Connecting to a real cluster: Origin checks, every kind of bad token (close 4001, nothing sent), both
// token carriers, expiry (4010) and refresh. Tokens are HS256 with the cluster's secret, iss and aud.
// The strict token rules of section 7.1 are checked once more end to end, on a memory-engine standalone.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectOptions } from '../harness/client.js';
import { signToken, startNode, uid, type Cluster, type Node } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';

const ORIGIN = 'https://app.example.test';

const suite = useCluster({
  gateways: 2,
  routers: 1,
  env: {
    RTGW_ALLOWED_ORIGINS: `${ORIGIN},https://other.example.test`,
    // Expiry is checked at `exp` exactly; the contract says nothing of a tolerance, and tests keep time short.
    RTGW_JWT_CLOCK_TOLERANCE_SEC: '0',
    // Verbose logs, so "tokens are never written to logs" is checked where it is most likely to fail.
    RTGW_LOG_LEVEL: 'debug',
  },
  closeClientsAfterEach: true,
});
const { pool } = suite;
const tokensUsed: string[] = [];

const gw = (i: 0 | 1) => suite.cluster.gateways[i]!.url;
async function token(...args: Parameters<Cluster['token']>): Promise<string> {
  const t = await suite.cluster.token(...args);
  tokensUsed.push(t);
  return t;
}

describe('Origin', () => {
  it('refuses a browser Origin that is not allowed with HTTP 403 and no upgrade', async () => {
    const err = await pool.refused(gw(0), { token: await token(uid('u')), origin: 'https://evil.example.test' });
    expect(err.status).toBe(403);
    expect(err.code).toBeUndefined();
  });

  it('refuses a not-allowed Origin even with a valid token in the query', async () => {
    const t = await token(uid('u'));
    const err = await pool.refused(gw(1), { query: { token: t }, origin: 'https://app.example.test.evil.test' });
    expect(err.status).toBe(403);
  });

  it('accepts an allowed Origin', async () => {
    const user = uid('u');
    const c = await pool.connect(gw(0), { token: await token(user), origin: ORIGIN });
    expect(c.welcome).toMatchObject({ t: 'welcome', v: 1, user });
    expect(typeof c.welcome.conn).toBe('string');
    expect(c.welcome.conn.length).toBeGreaterThan(0);
    expect(typeof c.welcome.hb).toBe('number');
    expect(c.frames[0]).toBe(c.welcome); // the first frame
  });

  it('accepts a client sending no Origin header (not a browser)', async () => {
    const user = uid('u');
    const c = await pool.connect(gw(1), { token: await token(user) });
    expect(c.welcome).toMatchObject({ t: 'welcome', v: 1, user });
  });
});

describe('bad tokens: close 4001, nothing sent', () => {
  const cases: [string, () => Promise<ConnectOptions>][] = [
    ['missing', async () => ({})],
    ['empty bearer', async () => ({ headers: { Authorization: 'Bearer ' } })],
    ['malformed', async () => ({ token: 'not-a-jwt' })],
    ['malformed, three parts', async () => ({ token: 'aaa.bbb.ccc' })],
    [
      'bad signature',
      async () => ({ token: await token(uid('u'), {}, { secret: 'another-secret-of-at-least-32-bytes!!' }) }),
    ],
    [
      'tampered payload',
      async () => {
        const [h, , s] = (await token(uid('u'))).split('.');
        const forged = Buffer.from(
          JSON.stringify({
            sub: 'admin',
            exp: Math.floor(Date.now() / 1000) + 3600,
            iss: suite.cluster.issuer,
            aud: suite.cluster.audience,
          }),
        ).toString('base64url');
        return { token: `${h}.${forged}.${s}` };
      },
    ],
    ['expired', async () => ({ token: await token(uid('u'), {}, { expIn: -3600 }) })],
    ['expired a few seconds ago', async () => ({ token: await token(uid('u'), {}, { expIn: -3 }) })],
    ['not yet valid (nbf in the future)', async () => ({ token: await token(uid('u'), {}, { nbfIn: 3600 }) })],
    ['wrong iss', async () => ({ token: await token(uid('u'), {}, { iss: 'someone-else' }) })],
    ['no iss', async () => ({ token: await token(uid('u'), {}, { iss: null }) })],
    ['wrong aud', async () => ({ token: await token(uid('u'), {}, { aud: 'another-service' }) })],
    ['no aud', async () => ({ token: await token(uid('u'), {}, { aud: null }) })],
    ['alg none', async () => ({ token: await token(uid('u'), {}, { alg: 'none' }) })],
    ['alg HS512 with the same secret', async () => ({ token: await token(uid('u'), {}, { alg: 'HS512' }) })],
    ['alg HS384 with the same secret', async () => ({ token: await token(uid('u'), {}, { alg: 'HS384' }) })],
    ['no sub', async () => ({ token: await token(null) })],
    ['empty sub', async () => ({ token: await token('') })],
    ['no exp', async () => ({ token: await token(uid('u'), {}, { noExp: true }) })],
    ['bad token in the query', async () => ({ query: { token: 'garbage' } })],
  ];
  it.each(cases)('%s', async (_label, opts) => {
    const o = await opts();
    const err = await pool.refused(gw(_label.length % 2 === 0 ? 0 : 1), o);
    expect(err.status, err.message).toBeUndefined(); // upgraded, then closed
    expect(err.code, err.message).toBe(4001);
    expect(typeof err.reason).toBe('string');
    expect(err.reason!.length).toBeGreaterThan(0);
    expect(err.frames).toEqual([]);
  });
});

describe('good tokens', () => {
  it('accepts the token in Authorization: Bearer', async () => {
    const user = uid('u');
    const c = await pool.connect(gw(0), { headers: { Authorization: `Bearer ${await token(user)}` } });
    expect(c.welcome.user).toBe(user);
    await c.ping();
  });

  it('accepts the token in ?token=', async () => {
    const user = uid('u');
    const c = await pool.connect(gw(1), { query: { token: await token(user) }, origin: ORIGIN });
    expect(c.welcome.user).toBe(user);
    await c.ping();
  });

  it('accepts a user id using every character of the alphabet', async () => {
    const user = `Az09_-:@.${uid('u')}`;
    const c = await pool.connect(gw(0), { token: await token(user) });
    expect(c.welcome.user).toBe(user);
  });
});

describe('expiry and refresh', () => {
  it('closes with 4010 at exp', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const c = await pool.connect(gw(0), { token: await token(uid('u'), { exp }) });
    const closed = await Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 8000))]);
    expect(closed, 'still open 8 s after a 2 s token').not.toBeNull();
    expect(closed!.code).toBe(4010);
    // Not before exp (second resolution, hence the 1 s of slack), and not long after it.
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 1000);
    expect(Date.now()).toBeLessThanOrEqual(exp * 1000 + 4000);
  });

  it('keeps the connection past the first exp after refresh with a newer token', async () => {
    const user = uid('u');
    const exp1 = Math.floor(Date.now() / 1000) + 2;
    const c = await pool.connect(gw(1), { token: await token(user, { exp: exp1 }) });
    const exp2 = exp1 + 3600;
    const res = await c.request({ t: 'refresh', token: await token(user, { exp: exp2 }) });
    expect(res.t, JSON.stringify(res)).toBe('ok');
    // `exp` as in the token (seconds); milliseconds would say the same.
    expect([exp2, exp2 * 1000]).toContain(res.exp);
    // The contract is about time here: wait until well past the first exp.
    await new Promise((r) => setTimeout(r, exp1 * 1000 + 2500 - Date.now()));
    expect(c.closeState).toBeUndefined();
    await c.ping();
    const room = uid('r');
    expect(await c.request({ t: 'join', room })).toMatchObject({ t: 'ok', room });
  });

  it('refuses refresh with a token for another sub (unauthorized) and still closes at the first exp', async () => {
    const user = uid('u');
    const exp1 = Math.floor(Date.now() / 1000) + 3;
    const c = await pool.connect(gw(0), { token: await token(user, { exp: exp1 }) });
    const res = await c.request({ t: 'refresh', token: await token(uid('someone-else'), { exp: exp1 + 3600 }) });
    expect(res).toMatchObject({ t: 'err', code: 'unauthorized' });
    const closed = await Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 9000))]);
    expect(closed?.code).toBe(4010);
  });

  it.each([
    ['bad signature', (u: string) => token(u, {}, { secret: 'another-secret-of-at-least-32-bytes!!' })],
    ['expired', (u: string) => token(u, {}, { expIn: -3600 })],
    ['wrong aud', (u: string) => token(u, {}, { aud: 'nope' })],
    ['alg none', (u: string) => token(u, {}, { alg: 'none' })],
    ['garbage', async () => 'garbage'],
  ])('refuses refresh with an invalid token (%s): unauthorized, connection stays', async (_label, make) => {
    const user = uid('u');
    const c = await pool.connect(gw(1), { token: await token(user) });
    expect(await c.request({ t: 'refresh', token: await make(user) })).toMatchObject({
      t: 'err',
      code: 'unauthorized',
    });
    await c.ping();
    expect(c.isOpen).toBe(true);
  });
});

describe('logs', () => {
  it('never writes a token to any log', async () => {
    // This test's own traffic, so it stands alone: a good token, a bad one, a refresh.
    const user = uid('u');
    const good = await token(user);
    const c = await pool.connect(gw(0), { query: { token: good } });
    await c.request({ t: 'refresh', token: await token(user, {}, { expIn: 7200 }) });
    await pool.refused(gw(1), { token: await token(user, {}, { aud: 'nope' }) });
    await c.close();
    const leaks: string[] = [];
    for (const n of suite.cluster.nodes) {
      for (const line of n.logs()) {
        // Signatures are what make a token usable; look for them and for whole tokens.
        for (const t of tokensUsed) {
          const sig = t.split('.')[2];
          if (line.includes(t) || (sig !== undefined && sig.length > 10 && line.includes(sig))) {
            leaks.push(`${n.role} ${n.nodeId}: ${line.slice(0, 300)}`);
          }
        }
      }
    }
    expect(leaks).toEqual([]);
  });
});

describe('strict tokens on a standalone (section 7.1)', () => {
  const secret = randomBytes(32).toString('base64url');
  let node: Node;
  beforeAll(async () => {
    node = await startNode('standalone', {
      RTGW_JWT_SECRET: secret,
      RTGW_JWT_MAX_AGE_SEC: '3600',
      RTGW_NODE_ID: uid('strict'),
    });
  }, 60_000);
  afterAll(() => node?.stop(5000));

  const now = () => Math.floor(Date.now() / 1000);
  const sign = (claims: Record<string, unknown> = {}) => signToken({ secret }, uid('u'), claims);

  it('the untouched token connects', async () => {
    const c = await pool.connect(node.url, { token: await sign() });
    expect(c.welcome.t).toBe('welcome');
  });

  it.each<[string, () => Promise<string>]>([
    ['`!!!` appended to the signature', async () => `${await sign()}!!!`],
    ['the signature padded with `=`', async () => `${await sign()}=`],
    ['iat an hour in the future', () => sign({ iat: now() + 3600 })],
    ['iat older than RTGW_JWT_MAX_AGE_SEC', () => sign({ iat: now() - 7200 })],
  ])('%s: 4001, no welcome', async (_label, make) => {
    const err = await pool.refused(node.url, { token: await make() });
    expect(err.status, err.message).toBeUndefined();
    expect(err.code, err.message).toBe(4001);
    expect(err.frames).toEqual([]);
  });
});
