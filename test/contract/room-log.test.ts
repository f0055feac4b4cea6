// RoomLog contract: gapless seqs, dedup, bounded complete/incomplete reads, epochs, fencing.
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roomSlot } from '../../shared/cluster/slots.js';
import { NotOwnerError } from '../../shared/errors.js';
import type { AppendRequest, Lease, Stores } from '../../shared/store/ports.js';
import { openRedis } from '../../shared/redis/connection.js';
import { redisStores } from '../../shared/store/redis.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';
import { DEFAULT_LIMITS, forEachBackend, uniquePrefix } from './backends.js';

const SLOT = 5;
const HOUR = 3_600_000;

async function lease(stores: Stores, slot = SLOT, ttlMs = 60_000): Promise<Lease> {
  const l = await stores.leases.acquire(slot, 'router-1', ttlMs);
  if (!l) throw new Error(`slot ${slot} already held`);
  return l;
}

const req = (room: string, extra: Partial<AppendRequest> = {}): AppendRequest => ({
  slot: SLOT,
  room,
  from: 'alice',
  dataJson: '{"n":1}',
  ...extra,
});

forEachBackend('RoomLog', (backend) => {
  it('gives seqs 1..N with no gap or duplicate under 200 concurrent appends across rooms', async () => {
    const { stores } = backend().make();
    const rooms = ['lobby', 'lobby.1', 'lobby:1', 'x@y', 'a-b_c'];
    const leases = new Map<number, Lease>();
    for (const room of rooms) {
      const slot = roomSlot(room, 64);
      if (!leases.has(slot)) leases.set(slot, await lease(stores, slot));
    }
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const room = rooms[i % rooms.length]!;
        const slot = roomSlot(room, 64);
        return stores.log
          .append({ slot, room, from: 'alice', dataJson: JSON.stringify({ i }) }, leases.get(slot)!)
          .then((r) => ({ room, slot, i, ...r }));
      }),
    );
    for (const room of rooms) {
      const mine = results.filter((r) => r.room === room).sort((a, b) => a.seq - b.seq);
      expect(mine.map((r) => r.seq)).toEqual(Array.from({ length: mine.length }, (_, k) => k + 1));
      expect(new Set(mine.map((r) => r.epoch)).size).toBe(1);
      for (const r of mine) {
        expect(r.duplicate).toBe(false);
        expect(JSON.parse(r.frame)).toMatchObject({ t: 'msg', room, seq: r.seq, data: { i: r.i } });
      }
      const read = await stores.log.read(mine[0]!.slot, room, 0);
      expect(read).toMatchObject({ seq: mine.length, epoch: mine[0]!.epoch, complete: true });
      expect(read.frames).toEqual(mine.map((r) => ({ seq: r.seq, frame: r.frame })));
    }
  });

  it('builds the msg frame exactly, with ts from the store clock and mid only when given', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    // Data that mimics the frame's own tail must not confuse age trimming.
    const data = { s: 'quote " backslash \\ é ✓ "ts":1}', nested: [1, null, true] };
    const before = Date.now();
    const a = await stores.log.append(req('r.1', { dataJson: JSON.stringify(data), mid: 'm-1' }), l);
    const b = await stores.log.append(req('r.1', { from: 'svc:billing' }), l);
    const after = Date.now();
    const fa = JSON.parse(a.frame);
    expect(fa).toEqual({ t: 'msg', room: 'r.1', seq: 1, from: 'alice', data, mid: 'm-1', ts: fa.ts });
    expect(JSON.stringify(fa)).toBe(a.frame); // field order as the contract writes it
    expect(fa.ts).toBeGreaterThanOrEqual(before - 2_000);
    expect(fa.ts).toBeLessThanOrEqual(after + 2_000);
    const fb = JSON.parse(b.frame);
    expect(fb).toEqual({ t: 'msg', room: 'r.1', seq: 2, from: 'svc:billing', data: { n: 1 }, ts: fb.ts });
    expect(fb.ts).toBeGreaterThanOrEqual(fa.ts);
    expect((await stores.log.read(SLOT, 'r.1', 0)).frames.map((f) => f.frame)).toEqual([a.frame, b.frame]);
  });

  it('keeps with each message the connection its sender left out, and answers a repeat with the bare frame', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    const a = await stores.log.append(req('ex', { exclude: 'gw-1~a', mid: 'm', dedupBy: 'alice' }), l);
    const b = await stores.log.append(req('ex'), l);
    const c = await stores.log.append(req('ex', { exclude: 'gw-2~b' }), l);
    expect((await stores.log.read(SLOT, 'ex', 0)).frames).toEqual([
      { seq: 1, frame: a.frame, exclude: 'gw-1~a' },
      { seq: 2, frame: b.frame },
      { seq: 3, frame: c.frame, exclude: 'gw-2~b' },
    ]);
    // A resend from another connection: the first message, its frame as clients get it.
    const again = await stores.log.append(req('ex', { exclude: 'gw-2~c', mid: 'm', dedupBy: 'alice' }), l);
    expect(again).toEqual({ seq: 1, epoch: a.epoch, frame: a.frame, duplicate: true });
    expect(JSON.parse(again.frame)).toMatchObject({ t: 'msg', seq: 1, mid: 'm' });
  });

  it('answers a repeated mid with the first seq, per sender and room', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    const first = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice' }), l);
    await stores.log.append(req('room'), l);
    const again = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice', dataJson: '"other"' }), l);
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ seq: first.seq, epoch: first.epoch, frame: first.frame, duplicate: true });

    const otherUser = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'bob', from: 'bob' }), l);
    expect(otherUser).toMatchObject({ seq: 3, duplicate: false });
    const otherRoom = await stores.log.append(req('room2', { mid: 'm1', dedupBy: 'alice' }), l);
    expect(otherRoom).toMatchObject({ seq: 1, duplicate: false });
    // A mid without dedupBy is carried in the frame but not deduplicated.
    const noScope1 = await stores.log.append(req('room', { mid: 'm2' }), l);
    const noScope2 = await stores.log.append(req('room', { mid: 'm2' }), l);
    expect([noScope1.seq, noScope2.seq]).toEqual([4, 5]);
    expect((await stores.log.read(SLOT, 'room', 0)).seq).toBe(5);
  });

  it("returns '' as the frame of a duplicate whose first message left history", async () => {
    const { stores } = backend().make({ maxMessages: 2 });
    const l = await lease(stores);
    const first = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice' }), l);
    for (let i = 0; i < 3; i++) await stores.log.append(req('room'), l);
    const again = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice' }), l);
    expect(again).toEqual({ seq: first.seq, epoch: first.epoch, frame: '', duplicate: true });
    expect((await stores.log.read(SLOT, 'room', 0)).seq).toBe(4);
  });

  it('forgets a mid after the dedup window', async () => {
    const { stores } = backend().make({ dedupWindowMs: 150 });
    const l = await lease(stores);
    const first = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice' }), l);
    let later = first;
    await waitFor(
      async () => !(later = await stores.log.append(req('room', { mid: 'm1', dedupBy: 'alice' }), l)).duplicate,
      5_000,
      'the mid to be forgotten',
    );
    expect(later.seq).toBe(2);
    expect(later.epoch).toBe(first.epoch);
  });

  it('never lets names that differ only by . : * % { } share seqs or dedup', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    const pairs = [
      ['a.b', 'a:b'],
      ['a.b', 'a%2Eb'],
      ['a*', 'a.*'],
      ['a.*', 'a.>'],
      ['a', 'a.'],
      ['a%', 'a%25'],
      ['{x}', 'x'],
      ['a:b', 'a%3Ab'],
    ];
    for (const [x, y] of pairs) {
      const rx = await stores.log.append(req(x!, { mid: 'm', dedupBy: 'u' }), l);
      const ry = await stores.log.append(req(y!, { mid: 'm', dedupBy: 'u' }), l);
      expect(ry).toMatchObject({ duplicate: false, seq: rx.seq });
    }
    // Dedup key parts shifted across the separator: (room 'a:b', sender 'c') vs (room 'a', sender 'b:c').
    const d1 = await stores.log.append(req('k:b', { mid: 'm', dedupBy: 'c' }), l);
    const d2 = await stores.log.append(req('k', { mid: 'm', dedupBy: 'b:c' }), l);
    expect([d1.duplicate, d2.duplicate]).toEqual([false, false]);
  });

  it('keeps every distinct name and (room, sender, mid) apart (property)', async () => {
    const unit = fc.constantFrom(...'Aa0_-:@.'.split(''));
    const name = fc.string({ unit, minLength: 1, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(name, name).filter(([a, b]) => a !== b),
        // One string split in two different places: the classic separator-injection pair.
        fc.tuple(fc.string({ unit, minLength: 3, maxLength: 12 }), fc.nat(), fc.nat(), fc.nat(), fc.nat()),
        async ([a, b], [s, i1, j1, i2, j2]) => {
          const { stores } = backend().make();
          const l = await lease(stores);
          await stores.log.append(req(a, { mid: 'm', dedupBy: 'u' }), l);
          await stores.log.append(req(a), l);
          const rb = await stores.log.append(req(b, { mid: 'm', dedupBy: 'u' }), l);
          expect(rb).toMatchObject({ seq: 1, duplicate: false });
          expect((await stores.log.read(SLOT, b, 0)).frames.map((f) => JSON.parse(f.frame).room)).toEqual([b]);
          expect((await stores.log.read(SLOT, a, 0)).seq).toBe(2);

          const split = (x: number, y: number) => {
            const p = 1 + (x % (s.length - 2));
            const q = p + 1 + (y % (s.length - p - 1));
            return [s.slice(0, p), s.slice(p, q), s.slice(q)] as const;
          };
          const [r1, u1, m1] = split(i1, j1);
          const [r2, u2, m2] = split(i2, j2);
          fc.pre(r1 !== r2 || u1 !== u2 || m1 !== m2);
          const t1 = await stores.log.append(req(r1, { mid: m1, dedupBy: u1 }), l);
          const t2 = await stores.log.append(req(r2, { mid: m2, dedupBy: u2 }), l);
          expect([t1.duplicate, t2.duplicate]).toEqual([false, false]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads: head and nothing after it is complete; beyond the head is not', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    const fresh = await stores.log.read(SLOT, 'new-room', 0);
    expect(fresh).toMatchObject({ seq: 0, frames: [], complete: true });
    expect(fresh.epoch).not.toBe('');
    expect((await stores.log.read(SLOT, 'new-room', 3)).complete).toBe(false);

    const appended = [];
    for (let i = 0; i < 3; i++) appended.push(await stores.log.append(req('new-room'), l));
    expect(appended[0]!.epoch).toBe(fresh.epoch); // read created the epoch the appends continue
    expect(await stores.log.read(SLOT, 'new-room', 3)).toEqual({
      seq: 3,
      epoch: fresh.epoch,
      frames: [],
      complete: true,
    });
    expect(await stores.log.read(SLOT, 'new-room', 1)).toEqual({
      seq: 3,
      epoch: fresh.epoch,
      frames: appended.slice(1).map((a) => ({ seq: a.seq, frame: a.frame })),
      complete: true,
    });
    expect(await stores.log.read(SLOT, 'new-room', 4)).toMatchObject({ seq: 3, frames: [], complete: false });
  });

  it('reports a read reaching past the count limit as incomplete and returns at most maxMessages', async () => {
    const { stores } = backend().make({ maxMessages: 5 });
    const l = await lease(stores);
    for (let i = 0; i < 8; i++) await stores.log.append(req('room'), l);
    expect(await stores.log.read(SLOT, 'room', 0)).toMatchObject({ seq: 8, frames: [], complete: false });
    expect(await stores.log.read(SLOT, 'room', 2)).toMatchObject({ seq: 8, frames: [], complete: false });
    const tail = await stores.log.read(SLOT, 'room', 3);
    expect(tail.complete).toBe(true);
    expect(tail.frames.map((f) => f.seq)).toEqual([4, 5, 6, 7, 8]);
  });

  it('treats messages older than maxAgeMs as gone', async () => {
    const { stores } = backend().make({ maxAgeMs: 1_000, dedupWindowMs: HOUR });
    const l = await lease(stores);
    for (let i = 0; i < 3; i++) await stores.log.append(req('room'), l);
    const fresh = await stores.log.read(SLOT, 'room', 0);
    expect(fresh.complete).toBe(true);
    await waitFor(async () => !(await stores.log.read(SLOT, 'room', 0)).complete, 5_000, 'history to age out');
    const next = await stores.log.append(req('room'), l);
    expect(next).toMatchObject({ seq: 4, epoch: fresh.epoch });
    expect(await stores.log.read(SLOT, 'room', 2)).toMatchObject({ seq: 4, frames: [], complete: false });
    expect(await stores.log.read(SLOT, 'room', 3)).toEqual({
      seq: 4,
      epoch: fresh.epoch,
      frames: [{ seq: 4, frame: next.frame }],
      complete: true,
    });
  });

  it('starts a new epoch at seq 1 after history is wiped', async () => {
    const inst = backend().make();
    let l = await lease(inst.stores);
    const before = await inst.stores.log.append(req('room'), l);
    await inst.stores.log.append(req('room'), l);
    await inst.stores.log.append(req('other'), l);
    await inst.wipe();
    // Redis loses the lease too; memory keeps it.
    l = (await inst.stores.leases.acquire(SLOT, 'router-1', 60_000)) ?? l;
    const read = await inst.stores.log.read(SLOT, 'room', 2);
    expect(read).toMatchObject({ seq: 0, frames: [], complete: false });
    expect(read.epoch).not.toBe(before.epoch);
    const after = await inst.stores.log.append(req('room'), l);
    expect(after).toMatchObject({ seq: 1, epoch: read.epoch, duplicate: false });
    // A room first touched by an append after the wipe gets a new epoch too.
    const other = await inst.stores.log.append(req('other'), l);
    expect(other.seq).toBe(1);
    expect(other.epoch).not.toBe(before.epoch);
  });

  it('lets an idle room expire, and its next use starts a new epoch', async () => {
    const { stores } = backend().make({ maxAgeMs: 100, dedupWindowMs: 100 });
    const l = await lease(stores);
    const first = await stores.log.append(req('room', { mid: 'm', dedupBy: 'alice' }), l);
    await waitFor(
      async () => (await stores.log.read(SLOT, 'room', 0)).epoch !== first.epoch,
      5_000,
      'the room to expire',
    );
    const after = await stores.log.append(req('room', { mid: 'm', dedupBy: 'alice' }), l);
    expect(after).toMatchObject({ seq: 1, duplicate: false });
    expect(after.epoch).not.toBe(first.epoch);
  });

  it('refuses appends with a lapsed, released or superseded lease', async () => {
    const { stores } = backend().make();
    const short = await lease(stores, SLOT, 500);
    await stores.log.append(req('room'), short);
    await waitFor(async () => (await stores.leases.owners(SLOT + 1))[SLOT] === null, 5_000, 'the lease to lapse');
    await expect(stores.log.append(req('room'), short)).rejects.toBeInstanceOf(NotOwnerError);
    expect(await stores.leases.renew(short, 60_000)).toBe(false);

    const next = await stores.leases.acquire(SLOT, 'router-2', 60_000);
    expect(next!.fence).toBeGreaterThan(short.fence);
    await expect(stores.log.append(req('room'), short)).rejects.toBeInstanceOf(NotOwnerError);
    // Same owner name, old fence: still refused.
    await expect(stores.log.append(req('room'), { ...next!, fence: short.fence })).rejects.toBeInstanceOf(
      NotOwnerError,
    );
    // A lease of another slot does not authorize this one.
    const other = await lease(stores, SLOT + 1);
    await expect(stores.log.append(req('room'), other)).rejects.toBeInstanceOf(NotOwnerError);
    expect(await stores.log.append(req('room'), next!)).toMatchObject({ seq: 2 });

    await stores.leases.release(next!);
    await expect(stores.log.append(req('room'), next!)).rejects.toBeInstanceOf(NotOwnerError);
    expect((await stores.log.read(SLOT, 'room', 0)).seq).toBe(2);
  });
});

describe('RoomLog on Redis', () => {
  let server: RedisServer;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = await openRedis(server.url, 'room-log-batch');
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  const scriptCalls = async () =>
    [...(await redis.info('commandstats')).matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );

  it('sends a burst of appends to one slot as one script call; each gets its own answer, in order per room', async () => {
    const stores = redisStores(redis, uniquePrefix(), DEFAULT_LIMITS, { quitOnClose: false });
    const l = await lease(stores);
    await stores.log.append(req('warm'), l); // loads the script (the first EVALSHA may fall back to EVAL)
    const before = await scriptCalls();
    const rooms = ['b1', 'b2', 'b3'];
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => stores.log.append(req(rooms[i % 3]!, { dataJson: String(i) }), l)),
    );
    expect((await scriptCalls()) - before).toBe(1);
    for (const room of rooms) {
      const mine = results.filter((_, i) => rooms[i % 3] === room);
      expect(mine.map((r) => r.seq)).toEqual(mine.map((_, k) => k + 1));
    }
    expect(results.map((r) => JSON.parse(r.frame).data)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // A refused lease fails the whole burst, each append with NotOwnerError.
    const stale = { ...l, fence: l.fence + 1 };
    const refused = await Promise.allSettled([
      stores.log.append(req('b1'), stale),
      stores.log.append(req('b2'), stale),
    ]);
    expect(refused.map((r) => r.status === 'rejected' && r.reason instanceof NotOwnerError)).toEqual([true, true]);
  });
});
