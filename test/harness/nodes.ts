// Reading and steering the nodes of a running cluster, shared by the cluster, ops and fault tests:
// a node's metrics, rooms and users picked by the router that should own them, waiting for slot
// ownership to settle, readiness, a room's history as a client reads it, and a node's log records.
// The fault scenarios build their traffic on top of these (harness/scenario.ts).
import { preferredOwner } from '../../router/slots.js';
import { DEFAULT_SLOTS, roomSlot, userSlot } from '../../shared/cluster/slots.js';
import { connect, type Frame } from './client.js';
import { expect } from 'vitest';
import { httpGet, uid, type Cluster, type Node } from './cluster.js';
import { metrics, sum } from './metrics.js';
import { waitFor } from './wait.js';

/** Sum of every sample of metric `name` (all label sets) on a node's /metrics. */
export const metric = async (node: Node, name: string): Promise<number> => sum(await metrics(node), name);

/** Samples of metric `name` carrying `label` (e.g. `reason="attempts"`; nodes add a `role` label), summed over `nodes`. */
export async function metricWith(nodes: readonly Node[], name: string, label: string): Promise<number> {
  const eq = label.indexOf('=');
  const labels = { [label.slice(0, eq)]: JSON.parse(label.slice(eq + 1)) as string };
  const each = await Promise.all(nodes.map(async (n) => sum(await metrics(n), name, labels)));
  return each.reduce((a, b) => a + b, 0);
}

/** Sum of metric `name` over `nodes` (each summed over its label sets, as `metric` does). */
export async function metricSum(nodes: readonly Node[], name: string): Promise<number> {
  return (await Promise.all(nodes.map((n) => metric(n, name)))).reduce((a, b) => a + b, 0);
}

/** Nothing is left to retry: the routers' compensation sets drain (the retry queue gauge reaches 0). */
export async function expectRetryQueueEmpty(routers: readonly Node[]): Promise<void> {
  const queued = () => metricSum(routers, 'rtgw_retry_queue_size');
  await waitFor(async () => (await queued()) === 0, 6000, 'rtgw_retry_queue_size to reach 0').catch(() => undefined);
  expect(await queued(), 'rtgw_retry_queue_size (routers)').toBe(0);
}

const routerIds = (cluster: Cluster) => cluster.routers.map((r) => r.nodeId!);

/** `perRouter` fresh room names for each router, by the owner rendezvous hashing prefers for their slot. */
export function roomsByOwner(cluster: Cluster, perRouter: number, base = 'room'): Map<string, string[]> {
  const ids = routerIds(cluster);
  const out = new Map(ids.map((id) => [id, [] as string[]]));
  // Every router must be preferred for enough slots, or no room name can ever land on it.
  for (const id of ids) {
    const slots = Array.from({ length: DEFAULT_SLOTS }, (_, s) => s).filter(
      (s) => preferredOwner(s, ids) === id,
    ).length;
    if (slots < perRouter) {
      throw new Error(
        `router ${id} is the preferred owner of ${slots} of ${DEFAULT_SLOTS} slots (routers ${ids.join(', ')}): ` +
          'rendezvous hashing gave it (almost) nothing, so the test cannot put rooms on it',
      );
    }
  }
  const usedSlots = new Set<number>();
  while ([...out.values()].some((l) => l.length < perRouter)) {
    const room = uid(base);
    const slot = roomSlot(room, DEFAULT_SLOTS);
    if (usedSlots.has(slot)) continue; // one room per slot: takeovers are then counted per room
    const list = out.get(preferredOwner(slot, ids)!)!;
    if (list.length < perRouter) {
      list.push(room);
      usedSlots.add(slot);
    }
  }
  return out;
}

/** `n` fresh user ids whose slot `owner` is preferred for among `routers` (node ids), one per slot. */
export function usersOwnedBy(routers: readonly string[], owner: string, n: number, base: string): string[] {
  const out: string[] = [];
  const used = new Set<number>();
  while (out.length < n) {
    const user = uid(base);
    const slot = userSlot(user, DEFAULT_SLOTS);
    if (used.has(slot) || preferredOwner(slot, routers) !== owner) continue;
    used.add(slot);
    out.push(user);
  }
  return out;
}

/** Resolves once every router holds exactly the slots rendezvous hashing gives it (start-up handovers are over). */
export async function waitBalanced(cluster: Cluster, timeoutMs = 15_000): Promise<void> {
  const ids = routerIds(cluster);
  const want = ids.map(
    (id) => Array.from({ length: DEFAULT_SLOTS }, (_, s) => s).filter((s) => preferredOwner(s, ids) === id).length,
  );
  await waitFor(
    async () => {
      const owned = await Promise.all(cluster.routers.map((r) => metric(r, 'rtgw_slots_owned')));
      return owned.every((n, i) => n === want[i]);
    },
    timeoutMs,
    `slot ownership to settle at ${want.join('/')} slots`,
  );
}

/** Every node of the cluster that is still running answers /readyz 200. */
export async function allReady(cluster: Cluster): Promise<boolean> {
  const live = cluster.nodes.filter((n) => !n.hasExited);
  const codes = await Promise.all(
    live.map((n) =>
      httpGet(`${n.adminUrl}/readyz`, 1000).then(
        (r) => r.status,
        () => 0,
      ),
    ),
  );
  return codes.every((c) => c === 200);
}

/**
 * A room's history as a client sees it: a fresh connection joins with `since: 0` and collects the replay.
 * Fails unless history is complete (recovered) — the fault tests stay below the history bound.
 */
export async function readHistory(
  cluster: Cluster,
  gateway: Node,
  room: string,
): Promise<{ head: number; epoch: string; frames: Frame[] }> {
  const c = await connect(gateway.url, { token: await cluster.token(uid('historian')) });
  try {
    const j = await c.ok({ t: 'join', room, since: 0 });
    if (j.recovered !== true) throw new Error(`history of ${room} not complete: ${JSON.stringify(j)}`);
    const head = j.seq as number;
    const frames = head === 0 ? [] : await c.waitForMsgs(room, head, 10_000);
    return { head, epoch: j.epoch as string, frames: frames.slice(0, head) };
  } finally {
    await c.close();
  }
}

/** Last seq a client received in a room (0 when none). */
export function lastSeq(frames: readonly Frame[], room: string): number {
  let last = 0;
  for (const f of frames) if (f.t === 'msg' && f.room === room) last = f.seq as number;
  return last;
}

/** A node's log records (pino JSON) whose `msg` is exactly `msg`. */
export function warnings(node: Node, msg: string): Record<string, unknown>[] {
  return node.logRecords().filter((r) => r.msg === msg);
}
