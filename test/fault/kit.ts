// Shared pieces of the fault tests: reading a node's metrics, picking rooms by the router that should
// own them, waiting for slot ownership to settle, setting up members and publishers (on connections
// proven usable, harness/suite.ts `connectClient`), and the closing check of a run against the room's
// history as a client reads it.
import { preferredOwner } from '../../router/slots.js';
import { DEFAULT_SLOTS, roomSlot } from '../../shared/cluster/slots.js';
import { connect, type ClientPool, type Frame, type TestClient } from '../harness/client.js';
import { httpGet, uid, type Cluster, type Node } from '../harness/cluster.js';
import { History } from '../harness/history.js';
import { connectClient } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';

/** Sum of every sample of metric `name` (all label sets) on a node's /metrics. */
export async function metric(node: Node, name: string): Promise<number> {
  const { status, body } = await httpGet(`${node.adminUrl}/metrics`);
  if (status !== 200) throw new Error(`GET /metrics on ${node.nodeId}: ${status}`);
  let sum = 0;
  for (const line of body.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Sum of metric `name` over `nodes` (each summed over its label sets, as `metric` does). */
export async function metricSum(nodes: readonly Node[], name: string): Promise<number> {
  return (await Promise.all(nodes.map((n) => metric(n, name)))).reduce((a, b) => a + b, 0);
}

const routerIds = (cluster: Cluster) => cluster.routers.map((r) => r.nodeId!);

/** `perRouter` fresh room names for each router, by the owner rendezvous hashing prefers for their slot. */
export function roomsByOwner(cluster: Cluster, perRouter: number, base = 'room'): Map<string, string[]> {
  const ids = routerIds(cluster);
  const out = new Map(ids.map((id) => [id, [] as string[]]));
  // Every router must be preferred for enough slots, or no room name can ever land on it.
  for (const id of ids) {
    const slots = Array.from({ length: DEFAULT_SLOTS }, (_, s) => s).filter((s) => preferredOwner(s, ids) === id).length;
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

/** Resolves once every router holds exactly the slots rendezvous hashing gives it (start-up handovers are over). */
export async function waitBalanced(cluster: Cluster, timeoutMs = 15_000): Promise<void> {
  const ids = routerIds(cluster);
  const want = ids.map((id) => Array.from({ length: DEFAULT_SLOTS }, (_, s) => s).filter((s) => preferredOwner(s, ids) === id).length);
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
  const codes = await Promise.all(live.map((n) => httpGet(`${n.adminUrl}/readyz`, 1000).then((r) => r.status, () => 0)));
  return codes.every((c) => c === 200);
}

/**
 * A room's history as a client sees it: a fresh connection joins with `since: 0` and collects the replay.
 * Fails unless history is complete (recovered) — the fault tests stay below the history bound.
 */
export async function readHistory(cluster: Cluster, gateway: Node, room: string): Promise<{ head: number; epoch: string; frames: Frame[] }> {
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

/** Rooms on both routers, members on both gateways joined to every room, publishers on both gateways. */
export interface Traffic {
  readonly rooms: string[];
  /** Rooms by the router (node id) that owns them. */
  readonly byOwner: Map<string, string[]>;
  readonly members: { name: string; client: TestClient }[];
  readonly publishers: { name: string; client: TestClient }[];
  readonly history: History;
}

export interface TrafficOptions {
  roomsPerRouter: number;
  membersPerGateway: number;
  publishersPerGateway: number;
}

/**
 * Picks rooms for every router, connects members (joined to every room before any pub, so each must
 * receive 1..N) and publishers (not members) round-robin over the gateways.
 */
export async function setupTraffic(cluster: Cluster, pool: ClientPool, o: TrafficOptions): Promise<Traffic> {
  const byOwner = roomsByOwner(cluster, o.roomsPerRouter);
  const rooms = [...byOwner.values()].flat();
  const gws = cluster.gateways;
  const connectOn = (gw: number) => connectClient(cluster, pool, gw);
  const members = await Promise.all(
    Array.from({ length: o.membersPerGateway * gws.length }, async (_, i) => ({ name: `m${i % gws.length}.${i}`, client: await connectOn(i % gws.length) })),
  );
  for (const { client } of members) {
    for (const room of rooms) {
      const j = await client.ok({ t: 'join', room });
      if (j.seq !== 0) throw new Error(`room ${room} is not new: ${JSON.stringify(j)}`);
    }
  }
  const publishers = await Promise.all(
    Array.from({ length: o.publishersPerGateway * gws.length }, async (_, i) => ({ name: `p${i}`, client: await connectOn(i % gws.length) })),
  );
  return { rooms, byOwner, members, publishers, history: new History() };
}

/**
 * Ends a run: one more ok'd pub per room (so every stream is flushed past all earlier seqs and any
 * gap is filled), waits until every member has it, then checks every member and the room's history:
 * gapless 1..head in order, every ok'd pub at its seq, nothing twice, and all copies agreeing.
 */
export async function closeAndCheck(cluster: Cluster, t: Traffic, deadlineMs = 15_000): Promise<string[]> {
  const { history, rooms, members } = t;
  const closer = t.publishers[0]!;
  for (const room of rooms) await history.pubUntilOk(closer.client, closer.name, room, 10_000, { tag: 'final' });
  try {
    await waitFor(
      () => members.every((m) => rooms.every((room) => lastSeq(m.client.frames, room) >= history.maxOkSeq(room))),
      deadlineMs,
      'every member to receive up to the last ok’d seq of every room',
    );
  } catch {
    // Fall through: the checks below say exactly what is missing.
  }
  const problems: string[] = [];
  for (const room of rooms) {
    const hist = await readHistory(cluster, cluster.gateways[cluster.gateways.length - 1]!, room);
    problems.push(...history.receiverProblems('history', hist.frames, { room, through: hist.head }));
    for (const m of members) problems.push(...history.receiverProblems(m.name, m.client.frames, { room, through: hist.head }));
    problems.push(
      ...history.agreementProblems(room, [{ who: 'history', frames: hist.frames }, ...members.map((m) => ({ who: m.name, frames: m.client.frames }))]),
    );
  }
  return problems;
}

/** How many pubs that were NOT answered ok ended up in history anyway (allowed, once): for reports. */
export function unansweredButStored(t: Traffic): number {
  const seen = new Set<string>();
  for (const m of t.members) {
    for (const f of m.client.frames) {
      const id = f.t === 'msg' ? History.idOf(f) : undefined;
      if (id !== undefined) seen.add(id);
    }
  }
  return t.history.pubs.filter((p) => p.outcome?.kind !== 'ok' && seen.has(p.mid)).length;
}
