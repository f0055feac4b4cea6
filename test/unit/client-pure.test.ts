// The SDK's pure pieces: the reconnect delay (full jitter under a capped exponential) and reading a
// token's expiry without verifying it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fullJitter } from '../../client/backoff.js';
import { tokenExpiryMs } from '../../client/token.js';

describe('fullJitter', () => {
  it('is uniform below min(max, base × 2^attempt): 0 at random 0, just under the ceiling at random → 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseMs, maxMs, r) => {
          const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
          const d = fullJitter(attempt, { baseMs, maxMs }, () => r);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(Math.max(1, ceiling));
          expect(d).toBe(Math.floor(r * ceiling));
        },
      ),
    );
  });

  it('doubles the ceiling per attempt until the cap', () => {
    const top = (attempt: number) => fullJitter(attempt, { baseMs: 500, maxMs: 15_000 }, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 6].map(top)).toEqual([499, 999, 1999, 3999, 7999, 14_999, 14_999]);
  });
});

describe('tokenExpiryMs', () => {
  const jwt = (payload: unknown) =>
    `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;

  it('reads exp in ms, including from a payload with non-ASCII text', () => {
    expect(tokenExpiryMs(jwt({ sub: 'a', exp: 1_800_000_000 }))).toBe(1_800_000_000_000);
    expect(tokenExpiryMs(jwt({ sub: 'zoë ✓', exp: 42 }))).toBe(42_000);
  });

  it('has no expiry for tokens without a numeric exp or that are not JWTs', () => {
    for (const t of [jwt({ sub: 'a' }), jwt({ exp: '1800000000' }), 'opaque-token', 'a.!!!.b', ''])
      expect(tokenExpiryMs(t)).toBeUndefined();
  });
});
