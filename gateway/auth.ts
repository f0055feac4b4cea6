// Token verification (protocol.md sections 3 and 7.1). This module owns what a token must look like and
// claim: one strict decoding of the compact JWS that every token passes first (canonical base64url, `typ`,
// no `crit`, `b64` absent or true), the signature and time checks (HS256 on node:crypto, public keys and JWKS
// with jose), then the `iat` rules and the claims the gateway uses. Algorithms are pinned to the configured
// key's type, `exp` and `sub` are required, `iss`/`aud` checked when configured. Tokens are never logged:
// errors carry a short reason only.
import { createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { JwtConfig } from '../shared/config.js';
import { isPatternList, isUserId, type UserId } from '../shared/protocol/names.js';

export interface Claims {
  sub: UserId;
  /** Seconds since epoch. */
  exp: number;
  rooms?: string[];
  pub?: string[];
}

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(readonly reason: string) {
    super(reason);
  }
}

export type Verifier = (token: string) => Promise<Claims>;

type Key = KeyObject | ReturnType<typeof createRemoteJWKSet>;

/**
 * The algorithms a PEM public key may verify: exactly its own family and curve. A key that jose cannot
 * verify with is refused here, at startup, instead of failing every token with a vague 4001.
 */
function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
        throw new Error('RSA public keys must be at least 2048 bits');
      return ['RS256', 'RS384', 'RS512'];
    case 'rsa-pss':
      throw new Error(
        'RSA-PSS (id-RSASSA-PSS) public keys are not supported; give the key as a plain RSA (rsaEncryption) SPKI',
      );
    case 'ed448':
      throw new Error('Ed448 public keys are not supported; use Ed25519');
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const alg = {
        prime256v1: 'ES256',
        'P-256': 'ES256',
        secp384r1: 'ES384',
        'P-384': 'ES384',
        secp521r1: 'ES512',
        'P-521': 'ES512',
      }[curve ?? ''];
      if (!alg) throw new Error(`unsupported EC curve ${curve}`);
      return [alg];
    }
    case 'ed25519':
      // 'Ed25519' is the newer registered name of the same algorithm.
      return ['EdDSA', 'Ed25519'];
  }
  throw new Error(`unsupported public key type ${key.asymmetricKeyType}`);
}

export function createVerifier(cfg: JwtConfig): Verifier {
  const verifySignatureAndTime = cfg.secret !== undefined ? hs256(cfg) : viaJose(cfg);
  return async (token) => {
    const jws = decodeStrict(token);
    const payload = (await verifySignatureAndTime(token, jws)) as JWTPayload & { rooms?: unknown; pub?: unknown };
    checkIssuedAt(payload, cfg);
    const { sub, exp, rooms, pub } = payload;
    if (!isUserId(sub)) throw new AuthError('invalid sub');
    if (typeof exp !== 'number') throw new AuthError('invalid exp');
    if (rooms !== undefined && !isPatternList(rooms)) throw new AuthError('invalid rooms claim');
    if (pub !== undefined && !isPatternList(pub)) throw new AuthError('invalid pub claim');
    return { sub, exp, rooms, pub: pub ?? rooms };
  };
}

const invalid = () => new AuthError('invalid token');

/** A compact JWS that passed decodeStrict. */
interface Jws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** The first two segments and their dot: what the signature covers. */
  signingInput: string;
  signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
// Fatal, as jose's: a segment that is not UTF-8 is refused rather than read with replacement characters.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One segment's bytes, only from canonical base64url. Node's decoder (and jose's, through atob) skips
 * characters outside the alphabet, accepts `=` padding and whitespace and ignores the unused bits of the
 * last character, so many texts decode to the same bytes; only the one that re-encodes to itself passes.
 */
function canonicalSegment(text: string): Buffer {
  if (!BASE64URL.test(text)) throw invalid();
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw invalid();
  return bytes;
}

function jsonObject(bytes: Buffer): Record<string, unknown> {
  const v: unknown = JSON.parse(utf8.decode(bytes));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid();
  return v as Record<string, unknown>;
}

/**
 * The shape every token must have, checked the same way before either path looks at the signature:
 * exactly three canonical base64url segments, header and payload JSON objects, `typ` (when present) `JWT`
 * or `at+jwt` in any case, no `crit` (no extension is supported; jose would let `crit: ["b64"]` through)
 * and `b64` absent or true (a JWT payload is always encoded; jose ignores `b64: false` without `crit`).
 */
function decodeStrict(token: string): Jws {
  const parts = token.split('.');
  if (parts.length !== 3) throw invalid();
  const [h, p, s] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let payload: Record<string, unknown>;
  let signature: Buffer;
  try {
    header = jsonObject(canonicalSegment(h));
    payload = jsonObject(canonicalSegment(p));
    signature = canonicalSegment(s);
  } catch {
    throw invalid();
  }
  const { typ, crit, b64 } = header;
  if (typ !== undefined && !(typeof typ === 'string' && /^(jwt|at\+jwt)$/i.test(typ))) throw invalid();
  if (crit !== undefined || (b64 !== undefined && b64 !== true)) throw invalid();
  return { header, payload, signingInput: `${h}.${p}`, signature };
}

/**
 * Section 7.1's `iat` rules, after the signature, for both paths (jose checks only that `iat` is a number,
 * and a future one only under `maxTokenAge`): numeric when present, not later than now plus the clock
 * tolerance, and with a maximum age configured, present and not older than it. The tolerance widens the
 * maximum age as it widens `exp`, which is also what jose's `maxTokenAge` does: the issuer's clock may be
 * that far off ours.
 */
function checkIssuedAt(payload: JWTPayload, cfg: JwtConfig): void {
  const { iat } = payload;
  const now = Math.floor(Date.now() / 1000);
  const tolerance = cfg.clockToleranceSec;
  if (iat === undefined) {
    if (cfg.maxAgeSec !== undefined) throw new AuthError('missing iat');
    return;
  }
  if (typeof iat !== 'number') throw invalid();
  if (iat > now + tolerance) throw new AuthError('iat in the future');
  if (cfg.maxAgeSec !== undefined && now - iat - tolerance > cfg.maxAgeSec) throw new AuthError('token too old');
}

/**
 * Checks signature, algorithm and the exp, nbf, iss and aud claims of a token that passed decodeStrict;
 * resolves the payload or throws AuthError.
 */
type PayloadVerifier = (token: string, jws: Jws) => Promise<JWTPayload>;

function viaJose(cfg: JwtConfig): PayloadVerifier {
  let key: Key;
  let algorithms: string[];
  if (cfg.publicKey !== undefined) {
    const k = createPublicKey(cfg.publicKey.replace(/\\n/g, '\n'));
    key = k;
    algorithms = algorithmsFor(k);
  } else if (cfg.jwksUrl !== undefined) {
    key = createRemoteJWKSet(new URL(cfg.jwksUrl));
    algorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
  } else {
    throw new Error('no token key configured');
  }
  const options = {
    algorithms,
    issuer: cfg.issuer,
    audience: cfg.audience,
    clockTolerance: cfg.clockToleranceSec,
    requiredClaims: ['exp', 'sub'],
  };
  return async (token) => {
    try {
      // jose's overloads differ by key kind; the union is handled at run time.
      return (await jwtVerify(token, key as KeyObject, options)).payload;
    } catch (e) {
      throw new AuthError(e instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token');
    }
  };
}

/**
 * HS256 on node:crypto, synchronous: jose verifies through WebCrypto, a thread-pool job and a chain of
 * promises per token (about 80 µs of a busy gateway's CPU against 5 µs here), which is most of what a
 * connection storm costs. On top of decodeStrict the checks are jose's for these options (and
 * test/unit/token-differential.test.ts holds it to that): header `alg` HS256, the MAC compared in
 * constant time, then `exp` (required, numeric), `nbf` (numeric when present) against the clock with its
 * tolerance, `sub` present, and `iss`/`aud` when configured. `iat` is checkIssuedAt's.
 */
function hs256(cfg: JwtConfig): PayloadVerifier {
  const key = Buffer.from(new TextEncoder().encode(cfg.secret));
  const tolerance = cfg.clockToleranceSec;
  return async (_token, { header, payload, signingInput, signature }) => {
    if (header.alg !== 'HS256') throw invalid();
    const mac = createHmac('sha256', key).update(signingInput).digest();
    if (signature.length !== mac.length || !timingSafeEqual(signature, mac)) throw invalid();
    const now = Math.floor(Date.now() / 1000);
    const { exp, nbf, iss, aud, sub } = payload;
    if (sub === undefined || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) throw invalid();
    if (exp <= now - tolerance) throw new AuthError('token expired');
    if (nbf !== undefined && nbf > now + tolerance) throw invalid();
    if (cfg.issuer !== undefined && iss !== cfg.issuer) throw invalid();
    if (cfg.audience !== undefined && !(aud === cfg.audience || (Array.isArray(aud) && aud.includes(cfg.audience))))
      throw invalid();
    return payload as JWTPayload;
  };
}

/** Development mode only: a token for `user`, signed with the random development secret. */
export async function signDevToken(secret: string, user: string, ttlSec = 24 * 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
    .sign(new TextEncoder().encode(secret));
}
