// Seeded randomness for tests. Every random test input (not ids or unique names) is drawn from `prng`
// or from fast-check, whose global seed `test/harness/seed-setup.ts` fixes to the same `TEST_SEED`: a
// failing run replays with the same draws. `RTGW_TEST_SEED=<n>` explores another seed; a test that uses
// randomness says the seed in its failure message or output, so the run can be repeated.

/** The seed of this run: `RTGW_TEST_SEED` when set, else a fixed default. */
export const TEST_SEED: number = (() => {
  const env = process.env.RTGW_TEST_SEED;
  if (env === undefined || env === '') return 20261208;
  const n = Number(env);
  if (!Number.isSafeInteger(n)) throw new Error(`RTGW_TEST_SEED must be an integer, got ${env}`);
  return n;
})();

/**
 * A deterministic generator of numbers in [0, 1) (mulberry32), from `seed` (default `TEST_SEED`) mixed
 * with `stream`, so that two uses in one file draw independent sequences that do not depend on each
 * other's number of draws.
 */
export function prng(stream = '', seed = TEST_SEED): () => number {
  let h = seed >>> 0;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x5bd1e995) >>> 0;
  let a = h;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes from `next` (a `prng`). */
export function bytes(next: () => number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
}
