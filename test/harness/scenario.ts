// The one scenario builder of the fault tests (test/faults/): each file there declares a cluster, its
// traffic and a fault, and this module does the rest.
//
//   const sc = useScenario({ gateways: 2, routers: 2, env: FAST_ENV });
//   it('...', async () => {
//     const w = await sc.build({ roomsPerRouter: 2, membersPerGateway: 1, recipients: 4, publishersPerGateway: 1, dmSendersPerGateway: 1 });
//     await w.drive({ durationMs: 6000, everyMs: 20, ... }, { atMs: 1500, strike: () => w.cluster.nats.restart() });
//     await w.verify({ reliable: true, settleMs: 12_000, report: (r) => ['nats-restart:', { ... }] });
//   });
//
// `build` starts nothing: the cluster is the file's (`useScenario` registers it, balanced before the
// first test); it picks rooms by owning router, connects members (joined to every room before anything
// is sent, watched by the history), recipients (watched, acking) and publishers / dm senders on the
// gateways round-robin, each connection proven usable. `drive` runs the traffic loops with the history
// recorder, strikes the fault at its moment (the file's own code: kill, pause, restart, plus whatever it
// checks during the outage) and waits for the loops to settle. `verify` runs the standard oracles:
// answers (every request answered once, errors only `unavailable`, no seq given to two messages; with
// `reliable`, every message ok'd in the end), one closing pub per room, each member's copy and the room's
// history as a fresh client reads it (gapless, every ok'd pub at its seq, once, in order, all copies
// agreeing), and the history checker (lost / unexpected / repeated / duplicated / inverted / conflicting,
// every ok'd dm acknowledged), after the file's report (its console.info figures) is printed.
import { expect } from 'vitest';
import type { TestClient } from './client.js';
import { uid, type Cluster } from './cluster.js';
import { History, type CheckResult, type Sender, type WatchOptions } from './history.js';
import { lastSeq, readHistory, roomsByOwner, waitBalanced } from './nodes.js';
import { useCluster, type ClusterSuite, type UseClusterOptions } from './suite.js';
import { waitFor } from './wait.js';

// ---------------------------------------------------------------------------------------------------
// The fast timing knobs: short leases, presence TTL, dm ack timeout and backoff, so that faults and
// retries play out within seconds. Scenarios derive their bounds from these.

export const LEASE_MS = 1500;
export const PRESENCE_TTL_MS = 3000;
export const ACK_TIMEOUT_MS = 300;
export const MAX_BACKOFF_MS = 1000;
export const MAX_ATTEMPTS = 4;
export const REQUEST_TIMEOUT_MS = 3000;

export const FAST_ENV = {
  RTGW_LEASE_MS: String(LEASE_MS),
  RTGW_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
  RTGW_DM_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
  RTGW_DM_MAX_BACKOFF_MS: String(MAX_BACKOFF_MS),
  RTGW_DM_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  RTGW_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
};

// ---------------------------------------------------------------------------------------------------
// The cluster

export interface ScenarioSuite extends ClusterSuite {
  /** Builds the traffic of one run on the running cluster (or on `cluster`, e.g. with only the live routers). */
  build(spec: TrafficSpec, cluster?: Cluster): Promise<World>;
}

/**
 * Registers a scenario's cluster (call it at module level, or once per `describe`): connections proven
 * usable with a ping, and (unless `ready` is given) slot ownership settled before the first test.
 */
export function useScenario(opts: UseClusterOptions): ScenarioSuite {
  const suite = useCluster({ pingOnConnect: true, logLines: 80, ready: (c) => waitBalanced(c), ...opts });
  // Adds to the handle itself: its getters must not be read before beforeAll.
  return Object.assign(suite, {
    build: (spec: TrafficSpec, cluster?: Cluster) => buildWorld(suite, spec, cluster ?? suite.cluster),
  });
}

// ---------------------------------------------------------------------------------------------------
// The traffic

export interface TrafficSpec {
  /** Fresh rooms per router, each on a slot of its own that router is preferred for. Default 0. */
  roomsPerRouter?: number;
  /** Prefix of the room names. */
  roomBase?: string;
  /** Members per gateway, each joined to every room (new: seq 0) before anything is sent, watched. */
  membersPerGateway?: number;
  /** Recipients: a count of fresh user ids, or the ids; connected round-robin over the gateways, watched. */
  recipients?: number | readonly string[];
  /** How a recipient acknowledges (default: every dm, at once). */
  recipientWatch?: (user: string) => WatchOptions;
  /** Publishers per gateway (`p<i>`, round-robin over the gateways). */
  publishersPerGateway?: number;
  /** The publishers join every room too (not watched: they are members without echo). */
  publishersJoin?: boolean;
  /** Dm senders per gateway (`d<i>`), sending round-robin to the recipients. */
  dmSendersPerGateway?: number;
  /** More dm targets than the connected recipients (e.g. one offline for the whole run). */
  extraDmTargets?: readonly string[];
  /**
   * The gateways (indexes) each kind of client is placed on, round-robin (default: all of them); the
   * per-gateway counts are per listed gateway. E.g. recipients on the gateway that will die, senders elsewhere.
   */
  on?: {
    members?: readonly number[];
    recipients?: readonly number[];
    publishers?: readonly number[];
    dmSenders?: readonly number[];
  };
}

export interface Loop {
  durationMs: number;
  /** Pause between two sends of one sender. */
  everyMs: number;
  maxInFlight: number;
  answerTimeoutMs: number;
  /**
   * Reliable senders (an error or no answer is sent again with the same mid) until this long after the
   * loop. Without it every message is sent once, and pubs go through the publish loop (`noMid` possible).
   */
  resendForMs?: number;
  resendAfterMs?: number;
  /** Pubs without `mid` (only without `resendForMs`): dedup cannot hide a request acted on twice. */
  noMid?: boolean;
}

/** The fault: `strike` runs `atMs` after the traffic started (the loops keep running); what it returns, `drive` returns. */
export interface Fault<T> {
  atMs: number;
  strike: () => Promise<T>;
}

export interface Verify {
  /** Senders resend until ok: every message must end up ok'd. */
  reliable?: boolean;
  /** Check the answers (default true); false when the file judges them itself (e.g. requests lost with their gateway). */
  answers?: boolean;
  /** The members whose copies the room oracle reads (default all; the checker judges every member anyway). */
  roomMembers?: readonly Sender[];
  /** How long the checker may wait for every ok'd message to be delivered and acknowledged. Default 12 s. */
  settleMs?: number;
  /** Deadline for the members to reach each room's last ok'd seq. Default 15 s. */
  deliverMs?: number;
  /** Problems the file found on its own (e.g. a member that left), checked with the rest. */
  extraProblems?: readonly string[];
  /** Problems explained in full when the checker finds any. Default 4. */
  explain?: number;
  /** Printed when the checker finds problems, before they are explained. */
  onProblems?: () => void;
  /** The file's figures: printed with console.info before the oracles are asserted. */
  report?: (result: CheckResult) => Promise<[string, unknown]> | [string, unknown];
}

export interface World {
  readonly cluster: Cluster;
  readonly history: History;
  readonly rooms: string[];
  /** Rooms by the router (node id) preferred for them. */
  readonly byOwner: Map<string, string[]>;
  /** Each room's epoch, as the members' joins answered it. */
  readonly epochs: Map<string, string>;
  readonly members: Sender[];
  readonly recipients: string[];
  /** The recipients' connections, by user id. */
  readonly recipientClients: Map<string, TestClient>;
  readonly publishers: Sender[];
  readonly dmSenders: Sender[];
  /** Publishers and dm senders. */
  readonly senders: Sender[];
  /** When the last `drive` started and ended its loops. */
  startedAt: number;
  endedAt: number;
  drive<T>(loop: Loop, fault?: Fault<T>): Promise<T | undefined>;
  /** Every request answered once, errors only `unavailable`; with `reliable`, every message ok'd in the end. */
  answerProblems(reliable?: boolean): string[];
  /** The standard oracles, the report in between; resolves the checker's result. */
  verify(v?: Verify): Promise<CheckResult>;
  /** How many pubs NOT answered ok reached the members anyway (allowed, once): for reports. */
  unansweredButStored(): number;
}

async function buildWorld(suite: ClusterSuite, spec: TrafficSpec, cluster: Cluster): Promise<World> {
  const history = new History();
  const byOwner = spec.roomsPerRouter
    ? roomsByOwner(cluster, spec.roomsPerRouter, spec.roomBase)
    : new Map<string, string[]>();
  const rooms = [...byOwner.values()].flat();
  const all = cluster.gateways.map((_, i) => i);
  const place = (kind: keyof NonNullable<TrafficSpec['on']>, perGateway = 0) => {
    const gws = spec.on?.[kind] ?? all;
    return Array.from({ length: perGateway * gws.length }, (_, i) => gws[i % gws.length]!);
  };
  const on = (gw: number, user?: string) => suite.client(gw, user);

  const members: Sender[] = [];
  const epochs = new Map<string, string>();
  for (const [i, gw] of place('members', spec.membersPerGateway).entries()) {
    const m = { name: `m${gw}.${i}`, client: await on(gw) };
    history.watch(m.client, m.name);
    for (const room of rooms) {
      const j = await history.join(m.client, m.name, room);
      if (j.seq !== 0) throw new Error(`room ${room} is not new: ${JSON.stringify(j)}`);
      epochs.set(room, j.epoch as string);
    }
    members.push(m);
  }
  const recipients =
    typeof spec.recipients === 'number'
      ? Array.from({ length: spec.recipients }, () => uid('rcpt'))
      : [...(spec.recipients ?? [])];
  const recipientClients = new Map<string, TestClient>();
  const recipientGws = spec.on?.recipients ?? all;
  for (const [i, user] of recipients.entries()) {
    const c = await on(recipientGws[i % recipientGws.length]!, user);
    history.watch(c, user, spec.recipientWatch?.(user) ?? {});
    recipientClients.set(user, c);
  }
  const publishers: Sender[] = [];
  for (const [i, gw] of place('publishers', spec.publishersPerGateway).entries())
    publishers.push({ name: `p${i}`, client: await on(gw) });
  if (spec.publishersJoin)
    for (const { client } of publishers) for (const room of rooms) await client.ok({ t: 'join', room });
  const dmSenders: Sender[] = [];
  for (const [i, gw] of place('dmSenders', spec.dmSendersPerGateway).entries())
    dmSenders.push({ name: `d${i}`, client: await on(gw) });
  const dmTargets = [...recipients, ...(spec.extraDmTargets ?? [])];

  const w: World = {
    cluster,
    history,
    rooms,
    byOwner,
    epochs,
    members,
    recipients,
    recipientClients,
    publishers,
    dmSenders,
    senders: [...publishers, ...dmSenders],
    startedAt: 0,
    endedAt: 0,

    async drive<T>(loop: Loop, fault?: Fault<T>): Promise<T | undefined> {
      const { durationMs, everyMs, maxInFlight, answerTimeoutMs, resendForMs, resendAfterMs, noMid } = loop;
      const sendLoop = { durationMs, everyMs, maxInFlight, answerTimeoutMs, resendForMs, resendAfterMs };
      w.startedAt = Date.now();
      const traffic = Promise.all([
        publishers.length === 0 || rooms.length === 0
          ? undefined
          : resendForMs === undefined
            ? history.publishFor({ publishers, rooms, durationMs, everyMs, maxInFlight, answerTimeoutMs, noMid })
            : history.sendFor({ ...sendLoop, op: 'pub', senders: publishers, targets: rooms }),
        dmSenders.length === 0 || dmTargets.length === 0
          ? undefined
          : history.sendFor({ ...sendLoop, op: 'dm', senders: dmSenders, targets: dmTargets }),
      ]);
      let struck: T | undefined;
      if (fault !== undefined) {
        await waitFor(() => Date.now() - w.startedAt >= fault.atMs, fault.atMs + 1000, 'the moment of the fault');
        struck = await fault.strike();
      }
      await traffic;
      w.endedAt = Date.now();
      return struck;
    },

    answerProblems(reliable = false): string[] {
      const out = history.answerProblems(
        ['unavailable'],
        w.senders.map((s) => s.client),
      );
      if (reliable) {
        const okd = new Set(history.sends.filter((x) => x.outcome?.kind === 'ok').map((x) => x.mid));
        out.push(
          ...history.sends
            .filter((x) => !okd.has(x.mid))
            .map((x) => `never ok'd: ${x.mid}: ${JSON.stringify(x.outcome)}`),
        );
      }
      return out;
    },

    async verify(v: Verify = {}): Promise<CheckResult> {
      const answers = v.answers === false ? [] : w.answerProblems(v.reliable);
      const roomCopies = await roomProblems(
        cluster,
        history,
        rooms,
        v.roomMembers ?? members,
        publishers[0],
        v.deliverMs,
      );
      const result = await history.settle(v.settleMs ?? 12_000);
      if (result.problems.length > 0) {
        v.onProblems?.();
        history.logProblems(result, v.explain ?? 4);
      }
      if (v.report !== undefined) console.info(...(await v.report(result)));
      expect(answers, 'answers').toEqual([]);
      expect([...(v.extraProblems ?? []), ...roomCopies], 'members and history').toEqual([]);
      expect(result.lines(), 'history checker').toEqual([]);
      return result;
    },

    unansweredButStored(): number {
      const seen = new Set<string>();
      for (const m of members) {
        for (const f of m.client.frames) {
          const id = f.t === 'msg' ? History.idOf(f) : undefined;
          if (id !== undefined) seen.add(id);
        }
      }
      return history.pubs.filter((p) => p.outcome?.kind !== 'ok' && seen.has(p.mid)).length;
    },
  };
  return w;
}

/**
 * The room oracle: one more ok'd pub per room from `closer` (so every stream is flushed past all earlier
 * seqs and any gap is filled), a wait until every member has it, then every member's copy and the room's
 * history as a fresh client reads it: gapless 1..head in order, every ok'd pub at its seq, nothing twice,
 * and all copies agreeing.
 */
export async function roomProblems(
  cluster: Cluster,
  history: History,
  rooms: readonly string[],
  members: readonly Sender[],
  closer: Sender | undefined,
  deliverMs = 15_000,
): Promise<string[]> {
  if (rooms.length === 0) return [];
  if (closer === undefined) throw new Error('roomProblems: no publisher to close the rooms with');
  for (const room of rooms) await history.pubUntilOk(closer.client, closer.name, room, 10_000, { tag: 'final' });
  try {
    await waitFor(
      () => members.every((m) => rooms.every((room) => lastSeq(m.client.frames, room) >= history.maxOkSeq(room))),
      deliverMs,
      'every member to receive up to the last ok’d seq of every room',
    );
  } catch {
    // Fall through: the checks below say exactly what is missing.
  }
  const problems: string[] = [];
  const live = cluster.gateways.filter((g) => !g.hasExited);
  for (const room of rooms) {
    const hist = await readHistory(cluster, live[live.length - 1]!, room);
    problems.push(...history.receiverProblems('history', hist.frames, { room, through: hist.head }));
    for (const m of members)
      problems.push(...history.receiverProblems(m.name, m.client.frames, { room, through: hist.head }));
    problems.push(
      ...history.agreementProblems(room, [
        { who: 'history', frames: hist.frames },
        ...members.map((m) => ({ who: m.name, frames: m.client.frames })),
      ]),
    );
  }
  return problems;
}
