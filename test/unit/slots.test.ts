// Rendezvous ownership: every router computes the same owner per slot; shares stay usable; a router
// leaving moves only its own slots.
import { describe, expect, it } from 'vitest';
import { preferredOwner } from '../../router/slots.js';
import { bytes, prng, TEST_SEED } from '../harness/random.js';

const SLOTS = 64;
/** Router names like a deployment's (a random host part): seeded, so a failing cluster can be replayed. */
const draw = prng('slots');
const cluster = (n: number) =>
  Array.from({ length: n }, (_, i) => `host-${bytes(draw, 3).toString('hex')}-router-${i}`);
const shares = (routers: string[]) => {
  const c = new Map(routers.map((r) => [r, 0]));
  for (let s = 0; s < SLOTS; s++) c.set(preferredOwner(s, routers)!, c.get(preferredOwner(s, routers)!)! + 1);
  return c;
};

describe('preferredOwner', () => {
  it('does not depend on the order routers are listed in', () => {
    const routers = cluster(3);
    for (let s = 0; s < SLOTS; s++) expect(preferredOwner(s, [...routers].reverse())).toBe(preferredOwner(s, routers));
  });

  it('gives every router of 2 to 4 a real share in 500 random clusters', () => {
    for (const n of [2, 3, 4]) {
      for (let t = 0; t < 500; t++) {
        const min = Math.min(...shares(cluster(n)).values());
        expect(min, `${n} routers, cluster #${t} of seed ${TEST_SEED}`).toBeGreaterThanOrEqual(n === 2 ? 12 : 3);
      }
    }
  });

  it('moves only the slots of a router that leaves', () => {
    const routers = cluster(4);
    const gone = routers[1]!;
    const rest = routers.filter((r) => r !== gone);
    for (let s = 0; s < SLOTS; s++) {
      const before = preferredOwner(s, routers);
      if (before !== gone) expect(preferredOwner(s, rest)).toBe(before);
    }
  });

  it('has no owner without routers', () => {
    expect(preferredOwner(0, [])).toBeUndefined();
  });
});
