// The guarantee checker judged on hand-made histories: clean ones (including every legitimate dm
// redelivery: retries, pending replays after a reconnect, re-drives, dead letters, resends with the same
// mid; and a room replay a rejoin asked for) report nothing, and each broken one reports exactly its
// problem (lost, unexpected, a room seq repeated within one join, a gap before a rejoin, a message
// stored twice, an inversion, a dm never delivered, a seq carrying two messages, an unsettled dm).
// The oracles of the room fault tests (receiverProblems, agreementProblems, answerProblems) get the
// same treatment: a correct input reports nothing, and each branch is fed the breakage it names.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Frame, TestClient } from '../harness/client.js';
import { History, type Problem, type SendRecord } from '../harness/history.js';

const ok = (h: History, rec: SendRecord, seq: number) => h.recordAnswer(rec, { kind: 'ok', seq });
const unavailable = (h: History, rec: SendRecord) =>
  h.recordAnswer(rec, { kind: 'err', code: 'unavailable', msg: 'try again' });

/** The `msg` frame a member receives for `rec` at `seq`. */
const msg = (rec: SendRecord, seq: number): Frame => ({
  t: 'msg',
  room: rec.target,
  seq,
  from: rec.by,
  data: { id: rec.mid, by: rec.by },
  mid: rec.mid,
  ts: 1,
});
/** The `dm` frame a recipient receives for `rec` at `seq`. */
const dm = (rec: SendRecord, seq: number): Frame => ({
  t: 'dm',
  seq,
  from: rec.by,
  data: { id: rec.mid, by: rec.by },
  mid: rec.mid,
  ts: 1,
});

/** The parts of each problem a test names exactly (details are prose). */
const brief = (ps: readonly Problem[]) =>
  ps.map((p) => ({ kind: p.kind, target: p.target, mid: p.mid, seqs: p.seqs, who: p.who }));

/** A room with two members joined before anything was published, and three pubs ok'd as 1, 2, 3. */
function roomOfThree() {
  const h = new History();
  h.recordJoin('m1', 'r', 0);
  h.recordJoin('m2', 'r', 0);
  const pubs = [1, 2, 3].map((seq) => {
    const rec = h.recordSend('pub', 'p', 'r');
    ok(h, rec, seq);
    return rec;
  });
  return { h, pubs };
}

/** A recipient `u` and dms ok'd as 1..n. */
function inboxOf(n: number) {
  const h = new History();
  const dms = Array.from({ length: n }, (_, i) => {
    const rec = h.recordSend('dm', 's', 'u');
    ok(h, rec, i + 1);
    return rec;
  });
  return { h, dms };
}

describe('clean histories report nothing', () => {
  it('members that received every ok’d pub once, in order', () => {
    const { h, pubs } = roomOfThree();
    for (const who of ['m1', 'm2']) pubs.forEach((p, i) => h.recordReceive(who, who, `c-${who}`, msg(p, i + 1)));
    const r = h.check();
    expect(r.problems).toEqual([]);
    expect(r.lines()).toEqual([]);
    expect(r.rooms.r!.stats).toEqual({ ok: 3, delivered: 3, redelivered: 0, acked: 0 });
  });

  it('a pub answered `unavailable` may be stored (received once) or not', () => {
    const h = new History();
    h.recordJoin('m', 'r', 0);
    const a = h.recordSend('pub', 'p', 'r');
    unavailable(h, a); // stored anyway, as seq 1
    const b = h.recordSend('pub', 'p', 'r');
    unavailable(h, b); // never stored
    const c = h.recordSend('pub', 'p', 'r');
    h.recordAnswer(c, { kind: 'unanswered', why: 'closed' });
    const d = h.recordSend('pub', 'p', 'r');
    ok(h, d, 2);
    for (const f of [msg(a, 1), msg(d, 2)]) h.recordReceive('m', 'm', 'c1', f);
    const r = h.check();
    expect(r.problems).toEqual([]);
    expect(r.rooms.r!.stats).toMatchObject({ ok: 1, delivered: 2, redelivered: 0 });
  });

  it('a member that left owes nothing after it; one that rejoined with since owes what came after since', () => {
    const { h, pubs } = roomOfThree();
    h.recordReceive('m1', 'm1', 'c1', msg(pubs[0]!, 1));
    h.recordLeave('m1', 'r');
    h.recordReceive('m2', 'm2', 'c2', msg(pubs[0]!, 1));
    h.recordJoin('m2', 'r', 1); // reconnected with since 1
    h.recordReceive('m2', 'm2', 'c3', msg(pubs[1]!, 2));
    h.recordReceive('m2', 'm2', 'c3', msg(pubs[2]!, 3));
    expect(h.check().problems).toEqual([]);
  });

  it('dm retries until ack, then a pending replay on a new connection and live ones after it', () => {
    const { h, dms } = inboxOf(4);
    const [d1, d2, d3, d4] = dms as [SendRecord, SendRecord, SendRecord, SendRecord];
    // Connection 1: 1, 2, then 1 and 2 again (retries: the acks were late), 3; the gateway dies.
    for (const f of [dm(d1, 1), dm(d2, 2), dm(d1, 1), dm(d2, 2)]) h.recordReceive('u', 'u', 'c1', f);
    h.recordAck('u', 'u', 'c1', 1);
    h.recordAck('u', 'u', 'c1', 2);
    h.recordReceive('u', 'u', 'c1', dm(d3, 3));
    // Connection 2 elsewhere: the pending replay (3), a retry of it, then live 4.
    for (const f of [dm(d3, 3), dm(d3, 3), dm(d4, 4)]) h.recordReceive('u', 'u', 'c2', f);
    h.recordAck('u', 'u', 'c2', 3);
    h.recordAck('u', 'u', 'c2', 4);
    const r = h.check({ settled: true });
    expect(r.problems).toEqual([]);
    expect(r.recipients.u!.stats).toEqual({ ok: 4, delivered: 4, redelivered: 3, acked: 4 });
  });

  it('a resend with the same mid answered with the first seq is one message', () => {
    const h = new History();
    const first = h.recordSend('dm', 's', 'u');
    h.recordAnswer(first, { kind: 'unanswered', why: 'closed (1006)' });
    const again = h.recordSend('dm', 's', 'u', { mid: first.mid });
    expect(again).toMatchObject({ mid: first.mid, attempt: 2 });
    ok(h, again, 1);
    h.recordReceive('u', 'u', 'c1', dm(first, 1));
    h.recordReceive('u', 'u', 'c1', dm(first, 1));
    expect(h.check().problems).toEqual([]);
    expect(h.dmOks('u')).toHaveLength(1);
  });

  it('a dead letter that was never delivered is not lost when the test read it from the dead-letter list', () => {
    const { h } = inboxOf(1);
    expect(h.check({ deadLetters: [{ user: 'u', seq: 1 }], settled: true }).problems).toEqual([]);
  });

  it('a re-driven dead letter arrives under its new seq (with a new frame mid but its data) and is not a duplicate', () => {
    const { h, dms } = inboxOf(1);
    const d1 = dms[0]!;
    for (let i = 0; i < 4; i++) h.recordReceive('u', 'u', 'c1', dm(d1, 1)); // never acked: 4 attempts
    h.recordRedrive('u', d1.mid, 1, 2);
    h.recordReceive('u', 'u', 'c1', { ...dm(d1, 2), mid: 'redrive:abc' });
    h.recordAck('u', 'u', 'c1', 2);
    const r = h.check({ deadLetters: [{ user: 'u', seq: 1 }], settled: true });
    expect(r.problems).toEqual([]);
    expect(r.recipients.u!.stats).toEqual({ ok: 2, delivered: 2, redelivered: 3, acked: 1 });
  });
});

describe('broken histories report exactly their problems', () => {
  it('a lost pub: ok’d, and one member never got it', () => {
    const { h, pubs } = roomOfThree();
    pubs.forEach((p, i) => h.recordReceive('m1', 'm1', 'c1', msg(p, i + 1)));
    h.recordReceive('m2', 'm2', 'c2', msg(pubs[0]!, 1));
    h.recordReceive('m2', 'm2', 'c2', msg(pubs[2]!, 3));
    const r = h.check();
    expect(brief(r.problems)).toEqual([{ kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm2' }]);
    expect(r.rooms.r!.lost).toHaveLength(1);
  });

  it('unexpected: a message never sent, and one sent to another room', () => {
    const { h, pubs } = roomOfThree();
    const elsewhere = h.recordSend('pub', 'p', 'other');
    ok(h, elsewhere, 1);
    const frames = [
      msg(pubs[0]!, 1),
      { t: 'msg', room: 'r', seq: 2, from: 'x', data: { id: 'forged.1' }, mid: 'forged.1', ts: 1 },
      { ...msg(elsewhere, 3), room: 'r' },
    ];
    for (const who of ['m1']) for (const f of frames) h.recordReceive(who, who, 'c1', f);
    h.recordLeave('m2', 'r');
    const r = h.check();
    expect(brief(r.rooms.r!.unexpected)).toEqual([
      { kind: 'unexpected', target: 'r', mid: 'forged.1', seqs: [2], who: 'm1' },
      { kind: 'unexpected', target: 'r', mid: elsewhere.mid, seqs: [3], who: 'm1' },
    ]);
    // An unexpected message makes no claim on its seq, so no conflict: m1 just lacks the real 2 and 3.
    expect(brief(r.problems.filter((p) => p.kind !== 'unexpected'))).toEqual([
      { kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm1' },
      { kind: 'lost', target: 'r', mid: pubs[2]!.mid, seqs: [3], who: 'm1' },
    ]);
  });

  it('a message stored twice: one pub (answered unavailable) received under two seqs', () => {
    const h = new History();
    h.recordJoin('m', 'r', 0);
    const a = h.recordSend('pub', 'p', 'r');
    unavailable(h, a);
    const b = h.recordSend('pub', 'p', 'r');
    ok(h, b, 3);
    for (const f of [msg(a, 1), msg(a, 2), msg(b, 3)]) h.recordReceive('m', 'm', 'c1', f);
    expect(brief(h.check().problems)).toEqual([
      { kind: 'duplicate', target: 'r', mid: a.mid, seqs: [1, 2], who: undefined },
    ]);
  });

  it('a message stored twice: a dm resent with its mid and answered with a new seq (dedup failed)', () => {
    const h = new History();
    const first = h.recordSend('dm', 's', 'u');
    unavailable(h, first);
    const again = h.recordSend('dm', 's', 'u', { mid: first.mid });
    ok(h, again, 2);
    h.recordReceive('u', 'u', 'c1', dm(first, 1));
    h.recordReceive('u', 'u', 'c1', dm(first, 2));
    expect(brief(h.check().problems)).toEqual([
      { kind: 'duplicate', target: 'u', mid: first.mid, seqs: [1, 2], who: undefined },
    ]);
  });

  it('a room inversion: seq 2 after seq 3 on one connection', () => {
    const { h, pubs } = roomOfThree();
    for (const [i, p] of [0, 2, 1].map((i) => [i, pubs[i]!] as const)) h.recordReceive('m1', 'm1', 'c1', msg(p, i + 1));
    pubs.forEach((p, i) => h.recordReceive('m2', 'm2', 'c2', msg(p, i + 1)));
    expect(brief(h.check().problems)).toEqual([
      { kind: 'inversion', target: 'r', mid: pubs[1]!.mid, seqs: [2, 3], who: 'm1' },
    ]);
  });

  it('dm inversions: a live dm overtaking the pending replay on connect; repeats are not inversions', () => {
    const { h, dms } = inboxOf(3);
    const [d1, d2, d3] = dms as [SendRecord, SendRecord, SendRecord];
    // Live 3 arrives before the replay of 1, 2 (and 3 again): 1 and 2 come first after 3.
    for (const f of [dm(d3, 3), dm(d1, 1), dm(d2, 2), dm(d3, 3)]) h.recordReceive('u', 'u', 'c1', f);
    expect(brief(h.check().problems)).toEqual([
      { kind: 'inversion', target: 'u', mid: d1.mid, seqs: [1, 3], who: 'u' },
      { kind: 'inversion', target: 'u', mid: d2.mid, seqs: [2, 3], who: 'u' },
    ]);
    expect(h.check().lines()).toEqual([
      `inversion [recipient u] u (c1) first received seqs 1..2 after seq 3 (2 inversions)`,
    ]);
    // The same frames, each repeat after its first arrival in order, are clean.
    const clean = inboxOf(3);
    const [e1, e2, e3] = clean.dms as [SendRecord, SendRecord, SendRecord];
    for (const f of [dm(e1, 1), dm(e2, 2), dm(e1, 1), dm(e3, 3), dm(e2, 2)]) clean.h.recordReceive('u', 'u', 'c1', f);
    expect(clean.h.check().problems).toEqual([]);
  });

  it('a dm never delivered: lost, and unsettled when settlement is required', () => {
    const { h, dms } = inboxOf(3);
    h.recordReceive('u', 'u', 'c1', dm(dms[0]!, 1));
    h.recordReceive('u', 'u', 'c1', dm(dms[2]!, 3));
    h.recordAck('u', 'u', 'c1', 1);
    h.recordAck('u', 'u', 'c1', 3);
    expect(brief(h.check().problems)).toEqual([
      { kind: 'lost', target: 'u', mid: dms[1]!.mid, seqs: [2], who: undefined },
    ]);
    expect(brief(h.check({ settled: true }).problems)).toEqual([
      { kind: 'lost', target: 'u', mid: dms[1]!.mid, seqs: [2], who: undefined },
      { kind: 'unsettled', target: 'u', mid: dms[1]!.mid, seqs: [2], who: undefined },
    ]);
    // Received by another user is not received by the recipient: it is unexpected there.
    h.recordReceive('v', 'v', 'c9', dm(dms[1]!, 2));
    const r = h.check();
    expect(brief(r.problems)).toEqual([
      { kind: 'lost', target: 'u', mid: dms[1]!.mid, seqs: [2], who: undefined },
      { kind: 'unexpected', target: 'v', mid: dms[1]!.mid, seqs: [2], who: 'v' },
    ]);
  });

  it('a delivered but unacknowledged dm is unsettled (not lost) when settlement is required', () => {
    const { h, dms } = inboxOf(1);
    h.recordReceive('u', 'u', 'c1', dm(dms[0]!, 1));
    expect(brief(h.check({ settled: true }).problems)).toEqual([
      { kind: 'unsettled', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined },
    ]);
  });

  it('a seq carrying two messages: answered ok to one, delivered with another', () => {
    const h = new History();
    h.recordJoin('m', 'r', 0);
    const a = h.recordSend('pub', 'p', 'r');
    ok(h, a, 1);
    const b = h.recordSend('pub', 'p', 'r');
    unavailable(h, b);
    h.recordReceive('m', 'm', 'c1', msg(b, 1));
    const r = h.check();
    // The member got a stranger at seq 1, so the ok'd message is also lost for it.
    expect(brief(r.problems)).toEqual([
      { kind: 'lost', target: 'r', mid: a.mid, seqs: [1], who: 'm' },
      { kind: 'conflict', target: 'r', mid: undefined, seqs: [1], who: undefined },
    ]);
    expect(r.lines()[1]).toBe(
      'conflict [room r] r seq 1 carries different messages: p.1 (answered ok to p), p.2 (received by m)',
    );
  });

  it('a re-drive not recorded as one is a message stored twice', () => {
    const { h, dms } = inboxOf(1);
    h.recordReceive('u', 'u', 'c1', dm(dms[0]!, 1));
    h.recordReceive('u', 'u', 'c1', { ...dm(dms[0]!, 2), mid: 'redrive:abc' });
    expect(brief(h.check({ deadLetters: [{ user: 'u', seq: 1 }] }).problems)).toEqual([
      { kind: 'duplicate', target: 'u', mid: dms[0]!.mid, seqs: [1, 2], who: undefined },
    ]);
  });

  it('a dead letter the test did not expect is lost', () => {
    const { h, dms } = inboxOf(1);
    expect(brief(h.check().problems)).toEqual([
      { kind: 'lost', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined },
    ]);
  });
});

describe('room join intervals: every join of a member owes what came after it, each seq once', () => {
  /** A room `r` with `n` pubs ok'd as 1..n (nobody joined yet). */
  function roomOf(n: number) {
    const h = new History();
    const pubs = Array.from({ length: n }, (_, i) => {
      const rec = h.recordSend('pub', 'p', 'r');
      ok(h, rec, i + 1);
      return rec;
    });
    const get = (conn: string, ...seqs: number[]) => {
      for (const s of seqs) h.recordReceive('m', 'm', conn, msg(pubs[s - 1]!, s));
    };
    return { h, pubs, get };
  }

  it('a room seq received twice within one join is a repeat (the gateway de-duplicates room streams)', () => {
    const { h, get } = roomOf(3);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 2, 2, 3, 2);
    const r = h.check();
    expect(brief(r.problems)).toEqual([{ kind: 'repeat', target: 'r', mid: undefined, seqs: [2], who: 'm' }]);
    expect(r.lines()).toEqual(['repeat [room r] m (c1) received r seq 2 3 times in its join after seq 0']);
    expect(r.rooms.r!.stats.redelivered).toBe(2);
  });

  it('a repeat is found on a connection no recorded join covers, too', () => {
    const { h, get } = roomOf(1);
    get('c9', 1, 1);
    expect(brief(h.check().problems)).toEqual([{ kind: 'repeat', target: 'r', mid: undefined, seqs: [1], who: 'm' }]);
  });

  it('the same seq in two intervals is no repeat: a rejoin with since asked for a replay from before what it had', () => {
    const { h, get } = roomOf(4);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 2, 3);
    h.recordJoin('m', 'r', 1, { conn: 'c2', recovered: true }); // since 1, though it had 3
    get('c2', 2, 3, 4);
    expect(h.check().problems).toEqual([]);
  });

  it('a gap before a rejoin with since is lost (the last join alone would owe only what came after since)', () => {
    // The reviewer's case: 1 and 3 arrive, the member rejoins with since 3 (its last seq), 2 was never there.
    const { h, pubs, get } = roomOf(4);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 3);
    h.recordJoin('m', 'r', 3, { conn: 'c2', recovered: true });
    get('c2', 4);
    const r = h.check();
    expect(brief(r.problems)).toEqual([{ kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' }]);
    expect(r.lines()).toEqual([
      `lost [room r] m never received r seq 2 (${pubs[1]!.mid}), answered ok, in its join after seq 0 on c1, before it joined again after seq 3`,
    ]);
  });

  it('a gap is covered by a later rejoin whose since is below it (the replay brought it)', () => {
    const { h, get } = roomOf(4);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 3);
    h.recordJoin('m', 'r', 1, { conn: 'c2', recovered: true });
    get('c2', 2, 3, 4);
    expect(h.check().problems).toEqual([]);
  });

  it('a replay with a hole is lost once, at the rejoin that owed it, even when an earlier join owed it too', () => {
    const { h, pubs, get } = roomOf(4);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 3);
    h.recordJoin('m', 'r', 1, { conn: 'c2', recovered: true });
    get('c2', 3, 4); // the replay after since 1 skipped 2
    expect(brief(h.check().problems)).toEqual([{ kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' }]);
    expect(h.check().problems[0]!.conn).toBe('c2');
  });

  it('the old connection may go on receiving after the rejoin elsewhere (a drain): no repeat, nothing lost', () => {
    const { h, get } = roomOf(4);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 2);
    h.recordJoin('m', 'r', 2, { conn: 'c2', recovered: true });
    get('c1', 3); // still open on the draining gateway
    get('c2', 3, 4);
    get('c1', 4);
    expect(h.check().problems).toEqual([]);
  });

  it('a replay recorded before its join (one socket read carried the ok and the replay) belongs to that join', () => {
    const { h, get } = roomOf(3);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1);
    get('c2', 2, 3); // the frames of the rejoin's replay, recorded before the awaited ok recorded the join
    h.recordJoin('m', 'r', 1, { conn: 'c2', recovered: true });
    expect(h.check().problems).toEqual([]);
  });

  it('a seq at or below a join’s position arriving in that join is unexpected', () => {
    const { h, pubs, get } = roomOf(3);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 2);
    h.recordJoin('m', 'r', 2, { conn: 'c2', recovered: true });
    get('c2', 2, 3);
    expect(brief(h.check().problems)).toEqual([
      { kind: 'unexpected', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' },
    ]);
  });

  it('a join closed by a leave owes what came before its highest seq, not what came after the leave', () => {
    const { h, pubs, get } = roomOf(5);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 3);
    h.recordLeave('m', 'r');
    expect(brief(h.check().problems)).toEqual([{ kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' }]);
  });

  it('a join closed by a rejoin without a recovered since owes only up to its highest seq; the rejoin owes what follows its head', () => {
    const { h, pubs, get } = roomOf(6);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1, 3); // 2 is a gap; 4 was sequenced while it was away: owed to nobody
    h.recordJoin('m', 'r', 4, { conn: 'c2' }); // answered with head 4 (no since, or not recovered)
    get('c2', 6); // 5 missing
    expect(brief(h.check().problems)).toEqual([
      { kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' },
      { kind: 'lost', target: 'r', mid: pubs[4]!.mid, seqs: [5], who: 'm' },
    ]);
  });

  it('a frame on another connection of the member does not count for a join tied to its connection', () => {
    const { h, pubs, get } = roomOf(2);
    h.recordJoin('m', 'r', 0, { conn: 'c1' });
    get('c1', 1);
    get('c2', 2); // a connection of m that never joined r: not where r's seq 2 was owed
    expect(brief(h.check().problems)).toEqual([{ kind: 'lost', target: 'r', mid: pubs[1]!.mid, seqs: [2], who: 'm' }]);
  });

  it('History.join records the connection and whether the since was recovered', async () => {
    const h = new History();
    const answers: Frame[] = [
      { t: 'ok', room: 'r', seq: 7, epoch: 'e' },
      { t: 'ok', room: 'r', seq: 9, epoch: 'e', recovered: true },
      { t: 'ok', room: 'r', seq: 9, epoch: 'f', recovered: false },
    ];
    const client = { conn: 'c1', ok: async () => answers.shift()! } as unknown as TestClient;
    await h.join(client, 'm', 'r');
    await h.join(client, 'm', 'r', { since: 5 });
    await h.join(client, 'm', 'r', { since: 5, epoch: 'e' });
    expect(h.events.map((e) => (e.type === 'join' ? [e.after, e.conn, e.recovered] : undefined))).toEqual([
      [7, 'c1', false],
      [5, 'c1', true],
      [9, 'c1', false],
    ]);
  });
});

describe('recording from a client', () => {
  /** Enough of a TestClient for `watch`: frames, identity, an open socket that emits and records sends. */
  function fakeClient(user: string, conn: string) {
    const ws = new EventEmitter();
    const sent: Record<string, unknown>[] = [];
    const frames: Frame[] = [];
    const client = {
      frames,
      user,
      conn,
      isOpen: true,
      ws,
      sendJson: (f: Record<string, unknown>) => sent.push(f),
    } as unknown as TestClient;
    const deliver = (f: Frame) => {
      frames.push(f);
      ws.emit('message', Buffer.from(JSON.stringify(f)), false);
    };
    return { client, sent, frames, deliver };
  }

  it('watch records frames already received and later ones, and acks every dm (again for a repeat)', () => {
    const { h, dms } = inboxOf(2);
    const c = fakeClient('u', 'c1');
    c.frames.push(dm(dms[0]!, 1)); // arrived before watch
    const stop = h.watch(c.client, 'u');
    c.deliver(dm(dms[1]!, 2));
    c.deliver(dm(dms[1]!, 2));
    c.deliver({ t: 'pong' });
    stop();
    c.deliver(dm(dms[0]!, 1)); // after stop: not recorded
    expect(c.sent).toEqual([
      { t: 'ack', seq: 1 },
      { t: 'ack', seq: 2 },
      { t: 'ack', seq: 2 },
    ]);
    expect(h.receives({ user: 'u' }).map((e) => e.frame.seq)).toEqual([1, 2, 2]);
    expect(h.check({ settled: true }).problems).toEqual([]);
  });

  it('watch with ack: false records but never acks', () => {
    const { h, dms } = inboxOf(1);
    const c = fakeClient('u', 'c1');
    h.watch(c.client, 'u', { ack: false });
    c.deliver(dm(dms[0]!, 1));
    expect(c.sent).toEqual([]);
    expect(brief(h.check({ settled: true }).problems)).toEqual([
      { kind: 'unsettled', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined },
    ]);
  });

  it('answerProblems covers dms: an unanswered send and an error outside the allowed codes', () => {
    const h = new History();
    const a = h.recordSend('dm', 's', 'u');
    h.recordAnswer(a, { kind: 'unanswered', why: 'closed' });
    const b = h.recordSend('dm', 's', 'u');
    h.recordAnswer(b, { kind: 'err', code: 'internal', msg: 'boom' });
    const c = h.recordSend('dm', 's', 'u');
    unavailable(h, c);
    expect(h.answerProblems(['unavailable'])).toEqual([
      `dm ${a.mid} (u): no answer: closed`,
      `dm ${b.mid} (u): err internal "boom"`,
    ]);
    expect(h.summary('dm')).toEqual({ unanswered: 1, 'err:internal': 1, 'err:unavailable': 1 });
  });
});

describe('withoutEcho: members that publish without echo (the client SDK)', () => {
  /** m1 and m2 are members and publishers; each pub is ok'd; each member received the other's (m1 also its own). */
  function twoPublishers(m1GetsOwn = false) {
    const h = new History();
    h.recordJoin('m1', 'r', 0);
    h.recordJoin('m2', 'r', 0);
    const a = h.recordSend('pub', 'm1', 'r');
    ok(h, a, 1);
    const b = h.recordSend('pub', 'm2', 'r');
    ok(h, b, 2);
    h.recordReceive('m2', 'm2', 'c2', msg(a, 1));
    if (m1GetsOwn) h.recordReceive('m1', 'm1', 'c1', msg(a, 1));
    h.recordReceive('m1', 'm1', 'c1', msg(b, 2));
    return { h, a, b };
  }

  it('a member is not owed its own pubs', () => {
    const { h } = twoPublishers();
    expect(h.check({ withoutEcho: true }).problems).toEqual([]);
    // Without the option the same history lacks each member's own pub.
    expect(brief(h.check().problems).map((p) => [p.kind, p.who, p.seqs])).toEqual([
      ['lost', 'm1', [1]],
      ['lost', 'm2', [2]],
    ]);
  });

  it('a member that receives its own pub reports it as unexpected', () => {
    const { h, a } = twoPublishers(true);
    expect(brief(h.check({ withoutEcho: true }).problems)).toEqual([
      { kind: 'unexpected', target: 'r', mid: a.mid, seqs: [1], who: 'm1' },
    ]);
  });
});

describe('receiverProblems: one receiver’s copy of a room, judged on broken copies', () => {
  /** Pubs ok'd as 1..n in room r, and the frames of a perfect copy. */
  function okd(n: number) {
    const h = new History();
    const pubs = Array.from({ length: n }, (_, i) => {
      const rec = h.recordSend('pub', 'p', 'r');
      ok(h, rec, i + 1);
      return rec;
    });
    const at = (...seqs: number[]) => seqs.map((s) => msg(pubs[s - 1]!, s));
    return { h, pubs, at };
  }

  it('a complete copy, and one from a position on, report nothing; frames of other rooms and other types are ignored', () => {
    const { h, at } = okd(4);
    expect(h.receiverProblems('m', at(1, 2, 3, 4), { room: 'r', through: 4 })).toEqual([]);
    const noise: Frame[] = [{ t: 'pong' }, { t: 'msg', room: 'other', seq: 9, data: {} }];
    expect(h.receiverProblems('m', [...at(3), ...noise, ...at(4)], { room: 'r', after: 2, through: 4 })).toEqual([]);
  });

  it('a pub not ok’d may be in the copy once, at its place', () => {
    const { h, at } = okd(1);
    const maybe = h.recordSend('pub', 'p', 'r');
    unavailable(h, maybe);
    expect(h.receiverProblems('m', [...at(1), msg(maybe, 2)], { room: 'r', through: 2 })).toEqual([]);
  });

  it('a gap: reported once where it is, and the ok’d message never delivered', () => {
    const { h, pubs, at } = okd(4);
    expect(h.receiverProblems('m', at(1, 3, 4), { room: 'r', through: 4 })).toEqual([
      'm in r: gap: message #1 has seq 3, expected 2 (previous 1)',
      'm in r: expected exactly seqs 1..4 (4 messages), got 3 ending at 4',
      `m in r: ok'd seq 2 (mid ${pubs[1]!.mid}) was never delivered`,
    ]);
  });

  it('a seq twice: a duplicate, and its message received twice', () => {
    const { h, pubs, at } = okd(3);
    expect(h.receiverProblems('m', at(1, 2, 2, 3), { room: 'r' })).toEqual([
      'm in r: duplicate: message #2 has seq 2, expected 3 (previous 2)',
      `m in r: message ${pubs[1]!.mid} received twice (seqs 2 and 2)`,
    ]);
  });

  it('out of order: a lower seq after a higher one', () => {
    const { h, at } = okd(3);
    expect(h.receiverProblems('m', at(1, 3, 2), { room: 'r', through: 3 })).toEqual([
      'm in r: gap: message #1 has seq 3, expected 2 (previous 1)',
      'm in r: out of order: message #2 has seq 2, expected 4 (previous 3)',
      'm in r: expected exactly seqs 1..3 (3 messages), got 3 ending at 2',
    ]);
  });

  it('one message under two seqs', () => {
    const { h, pubs } = okd(1);
    const again = h.recordSend('pub', 'p', 'r');
    unavailable(h, again);
    expect(h.receiverProblems('m', [msg(pubs[0]!, 1), msg(again, 2), msg(again, 3)], { room: 'r' })).toEqual([
      `m in r: message ${again.mid} received twice (seqs 2 and 3)`,
    ]);
  });

  it('a message of another room, and an ok’d message at a seq other than its answer', () => {
    const { h, pubs } = okd(2);
    const elsewhere = h.recordSend('pub', 'p', 'other');
    unavailable(h, elsewhere);
    expect(
      h.receiverProblems('m', [msg(pubs[0]!, 1), { ...msg(elsewhere, 2), room: 'r' }], { room: 'r', expected: [] }),
    ).toEqual([`m in r: message ${elsewhere.mid} published to other arrived in this room`]);
    // pubs[1] was answered seq 2 but arrives as seq 3 (and seq 2 is missing): the answer and the copy disagree.
    expect(h.receiverProblems('m', [msg(pubs[0]!, 1), msg(pubs[1]!, 3)], { room: 'r' })).toEqual([
      'm in r: gap: message #1 has seq 3, expected 2 (previous 1)',
      `m in r: message ${pubs[1]!.mid} was answered ok with seq 2 but arrived as seq 3`,
      `m in r: ok'd seq 2 (mid ${pubs[1]!.mid}) was never delivered`,
    ]);
  });

  it('a seq carrying another message than the one answered ok with it', () => {
    const { h, pubs } = okd(1);
    const stranger = h.recordSend('pub', 'p', 'r');
    unavailable(h, stranger);
    expect(h.receiverProblems('m', [msg(stranger, 1)], { room: 'r' })).toEqual([
      `m in r: seq 1 carries message ${stranger.mid}, but ${pubs[0]!.mid} was answered ok with that seq`,
    ]);
  });

  it('`through`: a copy that stops short of the head, or runs past it', () => {
    const { h, at } = okd(3);
    expect(h.receiverProblems('m', at(1, 2), { room: 'r', through: 3, expected: [] })).toEqual([
      'm in r: expected exactly seqs 1..3 (3 messages), got 2 ending at 2',
    ]);
    expect(h.receiverProblems('m', at(1, 2, 3), { room: 'r', through: 2, expected: [] })).toEqual([
      'm in r: expected exactly seqs 1..2 (2 messages), got 3 ending at 3',
    ]);
    expect(h.receiverProblems('m', [], { room: 'r', after: 3, through: 3 })).toEqual([]);
  });

  it('`after` and `expected` bound what is owed: nothing before `after`, only the listed pubs', () => {
    const { h, pubs, at } = okd(4);
    expect(h.receiverProblems('m', at(3, 4), { room: 'r', after: 2 })).toEqual([]);
    expect(h.receiverProblems('m', at(3), { room: 'r', after: 2 })).toEqual([
      `m in r: ok'd seq 4 (mid ${pubs[3]!.mid}) was never delivered`,
    ]);
    expect(h.receiverProblems('m', at(3), { room: 'r', after: 2, expected: [] })).toEqual([]);
  });

  it('many problems are capped with a count', () => {
    const { h } = okd(20);
    const out = h.receiverProblems('m', [], { room: 'r' });
    expect(out).toHaveLength(9);
    expect(out[8]).toBe("m in r: ... 20 ok'd messages missing in all");
    const twice = okd(20);
    const frames = twice.at(...Array.from({ length: 20 }, (_, i) => i + 1)).flatMap((f) => [f, f]);
    const capped = twice.h.receiverProblems('m', frames, { room: 'r' });
    expect(capped).toHaveLength(13);
    expect(capped[12]).toBe('m in r: ... 40 problems in all');
  });
});

describe('agreementProblems: copies of one room agree', () => {
  const frame = (seq: number, mid: string, data: unknown = { id: mid }, from = 'p'): Frame => ({
    t: 'msg',
    room: 'r',
    seq,
    from,
    data,
    mid,
    ts: 1,
  });

  it('copies that agree (one a part of another, with other rooms and types around) report nothing', () => {
    const a = [frame(1, 'x'), frame(2, 'y'), frame(3, 'z')];
    const b = [frame(2, 'y'), { t: 'pong' }, { ...frame(2, 'w'), room: 'other' }, frame(3, 'z')];
    expect(
      new History().agreementProblems('r', [
        { who: 'a', frames: a },
        { who: 'b', frames: b },
      ]),
    ).toEqual([]);
  });

  it('one seq with two different messages, data or senders', () => {
    const h = new History();
    expect(
      h.agreementProblems('r', [
        { who: 'a', frames: [frame(1, 'x')] },
        { who: 'b', frames: [frame(1, 'y')] },
      ]),
    ).toEqual([
      'r seq 1: a has {"mid":"x","data":{"id":"x"},"from":"p"}, b has {"mid":"y","data":{"id":"y"},"from":"p"}',
    ]);
    expect(
      h.agreementProblems('r', [
        { who: 'a', frames: [frame(1, 'x', { id: 'x', v: 1 })] },
        { who: 'b', frames: [frame(1, 'x', { id: 'x', v: 2 })] },
      ]),
    ).toEqual([
      'r seq 1: a has {"mid":"x","data":{"id":"x","v":1},"from":"p"}, b has {"mid":"x","data":{"id":"x","v":2},"from":"p"}',
    ]);
    expect(
      h.agreementProblems('r', [
        { who: 'a', frames: [frame(1, 'x')] },
        { who: 'b', frames: [frame(1, 'x', { id: 'x' }, 'q')] },
      ]),
    ).toEqual([
      'r seq 1: a has {"mid":"x","data":{"id":"x"},"from":"p"}, b has {"mid":"x","data":{"id":"x"},"from":"q"}',
    ]);
  });

  it('one message at two seqs, in two copies or in one', () => {
    const h = new History();
    expect(
      h.agreementProblems('r', [
        { who: 'a', frames: [frame(1, 'x')] },
        { who: 'b', frames: [frame(2, 'x')] },
      ]),
    ).toEqual(['r message x: seq 1 at a, seq 2 at b']);
    expect(h.agreementProblems('r', [{ who: 'a', frames: [frame(1, 'x'), frame(2, 'x')] }])).toEqual([
      'r message x: seq 1 at a, seq 2 at a',
    ]);
  });

  it('many disagreements are capped at 12 lines', () => {
    const a = Array.from({ length: 20 }, (_, i) => frame(i + 1, `a${i}`));
    const b = Array.from({ length: 20 }, (_, i) => frame(i + 1, `b${i}`));
    expect(
      new History().agreementProblems('r', [
        { who: 'a', frames: a },
        { who: 'b', frames: b },
      ]),
    ).toHaveLength(12);
  });
});

describe('answerProblems: every send answered once, errors allowed only by name, one message per ok’d seq', () => {
  it('clean: ok’d sends with distinct seqs, a resend ok’d with its first seq, an allowed error', () => {
    const h = new History();
    const a = h.recordSend('pub', 'p', 'r');
    ok(h, a, 1);
    const b = h.recordSend('pub', 'p', 'r');
    unavailable(h, b);
    const b2 = h.recordSend('pub', 'p', 'r', { mid: b.mid });
    ok(h, b2, 2);
    const b3 = h.recordSend('pub', 'p', 'r', { mid: b.mid });
    ok(h, b3, 2);
    expect(h.answerProblems(['unavailable'])).toEqual([]);
  });

  it('one seq answered ok to two messages of one room or recipient', () => {
    const h = new History();
    const a = h.recordSend('pub', 'p', 'r');
    ok(h, a, 1);
    const b = h.recordSend('pub', 'q', 'r');
    ok(h, b, 1);
    const d1 = h.recordSend('dm', 's', 'u');
    ok(h, d1, 5);
    const d2 = h.recordSend('dm', 's', 'u');
    ok(h, d2, 5);
    expect(h.answerProblems([])).toEqual([
      `r seq 1 was answered ok to both ${a.mid} and ${b.mid}`,
      `u seq 5 was answered ok to both ${d1.mid} and ${d2.mid}`,
    ]);
  });

  it('one seq in different rooms, recipients, ops or epochs is no conflict; the same epoch is', () => {
    const h = new History();
    for (const [op, target, tag] of [
      ['pub', 'r', 'old'],
      ['pub', 'r2', 'old'],
      ['dm', 'r', 'old'],
      ['pub', 'r', 'new'],
    ] as const)
      ok(h, h.recordSend(op, 'p', target, { tag }), 1);
    const epochOf = (p: SendRecord) => (p.tag === 'old' ? 'e1' : 'e2');
    expect(h.answerProblems([], [], epochOf)).toEqual([]);
    const late = h.recordSend('pub', 'p', 'r', { tag: 'new' });
    ok(h, late, 1);
    expect(h.answerProblems([], [], epochOf)).toEqual([
      `r seq 1 was answered ok to both p.4 and ${late.mid} (epoch e2)`,
    ]);
    expect(h.answerProblems([])).toHaveLength(2); // without epochs the old and the new seq 1 conflict too
  });

  it('pending, unanswered, an error not allowed, an ok without a valid seq, a request answered twice', () => {
    const h = new History();
    const pending = h.recordSend('pub', 'p', 'r');
    const lost = h.recordSend('pub', 'p', 'r');
    h.recordAnswer(lost, { kind: 'unanswered', why: 'timeout' });
    const bad = h.recordSend('pub', 'p', 'r');
    h.recordAnswer(bad, { kind: 'err', code: 'internal', msg: 'x' });
    const noSeq = h.recordSend('pub', 'p', 'r');
    ok(h, noSeq, 0);
    const client = {
      answers: new Map([
        [1, 1],
        [2, 2],
        [3, 0],
      ]),
    } as unknown as TestClient;
    expect(h.answerProblems(['unavailable'], [client])).toEqual([
      `pub ${pending.mid} (r): still pending`,
      `pub ${lost.mid} (r): no answer: timeout`,
      `pub ${bad.mid} (r): err internal "x"`,
      `pub ${noSeq.mid} (r): ok with bad seq 0`,
      'sender #0: request id 2 answered 2 times',
      'sender #0: request id 3 answered 0 times',
    ]);
  });
});
