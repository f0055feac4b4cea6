// Direct messages cannot be used to erase someone's inbox (contract 1.1 section 7.1), end to end on a
// 2-gateway 2-router cluster: attackers flood an offline victim until they are answered `limit` — first
// one attacker at its share of the victim's inbox (RTGW_INBOX_MAX_PER_SENDER), then more of them until
// the inbox is full (RTGW_INBOX_MAX_MESSAGES). The friend's earlier dm is still delivered when the victim
// connects, nothing was dead-lettered to make room, and every refusal was `limit`, never `ok`.
import { describe, expect, it } from 'vitest';
import type { TestClient } from '../harness/client.js';
import { httpGet, uid, type Node } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { metricSum, waitBalanced } from '../harness/nodes.js';

const PER_SENDER = 50;
const INBOX = 120;
/** Far more than either limit: on a build without them every one of these would be answered ok. */
const FLOOD = 200;

const suite = useCluster({
  gateways: 2,
  routers: 2,
  env: { RTGW_INBOX_MAX_PER_SENDER: String(PER_SENDER), RTGW_INBOX_MAX_MESSAGES: String(INBOX) },
  pingOnConnect: true,
  ready: (c) => waitBalanced(c),
});
const { client } = suite;

/** Sends dms to `to` one at a time until one is not answered ok (or FLOOD were); the oks and the first other answer. */
async function floodUntilRefused(
  from: TestClient,
  to: string,
): Promise<{ oks: number; refusal: Record<string, unknown> | undefined }> {
  for (let i = 0; i < FLOOD; i++) {
    const answer = await from.request({ t: 'dm', to, data: { spam: i } });
    if (answer.t !== 'ok') return { oks: i, refusal: answer };
  }
  return { oks: FLOOD, refusal: undefined };
}

/** Sum of the samples of metric `name` on a node's /metrics whose labels include `label` (e.g. `reason="x"`); 0 when none. */
async function labelled(node: Node, name: string, label: string): Promise<number> {
  const { body } = await httpGet(`${node.adminUrl}/metrics`);
  let sum = 0;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = line.slice(name.length + 1, line.indexOf('}'));
    if (labels.split(',').includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe("an attacker flooding an offline victim's inbox", () => {
  it("is answered limit past its share and at a full inbox; the friend's earlier dm is still delivered, nothing dead-lettered", async () => {
    const { cluster } = suite;
    const victim = uid('victim');
    const friend = await client(1);
    const first = await friend.ok({ t: 'dm', to: victim, data: { hello: 'from a friend' }, mid: 'friend-1' });
    expect(first.seq).toBe(1);

    // One attacker: exactly its share is stored, then `limit`, and it stays `limit`.
    const attacker = await client(0);
    const one = await floodUntilRefused(attacker, victim);
    expect(one.oks, 'dms the attacker got stored').toBe(PER_SENDER);
    expect(one.refusal).toMatchObject({ t: 'err', code: 'limit' });
    for (let i = 0; i < 5; i++)
      expect(await attacker.request({ t: 'dm', to: victim, data: 'again' })).toMatchObject({ t: 'err', code: 'limit' });

    // More attackers (other users) fill the inbox: the one that finds it full is refused, nothing evicted.
    let stored = 1 + PER_SENDER;
    for (let n = 0; n < 4 && stored < INBOX; n++) {
      const r = await floodUntilRefused(await client(n % 2), victim);
      expect(r.refusal).toMatchObject({ t: 'err', code: 'limit' });
      stored += r.oks;
      expect(stored).toBeLessThanOrEqual(INBOX);
    }
    expect(stored, 'dms stored in all').toBe(INBOX);
    expect(await friend.request({ t: 'dm', to: victim, data: 'once more' })).toMatchObject({ t: 'err', code: 'limit' });
    // A repeated mid is still answered with its first seq.
    expect(
      await friend.request({ t: 'dm', to: victim, data: { hello: 'from a friend' }, mid: 'friend-1' }),
    ).toMatchObject({ t: 'ok', seq: 1 });

    // The victim connects: the whole inbox is replayed, the friend's dm first.
    const me = await client(0, victim);
    await waitFor(
      () => new Set(me.of('dm').map((f) => f.seq)).size >= INBOX,
      10_000,
      `${INBOX} dms replayed to the victim`,
    );
    const dms = me.of('dm');
    expect(dms[0]).toMatchObject({ seq: 1, from: friend.user, data: { hello: 'from a friend' }, mid: 'friend-1' });
    expect([...new Set(dms.map((f) => f.seq as number))].sort((a, b) => a - b)).toEqual(
      Array.from({ length: INBOX }, (_, i) => i + 1),
    );
    for (const f of dms) me.sendJson({ t: 'ack', seq: f.seq });

    const routers = cluster.routers;
    for (const r of routers)
      expect(
        await labelled(r, 'rtgw_dead_letters_total', 'reason="inbox_full"'),
        `inbox_full dead letters on ${r.nodeId}`,
      ).toBe(0);
    expect(await metricSum(cluster.nodes, 'rtgw_dead_letters_total'), 'dead letters of any reason, every node').toBe(0);
    // The drop counter is exposed (and nothing was dropped).
    for (const r of routers)
      expect(await labelled(r, 'rtgw_dead_letters_dropped_total', 'role="router"'), `dropped on ${r.nodeId}`).toBe(0);
    expect((await httpGet(`${routers[0]!.adminUrl}/metrics`)).body).toMatch(
      /^rtgw_dead_letters_dropped_total\{role="router"\} 0$/m,
    );
  }, 60_000);
});
