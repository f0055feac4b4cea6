// SlotLeases contract: one owner per slot, growing fences, renew only while held, live routers by TTL.
import { expect, it } from 'vitest';
import { waitFor } from '../harness/wait.js';
import { forEachBackend } from './backends.js';

forEachBackend('SlotLeases', (backend) => {
  it('gives a free slot to one owner and shows it in owners()', async () => {
    const { stores } = backend().make();
    const l = await stores.leases.acquire(2, 'r1', 60_000);
    expect(l).toMatchObject({ slot: 2, owner: 'r1' });
    expect(await stores.leases.acquire(2, 'r2', 60_000)).toBeNull();
    expect(await stores.leases.acquire(2, 'r1', 60_000)).toBeNull(); // not re-entrant either
    expect(await stores.leases.owners(4)).toEqual([null, null, 'r1', null]);
  });

  it('lets exactly one of many concurrent acquirers win', async () => {
    const inst = backend().make();
    const tries = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? inst.peer : inst.stores).leases.acquire(0, `r${i}`, 60_000)),
    );
    const winners = tries.filter((l) => l !== null);
    expect(winners).toHaveLength(1);
    expect(await inst.stores.leases.owners(1)).toEqual([winners[0]!.owner]);
  });

  it('hands out a larger fence after a release, and release frees the slot at once', async () => {
    const { stores } = backend().make();
    const a = (await stores.leases.acquire(1, 'r1', 60_000))!;
    await stores.leases.release(a);
    expect(await stores.leases.owners(2)).toEqual([null, null]);
    const b = (await stores.leases.acquire(1, 'r2', 60_000))!;
    expect(b.fence).toBeGreaterThan(a.fence);
    // Releasing a stale lease leaves the new owner alone.
    await stores.leases.release(a);
    expect((await stores.leases.owners(2))[1]).toBe('r2');
    await stores.leases.release(b);
    const c = (await stores.leases.acquire(1, 'r2', 60_000))!;
    expect(c.fence).toBeGreaterThan(b.fence);
  });

  it('renews a held lease past its first TTL, and never a lost one', async () => {
    const { stores } = backend().make();
    const l = (await stores.leases.acquire(3, 'r1', 600))!;
    const until = Date.now() + 1_300;
    // Renewing keeps it: owned for more than twice the TTL.
    while (Date.now() < until) {
      expect(await stores.leases.renew(l, 600)).toBe(true);
      expect((await stores.leases.owners(4))[3]).toBe('r1');
      await new Promise((r) => setTimeout(r, 50));
    }
    const short = (await stores.leases.acquire(0, 'r1', 100))!;
    await waitFor(async () => (await stores.leases.owners(1))[0] === null, 5_000, 'the lease to lapse');
    expect(await stores.leases.renew(short, 60_000)).toBe(false);
    expect((await stores.leases.owners(1))[0]).toBeNull(); // a failed renew does not revive it
    const taken = (await stores.leases.acquire(0, 'r2', 60_000))!;
    expect(taken.fence).toBeGreaterThan(short.fence);
    expect(await stores.leases.renew(short, 60_000)).toBe(false);
    expect(await stores.leases.renew({ ...short, fence: taken.fence }, 60_000)).toBe(false); // owner must match too
    expect(await stores.leases.renew(taken, 60_000)).toBe(true);
  });

  it('lists routers until their heartbeat lapses, sorted, and drops them on leave', async () => {
    const { stores } = backend().make();
    await stores.leases.heartbeat('r-b', 60_000);
    await stores.leases.heartbeat('r-c', 1_000);
    await stores.leases.heartbeat('r-a', 60_000);
    expect(await stores.leases.liveRouters()).toEqual(['r-a', 'r-b', 'r-c']);
    await waitFor(async () => !(await stores.leases.liveRouters()).includes('r-c'), 5_000, 'r-c to lapse');
    expect(await stores.leases.liveRouters()).toEqual(['r-a', 'r-b']);
    await stores.leases.heartbeat('r-c', 60_000); // back after a pause
    await stores.leases.leave('r-b');
    expect(await stores.leases.liveRouters()).toEqual(['r-a', 'r-c']);
  });
});
