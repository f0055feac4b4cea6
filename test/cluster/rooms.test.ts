// Rooms across a real cluster (2 gateways, 2 routers, NATS, Redis): delivery, ordering, echo, recovery
// on another gateway, permissions, hostile names, presence and leave — black-box, per the wire contract.
import { describe, expect, it } from 'vitest';
import { range, seqs, type Frame } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';

const { client } = useCluster({ gateways: 2, routers: 2, closeClientsAfterEach: true });

describe('join and pub', () => {
  it('delivers each pub once, in seq order 1,2,3…, to every other member on both gateways; not to the sender without echo', async () => {
    const room = uid('r');
    const t0 = Date.now();
    const a = await client(0);
    const members = [await client(1), await client(1), await client(0)]; // one shares a's gateway
    const epochs = new Set<unknown>();
    for (const m of [a, ...members]) {
      const j = await m.ok({ t: 'join', room });
      expect(j).toMatchObject({ room, seq: 0 });
      expect(typeof j.epoch).toBe('string');
      epochs.add(j.epoch);
    }
    expect(epochs.size).toBe(1);
    const oks: Frame[] = [];
    for (let i = 1; i <= 5; i++) oks.push(await a.ok({ t: 'pub', room, data: { i, s: 'x' }, mid: `m${i}` }));
    expect(seqs(oks)).toEqual(range(1, 5));

    for (const m of members) {
      const msgs = await m.waitForMsgs(room, 5);
      expect(seqs(msgs)).toEqual(range(1, 5));
      msgs.forEach((f, k) => {
        expect(f).toMatchObject({
          t: 'msg',
          room,
          seq: k + 1,
          from: a.user,
          data: { i: k + 1, s: 'x' },
          mid: `m${k + 1}`,
        });
        expect(f.ts).toBeGreaterThanOrEqual(t0 - 5000);
        expect(f.ts).toBeLessThanOrEqual(Date.now() + 5000);
      });
    }
    // With echo the sender gets its own message; it got none of the five before it (same ordered stream).
    const last = await a.ok({ t: 'pub', room, data: 'last', echo: true });
    expect(last.seq).toBe(6);
    await a.waitForMsgs(room, 1);
    for (const m of members) await m.waitForMsgs(room, 6);
    expect(seqs(a.msgs(room))).toEqual([6]);
    for (const m of members) expect(seqs(m.msgs(room))).toEqual(range(1, 6));
    // A later joiner learns the latest seq.
    const late = await client(1);
    expect(await late.ok({ t: 'join', room })).toMatchObject({ room, seq: 6, epoch: [...epochs][0] });
  });

  it('gives concurrent publishers on different gateways one total order: same seq→message everywhere, no gap, no duplicate', async () => {
    const room = uid('conc');
    const pubs = [await client(0), await client(1), await client(0)];
    const observers = [await client(0), await client(1)];
    for (const c of [...pubs, ...observers]) await c.ok({ t: 'join', room });
    const N = 15;
    const answers = await Promise.all(
      pubs.map((p, k) => Promise.all(range(1, N).map((i) => p.request({ t: 'pub', room, data: { k, i } })))),
    );
    const bySeq = new Map<number, unknown>();
    const sentBy = new Map<number, number>();
    answers.forEach((list, k) =>
      list.forEach((ans, i) => {
        expect(ans.t, JSON.stringify(ans)).toBe('ok');
        expect(bySeq.has(ans.seq as number), `seq ${ans.seq} given twice`).toBe(false);
        bySeq.set(ans.seq as number, { k, i: i + 1 });
        sentBy.set(ans.seq as number, k);
      }),
    );
    const total = pubs.length * N;
    expect([...bySeq.keys()].sort((x, y) => x - y)).toEqual(range(1, total));

    for (const o of observers) {
      const msgs = await o.waitForMsgs(room, total, 10_000);
      expect(seqs(msgs)).toEqual(range(1, total));
      for (const f of msgs) expect(f.data).toEqual(bySeq.get(f.seq as number));
    }
    // Each publisher sees everyone else's messages, in the same order, and none of its own.
    for (const [k, p] of pubs.entries()) {
      const expected = range(1, total).filter((s) => sentBy.get(s) !== k);
      const msgs = await p.waitForMsgs(room, expected.length, 10_000);
      expect(seqs(msgs)).toEqual(expected);
      for (const f of msgs) expect(f.data).toEqual(bySeq.get(f.seq as number));
    }
  });

  it('answers every pub exactly once', async () => {
    const room = uid('once');
    const a = await client(1);
    const ids = range(1, 10).map((i) => a.fire({ t: 'pub', room, data: i }));
    await a.next((f) => f.t === 'ok' && f.id === ids[ids.length - 1]);
    await a.ping(); // anything answered twice would have come before the pong on this socket
    for (const id of ids) expect(a.answers.get(id), `answers to id ${id}`).toBe(1);
  });
});

describe('recovery', () => {
  it('a member reconnecting to the OTHER gateway with since/epoch gets exactly the missed messages, then live ones', async () => {
    const room = uid('rec');
    const user = uid('u');
    const p = await client(0);
    const a = await client(0, user);
    const j = await a.ok({ t: 'join', room });
    for (let i = 1; i <= 3; i++) await p.ok({ t: 'pub', room, data: i });
    expect(seqs(await a.waitForMsgs(room, 3))).toEqual([1, 2, 3]);
    await a.close();
    for (let i = 4; i <= 7; i++) await p.ok({ t: 'pub', room, data: i });

    const a2 = await client(1, user);
    const r = await a2.ok({ t: 'join', room, since: 3, epoch: j.epoch });
    expect(r).toMatchObject({ room, recovered: true, seq: 7, epoch: j.epoch });
    const replayed = await a2.waitForMsgs(room, 4);
    expect(seqs(replayed)).toEqual([4, 5, 6, 7]);
    expect(replayed.map((f) => f.data)).toEqual([4, 5, 6, 7]);
    const okAt = a2.frames.indexOf(r);
    for (const f of replayed) expect(a2.frames.indexOf(f), 'replayed msg before the join ok').toBeGreaterThan(okAt);

    await p.ok({ t: 'pub', room, data: 8 });
    await p.ok({ t: 'pub', room, data: 9 });
    const all = await a2.waitForMsgs(room, 6);
    expect(seqs(all)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(all.map((f) => f.data)).toEqual([4, 5, 6, 7, 8, 9]);
  });

  it('recovers nothing missed when since is the latest seq, and still delivers live messages once', async () => {
    const room = uid('rec0');
    const p = await client(1);
    const a = await client(0);
    const j = await a.ok({ t: 'join', room });
    await p.ok({ t: 'pub', room, data: 1 });
    await a.waitForMsgs(room, 1);
    const a2 = await client(1);
    expect(await a2.ok({ t: 'join', room, since: 1, epoch: j.epoch })).toMatchObject({ recovered: true, seq: 1 });
    await p.ok({ t: 'pub', room, data: 2 });
    expect(seqs(await a2.waitForMsgs(room, 1))).toEqual([2]);
    await a2.ping();
    expect(seqs(a2.msgs(room))).toEqual([2]);
  });

  it('joins with since under live traffic: each answers ok first, then the replay and the live messages without a gap or an echo', async () => {
    const room = uid('busy');
    const p = await client(0);
    const steady = await client(1); // keeps the room's stream open at gateway 1 throughout
    const first = await steady.ok({ t: 'join', room });
    // Several joiners at once: their history reads and catch-up fills overlap, as after a gateway died.
    const joiners = [await client(1), await client(1), await client(1), await client(1)];
    const own = joiners.map(() => new Set<number>());
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) await p.ok({ t: 'pub', room, data: i });
    })();
    const round = async (j: (typeof joiners)[number], n: number, k: number) => {
      const head = steady.msgs(room).at(-1)!.seq as number;
      const since = Math.max(0, head - 40 + ((n + k) % 7));
      const from = j.frames.length;
      const id = j.fire({ t: 'join', room, since, epoch: first.epoch });
      // Published while the join is read (before or after its head): it must not come back (no echo), not
      // in this join's replay or tail, nor in a later join's replay.
      const ownId = j.fire({ t: 'pub', room, data: `own ${n}` });
      const ok = await j.next((f) => f.t === 'ok' && f.id === id, 5000, from, `join ${id}`);
      const ownOk = await j.next((f) => f.t === 'ok' && f.id === ownId, 5000, from, `pub ${ownId}`);
      expect(ok).toMatchObject({ recovered: true });
      own[k]!.add(ownOk.seq as number);
      const until = Math.max(ok.seq as number, ownOk.seq as number) + 3;
      await j.next(
        (f) => f.t === 'msg' && f.room === room && f.seq >= until,
        5000,
        from,
        `seq ${until} after join ${id}`,
      );
      const window = j.frames.slice(from);
      const msgs = window.filter((f) => f.t === 'msg' && f.room === room);
      const what = `round ${n}, joiner ${k}: since ${since}, ok seq ${ok.seq}, own seq ${ownOk.seq}`;
      expect(
        window.findIndex((f) => f.t === 'msg'),
        `${what}: a msg before the join's ok`,
      ).toBeGreaterThan(window.indexOf(ok));
      const expected = range(since + 1, msgs.at(-1)!.seq as number).filter((s) => !own[k]!.has(s));
      expect(seqs(msgs), what).toEqual(expected);
      await j.ok({ t: 'leave', room });
    };
    try {
      await steady.waitForMsgs(room, 60, 10_000);
      for (let n = 0; n < 15; n++) await Promise.all(joiners.map((j, k) => round(j, n, k)));
    } finally {
      stop = true;
      await publishing;
    }
  }, 60_000);

  it('join with a wrong epoch answers recovered: false and the real epoch', async () => {
    const room = uid('epoch');
    const p = await client(0);
    const first = await p.ok({ t: 'join', room });
    await p.ok({ t: 'pub', room, data: 1 });
    await p.ok({ t: 'pub', room, data: 2 });
    const a = await client(1);
    const r = await a.ok({ t: 'join', room, since: 1, epoch: 'not-the-epoch-0000' });
    expect(r).toMatchObject({ room, recovered: false, seq: 2, epoch: first.epoch });
  });
});

describe('permissions', () => {
  it('refuses rooms outside the token `rooms` claim with forbidden, for join, replay and pub', async () => {
    const base = uid('team');
    const exact = uid('exact');
    const other = uid('other');
    const free = await client(0);
    await free.ok({ t: 'pub', room: other, data: 'secret-1' });
    const otherEpoch = (await free.ok({ t: 'join', room: other })).epoch;

    const c = await client(1, uid('u'), { rooms: [exact, `${base}-*`] });
    expect(await c.request({ t: 'join', room: other })).toMatchObject({ t: 'err', code: 'forbidden' });
    expect(await c.request({ t: 'join', room: other, since: 0, epoch: otherEpoch })).toMatchObject({
      t: 'err',
      code: 'forbidden',
    });
    expect(await c.request({ t: 'pub', room: other, data: 'x' })).toMatchObject({ t: 'err', code: 'forbidden' });
    expect(await c.request({ t: 'join', room: `${exact}x` })).toMatchObject({ t: 'err', code: 'forbidden' });
    expect(await c.ok({ t: 'join', room: exact })).toMatchObject({ room: exact });
    expect(await c.ok({ t: 'join', room: `${base}-sub` })).toMatchObject({ room: `${base}-sub` });
    // pub absent means the same as rooms
    expect((await c.ok({ t: 'pub', room: `${base}-sub`, data: 1 })).seq).toBe(1);

    // The refused pub was never sequenced, and nothing of `other` reached the refused member.
    expect((await free.ok({ t: 'pub', room: other, data: 'secret-2' })).seq).toBe(2);
    await c.ping();
    expect(c.msgs(other)).toEqual([]);
  });

  it('applies the `pub` claim patterns to publishing only', async () => {
    const base = uid('p');
    const watcher = await client(0);
    await watcher.ok({ t: 'join', room: `${base}-other` });

    const c = await client(1, uid('u'), { pub: [`${base}-pub-*`] });
    expect((await c.ok({ t: 'pub', room: `${base}-pub-1`, data: 1 })).seq).toBe(1);
    expect(await c.request({ t: 'pub', room: `${base}-other`, data: 'no' })).toMatchObject({
      t: 'err',
      code: 'forbidden',
    });
    expect(await c.ok({ t: 'join', room: `${base}-other` })).toMatchObject({ room: `${base}-other` }); // rooms absent: every room

    const none = await client(0, uid('u'), { pub: [] });
    expect(await none.request({ t: 'pub', room: `${base}-other`, data: 'no' })).toMatchObject({
      t: 'err',
      code: 'forbidden',
    });
    expect(await none.ok({ t: 'join', room: `${base}-other` })).toMatchObject({ room: `${base}-other` });

    // Nothing refused was sequenced: the first allowed message into `${base}-other` gets seq 1.
    const free = await client(1);
    expect((await free.ok({ t: 'pub', room: `${base}-other`, data: 'first' })).seq).toBe(1);
    const msgs = await watcher.waitForMsgs(`${base}-other`, 1);
    expect(msgs.map((f) => f.data)).toEqual(['first']);
  });
});

describe('names', () => {
  it('keeps a, a.b, a.b.c, a:b and ab unrelated', async () => {
    const base = uid('h');
    const rooms = [base, `${base}.b`, `${base}.b.c`, `${base}:b`, `${base}b`, `${base}.c`];
    const members = await Promise.all(rooms.map((_, i) => client(i % 2 === 0 ? 0 : 1)));
    for (const [i, m] of members.entries()) await m.ok({ t: 'join', room: rooms[i] });
    const p = await client(0);
    for (const round of [1, 2]) for (const room of rooms) await p.ok({ t: 'pub', room, data: { room, round } });
    for (const [i, m] of members.entries()) {
      const msgs = await m.waitForMsgs(rooms[i]!, 2);
      expect(msgs.map((f) => f.data)).toEqual([1, 2].map((round) => ({ room: rooms[i], round })));
    }
    // Everything was published by now; flush each socket and look for anything from another room.
    for (const [i, m] of members.entries()) {
      await m.ping();
      expect(m.of('msg').map((f) => f.room)).toEqual([rooms[i], rooms[i]]);
    }
  });

  const bad: [string, unknown][] = [
    ['*', '*'],
    ['>', '>'],
    ['a.*', 'a.*'],
    ['a.>', 'a.>'],
    ['space', 'a b'],
    ['empty', ''],
    ['129 chars', 'x'.repeat(129)],
    ['non-ASCII', 'caf\u00e9'],
    ['slash', 'a/b'],
    ['percent', 'a%2Eb'],
    ['NUL', 'a\u0000b'],
    ['comma', 'a,b'],
    ['braces', '{a}'],
    ['number', 123],
    ['null', null],
  ];
  it.each(bad)(
    'refuses the room name %s with bad_request (join, pub, presence) and stays usable',
    async (_label, room) => {
      const c = await client(0);
      for (const t of ['join', 'pub', 'presence'] as const) {
        const res = await c.request(t === 'pub' ? { t, room, data: 1 } : { t, room });
        expect(res, `${t} ${JSON.stringify(room)}`).toMatchObject({ t: 'err', code: 'bad_request' });
      }
      await c.ping();
      expect(c.isOpen).toBe(true);
    },
  );

  it('accepts a 128-character room name', async () => {
    const base = uid('long');
    const room = base + 'x'.repeat(128 - base.length);
    const a = await client(1);
    expect(await a.ok({ t: 'join', room })).toMatchObject({ room });
    const p = await client(0);
    expect((await p.ok({ t: 'pub', room, data: 'long' })).seq).toBe(1);
    expect((await a.waitForMsgs(room, 1))[0]).toMatchObject({ room, data: 'long' });
  });
});

describe('presence', () => {
  it('counts connections and distinct users, and sends joined/left only to presence: true members', async () => {
    const room = uid('pr');
    const [ua, ub, uc] = [uid('ua'), uid('ub'), uid('uc')];
    const a = await client(0, ua);
    await a.ok({ t: 'join', room, presence: true });
    const b = await client(1, ub);
    await b.ok({ t: 'join', room });
    await a.next((f) => f.t === 'joined' && f.user === ub, 3000, 0, 'joined(b)');
    expect(a.of('joined', (f) => f.user === ub)[0]).toMatchObject({ room, user: ub, conn: b.conn });

    const c1 = await client(1, uc);
    await c1.ok({ t: 'join', room, presence: true });
    const c2 = await client(0, uc);
    await c2.ok({ t: 'join', room, presence: true });
    await a.next((f) => f.t === 'joined' && f.conn === c2.conn, 3000, 0, 'joined(c2) at a');
    await c1.next((f) => f.t === 'joined' && f.conn === c2.conn, 3000, 0, 'joined(c2) at c1');
    expect(a.of('joined', (f) => f.conn === c1.conn)[0]).toMatchObject({ room, user: uc, conn: c1.conn });

    // Live joins show within 1 s (contract); poll up to 2 s.
    await waitFor(async () => (await b.ok({ t: 'presence', room })).count === 4, 2000, 'presence count 4');
    const pres = await b.ok({ t: 'presence', room });
    expect(pres.count).toBe(4);
    expect([...(pres.users as string[])].sort()).toEqual([ua, ub, uc].sort());

    await b.ok({ t: 'leave', room });
    const leftB = await a.next((f) => f.t === 'left' && f.conn === b.conn, 3000, 0, 'left(b)');
    expect(leftB).toMatchObject({ room, user: ub, conn: b.conn });
    await c2.close();
    const leftC2 = await a.next((f) => f.t === 'left' && f.conn === c2.conn, 3000, 0, 'left(c2)');
    expect(leftC2).toMatchObject({ room, user: uc, conn: c2.conn });
    await waitFor(async () => (await a.ok({ t: 'presence', room })).count === 2, 2000, 'presence count 2');
    const after = await a.ok({ t: 'presence', room });
    expect([...(after.users as string[])].sort()).toEqual([ua, uc].sort());

    // b joined without presence: it must have seen no presence event at all. A message published after
    // every event above flushes b's stream first.
    const b2 = await client(1, ub);
    await b2.ok({ t: 'join', room });
    await a.ok({ t: 'pub', room, data: 'marker' });
    await b2.waitForMsgs(room, 1);
    expect(b.of('joined').concat(b.of('left'))).toEqual([]);
    expect(b2.of('joined').concat(b2.of('left'))).toEqual([]);
  });

  it('answers presence for a room nobody joined with no users and count 0', async () => {
    const a = await client(0);
    expect(await a.ok({ t: 'presence', room: uid('empty') })).toMatchObject({ users: [], count: 0 });
  });
});

describe('leave', () => {
  it('stops delivery to the leaving connection only; joining again resumes it', async () => {
    const room = uid('lv');
    const a = await client(1);
    const b = await client(1);
    const p = await client(0);
    await a.ok({ t: 'join', room });
    await b.ok({ t: 'join', room });
    await p.ok({ t: 'pub', room, data: 1 });
    await b.waitForMsgs(room, 1);
    expect(await b.ok({ t: 'leave', room })).toMatchObject({ t: 'ok' });
    await p.ok({ t: 'pub', room, data: 2 });
    await p.ok({ t: 'pub', room, data: 3 });
    expect(seqs(await a.waitForMsgs(room, 3))).toEqual([1, 2, 3]);
    await b.ping();
    expect(seqs(b.msgs(room))).toEqual([1]);

    await b.ok({ t: 'join', room });
    await p.ok({ t: 'pub', room, data: 4 });
    expect(seqs(await b.waitForMsgs(room, 2))).toEqual([1, 4]);
    expect(seqs(await a.waitForMsgs(room, 4))).toEqual([1, 2, 3, 4]);
  });
});
