// PresenceStore contract: members and connections, and reaping of lapsed nodes exactly once.
import { expect, it } from 'vitest';
import type { RoomMember } from '../../shared/store/ports.js';
import { waitFor } from '../harness/wait.js';
import { forEachBackend } from './backends.js';

const byKey = (a: RoomMember, b: RoomMember) =>
  `${a.room} ${a.user} ${a.conn}` < `${b.room} ${b.user} ${b.conn}` ? -1 : 1;

forEachBackend('PresenceStore', (backend) => {
  it('tracks joins and leaves: distinct users, connection count', async () => {
    const { stores } = backend().make();
    const p = stores.presence;
    await p.heartbeat('g1', 60_000);
    expect(await p.members('lobby')).toEqual({ users: [], count: 0 });
    expect(await p.join('g1', { room: 'lobby', user: 'bob', conn: 'c1' })).toBe(true);
    expect(await p.join('g1', { room: 'lobby', user: 'bob', conn: 'c1' })).toBe(false);
    expect(await p.join('g1', { room: 'lobby', user: 'bob', conn: 'c2' })).toBe(true);
    expect(await p.join('g2', { room: 'lobby', user: 'alice', conn: 'c3' })).toBe(true);
    expect(await p.members('lobby')).toEqual({ users: ['alice', 'bob'], count: 3 });
    expect(await p.members('lobby.x')).toEqual({ users: [], count: 0 });
    expect(await p.leave('g1', { room: 'lobby', user: 'bob', conn: 'c1' })).toBe(true);
    expect(await p.leave('g1', { room: 'lobby', user: 'bob', conn: 'c1' })).toBe(false);
    expect(await p.members('lobby')).toEqual({ users: ['alice', 'bob'], count: 2 });
    await p.leave('g1', { room: 'lobby', user: 'bob', conn: 'c2' });
    expect(await p.members('lobby')).toEqual({ users: ['alice'], count: 1 });
  });

  it("lists a user's live connections with their nodes", async () => {
    const { stores } = backend().make();
    const p = stores.presence;
    await p.connect('g1', 'bob', 'c1');
    await p.connect('g2', 'bob', 'c2');
    await p.connect('g1', 'bob.x', 'c3');
    expect(await p.userConns('bob')).toEqual([
      { conn: 'c1', node: 'g1' },
      { conn: 'c2', node: 'g2' },
    ]);
    await p.disconnect('g1', 'bob', 'c1');
    expect(await p.userConns('bob')).toEqual([{ conn: 'c2', node: 'g2' }]);
    expect(await p.userConns('nobody')).toEqual([]);
  });

  it('keeps names that differ only by . : * % apart', async () => {
    const { stores } = backend().make();
    const p = stores.presence;
    const names = ['a.b', 'a:b', 'a%2Eb', 'a*', 'a.*', 'a', 'a b'];
    for (const [i, n] of names.entries()) {
      await p.join('g1', { room: n, user: n, conn: `c${i}` });
      await p.connect('g1', n, `c${i}`);
    }
    for (const [i, n] of names.entries()) {
      expect(await p.members(n)).toEqual({ users: [n], count: 1 });
      expect(await p.userConns(n)).toEqual([{ conn: `c${i}`, node: 'g1' }]);
    }
    // Reaping decodes what it stored: every odd name comes back intact.
    const removed = await p.removeNode('g1');
    expect(removed.sort(byKey)).toEqual(names.map((n, i) => ({ room: n, user: n, conn: `c${i}` })).sort(byKey));
  });

  it("reaps a lapsed node's memberships and connections, and leaves live nodes alone", async () => {
    const inst = backend().make();
    const p = inst.stores.presence;
    await p.heartbeat('dead', 1_000);
    await p.heartbeat('live', 60_000);
    const deadMembers = [
      { room: 'r1', user: 'u1', conn: 'd1' },
      { room: 'r2', user: 'u1', conn: 'd1' },
      { room: 'r1', user: 'u2', conn: 'd2' },
    ];
    for (const m of deadMembers) await p.join('dead', m);
    await p.connect('dead', 'u1', 'd1');
    await p.connect('dead', 'u2', 'd2');
    await p.join('live', { room: 'r1', user: 'u3', conn: 'l1' });
    await p.connect('live', 'u1', 'l2');

    expect(await p.reap()).toEqual([]); // nobody lapsed yet
    await waitFor(() => inst.lapsed('dead'), 5_000, 'the dead node to lapse');
    expect((await p.reap()).sort(byKey)).toEqual([...deadMembers].sort(byKey));
    expect(await p.reap()).toEqual([]);
    expect(await p.members('r1')).toEqual({ users: ['u3'], count: 1 });
    expect(await p.members('r2')).toEqual({ users: [], count: 0 });
    expect(await p.userConns('u1')).toEqual([{ conn: 'l2', node: 'live' }]);
    expect(await p.userConns('u2')).toEqual([]);
  });

  it('reports each membership once when two reapers run at the same time', async () => {
    const inst = backend().make();
    const members = Array.from({ length: 50 }, (_, i) => ({ room: `r${i % 7}`, user: `u${i % 5}`, conn: `c${i}` }));
    await inst.stores.presence.heartbeat('dead', 100);
    await Promise.all(members.map((m) => inst.stores.presence.join('dead', m)));
    await waitFor(() => inst.lapsed('dead'), 5_000, 'the node to lapse');
    const [a, b] = await Promise.all([inst.stores.presence.reap(), inst.peer.presence.reap()]);
    const all = [...a, ...b].sort(byKey);
    expect(all).toEqual([...members].sort(byKey));
    expect(await inst.stores.presence.members('r0')).toEqual({ users: [], count: 0 });
  });

  it('removes a node on clean shutdown whatever its heartbeat', async () => {
    const { stores } = backend().make();
    const p = stores.presence;
    await p.heartbeat('g1', 60_000);
    await p.join('g1', { room: 'r', user: 'u', conn: 'c1' });
    await p.connect('g1', 'u', 'c1');
    await p.join('g2', { room: 'r', user: 'v', conn: 'c2' });
    expect(await p.removeNode('g1')).toEqual([{ room: 'r', user: 'u', conn: 'c1' }]);
    expect(await p.removeNode('g1')).toEqual([]);
    expect(await p.members('r')).toEqual({ users: ['v'], count: 1 });
    expect(await p.userConns('u')).toEqual([]);
    // Its heartbeat is gone too: nothing of it is reaped later, and a new join is its own again.
    expect(await p.reap()).toEqual([]);
  });
});
