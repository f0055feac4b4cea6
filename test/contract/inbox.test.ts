// Inbox contract: per-recipient gapless seqs, exact frames, dedup, fencing, ack, pending (re-arm),
// claims (only due, backoff, lease, no double claim), park, limits (per sender, full inbox: refused,
// nothing evicted), dead letters (attempts, expired; bounded per slot) and their re-drive, stats, and
// what is left in Redis once a recipient has nothing pending. Short timings; tests wait for conditions,
// never fixed sleeps.
import { expect, it } from 'vitest';
import { keys } from '../../shared/cluster/keys.js';
import { userSlot } from '../../shared/cluster/slots.js';
import { LimitError, NotOwnerError } from '../../shared/errors.js';
import type { DmAppendRequest, DmAppendResult, DueDelivery, Lease, Stores } from '../../shared/store/ports.js';
import { waitFor } from '../harness/wait.js';
import { DEFAULT_LIMITS, forEachBackend } from './backends.js';

const SLOTS = 64;
const SLOT = 5;

/** `n` user ids that all map to `slot`, so one claimDue sees all their entries. */
function usersIn(slot: number, n: number, base = 'user'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (userSlot(`${base}${i}`, SLOTS) === slot) out.push(`${base}${i}`);
  return out;
}
const [BOB, CAROL, DAVE] = usersIn(SLOT, 3) as [string, string, string];

async function lease(stores: Stores, slot = SLOT, ttlMs = 60_000, owner = 'router-1'): Promise<Lease> {
  const l = await stores.leases.acquire(slot, owner, ttlMs);
  if (!l) throw new Error(`slot ${slot} already held`);
  return l;
}

const dm = (to: string, extra: Partial<DmAppendRequest> = {}): DmAppendRequest => ({
  slot: userSlot(to, SLOTS),
  to,
  from: 'alice',
  sender: 'alice',
  dataJson: '{"n":1}',
  ...extra,
});

const tsOf = (frame: string): number => JSON.parse(frame).ts as number;

/** Claims until one comes back (or the deadline), timing the call that returned it. */
async function claimNext(stores: Stores, slot: number, what: string, limit = 100) {
  let got: DueDelivery[] = [];
  let before = 0;
  let after = 0;
  await waitFor(
    async () => {
      before = Date.now();
      got = await stores.inbox.claimDue(slot, limit);
      after = Date.now();
      return got.length > 0;
    },
    10_000,
    what,
  );
  return { got, before, after };
}

forEachBackend('Inbox', (backend) => {
  it('gives each recipient seqs 1..N with no gap or duplicate under 200 concurrent appends', async () => {
    const inst = backend().make();
    const { stores, peer } = inst;
    const users = ['bob', 'carol.x', 'dave:1', 'x@y', 'a-b_c', ...usersIn(SLOT, 2)];
    const leases = new Map<number, Lease>();
    for (const u of users) {
      const slot = userSlot(u, SLOTS);
      if (!leases.has(slot)) leases.set(slot, await lease(stores, slot));
    }
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const to = users[i % users.length]!;
        const via = i % 2 === 0 ? stores : peer;
        return via.inbox
          .append(dm(to, { dataJson: JSON.stringify({ i }) }), leases.get(userSlot(to, SLOTS))!)
          .then((r) => ({ to, i, ...r }));
      }),
    );
    for (const u of users) {
      const mine = results.filter((r) => r.to === u).sort((a, b) => a.seq - b.seq);
      expect(mine.map((r) => r.seq)).toEqual(Array.from({ length: mine.length }, (_, k) => k + 1));
      for (const r of mine) {
        expect(r.duplicate).toBe(false);
        expect(JSON.parse(r.frame)).toMatchObject({ t: 'dm', seq: r.seq, from: 'alice', data: { i: r.i } });
      }
      expect((await stores.inbox.pending(userSlot(u, SLOTS), u)).messages).toEqual(
        mine.map((r) => ({ seq: r.seq, frame: r.frame })),
      );
    }
    // Every key of the inbox lives under its slot's single hash tag (one Redis Cluster slot per script).
    const all = (await inst.redisKeys?.()) ?? [];
    for (const key of all) expect(key).toMatch(/^[^{}]*\{[^{}]*:s\d+\}[^{}]*$/);
    const slotsSeen = new Set(all.map((key) => Number(/:s(\d+)\}/.exec(key)![1])));
    for (const s of slotsSeen) expect(leases.has(s)).toBe(true);
  });

  it('builds the dm frame exactly, with ts from the store clock and mid only when given', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    // Data passed verbatim (spaces kept), and data that mimics the frame's own tail.
    const dataJson = '{ "s" : "quote \\" backslash \\\\ é ✓ \\"ts\\":1}", "nested": [1, null, true] }';
    const before = Date.now();
    const a = await stores.inbox.append(dm(BOB, { dataJson, mid: 'm-1' }), l);
    const b = await stores.inbox.append(dm(BOB, { from: 'svc:billing' }), l);
    const after = Date.now();
    const ta = tsOf(a.frame);
    expect(a).toEqual({
      seq: 1,
      frame: `{"t":"dm","seq":1,"from":"alice","data":${dataJson},"mid":"m-1","ts":${ta}}`,
      duplicate: false,
      inboxSize: 1,
      nodes: [],
    });
    expect(ta).toBeGreaterThanOrEqual(before - 2_000);
    expect(ta).toBeLessThanOrEqual(after + 2_000);
    const tb = tsOf(b.frame);
    expect(b.frame).toBe(`{"t":"dm","seq":2,"from":"svc:billing","data":{"n":1},"ts":${tb}}`);
    expect(tb).toBeGreaterThanOrEqual(ta);
    expect((await stores.inbox.pending(SLOT, BOB)).messages).toEqual([
      { seq: 1, frame: a.frame },
      { seq: 2, frame: b.frame },
    ]);
  });

  it('answers a repeated (recipient, sender, mid) with the first seq, and with its frame only while pending', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    const first = await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'alice' }), l);
    const again = await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'alice', dataJson: '"other"' }), l);
    expect(first).toMatchObject({ seq: 1, duplicate: false });
    expect(again).toEqual({ seq: 1, frame: first.frame, duplicate: true, inboxSize: 1, nodes: [] });
    expect((await stores.inbox.stats(SLOT)).queued).toBe(1); // a duplicate adds no compensation entry

    const otherSender = await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'carol', from: 'carol' }), l);
    expect(otherSender).toMatchObject({ seq: 2, duplicate: false });
    const otherRecipient = await stores.inbox.append(dm(CAROL, { mid: 'm1', dedupBy: 'alice' }), l);
    expect(otherRecipient).toMatchObject({ seq: 1, duplicate: false });
    // A mid without dedupBy is carried in the frame but not deduplicated.
    const n1 = await stores.inbox.append(dm(BOB, { mid: 'm2' }), l);
    const n2 = await stores.inbox.append(dm(BOB, { mid: 'm2' }), l);
    expect([n1.seq, n2.seq]).toEqual([3, 4]);
    // A room and a recipient of the same name in one slot do not share dedup keys.
    await stores.log.append({ slot: SLOT, room: DAVE, from: 'alice', dataJson: '1', mid: 'm3', dedupBy: 'alice' }, l);
    expect(await stores.inbox.append(dm(DAVE, { mid: 'm3', dedupBy: 'alice' }), l)).toMatchObject({
      seq: 1,
      duplicate: false,
    });

    expect(await stores.inbox.ack(SLOT, BOB, 1)).toBe(true);
    const settled = await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'alice' }), l);
    expect(settled).toEqual({ seq: 1, frame: '', duplicate: true, inboxSize: 3, nodes: [] });
    expect((await stores.inbox.pending(SLOT, BOB)).messages.map((p) => p.seq)).toEqual([2, 3, 4]);
  });

  it('forgets a mid after the dedup window', async () => {
    const { stores } = backend().make({ dedupWindowMs: 150 });
    const l = await lease(stores);
    await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'alice' }), l);
    let later = { seq: 0, duplicate: true };
    await waitFor(
      async () => !(later = await stores.inbox.append(dm(BOB, { mid: 'm1', dedupBy: 'alice' }), l)).duplicate,
      5_000,
      'the mid to be forgotten',
    );
    expect(later.seq).toBe(2);
  });

  it('refuses appends with a lapsed, superseded or other-slot lease, consuming no seq', async () => {
    const { stores } = backend().make();
    const short = await lease(stores, SLOT, 500);
    expect(await stores.inbox.append(dm(BOB), short)).toMatchObject({ seq: 1 });
    await waitFor(async () => (await stores.leases.owners(SLOT + 1))[SLOT] === null, 5_000, 'the lease to lapse');
    await expect(stores.inbox.append(dm(BOB), short)).rejects.toBeInstanceOf(NotOwnerError);

    const next = await lease(stores, SLOT, 60_000, 'router-2');
    await expect(stores.inbox.append(dm(BOB), short)).rejects.toBeInstanceOf(NotOwnerError);
    await expect(stores.inbox.append(dm(BOB), { ...next, fence: short.fence })).rejects.toBeInstanceOf(NotOwnerError);
    const other = await lease(stores, SLOT + 1);
    await expect(stores.inbox.append(dm(BOB), other)).rejects.toBeInstanceOf(NotOwnerError);
    expect(await stores.inbox.append(dm(BOB), next)).toMatchObject({ seq: 2 });
    expect((await stores.inbox.pending(SLOT, BOB)).messages.map((p) => p.seq)).toEqual([1, 2]);
    expect((await stores.inbox.stats(SLOT)).queued).toBe(2);
  });

  it('settles a message on ack: once, for its recipient only', async () => {
    const { stores, peer } = backend().make();
    const l = await lease(stores);
    await stores.inbox.append(dm(BOB), l);
    await stores.inbox.append(dm(BOB), l);
    expect(await stores.inbox.ack(SLOT, CAROL, 1)).toBe(false);
    expect(await stores.inbox.ack(SLOT, BOB, 7)).toBe(false);
    expect(await stores.inbox.ack(SLOT, BOB, 1.5)).toBe(false);
    const both = await Promise.all([stores.inbox.ack(SLOT, BOB, 1), peer.inbox.ack(SLOT, BOB, 1)]);
    expect(both.sort()).toEqual([false, true]);
    expect(await stores.inbox.ack(SLOT, BOB, 1)).toBe(false);
    expect((await stores.inbox.pending(SLOT, BOB)).messages.map((p) => p.seq)).toEqual([2]);
    expect((await stores.inbox.stats(SLOT)).queued).toBe(1);
    expect(await stores.inbox.ack(SLOT, BOB, 2)).toBe(true);
    expect(await stores.inbox.stats(SLOT)).toEqual({ queued: 0, due: 0, oldestDueMs: 0 });
    expect(await stores.inbox.deadLetters(SLOT, 10)).toEqual([]);
  });

  it('peeks at pending messages after a seq, in order and bounded, changing nothing', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 60_000 });
    const l = await lease(stores);
    const sent: DmAppendResult[] = [];
    for (let i = 0; i < 5; i++) sent.push(await stores.inbox.append(dm(BOB, { dataJson: String(i) }), l));
    await stores.inbox.ack(SLOT, BOB, 3);
    const before = await stores.inbox.stats(SLOT);
    expect(await stores.inbox.peek(SLOT, BOB, 1, 10)).toEqual([
      { seq: 2, frame: sent[1]!.frame },
      { seq: 4, frame: sent[3]!.frame },
      { seq: 5, frame: sent[4]!.frame },
    ]);
    expect((await stores.inbox.peek(SLOT, BOB, 0, 2)).map((p) => p.seq)).toEqual([1, 2]);
    expect(await stores.inbox.peek(SLOT, BOB, 5, 10)).toEqual([]);
    expect(await stores.inbox.peek(SLOT, CAROL, 0, 10)).toEqual([]);
    expect(await stores.inbox.stats(SLOT)).toEqual(before);
  });

  it('reports the head seq of a recipient (acknowledged messages included) and the inbox size at each append', async () => {
    const { stores } = backend().make();
    const l = await lease(stores);
    expect((await stores.inbox.pending(SLOT, BOB)).head).toBe(0);
    const sizes: number[] = [];
    for (let i = 0; i < 3; i++) sizes.push((await stores.inbox.append(dm(BOB), l)).inboxSize);
    expect(sizes).toEqual([1, 2, 3]);
    await stores.inbox.ack(SLOT, BOB, 3);
    expect(await stores.inbox.pending(SLOT, BOB)).toMatchObject({ head: 3, messages: [{ seq: 1 }, { seq: 2 }] });
    expect(await stores.inbox.pending(SLOT, CAROL)).toEqual({ head: 0, messages: [] });
    expect((await stores.inbox.append(dm(BOB), l)).inboxSize).toBe(3);
  });

  it('returns pending messages in seq order and re-arms them with attempts restarted', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 150, maxBackoffMs: 150 });
    const l = await lease(stores);
    expect((await stores.inbox.pending(SLOT, BOB)).messages).toEqual([]);
    const sent: DmAppendResult[] = [];
    for (let i = 0; i < 3; i++) sent.push(await stores.inbox.append(dm(BOB, { dataJson: String(i) }), l));
    await stores.inbox.ack(SLOT, BOB, 2);

    // Appended a few ms apart: wait until both are due, so one claim takes both.
    await waitFor(async () => (await stores.inbox.stats(SLOT)).due === 2, 5_000, 'both to come due');
    const c1 = await claimNext(stores, SLOT, 'the first retry');
    expect(c1.got.map((d) => [d.seq, d.attempt])).toEqual([
      [1, 2],
      [3, 2],
    ]);
    const c2 = await claimNext(stores, SLOT, 'the second retry');
    expect(c2.got.map((d) => d.attempt)).toEqual(c2.got.map(() => 3));

    const armedAt = Date.now();
    const p = (await stores.inbox.pending(SLOT, BOB)).messages;
    expect(p).toEqual([
      { seq: 1, frame: sent[0]!.frame },
      { seq: 3, frame: sent[2]!.frame },
    ]);
    expect(await stores.inbox.stats(SLOT)).toMatchObject({ queued: 2, due: 0 });
    expect(await stores.inbox.claimDue(SLOT, 10)).toEqual([]);
    const c3 = await claimNext(stores, SLOT, 'the retry after re-arming');
    expect(c3.after).toBeGreaterThanOrEqual(armedAt + 150 - 2);
    expect(c3.got.map((d) => [d.seq, d.attempt])).toEqual([
      [1, 2],
      [3, 2],
    ]);
  });

  it('names the gateway nodes holding a connection of the recipient, as presence has them, when storing and when claiming', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 50 });
    const l = await lease(stores);
    expect((await stores.inbox.append(dm(BOB), l)).nodes).toEqual([]);
    await stores.presence.connect('g1', BOB, 'c1');
    await stores.presence.connect('g1', BOB, 'c2');
    await stores.presence.connect('g2', BOB, 'c3');
    await stores.presence.connect('g3', CAROL, 'c4');
    expect((await stores.inbox.append(dm(BOB), l)).nodes.sort()).toEqual(['g1', 'g2']);
    expect((await stores.inbox.append(dm(BOB, { mid: 'm', dedupBy: 'alice' }), l)).nodes.sort()).toEqual(['g1', 'g2']);
    expect((await stores.inbox.append(dm(BOB, { mid: 'm', dedupBy: 'alice' }), l)).nodes.sort()).toEqual(['g1', 'g2']); // a duplicate too
    const { got } = await claimNext(stores, SLOT, 'the first retries');
    for (const d of got) expect(d.nodes.sort()).toEqual(['g1', 'g2']);
    await stores.presence.disconnect('g2', BOB, 'c3');
    expect((await stores.inbox.append(dm(BOB), l)).nodes).toEqual(['g1']);
    await stores.presence.removeNode('g1');
    expect((await stores.inbox.append(dm(BOB), l)).nodes).toEqual([]);
    expect((await stores.inbox.append(dm(CAROL), l)).nodes).toEqual(['g3']);
  });

  it('claims only due entries, with exponential backoff and jitter, and dead-letters after maxAttempts', async () => {
    const ack = 100;
    const inst = backend().make({ ackTimeoutMs: ack, maxBackoffMs: 10_000, maxAttempts: 5 });
    const { stores } = inst;
    const l = await lease(stores);
    const appendedAt = Date.now();
    const a = await stores.inbox.append(dm(BOB), l);
    const early = await Promise.all([stores.inbox.claimDue(SLOT, 10), stores.inbox.stats(SLOT)]);
    if (Date.now() < appendedAt + ack - 10) expect(early).toEqual([[], { queued: 1, due: 0, oldestDueMs: 0 }]);

    for (let attempt = 2; attempt <= 5; attempt++) {
      const { got, before, after } = await claimNext(stores, SLOT, `attempt ${attempt}`);
      expect(got).toHaveLength(1);
      const d = got[0]!;
      expect(d).toMatchObject({ user: BOB, seq: 1, frame: a.frame, attempt });
      const backoff = ack * 2 ** (attempt - 2);
      // Store clock = this host's clock (same machine); 2 ms for ms rounding.
      expect(d.due - before).toBeGreaterThanOrEqual(backoff / 2 - 2);
      expect(d.due - after).toBeLessThanOrEqual(backoff + 2);
      // The reschedule is the claim's lease: nobody gets it again before `due`.
      if (Date.now() < d.due - 20) expect(await stores.inbox.claimDue(SLOT, 10)).toEqual([]);
    }
    await waitFor(async () => (await stores.inbox.stats(SLOT)).due === 1, 10_000, 'the last attempt to time out');
    expect(await stores.inbox.claimDue(SLOT, 10)).toEqual([]);
    const dead = await stores.inbox.deadLetters(SLOT, 10);
    expect(dead).toEqual([
      {
        id: `${SLOT}:${BOB}:1`,
        user: BOB,
        seq: 1,
        frame: a.frame,
        attempts: 5,
        reason: 'attempts',
        sentTs: tsOf(a.frame),
        ts: dead[0]!.ts,
      },
    ]);
    expect(dead[0]!.ts).toBeGreaterThanOrEqual(tsOf(a.frame) + (ack * (1 + 1 + 2 + 4 + 8)) / 2);
    expect(inst.deadLettered).toEqual({ attempts: 1, inbox_full: 0, expired: 0, dropped: 0 });
    expect(await stores.inbox.stats(SLOT)).toEqual({ queued: 0, due: 0, oldestDueMs: 0 });
    expect((await stores.inbox.pending(SLOT, BOB)).messages).toEqual([]);
    expect(await stores.inbox.ack(SLOT, BOB, 1)).toBe(false);
  });

  it('caps the backoff at maxBackoffMs', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 60, maxBackoffMs: 90, maxAttempts: 10 });
    const l = await lease(stores);
    await stores.inbox.append(dm(BOB), l);
    for (let attempt = 2; attempt <= 5; attempt++) {
      const { got, after } = await claimNext(stores, SLOT, `attempt ${attempt}`);
      expect(got[0]!.attempt).toBe(attempt);
      expect(got[0]!.due - after).toBeLessThanOrEqual(Math.min(90, 60 * 2 ** (attempt - 2)) + 2);
    }
  });

  it('never gives the same (user, seq, attempt) to two concurrent claimers, and skips no attempt', async () => {
    const inst = backend().make({ ackTimeoutMs: 200, maxBackoffMs: 200, maxAttempts: 1000 });
    const { stores, peer } = inst;
    const l = await lease(stores);
    const users = usersIn(SLOT, 5);
    for (let i = 0; i < 40; i++) await stores.inbox.append(dm(users[i % 5]!, { dataJson: String(i) }), l);
    await waitFor(async () => (await stores.inbox.stats(SLOT)).due === 40, 10_000, 'all 40 to come due');

    const first = (
      await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? peer : stores).inbox.claimDue(SLOT, 8)))
    ).flat();
    expect(new Set(first.map((d) => `${d.user}|${d.seq}`)).size).toBe(40);
    expect(new Set(first.map((d) => d.due)).size).toBeGreaterThan(1); // jittered
    const seen = [...first];
    const deadline = Date.now() + 1_200;
    await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const via = i % 2 ? peer : stores;
        while (Date.now() < deadline) {
          seen.push(...(await via.inbox.claimDue(SLOT, 5)));
          await new Promise((r) => setTimeout(r, 5));
        }
      }),
    );
    const ids = seen.map((d) => `${d.user}|${d.seq}|${d.attempt}`);
    expect(new Set(ids).size).toBe(ids.length);
    const attempts = new Map<string, number[]>();
    for (const d of seen)
      attempts.set(`${d.user}|${d.seq}`, [...(attempts.get(`${d.user}|${d.seq}`) ?? []), d.attempt]);
    for (const list of attempts.values()) {
      list.sort((x, y) => x - y);
      expect(list).toEqual(Array.from({ length: list.length }, (_, k) => k + 2));
    }
    expect(Math.max(...seen.map((d) => d.attempt))).toBeGreaterThanOrEqual(3);
  });

  it('parks a claimed delivery: the attempt is given back and the entry waits for expiry', async () => {
    const inst = backend().make({ ackTimeoutMs: 80, maxBackoffMs: 80, inboxMaxAgeMs: 1_200 });
    const { stores } = inst;
    const l = await lease(stores);
    const a = await stores.inbox.append(dm(BOB), l);
    const { got } = await claimNext(stores, SLOT, 'the first retry');
    expect(got[0]!.attempt).toBe(2);
    await stores.inbox.park(SLOT, BOB, 1, got[0]!.due);
    expect(await stores.inbox.stats(SLOT)).toEqual({ queued: 1, due: 0, oldestDueMs: 0 });
    // Nothing is retried while parked; at expiry the claim dead-letters it with the attempt given back.
    const retried: DueDelivery[] = [];
    await waitFor(
      async () => {
        retried.push(...(await stores.inbox.claimDue(SLOT, 10)));
        return (await stores.inbox.deadLetters(SLOT, 10)).length > 0;
      },
      10_000,
      'the parked message to expire',
    );
    expect(retried).toEqual([]);
    const [dead] = await stores.inbox.deadLetters(SLOT, 10);
    expect(dead).toMatchObject({ user: BOB, seq: 1, frame: a.frame, reason: 'expired', attempts: 1 });
    expect(dead!.ts).toBeGreaterThanOrEqual(tsOf(a.frame) + 1_200);
    expect(inst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 1, dropped: 0 });
    expect(await stores.inbox.stats(SLOT)).toMatchObject({ queued: 0 });
  });

  it('lets a connect re-arm a parked entry, and ignores a park with a stale due or after ack', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 80, maxBackoffMs: 80, inboxMaxAgeMs: 60_000 });
    const l = await lease(stores);
    await stores.inbox.append(dm(BOB), l);
    const c1 = await claimNext(stores, SLOT, 'attempt 2');
    await stores.inbox.park(SLOT, BOB, 1, c1.got[0]!.due);
    expect((await stores.inbox.pending(SLOT, BOB)).messages.map((p) => p.seq)).toEqual([1]);
    const c2 = await claimNext(stores, SLOT, 'the retry after the connect');
    expect(c2.got[0]!.attempt).toBe(2);
    // A connect re-arms the entry between a claim and its park: the park must not undo that.
    await stores.inbox.pending(SLOT, BOB);
    await stores.inbox.park(SLOT, BOB, 1, c2.got[0]!.due);
    const c3 = await claimNext(stores, SLOT, 'the retry after the stale park');
    expect(c3.got[0]!.attempt).toBe(2);
    const c4 = await claimNext(stores, SLOT, 'attempt 3');
    expect(c4.got[0]!.attempt).toBe(3);
    await stores.inbox.park(SLOT, BOB, 1, c3.got[0]!.due); // stale: the entry moved on to c4's due
    const c5 = await claimNext(stores, SLOT, 'attempt 4');
    expect(c5.got[0]!.attempt).toBe(4);

    await stores.inbox.ack(SLOT, BOB, 1);
    await stores.inbox.park(SLOT, BOB, 1, c5.got[0]!.due);
    expect(await stores.inbox.stats(SLOT)).toEqual({ queued: 0, due: 0, oldestDueMs: 0 });
    expect((await stores.inbox.pending(SLOT, BOB)).messages).toEqual([]);
  });

  it('refuses a sender past inboxMaxPerSender (LimitError, nothing stored); other senders still can, and a repeated mid still gets its first seq', async () => {
    const inst = backend().make({ inboxMaxPerSender: 3 });
    const { stores } = inst;
    const l = await lease(stores);
    const sent: DmAppendResult[] = [];
    for (let i = 0; i < 3; i++) sent.push(await stores.inbox.append(dm(BOB, { mid: `a${i}`, dedupBy: 'alice' }), l));
    await expect(stores.inbox.append(dm(BOB), l)).rejects.toBeInstanceOf(LimitError);
    await expect(stores.inbox.append(dm(BOB, { mid: 'new', dedupBy: 'alice' }), l)).rejects.toMatchObject({
      code: 'limit',
    });
    // Dedup comes first: the client is retrying what was stored.
    expect(await stores.inbox.append(dm(BOB, { mid: 'a1', dedupBy: 'alice' }), l)).toMatchObject({
      seq: 2,
      frame: sent[1]!.frame,
      duplicate: true,
    });
    // The share is per (recipient, sender), and the sender is `sender` (DmRequest.by), not `from`.
    expect(await stores.inbox.append(dm(BOB, { from: 'carol', sender: 'carol' }), l)).toMatchObject({
      seq: 4,
      duplicate: false,
    });
    expect(await stores.inbox.append(dm(BOB, { sender: 'backend/alice' }), l)).toMatchObject({ seq: 5 });
    expect(await stores.inbox.append(dm(CAROL), l)).toMatchObject({ seq: 1 });
    // A refusal stores nothing and takes no seq.
    expect((await stores.inbox.pending(SLOT, BOB)).messages.map((p) => p.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await stores.inbox.stats(SLOT)).queued).toBe(6);
    // An ack gives back exactly one: a second ack of the same seq gives nothing.
    expect(await stores.inbox.ack(SLOT, BOB, 2)).toBe(true);
    expect(await stores.inbox.ack(SLOT, BOB, 2)).toBe(false);
    expect(await stores.inbox.append(dm(BOB), l)).toMatchObject({ seq: 6 });
    await expect(stores.inbox.append(dm(BOB), l)).rejects.toBeInstanceOf(LimitError);
    expect(inst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 0, dropped: 0 });
  });

  it("keeps a sender's count exact through dead-lettering by attempts and by expiry, and re-drive", async () => {
    /** Appends from `sender` until refused; how many were stored. */
    const room = async (stores: Stores, l: Lease, sender: string, max = 10) => {
      for (let n = 0; n < max; n++) {
        try {
          await stores.inbox.append(dm(BOB, { sender }), l);
        } catch (e) {
          expect(e).toBeInstanceOf(LimitError);
          return n;
        }
      }
      return max;
    };

    const byAttempts = backend().make({ inboxMaxPerSender: 2, ackTimeoutMs: 50, maxBackoffMs: 50, maxAttempts: 1 });
    const l1 = await lease(byAttempts.stores);
    expect(await room(byAttempts.stores, l1, 'alice')).toBe(2);
    await waitFor(
      async () => (
        await byAttempts.stores.inbox.claimDue(SLOT, 10),
        (await byAttempts.stores.inbox.deadLetters(SLOT, 10)).length === 2
      ),
      10_000,
      'both to run out of attempts',
    );
    expect(byAttempts.deadLettered).toMatchObject({ attempts: 2 });
    expect(await room(byAttempts.stores, l1, 'alice')).toBe(2);

    const byExpiry = backend().make({ inboxMaxPerSender: 2, ackTimeoutMs: 60_000, inboxMaxAgeMs: 100 });
    const { stores } = byExpiry;
    const l2 = await lease(stores);
    expect(await room(stores, l2, 'alice')).toBe(2);
    await waitFor(async () => (await stores.inbox.pending(SLOT, BOB)).messages.length === 0, 5_000, 'both to expire');
    expect(byExpiry.deadLettered).toMatchObject({ expired: 2 });
    expect(await room(stores, l2, 'alice')).toBe(2);
    // Taking a dead letter out gives nothing back (its message had left the inbox already); its re-drive
    // is a new message in the re-driver's share.
    for (const d of await stores.inbox.deadLetters(SLOT, 10)) {
      expect(await stores.inbox.takeDeadLetter(SLOT, d.id)).toEqual(d);
      await stores.inbox.append(
        dm(BOB, { sender: 'rtgw/redrive', dataJson: JSON.stringify(JSON.parse(d.frame).data) }),
        l2,
      );
    }
    expect(await room(stores, l2, 'alice')).toBe(0);
    expect(await room(stores, l2, 'rtgw/redrive')).toBe(0);
    for (const p of (await stores.inbox.pending(SLOT, BOB)).messages) await stores.inbox.ack(SLOT, BOB, p.seq);
    expect(await room(stores, l2, 'alice')).toBe(2);
    expect(await room(stores, l2, 'rtgw/redrive')).toBe(2);
  });

  it("refuses new messages when the inbox is full and evicts nothing: a friend's earlier message stays pending", async () => {
    const inst = backend().make({ inboxMaxMessages: 4, inboxMaxPerSender: 3 });
    const { stores } = inst;
    const l = await lease(stores);
    const friend = await stores.inbox.append(dm(BOB, { from: 'carol', sender: 'carol' }), l);
    for (let i = 0; i < 3; i++) await stores.inbox.append(dm(BOB), l);
    await expect(stores.inbox.append(dm(BOB), l)).rejects.toBeInstanceOf(LimitError); // alice's share
    await expect(stores.inbox.append(dm(BOB, { from: 'dave', sender: 'dave' }), l)).rejects.toMatchObject({
      code: 'limit',
    }); // full
    const pending = (await stores.inbox.pending(SLOT, BOB)).messages;
    expect(pending.map((p) => p.seq)).toEqual([1, 2, 3, 4]);
    expect(pending[0]).toEqual({ seq: 1, frame: friend.frame });
    expect(await stores.inbox.deadLetters(SLOT, 10)).toEqual([]);
    expect(inst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 0, dropped: 0 });
    // Room again once one is settled.
    await stores.inbox.ack(SLOT, BOB, 1);
    expect(await stores.inbox.append(dm(BOB, { from: 'dave', sender: 'dave' }), l)).toMatchObject({ seq: 5 });
    await expect(stores.inbox.append(dm(BOB, { from: 'eve', sender: 'eve' }), l)).rejects.toBeInstanceOf(LimitError);
  });

  it('keeps at most deadLettersMaxPerSlot dead letters per slot, dropping the oldest and reporting them', async () => {
    const inst = backend().make({
      deadLettersMaxPerSlot: 3,
      ackTimeoutMs: 50,
      maxBackoffMs: 50,
      maxAttempts: 1000,
      inboxMaxAgeMs: 150,
    });
    const { stores } = inst;
    const l = await lease(stores);
    const other = await lease(stores, SLOT + 1);
    const elsewhere = usersIn(SLOT + 1, 1)[0]!;
    for (let i = 0; i < 5; i++) await stores.inbox.append(dm(BOB), l);
    await stores.inbox.append(dm(CAROL), l);
    for (let i = 0; i < 2; i++) await stores.inbox.append(dm(DAVE), l);
    await stores.inbox.append(dm(elsewhere), other);
    const ids = async (slot = SLOT) =>
      (await stores.inbox.deadLetters(slot, 100)).map((d) => d.id.slice(d.id.indexOf(':') + 1));

    await waitFor(
      async () => (await stores.inbox.pending(SLOT, BOB)).messages.length === 0,
      5_000,
      "BOB's to expire on connect",
    );
    expect(await ids()).toEqual([3, 4, 5].map((s) => `${BOB}:${s}`));
    expect(inst.deadLettered).toMatchObject({ expired: 5, dropped: 2 });
    await waitFor(
      async () => (await stores.inbox.pending(SLOT, CAROL)).messages.length === 0,
      5_000,
      "CAROL's to expire on connect",
    );
    expect(await ids()).toEqual([`${BOB}:4`, `${BOB}:5`, `${CAROL}:1`]);
    expect(inst.deadLettered).toMatchObject({ expired: 6, dropped: 3 });
    // The claim path drops too.
    await waitFor(
      async () => (await stores.inbox.claimDue(SLOT, 10), (await stores.inbox.stats(SLOT)).queued === 0),
      5_000,
      "DAVE's to expire on claim",
    );
    expect(await ids()).toEqual([`${CAROL}:1`, `${DAVE}:1`, `${DAVE}:2`]);
    expect(inst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 8, dropped: 5 });
    // Per slot: another slot's list is its own.
    await waitFor(
      async () => (await stores.inbox.pending(SLOT + 1, elsewhere)).messages.length === 0,
      5_000,
      'the other slot’s to expire',
    );
    expect(await ids(SLOT + 1)).toEqual([`${elsewhere}:1`]);
    expect(inst.deadLettered).toMatchObject({ expired: 9, dropped: 5 });
  });

  it("dead-letters messages older than inboxMaxAgeMs ('expired') on connect and on claim", async () => {
    const inst = backend().make({ ackTimeoutMs: 60_000, inboxMaxAgeMs: 300 });
    const { stores } = inst;
    const l = await lease(stores);
    const a = await stores.inbox.append(dm(BOB), l);
    expect((await stores.inbox.pending(SLOT, BOB)).messages).toHaveLength(1);
    await waitFor(
      async () => (await stores.inbox.pending(SLOT, BOB)).messages.length === 0,
      5_000,
      'the message to expire',
    );
    expect(await stores.inbox.deadLetters(SLOT, 10)).toMatchObject([
      { seq: 1, frame: a.frame, reason: 'expired', attempts: 1 },
    ]);
    expect(await stores.inbox.stats(SLOT)).toMatchObject({ queued: 0 });
    expect(inst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 1, dropped: 0 });

    const fastInst = backend().make({ ackTimeoutMs: 50, maxBackoffMs: 50, maxAttempts: 1000, inboxMaxAgeMs: 400 });
    const fast = fastInst.stores;
    const l2 = await lease(fast);
    await fast.inbox.append(dm(BOB), l2);
    let last = 1;
    await waitFor(
      async () => {
        for (const d of await fast.inbox.claimDue(SLOT, 10)) last = d.attempt;
        return (await fast.inbox.deadLetters(SLOT, 10)).length > 0;
      },
      10_000,
      'a claim to expire the message',
    );
    expect(last).toBeGreaterThanOrEqual(2);
    expect(await fast.inbox.deadLetters(SLOT, 10)).toMatchObject([{ seq: 1, reason: 'expired', attempts: last }]);
    expect(await fast.inbox.stats(SLOT)).toMatchObject({ queued: 0 });
    expect(fastInst.deadLettered).toEqual({ attempts: 0, inbox_full: 0, expired: 1, dropped: 0 });
  });

  it('takes a dead letter out exactly once, whatever the user name', async () => {
    const { stores, peer } = backend().make({ inboxMaxAgeMs: 30 });
    const names = ['a.b', 'a:b', 'q"uo\\te', 'é✓', 'x|y', '%2E', 'lone\ud800', '{tag}', 'ctl\u0001'];
    const leases = new Map<number, Lease>();
    for (const user of names) {
      const slot = userSlot(user, SLOTS);
      if (!leases.has(slot)) leases.set(slot, await lease(stores, slot));
      const first = await stores.inbox.append(dm(user), leases.get(slot)!);
      await waitFor(
        async () => (await stores.inbox.pending(slot, user)).messages.length === 0,
        5_000,
        `${user}'s to expire`,
      );
      const dead = (await stores.inbox.deadLetters(slot, 100)).find((d) => d.user === user);
      expect(dead).toMatchObject({ id: `${slot}:${user}:1`, user, seq: 1, frame: first.frame, reason: 'expired' });

      expect(await stores.inbox.takeDeadLetter(slot, `${slot}:${user}:01`)).toBeUndefined();
      expect(await stores.inbox.takeDeadLetter((slot + 1) % SLOTS, dead!.id)).toBeUndefined();
      const taken = await Promise.all([
        stores.inbox.takeDeadLetter(slot, dead!.id),
        peer.inbox.takeDeadLetter(slot, dead!.id),
      ]);
      expect(taken.filter((t) => t !== undefined)).toEqual([dead]);
      expect(await stores.inbox.takeDeadLetter(slot, dead!.id)).toBeUndefined();
      expect((await stores.inbox.deadLetters(slot, 100)).find((d) => d.user === user)).toBeUndefined();
    }
    expect(await stores.inbox.takeDeadLetter(SLOT, 'garbage')).toBeUndefined();
  });

  it('keeps dead letters of a slot in order, oldest first', async () => {
    const { stores } = backend().make({ inboxMaxAgeMs: 30 });
    const l = await lease(stores);
    for (const u of [BOB, CAROL, DAVE]) await stores.inbox.append(dm(u), l);
    // Dead-lettered in another order than they were sent: the list is in dead-lettering order.
    for (const u of [DAVE, BOB, CAROL])
      await waitFor(async () => (await stores.inbox.pending(SLOT, u)).messages.length === 0, 5_000, `${u}'s to expire`);
    expect((await stores.inbox.deadLetters(SLOT, 10)).map((d) => d.id)).toEqual(
      [`${DAVE}:1`, `${BOB}:1`, `${CAROL}:1`].map((s) => `${SLOT}:${s}`),
    );
    expect((await stores.inbox.deadLetters(SLOT, 2)).map((d) => d.user)).toEqual([DAVE, BOB]);
    expect(await stores.inbox.deadLetters(SLOT + 1, 10)).toEqual([]);
  });

  it('reports queued, due and the age of the oldest due entry', async () => {
    const { stores } = backend().make({ ackTimeoutMs: 300 });
    const l = await lease(stores);
    for (let i = 0; i < 3; i++) await stores.inbox.append(dm(BOB), l);
    expect(await stores.inbox.stats(SLOT)).toEqual({ queued: 3, due: 0, oldestDueMs: 0 });
    expect(await stores.inbox.stats(SLOT + 1)).toEqual({ queued: 0, due: 0, oldestDueMs: 0 });
    await waitFor(async () => (await stores.inbox.stats(SLOT)).due === 3, 5_000, 'all 3 to come due');
    await waitFor(async () => (await stores.inbox.stats(SLOT)).oldestDueMs >= 100, 5_000, 'the oldest to age');
    await stores.inbox.ack(SLOT, BOB, 2);
    expect(await stores.inbox.stats(SLOT)).toMatchObject({ queued: 2, due: 2 });
  });

  it('leaves only expiring keys once everything is settled: no sender count survives its messages (redis)', async () => {
    const inst = backend().make();
    if (!inst.redisKeys) return;
    const l = await lease(inst.stores);
    await inst.stores.inbox.append(dm(BOB, { mid: 'm', dedupBy: 'alice' }), l);
    await inst.stores.inbox.append(dm(BOB, { sender: 'carol' }), l);
    const k = keys(/^([^:]+):/.exec((await inst.redisKeys())[0]!)![1]!);
    expect(await inst.redisKeys()).toEqual(expect.arrayContaining([k.dmSenders(SLOT), k.dmSenderOf(SLOT)]));
    await inst.stores.inbox.ack(SLOT, BOB, 1);
    await inst.stores.inbox.ack(SLOT, BOB, 2);
    expect((await inst.redisKeys()).sort()).toEqual(
      [k.lease(SLOT), k.fence(SLOT), k.dmMeta(SLOT, BOB), k.dedup(SLOT, BOB, 'alice', 'm')].sort(),
    );
    const ttl = DEFAULT_LIMITS.inboxMaxAgeMs + DEFAULT_LIMITS.dedupWindowMs;
    expect(await inst.redisPttl!(k.dmMeta(SLOT, BOB))).toBeGreaterThan(ttl - 60_000);
    expect(await inst.redisPttl!(k.dmMeta(SLOT, BOB))).toBeLessThanOrEqual(ttl);
    expect(await inst.redisPttl!(k.dedup(SLOT, BOB, 'alice', 'm'))).toBeLessThanOrEqual(DEFAULT_LIMITS.dedupWindowMs);
  });

  it("lets a recipient's seq counter lapse inboxMaxAgeMs + dedupWindowMs after their last append: then no key of theirs is left, and seqs start again after anything still pending", async () => {
    const limits = { ackTimeoutMs: 60_000, inboxMaxAgeMs: 300, dedupWindowMs: 200 };
    const ttl = limits.inboxMaxAgeMs + limits.dedupWindowMs;
    const inst = backend().make(limits);
    const { stores } = inst;
    const l = await lease(stores);
    const k = inst.redisKeys ? keys(/^([^:]+):/.exec((await inst.redisKeys())[0]!)![1]!) : undefined;
    /** Waits until the counter lapsed: on Redis its key is gone; in memory, by the store clock (Date.now()). */
    const lapsed = async (lastAppendTs: number) =>
      waitFor(
        async () => (k ? !(await inst.redisKeys!()).includes(k.dmMeta(SLOT, BOB)) : Date.now() > lastAppendTs + ttl),
        5_000,
        'the counter to lapse',
      );

    await stores.inbox.append(dm(BOB, { mid: 'm', dedupBy: 'alice' }), l);
    const b = await stores.inbox.append(dm(BOB, { sender: 'carol' }), l);
    await stores.inbox.ack(SLOT, BOB, 1);
    await stores.inbox.ack(SLOT, BOB, 2);
    await lapsed(tsOf(b.frame));
    expect(await stores.inbox.pending(SLOT, BOB)).toEqual({ head: 0, messages: [] });
    if (k) {
      // Nothing of BOB's is left, nor any sender count: only the slot's lease and fence.
      expect((await inst.redisKeys!()).sort()).toEqual([k.fence(SLOT), k.lease(SLOT)].sort());
    }
    // Seqs start again at 1; the old mid is new again (its dedup entry lapsed before the counter).
    expect(await stores.inbox.append(dm(BOB, { mid: 'm', dedupBy: 'alice' }), l)).toMatchObject({
      seq: 1,
      duplicate: false,
    });

    // A message older than inboxMaxAgeMs that nothing looked at yet is still pending when the counter
    // lapses: the next seq continues after it, never sharing its seq.
    const c = await stores.inbox.append(dm(BOB), l);
    expect(c.seq).toBe(2);
    await lapsed(tsOf(c.frame));
    expect(await stores.inbox.append(dm(BOB), l)).toMatchObject({ seq: 3 });
    const p = await stores.inbox.pending(SLOT, BOB);
    expect(p).toMatchObject({ head: 3, messages: [{ seq: 3 }] });
    expect((await stores.inbox.deadLetters(SLOT, 10)).map((d) => [d.seq, d.reason])).toEqual([
      [1, 'expired'],
      [2, 'expired'],
    ]);
    await stores.inbox.ack(SLOT, BOB, 3);
    if (k) {
      await waitFor(
        async () => !(await inst.redisKeys!()).includes(k.dmMeta(SLOT, BOB)),
        5_000,
        'the counter to lapse again',
      );
      expect((await inst.redisKeys!()).sort()).toEqual([k.deadLetters(SLOT), k.fence(SLOT), k.lease(SLOT)].sort());
    }
  });
});
