// The guarantee checker judged on hand-made histories: clean ones (including every legitimate dm
// redelivery: retries, pending replays after a reconnect, re-drives, dead letters, resends with the same
// mid) report nothing, and each broken one reports exactly its problem (lost, unexpected, a message
// stored twice, an inversion, a dm never delivered, a seq carrying two messages, an unsettled dm).
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Frame, TestClient } from '../harness/client.js';
import { History, type Problem, type SendRecord } from '../harness/history.js';

const ok = (h: History, rec: SendRecord, seq: number) => h.recordAnswer(rec, { kind: 'ok', seq });
const unavailable = (h: History, rec: SendRecord) => h.recordAnswer(rec, { kind: 'err', code: 'unavailable', msg: 'try again' });

/** The `msg` frame a member receives for `rec` at `seq`. */
const msg = (rec: SendRecord, seq: number): Frame => ({ t: 'msg', room: rec.target, seq, from: rec.by, data: { id: rec.mid, by: rec.by }, mid: rec.mid, ts: 1 });
/** The `dm` frame a recipient receives for `rec` at `seq`. */
const dm = (rec: SendRecord, seq: number): Frame => ({ t: 'dm', seq, from: rec.by, data: { id: rec.mid, by: rec.by }, mid: rec.mid, ts: 1 });

/** The parts of each problem a test names exactly (details are prose). */
const brief = (ps: readonly Problem[]) => ps.map((p) => ({ kind: p.kind, target: p.target, mid: p.mid, seqs: p.seqs, who: p.who }));

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
    const frames = [msg(pubs[0]!, 1), { t: 'msg', room: 'r', seq: 2, from: 'x', data: { id: 'forged.1' }, mid: 'forged.1', ts: 1 }, { ...msg(elsewhere, 3), room: 'r' }];
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
    expect(brief(h.check().problems)).toEqual([{ kind: 'duplicate', target: 'r', mid: a.mid, seqs: [1, 2], who: undefined }]);
  });

  it('a message stored twice: a dm resent with its mid and answered with a new seq (dedup failed)', () => {
    const h = new History();
    const first = h.recordSend('dm', 's', 'u');
    unavailable(h, first);
    const again = h.recordSend('dm', 's', 'u', { mid: first.mid });
    ok(h, again, 2);
    h.recordReceive('u', 'u', 'c1', dm(first, 1));
    h.recordReceive('u', 'u', 'c1', dm(first, 2));
    expect(brief(h.check().problems)).toEqual([{ kind: 'duplicate', target: 'u', mid: first.mid, seqs: [1, 2], who: undefined }]);
  });

  it('a room inversion: seq 2 after seq 3 on one connection', () => {
    const { h, pubs } = roomOfThree();
    for (const [i, p] of [0, 2, 1].map((i) => [i, pubs[i]!] as const)) h.recordReceive('m1', 'm1', 'c1', msg(p, i + 1));
    pubs.forEach((p, i) => h.recordReceive('m2', 'm2', 'c2', msg(p, i + 1)));
    expect(brief(h.check().problems)).toEqual([{ kind: 'inversion', target: 'r', mid: pubs[1]!.mid, seqs: [2, 3], who: 'm1' }]);
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
    expect(h.check().lines()).toEqual([`inversion [recipient u] u (c1) first received seqs 1..2 after seq 3 (2 inversions)`]);
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
    expect(brief(h.check().problems)).toEqual([{ kind: 'lost', target: 'u', mid: dms[1]!.mid, seqs: [2], who: undefined }]);
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
    expect(brief(h.check({ settled: true }).problems)).toEqual([{ kind: 'unsettled', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined }]);
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
    expect(r.lines()[1]).toBe('conflict [room r] r seq 1 carries different messages: p.1 (answered ok to p), p.2 (received by m)');
  });

  it('a re-drive not recorded as one is a message stored twice', () => {
    const { h, dms } = inboxOf(1);
    h.recordReceive('u', 'u', 'c1', dm(dms[0]!, 1));
    h.recordReceive('u', 'u', 'c1', { ...dm(dms[0]!, 2), mid: 'redrive:abc' });
    expect(brief(h.check({ deadLetters: [{ user: 'u', seq: 1 }] }).problems)).toEqual([{ kind: 'duplicate', target: 'u', mid: dms[0]!.mid, seqs: [1, 2], who: undefined }]);
  });

  it('a dead letter the test did not expect is lost', () => {
    const { h, dms } = inboxOf(1);
    expect(brief(h.check().problems)).toEqual([{ kind: 'lost', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined }]);
  });
});

describe('recording from a client', () => {
  /** Enough of a TestClient for `watch`: frames, identity, an open socket that emits and records sends. */
  function fakeClient(user: string, conn: string) {
    const ws = new EventEmitter();
    const sent: Record<string, unknown>[] = [];
    const frames: Frame[] = [];
    const client = { frames, user, conn, isOpen: true, ws, sendJson: (f: Record<string, unknown>) => sent.push(f) } as unknown as TestClient;
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
    expect(c.sent).toEqual([{ t: 'ack', seq: 1 }, { t: 'ack', seq: 2 }, { t: 'ack', seq: 2 }]);
    expect(h.receives({ user: 'u' }).map((e) => e.frame.seq)).toEqual([1, 2, 2]);
    expect(h.check({ settled: true }).problems).toEqual([]);
  });

  it('watch with ack: false records but never acks', () => {
    const { h, dms } = inboxOf(1);
    const c = fakeClient('u', 'c1');
    h.watch(c.client, 'u', { ack: false });
    c.deliver(dm(dms[0]!, 1));
    expect(c.sent).toEqual([]);
    expect(brief(h.check({ settled: true }).problems)).toEqual([{ kind: 'unsettled', target: 'u', mid: dms[0]!.mid, seqs: [1], who: undefined }]);
  });

  it('answerProblems covers dms: an unanswered send and an error outside the allowed codes', () => {
    const h = new History();
    const a = h.recordSend('dm', 's', 'u');
    h.recordAnswer(a, { kind: 'unanswered', why: 'closed' });
    const b = h.recordSend('dm', 's', 'u');
    h.recordAnswer(b, { kind: 'err', code: 'internal', msg: 'boom' });
    const c = h.recordSend('dm', 's', 'u');
    unavailable(h, c);
    expect(h.answerProblems(['unavailable'])).toEqual([`dm ${a.mid} (u): no answer: closed`, `dm ${b.mid} (u): err internal "boom"`]);
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
    expect(brief(h.check({ withoutEcho: true }).problems)).toEqual([{ kind: 'unexpected', target: 'r', mid: a.mid, seqs: [1], who: 'm1' }]);
  });
});
