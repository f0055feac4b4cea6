// Token verification: HS256 on node:crypto, public keys and JWKS with jose. Algorithms are pinned to the
// configured key's type, `exp` and `sub` are required, `iss`/`aud` checked when configured. Tokens are
// never logged: errors carry a reason only.
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
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error('RSA public keys must be at least 2048 bits');
      return ['RS256', 'RS384', 'RS512'];
    case 'rsa-pss':
      throw new Error('RSA-PSS (id-RSASSA-PSS) public keys are not supported; give the key as a plain RSA (rsaEncryption) SPKI');
    case 'ed448':
      throw new Error('Ed448 public keys are not supported; use Ed25519');
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const alg = { 'prime256v1': 'ES256', 'P-256': 'ES256', 'secp384r1': 'ES384', 'P-384': 'ES384', 'secp521r1': 'ES512', 'P-521': 'ES512' }[curve ?? ''];
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
    const { sub, exp, rooms, pub } = (await verifySignatureAndTime(token)) as JWTPayload & { rooms?: unknown; pub?: unknown };
    if (!isUserId(sub)) throw new AuthError('invalid sub');
    if (typeof exp !== 'number') throw new AuthError('invalid exp');
    if (rooms !== undefined && !isPatternList(rooms)) throw new AuthError('invalid rooms claim');
    if (pub !== undefined && !isPatternList(pub)) throw new AuthError('invalid pub claim');
    return { sub, exp, rooms, pub: pub ?? rooms };
  };
}

/** Checks signature, algorithm and the time, iss and aud claims; resolves the payload or throws AuthError. */
type PayloadVerifier = (token: string) => Promise<JWTPayload>;

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
 * connection storm costs. The checks are jose's for these options: a JWS of three base64url parts whose
 * header says HS256 and no unencoded payload (`b64: false`; any `crit` is refused, where jose would let
 * `crit: ["b64"]` through), the MAC compared in constant time, then `exp` (required, numeric), `nbf` and `iat` (numeric when present) against the clock with
 * its tolerance, and `iss`/`aud` when configured.
 */
function hs256(cfg: JwtConfig): PayloadVerifier {
  const key = Buffer.from(new TextEncoder().encode(cfg.secret));
  const tolerance = cfg.clockToleranceSec;
  const invalid = () => new AuthError('invalid token');
  const json = (part: string): Record<string, unknown> => {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid();
    return v as Record<string, unknown>;
  };
  return async (token) => {
    const a = token.indexOf('.');
    const b = token.indexOf('.', a + 1);
    if (a <= 0 || b <= a + 1 || b === token.length - 1 || token.indexOf('.', b + 1) !== -1) throw invalid();
    let header: Record<string, unknown>;
    let payload: Record<string, unknown>;
    try {
      header = json(token.slice(0, a));
      const mac = createHmac('sha256', key).update(token.slice(0, b)).digest();
      const sig = Buffer.from(token.slice(b + 1), 'base64url');
      if (header.alg !== 'HS256' || header.crit !== undefined || header.b64 === false) throw invalid();
      if (sig.length !== mac.length || !timingSafeEqual(sig, mac)) throw invalid();
      payload = json(token.slice(a + 1, b));
    } catch {
      throw invalid();
    }
    const now = Math.floor(Date.now() / 1000);
    const { exp, nbf, iat, iss, aud, sub } = payload;
    if (sub === undefined || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number') || (iat !== undefined && typeof iat !== 'number')) throw invalid();
    if (exp <= now - tolerance) throw new AuthError('token expired');
    if (nbf !== undefined && nbf > now + tolerance) throw invalid();
    if (cfg.issuer !== undefined && iss !== cfg.issuer) throw invalid();
    if (cfg.audience !== undefined && !(aud === cfg.audience || (Array.isArray(aud) && aud.includes(cfg.audience)))) throw invalid();
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
