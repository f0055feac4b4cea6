// The HS256 fast path of gateway/auth.ts against jose, on generated tokens and mutations of them: the
// gateway's verifier accepts exactly when jose.jwtVerify with the same options accepts, the stricter token
// rules of protocol.md section 7.1 hold and `sub` is a user id. The 7.1 rules are written out here on their
// own, not taken from gateway/auth.ts. A token that jose accepts and only a 7.1 rule refuses is tallied
// under that rule; each such rule has its unit case in test/unit/auth.test.ts, and the tally shows the
// generator reaches every one of them. The clock is frozen, so both verifiers read the same second.
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier } from '../../gateway/auth.js';
import type { JwtConfig } from '../../shared/config.js';
import { isUserId } from '../../shared/protocol/names.js';

const NOW = 1_750_000_000;
const SECRET = 'a-fixed-secret-for-a-seeded-property-test';
const ISS = 'https://issuer.example.test';
const AUD = 'rtgw';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

beforeAll(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: NOW * 1000 });
});
afterAll(() => {
  vi.useRealTimers();
});

// ---------------------------------------------------------------------------------------------------
// Making tokens

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const mac = (alg: string, input: string): string =>
  /^HS(256|384|512)$/.test(alg)
    ? createHmac(`sha${alg.slice(2)}`, SECRET)
        .update(input)
        .digest('base64url')
    : '';

function sign(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${mac(String(header.alg), input)}`;
}

/** MACs (HS256) whatever the first two segments now say, so an edit there is judged on its own, not by a broken MAC. */
function resign(token: string): string {
  const parts = token.split('.');
  if (parts.length !== 3) return token;
  const input = `${parts[0]}.${parts[1]}`;
  return `${input}.${mac('HS256', input)}`;
}

/** A new header merged over the token's (read leniently) and MACed with the algorithm it then names. */
function reheader(token: string, change: Record<string, unknown>): string {
  const [h = '', p = ''] = token.split('.');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString());
  } catch {
    return token;
  }
  const merged = { ...(header as object), ...change } as Record<string, unknown>;
  const input = `${b64url(merged)}.${p}`;
  return `${input}.${mac(String(merged.alg), input)}`;
}

const editSegment = (token: string, i: number, edit: (s: string) => string): string =>
  token
    .split('.')
    .map((s, j) => (j === i % 3 ? edit(s) : s))
    .join('.');

type Mutation = { name: string; apply: (token: string) => string };
const m = (name: string, apply: (token: string) => string): Mutation => ({ name, apply });

const CHARS = ['A', 'z', '0', '9', '-', '_', '=', '+', '/', '!', '*', ' ', '\n', '\t', '.', '%', 'é'];
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc
    .tuple(fc.nat(), fc.constantFrom(...CHARS))
    .map(([i, c]) =>
      m(`insert ${JSON.stringify(c)} at ${i}`, (t) => t.slice(0, i % (t.length + 1)) + c + t.slice(i % (t.length + 1))),
    ),
  fc.nat().map((i) => m(`delete at ${i}`, (t) => t.slice(0, i % (t.length || 1)) + t.slice((i % (t.length || 1)) + 1))),
  fc
    .tuple(fc.nat(), fc.constantFrom(...CHARS))
    .map(([i, c]) =>
      m(
        `substitute ${JSON.stringify(c)} at ${i}`,
        (t) => t.slice(0, i % (t.length || 1)) + c + t.slice((i % (t.length || 1)) + 1),
      ),
    ),
  fc
    .tuple(fc.nat(2), fc.constantFrom('=', '=='))
    .map(([i, p]) => m(`pad segment ${i} with ${p}`, (t) => editSegment(t, i, (s) => s + p))),
  fc.tuple(fc.nat(2), fc.nat(2)).map(([i, j]) =>
    m(`swap segments ${i} and ${j}`, (t) => {
      const parts = t.split('.');
      [parts[i], parts[j]] = [parts[j] ?? '', parts[i] ?? ''];
      return parts.join('.');
    }),
  ),
  fc
    .nat(2)
    .map((i) =>
      m(`base64 alphabet in segment ${i}`, (t) => editSegment(t, i, (s) => s.replace(/-/g, '+').replace(/_/g, '/'))),
    ),
  fc
    .nat(2)
    .map((i) =>
      m(`unused bits set in segment ${i}`, (t) =>
        editSegment(t, i, (s) =>
          s.length === 0 ? s : s.slice(0, -1) + (ALPHABET[ALPHABET.indexOf(s.at(-1)!) | 1] ?? s.at(-1)),
        ),
      ),
    ),
  fc.tuple(fc.nat(), fc.boolean()).map(([i, whole]) =>
    m(whole ? `upper-case segment ${i % 3}` : `flip the case at ${i}`, (t) => {
      if (whole) return editSegment(t, i, (s) => s.toUpperCase());
      const k = i % (t.length || 1);
      const c = t.charAt(k);
      return t.slice(0, k) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + t.slice(k + 1);
    }),
  ),
  fc.constantFrom(' ', '\n', '\t').map((w) => m(`whitespace around: ${JSON.stringify(w)}`, (t) => `${w}${t}${w}`)),
  fc
    .constantFrom('HS384', 'HS512', 'none', 'RS256', 'hs256', '')
    .map((alg) => m(`alg ${alg}, MACed to match`, (t) => reheader(t, { alg }))),
  fc
    .constantFrom<Record<string, unknown>>(
      { typ: 'JWT' },
      { typ: 'jwt' },
      { typ: 'at+jwt' },
      { typ: 'AT+JWT' },
      { typ: 'foo' },
      { typ: 'application/jwt' },
      { typ: 1 },
      { crit: ['b64'], b64: true },
      { crit: ['b64'], b64: false },
      { crit: ['exp'] },
      { crit: [] },
      { b64: true },
      { b64: false },
      { b64: 'yes' },
    )
    .map((change) => m(`header ${JSON.stringify(change)}, MACed`, (t) => reheader(t, change))),
  fc.constant(m('MAC again (HS256)', resign)),
);

const around = (min: number, max: number) => fc.integer({ min, max }).map((d) => NOW + d);

// Optional claims are absent one time in four (JSON.stringify leaves `undefined` out).
const sometimes = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 4 });
const claims = fc.record({
  sub: fc.stringMatching(/^[A-Za-z0-9_\-:@.]{1,24}$/),
  // Near now often enough to meet every boundary: the tolerances are 0, 5 and 30 s, the maximum ages 600 and 3600 s.
  exp: fc.oneof(around(-40, 40), around(40, 7200)),
  nbf: sometimes(around(-60, 40)),
  iat: sometimes(
    fc.oneof(
      { weight: 4, arbitrary: around(-300, 40) },
      // Exactly at a maximum age plus a tolerance, or one second past it.
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(600, 3600), fc.constantFrom(0, 1, 5, 6, 30, 31))
          .map(([age, t]) => NOW - age - t),
      },
      { weight: 1, arbitrary: around(-4000, -300) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('now', null, [NOW]) },
    ),
  ),
  iss: sometimes(
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(ISS) },
      { weight: 1, arbitrary: fc.constant('https://other.example.test') },
    ),
  ),
  aud: sometimes(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom<unknown>(AUD, ['x', AUD]) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('other', ['x']) },
    ),
  ),
  jti: sometimes(fc.string({ maxLength: 12 })),
});

const headerExtras = fc.record(
  { typ: fc.constant('JWT'), kid: fc.string({ maxLength: 8 }), cty: fc.constant('JWT'), 'x-trace': fc.integer() },
  { requiredKeys: [] },
);

const config = fc.record({
  issuer: fc.option(fc.constant(ISS), { nil: undefined, freq: 2 }),
  audience: fc.option(fc.constant(AUD), { nil: undefined, freq: 2 }),
  clockToleranceSec: fc.constantFrom(0, 5, 30),
  maxAgeSec: fc.option(fc.constantFrom(600, 3600), { nil: undefined, freq: 2 }),
});

const testCase = fc.record({
  cfg: config,
  header: headerExtras,
  claims,
  // One in four tokens is left as made, so valid ones are common; the rest get one to three mutations.
  mutations: fc.oneof(
    { weight: 1, arbitrary: fc.constant<Mutation[]>([]) },
    { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
  ),
});

// ---------------------------------------------------------------------------------------------------
// The expected verdict

async function joseAccepts(token: string, cfg: Omit<JwtConfig, 'secret'>): Promise<JWTPayload | undefined> {
  try {
    const options = {
      algorithms: ['HS256'],
      issuer: cfg.issuer,
      audience: cfg.audience,
      clockTolerance: cfg.clockToleranceSec,
      requiredClaims: ['exp', 'sub'],
    };
    return (await jwtVerify(token, new TextEncoder().encode(SECRET), options)).payload;
  } catch {
    return undefined;
  }
}

/** Why a segment is not canonical base64url, or undefined when it is. */
function segmentRule(seg: string): string | undefined {
  if (seg.includes('=')) return 'padding';
  if (/[+/]/.test(seg)) return 'base64 alphabet';
  if (/\s/.test(seg)) return 'whitespace';
  if (!/^[A-Za-z0-9_-]+$/.test(seg)) return 'alphabet';
  if (seg.length % 4 === 1) return 'length';
  // The last character of a 2- or 3-character group carries 4 or 2 bits that encode nothing: they must be 0.
  const unused = [0, 0, 0b1111, 0b11][seg.length % 4]!;
  if ((ALPHABET.indexOf(seg.at(-1)!) & unused) !== 0) return 'non-canonical last character';
  return undefined;
}

/** The section 7.1 rule that refuses a token jose accepted (so it has three parts and a JSON header), or undefined. */
function rule71(token: string, payload: JWTPayload, cfg: Omit<JwtConfig, 'secret'>): string | undefined {
  const parts = token.split('.');
  for (const seg of parts) {
    const why = segmentRule(seg);
    if (why !== undefined) return why;
  }
  const header = JSON.parse(new TextDecoder().decode(Buffer.from(parts[0]!, 'base64url'))) as Record<string, unknown>;
  if ('typ' in header && !(typeof header.typ === 'string' && ['jwt', 'at+jwt'].includes(header.typ.toLowerCase())))
    return 'typ';
  if ('crit' in header) return 'crit';
  if ('b64' in header && header.b64 !== true) return 'b64';
  const { iat } = payload;
  const tolerance = cfg.clockToleranceSec;
  if (iat === undefined) return cfg.maxAgeSec === undefined ? undefined : 'missing iat';
  if (typeof iat !== 'number') return 'iat not a number';
  if (iat > NOW + tolerance) return 'future iat';
  if (cfg.maxAgeSec !== undefined && NOW - iat > cfg.maxAgeSec + tolerance) return 'max age';
  return undefined;
}

/** The 7.1 rules that test/unit/auth.test.ts has a case for ("strict tokens (section 7.1)"). */
const UNIT_CASES = [
  'padding',
  'base64 alphabet',
  'whitespace',
  'alphabet',
  'non-canonical last character',
  'typ',
  'crit',
  'b64',
  'future iat',
  'max age',
  'missing iat',
];

describe('HS256 fast path = jose + section 7.1', () => {
  it('accepts exactly the tokens jose accepts that also meet the 7.1 rules (seeded)', async () => {
    const verdicts = { accepted: 0, refused: 0 };
    const onlyBy71 = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(testCase, async ({ cfg, header, claims: c, mutations }) => {
        const token = mutations.reduce((t, mu) => mu.apply(t), sign({ alg: 'HS256', ...header }, c));
        const payload = await joseAccepts(token, cfg);
        const why = payload && rule71(token, payload, cfg);
        const expected = payload !== undefined && why === undefined && isUserId(payload.sub);
        if (payload !== undefined && why !== undefined) onlyBy71.set(why, (onlyBy71.get(why) ?? 0) + 1);

        let accepted: boolean;
        try {
          await createVerifier({ secret: SECRET, ...cfg })(token);
          accepted = true;
        } catch (e) {
          expect(e).toBeInstanceOf(AuthError);
          accepted = false;
        }
        verdicts[accepted ? 'accepted' : 'refused']++;
        expect(accepted, `jose ${payload ? 'accepts' : 'refuses'}, 7.1: ${why ?? 'ok'}; ${JSON.stringify(token)}`).toBe(
          expected,
        );
      }),
      { seed: 42, numRuns: 5000 },
    );
    // The generator must reach both verdicts and every kind of token that only 7.1 refuses; each kind
    // seen must have its own unit case.
    expect(verdicts.accepted).toBeGreaterThan(300);
    expect(verdicts.refused).toBeGreaterThan(500);
    expect(UNIT_CASES).toEqual(expect.arrayContaining([...onlyBy71.keys()]));
    expect([...onlyBy71.keys()], JSON.stringify(Object.fromEntries(onlyBy71))).toEqual(
      expect.arrayContaining([
        'padding',
        'whitespace',
        'non-canonical last character',
        'typ',
        'crit',
        'b64',
        'future iat',
        'max age',
        'missing iat',
      ]),
    );
  });
});
