// createVerifier / signDevToken (protocol.md section 3): HS256 secrets, PEM public keys (RSA, EC, Ed25519; RSA-PSS
// and Ed448 refused at startup) and a JWKS URL served locally. Checks claim validation, algorithm pinning (including the classic HS256
// "PEM text as HMAC secret" confusion), clock tolerance, and that every refusal is an AuthError with a short reason.
// The strict token rules of section 7.1 (canonical base64url, typ, crit/b64, iat and the maximum age) are checked
// on both paths: the HS256 fast path and jose (an Ed25519 PEM key). test/unit/token-differential.test.ts holds the
// fast path to jose plus these rules on generated tokens.
import { createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier, signDevToken, type Verifier } from '../../gateway/auth.js';
import type { JwtConfig } from '../../shared/config.js';

const now = (): number => Math.floor(Date.now() / 1000);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

type SignKey = KeyObject | Uint8Array;

interface MintOptions {
  alg: string;
  kid?: string;
  /** Claims merged over the defaults; a value of `undefined` removes that claim. */
  claims?: Record<string, unknown>;
}

/** A token with sub 'alice' and exp in an hour unless `claims` says otherwise. */
async function mint(key: SignKey, { alg, kid, claims = {} }: MintOptions): Promise<string> {
  const payload: Record<string, unknown> = { sub: 'alice', exp: now() + 3600, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload as JWTPayload).setProtectedHeader(kid === undefined ? { alg } : { alg, kid }).sign(key);
}

/** An unsecured JWT (`alg: none`, empty signature), which jose refuses to produce itself. */
function unsecured(claims: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'alice', exp: now() + 3600, ...claims })}.`;
}

/** A compact JWS made without jose: `signer` gets the signing input and returns the raw signature. */
function signRaw(alg: string, payload: Record<string, unknown>, signer: (data: Buffer) => Buffer): string {
  const input = `${b64url({ alg })}.${b64url(payload)}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}

/**
 * Awaits a verification that must fail and returns the AuthError's reason; fails the test when the token is
 * accepted or something other than an AuthError is thrown. The reason must be short and never echo the token.
 */
async function rejection(verify: Verifier, token: string): Promise<string> {
  let err: unknown;
  try {
    const claims = await verify(token);
    err = new Error(`token was accepted: ${JSON.stringify(claims)}`);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(AuthError);
  const e = err as AuthError;
  expect(e.name).toBe('AuthError');
  expect(e.message).toBe(e.reason);
  expect(e.reason.length).toBeGreaterThan(0);
  expect(e.reason.length).toBeLessThanOrEqual(40);
  if (token.length >= 8) {
    expect(e.reason).not.toContain(token);
    for (const part of token.split('.')) if (part.length >= 8) expect(e.reason).not.toContain(part);
  }
  return e.reason;
}

const pemOf = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }).toString();
const cfg = (c: Omit<JwtConfig, 'clockToleranceSec'> & { clockToleranceSec?: number }): JwtConfig => ({
  clockToleranceSec: 0,
  ...c,
});

describe('HS256 secret', () => {
  const secret = randomBytes(32).toString('base64url');
  const key = enc(secret);
  const verify = createVerifier(cfg({ secret }));

  it('accepts a valid token and returns sub, exp, rooms and pub', async () => {
    const exp = now() + 600;
    const token = await mint(key, { alg: 'HS256', claims: { exp, rooms: ['lobby', 'team:*'], pub: ['lobby'] } });
    await expect(verify(token)).resolves.toEqual({ sub: 'alice', exp, rooms: ['lobby', 'team:*'], pub: ['lobby'] });
  });

  it('pub defaults to rooms when absent', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { rooms: ['a', 'b:*'] } });
    const claims = await verify(token);
    expect(claims.rooms).toEqual(['a', 'b:*']);
    expect(claims.pub).toEqual(['a', 'b:*']);
  });

  it('rooms and pub absent stay absent (every room allowed)', async () => {
    const claims = await verify(await mint(key, { alg: 'HS256' }));
    expect(claims.sub).toBe('alice');
    expect(claims.rooms).toBeUndefined();
    expect(claims.pub).toBeUndefined();
  });

  it('an empty rooms list is kept (nothing allowed), and pub follows it', async () => {
    const claims = await verify(await mint(key, { alg: 'HS256', claims: { rooms: [] } }));
    expect(claims.rooms).toEqual([]);
    expect(claims.pub).toEqual([]);
  });

  it('accepts every character of the name alphabet in sub, and `*` alone as a pattern', async () => {
    const sub = 'Az09_-:@.';
    const claims = await verify(await mint(key, { alg: 'HS256', claims: { sub, rooms: ['*'], pub: [] } }));
    expect(claims).toMatchObject({ sub, rooms: ['*'], pub: [] });
  });

  it('rejects a token signed with another secret', async () => {
    const token = await mint(enc(randomBytes(32).toString('base64url')), { alg: 'HS256' });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects a token whose signature was tampered with, and a payload swapped under a valid signature', async () => {
    const token = await mint(key, { alg: 'HS256' });
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    expect(await rejection(verify, flipped)).toBe('invalid token');
    const forged = `${h}.${b64url({ sub: 'mallory', exp: now() + 3600 })}.${s}`;
    expect(await rejection(verify, forged)).toBe('invalid token');
  });

  it('rejects an expired token with reason "token expired"', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { exp: now() - 60 } });
    expect(await rejection(verify, token)).toBe('token expired');
  });

  it('rejects a token that is not yet valid (nbf in the future)', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { nbf: now() + 600 } });
    const reason = await rejection(verify, token);
    expect(reason).toBe('invalid token');
  });

  it('accepts a token whose nbf has passed', async () => {
    const claims = await verify(await mint(key, { alg: 'HS256', claims: { nbf: now() - 10 } }));
    expect(claims.sub).toBe('alice');
  });

  it('rejects a token without exp', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { exp: undefined } });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects a non-numeric exp', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { exp: String(now() + 3600) } });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects a token without sub', async () => {
    expect(await rejection(verify, await mint(key, { alg: 'HS256', claims: { sub: undefined } }))).toBe(
      'invalid token',
    );
  });

  it.each<[string, unknown]>([
    ['a number', 42],
    ['null', null],
    ['a list', ['alice']],
  ])('rejects a sub that is %s', async (_what, sub) => {
    // jose 6 checks only sub's presence; the gateway's own name check refuses the rest.
    expect(await rejection(verify, await mint(key, { alg: 'HS256', claims: { sub } }))).toMatch(
      /^invalid (token|sub)$/,
    );
  });

  it.each([
    ['a space', 'alice smith'],
    ['a slash', 'alice/bob'],
    ['a non-ASCII letter', 'alicé'],
    ['a NATS wildcard', 'alice.>'],
    ['empty', ''],
    ['129 characters', 'a'.repeat(129)],
  ])('rejects sub with %s', async (_what, sub) => {
    const token = await mint(key, { alg: 'HS256', claims: { sub } });
    expect(await rejection(verify, token)).toBe('invalid sub');
  });

  it('accepts a sub of exactly 128 characters', async () => {
    const sub = 'a'.repeat(128);
    await expect(verify(await mint(key, { alg: 'HS256', claims: { sub } }))).resolves.toMatchObject({ sub });
  });

  it.each<[string, unknown]>([
    ['a string instead of a list', 'lobby'],
    ['an object', { lobby: true }],
    ['a non-string entry', ['lobby', 7]],
    ['a space in a name', ['lob by']],
    ['a `*` inside a name', ['lo*bby']],
    ['a double `*`', ['lobby**']],
    ['`**`', ['**']],
    ['an empty pattern', ['']],
    ['a NATS wildcard', ['lobby.>']],
  ])('rejects rooms with %s', async (_what, rooms) => {
    const token = await mint(key, { alg: 'HS256', claims: { rooms } });
    expect(await rejection(verify, token)).toBe('invalid rooms claim');
  });

  it('rejects an invalid pub list even when rooms is valid', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { rooms: ['lobby'], pub: ['a b'] } });
    expect(await rejection(verify, token)).toBe('invalid pub claim');
  });

  it.each(['HS384', 'HS512'])('rejects %s signed with the configured secret (alg pinned to HS256)', async (alg) => {
    const token = await mint(key, { alg });
    expect(await rejection(verify, token)).toBe('invalid token');
    // Control: the same claims signed HS256 with that secret pass, so the refusal is the algorithm's.
    await expect(verify(await mint(key, { alg: 'HS256' }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it('rejects an unsecured token (alg none)', async () => {
    const token = unsecured();
    expect(await rejection(verify, token)).toBe('invalid token');
    // ...and with a (bogus) signature segment appended.
    expect(await rejection(verify, `${token}${Buffer.from('sig').toString('base64url')}`)).toBe('invalid token');
  });

  it.each([
    ['an empty string', ''],
    ['garbage', 'not-a-jwt'],
    ['two segments', 'a.b'],
    ['non-JSON segments', 'a.b.c'],
  ])('rejects a malformed token: %s', async (_what, token) => {
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  describe('the JWS itself (HS256 is verified on node:crypto, with jose\u2019s rules)', () => {
    /** A token MACed with the configured secret under any header and payload: only those may make it invalid. */
    const withHeader = (header: Record<string, unknown>, payload: unknown = { sub: 'alice', exp: now() + 600 }) => {
      const input = `${b64url(header)}.${b64url(payload)}`;
      return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
    };

    it('accepts the plain header, with typ, kid or b64: true, as jose does', async () => {
      await expect(verify(withHeader({ alg: 'HS256' }))).resolves.toMatchObject({ sub: 'alice' });
      await expect(verify(withHeader({ alg: 'HS256', typ: 'JWT', kid: 'k1' }))).resolves.toMatchObject({
        sub: 'alice',
      });
      await expect(verify(withHeader({ alg: 'HS256', b64: true }))).resolves.toMatchObject({ sub: 'alice' });
    });

    it.each<[string, Record<string, unknown>]>([
      ['HS384 (pinned to HS256)', { alg: 'HS384' }],
      ['HS512', { alg: 'HS512' }],
      ['no alg', { typ: 'JWT' }],
      ['a crit header parameter', { alg: 'HS256', crit: ['exp'], exp: 1 }],
      ['an unencoded payload (b64: false)', { alg: 'HS256', b64: false, crit: ['b64'] }],
      ['crit naming b64 (jose lets it through; nobody needs it)', { alg: 'HS256', b64: true, crit: ['b64'] }],
    ])('rejects %s, though the MAC is right', async (_what, header) => {
      expect(await rejection(verify, withHeader(header))).toBe('invalid token');
    });

    it('rejects a non-numeric iat or nbf, an array or null payload, and extra or empty segments', async () => {
      expect(
        await rejection(verify, withHeader({ alg: 'HS256' }, { sub: 'alice', exp: now() + 600, iat: 'now' })),
      ).toBe('invalid token');
      expect(await rejection(verify, withHeader({ alg: 'HS256' }, { sub: 'alice', exp: now() + 600, nbf: '0' }))).toBe(
        'invalid token',
      );
      const good = withHeader({ alg: 'HS256' });
      const [h, p, s] = good.split('.') as [string, string, string];
      for (const bad of [`${good}.x`, `${h}..${s}`, `.${p}.${s}`, `${h}.${p}.`]) {
        expect(await rejection(verify, bad)).toBe('invalid token');
      }
      // Correctly MACed, so only the payload's shape can refuse them.
      expect(await rejection(verify, withHeader({ alg: 'HS256' }, [1]))).toBe('invalid token');
      expect(await rejection(verify, withHeader({ alg: 'HS256' }, null))).toBe('invalid token');
    });
  });

  describe('with iss and aud configured', () => {
    const iss = 'https://auth.example.test';
    const aud = 'rtgw';
    const verifyIA = createVerifier(cfg({ secret, issuer: iss, audience: aud }));

    it('accepts a token with the configured iss and aud (aud as a string or in a list)', async () => {
      await expect(verifyIA(await mint(key, { alg: 'HS256', claims: { iss, aud } }))).resolves.toMatchObject({
        sub: 'alice',
      });
      await expect(
        verifyIA(await mint(key, { alg: 'HS256', claims: { iss, aud: ['other', aud] } })),
      ).resolves.toMatchObject({
        sub: 'alice',
      });
    });

    it.each<[string, Record<string, unknown>]>([
      ['wrong iss', { iss: 'https://evil.example.test', aud }],
      ['missing iss', { aud }],
      ['wrong aud', { iss, aud: 'other-service' }],
      ['aud list without ours', { iss, aud: ['a', 'b'] }],
      ['missing aud', { iss }],
    ])('rejects %s', async (_what, claims) => {
      expect(await rejection(verifyIA, await mint(key, { alg: 'HS256', claims }))).toBe('invalid token');
    });

    it('without iss/aud configured, any iss and aud are accepted', async () => {
      const token = await mint(key, { alg: 'HS256', claims: { iss: 'anyone', aud: 'anything' } });
      await expect(verify(token)).resolves.toMatchObject({ sub: 'alice' });
    });
  });
});

describe('PEM public key', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaPss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ed = generateKeyPairSync('ed25519');

  const rsaPem = pemOf(rsa.publicKey);
  const ecPem = pemOf(p256.publicKey);
  const verifyRsa = createVerifier(cfg({ publicKey: rsaPem }));
  const verifyEc = createVerifier(cfg({ publicKey: ecPem }));
  const verifyP384 = createVerifier(cfg({ publicKey: pemOf(p384.publicKey) }));
  const verifyEd = createVerifier(cfg({ publicKey: pemOf(ed.publicKey) }));

  it('RSA: accepts RS256 (and RS512) and returns the claims', async () => {
    const exp = now() + 900;
    const token = await mint(rsa.privateKey, { alg: 'RS256', claims: { exp, rooms: ['x'] } });
    await expect(verifyRsa(token)).resolves.toEqual({ sub: 'alice', exp, rooms: ['x'], pub: ['x'] });
    await expect(verifyRsa(await mint(rsa.privateKey, { alg: 'RS512' }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it('RSA: rejects a token signed by another RSA key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(await rejection(verifyRsa, await mint(other.privateKey, { alg: 'RS256' }))).toBe('invalid token');
  });

  // jose cannot verify with RSA-PSS or Ed448 keys: the gateway refuses them at startup with a reason,
  // instead of starting and then closing every client with 4001.
  it('refuses an RSA-PSS key, an Ed448 key and an RSA key under 2048 bits at startup, naming the problem', () => {
    expect(() => createVerifier(cfg({ publicKey: pemOf(rsaPss.publicKey) }))).toThrow(/RSA-PSS .* not supported/);
    expect(() => createVerifier(cfg({ publicKey: pemOf(generateKeyPairSync('ed448').publicKey) }))).toThrow(
      /Ed448 .* not supported/,
    );
    expect(() =>
      createVerifier(cfg({ publicKey: pemOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey) })),
    ).toThrow(/at least 2048 bits/);
  });

  it("Ed25519: accepts the newer algorithm name 'Ed25519' as well as 'EdDSA'", async () => {
    const token = signRaw('Ed25519', { sub: 'alice', exp: now() + 600 }, (data) =>
      cryptoSign(null, data, ed.privateKey),
    );
    await expect(verifyEd(token)).resolves.toMatchObject({ sub: 'alice' });
  });

  it('EC P-256: accepts ES256', async () => {
    await expect(
      verifyEc(await mint(p256.privateKey, { alg: 'ES256', claims: { pub: ['p'] } })),
    ).resolves.toMatchObject({
      sub: 'alice',
      rooms: undefined,
      pub: ['p'],
    });
  });

  it('EC P-384: accepts ES384, rejects ES256 from a P-256 key (curve pinned)', async () => {
    await expect(verifyP384(await mint(p384.privateKey, { alg: 'ES384' }))).resolves.toMatchObject({ sub: 'alice' });
    expect(await rejection(verifyP384, await mint(p256.privateKey, { alg: 'ES256' }))).toBe('invalid token');
  });

  it('Ed25519: accepts EdDSA', async () => {
    await expect(verifyEd(await mint(ed.privateKey, { alg: 'EdDSA' }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it('Ed25519: rejects a token signed by another Ed25519 key', async () => {
    const other = generateKeyPairSync('ed25519');
    expect(await rejection(verifyEd, await mint(other.privateKey, { alg: 'EdDSA' }))).toBe('invalid token');
  });

  it('claim rules apply to PEM keys too: expired, missing sub, bad rooms', async () => {
    expect(await rejection(verifyEc, await mint(p256.privateKey, { alg: 'ES256', claims: { exp: now() - 30 } }))).toBe(
      'token expired',
    );
    expect(await rejection(verifyEc, await mint(p256.privateKey, { alg: 'ES256', claims: { sub: undefined } }))).toBe(
      'invalid token',
    );
    expect(await rejection(verifyEd, await mint(ed.privateKey, { alg: 'EdDSA', claims: { rooms: ['a b'] } }))).toBe(
      'invalid rooms claim',
    );
  });

  describe('algorithm pinning', () => {
    it('rejects HS256 signed with the RSA PEM text as HMAC secret (alg confusion)', async () => {
      const forged = await mint(enc(rsaPem), { alg: 'HS256' });
      expect(await rejection(verifyRsa, forged)).toBe('invalid token');
      // Also with the PEM's trailing newline trimmed, as a forger might guess the exact bytes differently.
      expect(await rejection(verifyRsa, await mint(enc(rsaPem.trim()), { alg: 'HS256' }))).toBe('invalid token');
    });

    it('rejects HS256 signed with the EC and Ed25519 PEM texts as HMAC secret', async () => {
      expect(await rejection(verifyEc, await mint(enc(ecPem), { alg: 'HS256' }))).toBe('invalid token');
      const edPem = pemOf(ed.publicKey);
      expect(await rejection(verifyEd, await mint(enc(edPem), { alg: 'HS256' }))).toBe('invalid token');
    });

    it('rejects an ES256 token against an RSA key', async () => {
      expect(await rejection(verifyRsa, await mint(p256.privateKey, { alg: 'ES256' }))).toBe('invalid token');
    });

    it('rejects PS256 signed by the configured RSA key itself (pinned to RS*, not just to RSA keys)', async () => {
      // jose alone would accept this (an RSA key can make PSS signatures); only the gateway's allow-list refuses it.
      expect(await rejection(verifyRsa, await mint(rsa.privateKey, { alg: 'PS256' }))).toBe('invalid token');
    });

    it('rejects an RS256 token against an EC key', async () => {
      expect(await rejection(verifyEc, await mint(rsa.privateKey, { alg: 'RS256' }))).toBe('invalid token');
    });

    it('rejects EdDSA against RSA and EC keys, and RS256/ES256 against an Ed25519 key', async () => {
      const edToken = await mint(ed.privateKey, { alg: 'EdDSA' });
      expect(await rejection(verifyRsa, edToken)).toBe('invalid token');
      expect(await rejection(verifyEc, edToken)).toBe('invalid token');
      expect(await rejection(verifyEd, await mint(rsa.privateKey, { alg: 'RS256' }))).toBe('invalid token');
      expect(await rejection(verifyEd, await mint(p256.privateKey, { alg: 'ES256' }))).toBe('invalid token');
    });

    it('rejects alg none against a PEM key', async () => {
      expect(await rejection(verifyRsa, unsecured())).toBe('invalid token');
    });
  });

  it('accepts a PEM given with literal \\n sequences (as environment variables carry them)', async () => {
    const escaped = rsaPem.trim().replace(/\n/g, '\\n');
    expect(escaped).not.toContain('\n');
    expect(escaped).toContain('\\n');
    const verify = createVerifier(cfg({ publicKey: escaped }));
    await expect(verify(await mint(rsa.privateKey, { alg: 'RS256' }))).resolves.toMatchObject({ sub: 'alice' });
    // Pinning survives the unescaping: the escaped PEM text as HMAC secret does not work either.
    expect(await rejection(verify, await mint(enc(escaped), { alg: 'HS256' }))).toBe('invalid token');

    const escapedEc = ecPem.trim().replace(/\n/g, '\\n');
    const verifyEcEscaped = createVerifier(cfg({ publicKey: escapedEc }));
    await expect(verifyEcEscaped(await mint(p256.privateKey, { alg: 'ES256' }))).resolves.toMatchObject({
      sub: 'alice',
    });
  });

  it('refuses an unusable public key or EC curve at creation', () => {
    expect(() => createVerifier(cfg({ publicKey: 'not a pem' }))).toThrow();
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(() => createVerifier(cfg({ publicKey: pemOf(k1.publicKey) }))).toThrow(/unsupported EC curve/);
  });
});

describe('no key configured', () => {
  it('createVerifier throws', () => {
    expect(() => createVerifier({ clockToleranceSec: 5 })).toThrow(/no token key configured/);
  });
});

describe('JWKS URL', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const outsider = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const leakedSecret = randomBytes(32);
  let server: Server;
  let jwksUrl: string;
  let octJwksUrl: string;
  let requests = 0;
  let verify: Verifier;

  beforeAll(async () => {
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', use: 'sig' },
    ];
    const bodies: Record<string, string> = {
      '/.well-known/jwks.json': JSON.stringify({ keys }),
      // A misconfigured issuer publishing a symmetric key: a JWKS is public, so HS256 with it must never pass.
      '/with-oct.json': JSON.stringify({
        keys: [...keys, { kty: 'oct', k: leakedSecret.toString('base64url'), kid: 'oct-1' }],
      }),
    };
    server = createServer((req, res) => {
      requests++;
      const body = bodies[req.url ?? ''];
      if (body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
    octJwksUrl = `http://127.0.0.1:${port}/with-oct.json`;
    verify = createVerifier(cfg({ jwksUrl }));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('accepts an RS256 token signed by the RSA key of the set', async () => {
    const exp = now() + 300;
    const token = await mint(rsa.privateKey, { alg: 'RS256', kid: 'rsa-1', claims: { exp, rooms: ['r:*'] } });
    await expect(verify(token)).resolves.toEqual({ sub: 'alice', exp, rooms: ['r:*'], pub: ['r:*'] });
    expect(requests).toBeGreaterThan(0);
  });

  it('accepts an ES256 token signed by the EC key of the set', async () => {
    const token = await mint(ec.privateKey, { alg: 'ES256', kid: 'ec-1', claims: { sub: 'bob' } });
    await expect(verify(token)).resolves.toMatchObject({ sub: 'bob' });
  });

  it('rejects a token signed by a key not in the set (unknown kid)', async () => {
    const token = await mint(outsider.privateKey, { alg: 'RS256', kid: 'rsa-2' });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects a token signed by a key not in the set that claims a kid of the set', async () => {
    const token = await mint(outsider.privateKey, { alg: 'RS256', kid: 'rsa-1' });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects a token whose kid names a key of another type than its alg', async () => {
    const token = await mint(ec.privateKey, { alg: 'ES256', kid: 'rsa-1' });
    expect(await rejection(verify, token)).toBe('invalid token');
  });

  it('rejects HS256 tokens, including ones keyed with the served JWKS document or a JWK', async () => {
    const randomSecret = enc(randomBytes(32).toString('base64url'));
    expect(await rejection(verify, await mint(randomSecret, { alg: 'HS256', kid: 'rsa-1' }))).toBe('invalid token');
    const doc = await (await fetch(jwksUrl)).text();
    expect(await rejection(verify, await mint(enc(doc), { alg: 'HS256' }))).toBe('invalid token');
    const jwk = JSON.stringify({ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' });
    expect(await rejection(verify, await mint(enc(jwk), { alg: 'HS256', kid: 'rsa-1' }))).toBe('invalid token');
  });

  it('rejects alg none', async () => {
    expect(await rejection(verify, unsecured())).toBe('invalid token');
  });

  it('rejects HS256 even when the JWKS publishes a symmetric (oct) key', async () => {
    const verifyOct = createVerifier(cfg({ jwksUrl: octJwksUrl }));
    // Control: the same JWKS still serves the asymmetric keys.
    await expect(verifyOct(await mint(ec.privateKey, { alg: 'ES256', kid: 'ec-1' }))).resolves.toMatchObject({
      sub: 'alice',
    });
    expect(await rejection(verifyOct, await mint(leakedSecret, { alg: 'HS256', kid: 'oct-1' }))).toBe('invalid token');
  });

  it('applies the claim rules: expired and bad sub', async () => {
    const expired = await mint(rsa.privateKey, { alg: 'RS256', kid: 'rsa-1', claims: { exp: now() - 30 } });
    expect(await rejection(verify, expired)).toBe('token expired');
    const badSub = await mint(ec.privateKey, { alg: 'ES256', kid: 'ec-1', claims: { sub: 'a b' } });
    expect(await rejection(verify, badSub)).toBe('invalid sub');
  });

  it('an unreachable JWKS URL makes tokens fail as AuthError, not a crash', async () => {
    const missing = createVerifier(cfg({ jwksUrl: jwksUrl.replace('/.well-known/jwks.json', '/missing') }));
    const token = await mint(rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' });
    expect(await rejection(missing, token)).toBe('invalid token');
  });
});

describe('clock tolerance', () => {
  const secret = randomBytes(32).toString('base64url');
  const key = enc(secret);

  it('a token expired 2 s ago is accepted with 5 s tolerance and rejected with 0', async () => {
    const exp = now() - 2;
    const token = await mint(key, { alg: 'HS256', claims: { exp } });
    await expect(createVerifier(cfg({ secret, clockToleranceSec: 5 }))(token)).resolves.toMatchObject({
      sub: 'alice',
      exp,
    });
    expect(await rejection(createVerifier(cfg({ secret, clockToleranceSec: 0 })), token)).toBe('token expired');
  });

  it('a token expired 10 s ago is rejected even with 5 s tolerance', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { exp: now() - 10 } });
    expect(await rejection(createVerifier(cfg({ secret, clockToleranceSec: 5 })), token)).toBe('token expired');
  });

  it('tolerance also covers nbf slightly in the future', async () => {
    const token = await mint(key, { alg: 'HS256', claims: { nbf: now() + 2 } });
    await expect(createVerifier(cfg({ secret, clockToleranceSec: 5 }))(token)).resolves.toMatchObject({ sub: 'alice' });
    expect(await rejection(createVerifier(cfg({ secret, clockToleranceSec: 0 })), token)).toBe('invalid token');
  });

  it('applies to PEM keys too', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await mint(ec.privateKey, { alg: 'ES256', claims: { exp: now() - 2 } });
    await expect(
      createVerifier(cfg({ publicKey: pemOf(ec.publicKey), clockToleranceSec: 5 }))(token),
    ).resolves.toMatchObject({
      sub: 'alice',
    });
    expect(await rejection(createVerifier(cfg({ publicKey: pemOf(ec.publicKey) })), token)).toBe('token expired');
  });
});

describe.each<[string, { alg: string; key: Pick<JwtConfig, 'secret' | 'publicKey'>; sign: (input: Buffer) => Buffer }]>(
  [
    [
      'HS256 secret (node:crypto)',
      (() => {
        const secret = randomBytes(32).toString('base64url');
        return {
          alg: 'HS256',
          key: { secret },
          sign: (input: Buffer) => createHmac('sha256', secret).update(input).digest(),
        };
      })(),
    ],
    [
      'Ed25519 PEM key (jose)',
      (() => {
        const ed = generateKeyPairSync('ed25519');
        return {
          alg: 'EdDSA',
          key: { publicKey: pemOf(ed.publicKey) },
          sign: (input: Buffer) => cryptoSign(null, input, ed.privateKey),
        };
      })(),
    ],
  ],
)('strict tokens (section 7.1), %s', (_path, { alg, key, sign }) => {
  const verify = createVerifier(cfg({ ...key }));
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  /**
   * A token under `header` (merged over `{ alg }`) and `claims` (merged over sub alice, exp in 10 minutes;
   * `undefined` removes one). `edit` may rewrite the header and payload text before it is signed, so only
   * that rewriting can make the token invalid.
   */
  const token = (
    header: Record<string, unknown> = {},
    claims: Record<string, unknown> = {},
    edit = (h: string, p: string) => [h, p],
  ) => {
    const payload: Record<string, unknown> = { sub: 'alice', exp: now() + 600, ...claims };
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    const input = edit(b64url({ alg, ...header }), b64url(payload)).join('.');
    return `${input}.${sign(Buffer.from(input)).toString('base64url')}`;
  };
  /** Edits the signature segment only (no re-signing: the bytes it decodes to must not change). */
  const withSignature = (edit: (s: string) => string) => {
    const [h, p, s] = token().split('.') as [string, string, string];
    return `${h}.${p}.${edit(s)}`;
  };
  const padded = (seg: string) => seg + '='.repeat((4 - (seg.length % 4)) % 4);
  /** The same bytes with the unused low bits of the last character set (a segment whose length is not a multiple of 4). */
  const nonCanonical = (seg: string) => {
    expect(seg.length % 4).not.toBe(0);
    return seg.slice(0, -1) + B64URL[B64URL.indexOf(seg.at(-1)!) | 1];
  };

  it('accepts the untouched token (the control for every case below)', async () => {
    await expect(verify(token())).resolves.toMatchObject({ sub: 'alice' });
    await expect(verify(withSignature((s) => s))).resolves.toMatchObject({ sub: 'alice' });
  });

  it.each<[string, (s: string) => string]>([
    ['`!!!` appended', (s) => `${s}!!!`],
    ['`*` inserted', (s) => `${s.slice(0, 10)}*${s.slice(10)}`],
    ['`=` padding', padded],
    ['a space inserted', (s) => `${s.slice(0, 10)} ${s.slice(10)}`],
    ['a non-canonical last character', nonCanonical],
  ])('refuses a signature with %s, though it decodes to the right bytes', async (_what, edit) => {
    expect(await rejection(verify, withSignature(edit))).toBe('invalid token');
  });

  it.each<[string, (h: string, p: string) => string[]]>([
    ['`+` and `/` (base64, not base64url) in the payload', (h, p) => [h, p.replace(/-/g, '+').replace(/_/g, '/')]],
    ['`=` padding on the payload', (h, p) => [h, padded(p)]],
    ['a non-canonical last character of the payload', (h, p) => [h, nonCanonical(p)]],
  ])('refuses %s, signed over the edited text', async (_what, edit) => {
    // `~~~~~` holds a 3-byte group that encodes to `fn5-` wherever it falls, so the payload has a `-` to turn
    // into `+`; `nn` makes the payload's length leave unused bits in its last character (and need padding).
    let nn = '';
    while (b64url({ sub: 'alice', exp: now() + 600, x: '~~~~~', nn }).length % 4 === 0) nn += 'n';
    const claims = { x: '~~~~~', nn };
    let edited = '';
    const t = token({}, claims, (h, p) => {
      const out = edit(h, p);
      edited = out.join('.');
      expect(edited).not.toBe(`${h}.${p}`);
      return out;
    });
    expect(edited).not.toBe('');
    expect(await rejection(verify, t)).toBe('invalid token');
  });

  it.each(['JWT', 'jwt', 'at+jwt', 'AT+JWT'])('accepts typ %s', async (typ) => {
    await expect(verify(token({ typ }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it.each<[string, Record<string, unknown>]>([
    ['typ foo', { typ: 'foo' }],
    ['typ application/jwt (only JWT and at+jwt are named)', { typ: 'application/jwt' }],
    ['a non-string typ', { typ: 1 }],
    ['crit naming b64, with b64: true (jose accepts it)', { b64: true, crit: ['b64'] }],
    ['b64: false without crit (jose ignores it)', { b64: false }],
  ])('refuses %s', async (_what, header) => {
    expect(await rejection(verify, token(header))).toBe('invalid token');
  });

  it('refuses an iat beyond the clock tolerance in the future, accepts one within it', async () => {
    const tolerant = createVerifier(cfg({ ...key, clockToleranceSec: 5 }));
    expect(await rejection(tolerant, token({}, { iat: now() + 60 }))).toBe('iat in the future');
    expect(await rejection(verify, token({}, { iat: now() + 3 }))).toBe('iat in the future');
    await expect(tolerant(token({}, { iat: now() + 3 }))).resolves.toMatchObject({ sub: 'alice' });
    await expect(verify(token({}, { iat: now() - 3600 }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it('refuses a non-numeric iat', async () => {
    expect(await rejection(verify, token({}, { iat: String(now()) }))).toBe('invalid token');
  });

  it('with a maximum age: refuses an older iat and a missing one, accepts a younger one', async () => {
    const young = createVerifier(cfg({ ...key, maxAgeSec: 600 }));
    expect(await rejection(young, token({}, { iat: now() - 700 }))).toBe('token too old');
    expect(await rejection(young, token())).toBe('missing iat');
    await expect(young(token({}, { iat: now() - 500 }))).resolves.toMatchObject({ sub: 'alice' });
  });

  it('without a maximum age: an old iat and a missing one are accepted', async () => {
    await expect(verify(token({}, { iat: now() - 10 * 24 * 3600 }))).resolves.toMatchObject({ sub: 'alice' });
    await expect(verify(token())).resolves.toMatchObject({ sub: 'alice' });
  });
});

describe('signDevToken', () => {
  const secret = randomBytes(32).toString('base64url');
  const verify = createVerifier(cfg({ secret }));

  it('produces an HS256 token the verifier accepts for that user, with exp about ttl ahead', async () => {
    const before = now();
    const token = await signDevToken(secret, 'dev-user', 120);
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { alg?: string };
    expect(header.alg).toBe('HS256');
    const claims = await verify(token);
    expect(claims.sub).toBe('dev-user');
    expect(claims.exp).toBeGreaterThanOrEqual(before + 120);
    expect(claims.exp).toBeLessThanOrEqual(now() + 120);
    expect(claims.rooms).toBeUndefined();
    expect(claims.pub).toBeUndefined();
  });

  it('defaults to a 24 h lifetime', async () => {
    const claims = await verify(await signDevToken(secret, 'u1'));
    expect(claims.exp - now()).toBeGreaterThan(24 * 3600 - 60);
    expect(claims.exp - now()).toBeLessThanOrEqual(24 * 3600);
  });

  it('is not accepted under another secret, and expires', async () => {
    const other = createVerifier(cfg({ secret: randomBytes(32).toString('base64url') }));
    expect(await rejection(other, await signDevToken(secret, 'u1'))).toBe('invalid token');
    expect(await rejection(verify, await signDevToken(secret, 'u1', -10))).toBe('token expired');
  });
});
