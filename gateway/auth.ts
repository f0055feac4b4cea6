// Token verification (jose). Algorithms are pinned to the configured key's type, `exp` and `sub`
// are required, `iss`/`aud` checked when configured. Tokens are never logged: errors carry a reason only.
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
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

type Key = CryptoKey | KeyObject | ReturnType<typeof createRemoteJWKSet>;

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
  let key: Key | Promise<Key>;
  let algorithms: string[];
  if (cfg.secret !== undefined) {
    // Imported once: given the raw bytes, jose imports a WebCrypto key on every verify (~2.5x the cost).
    key = webcrypto.subtle.importKey('raw', new TextEncoder().encode(cfg.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    algorithms = ['HS256'];
  } else if (cfg.publicKey !== undefined) {
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
    let payload: JWTPayload;
    try {
      // jose's overloads differ by key kind; the union is handled at run time.
      ({ payload } = await jwtVerify(token, (await key) as CryptoKey, options));
    } catch (e) {
      throw new AuthError(e instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token');
    }
    const { sub, exp, rooms, pub } = payload as JWTPayload & { rooms?: unknown; pub?: unknown };
    if (!isUserId(sub)) throw new AuthError('invalid sub');
    if (typeof exp !== 'number') throw new AuthError('invalid exp');
    if (rooms !== undefined && !isPatternList(rooms)) throw new AuthError('invalid rooms claim');
    if (pub !== undefined && !isPatternList(pub)) throw new AuthError('invalid pub claim');
    return { sub, exp, rooms, pub: pub ?? rooms };
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
