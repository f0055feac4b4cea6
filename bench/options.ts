// Command-line options of `npm run bench`, with the quick and full presets. bench/README.md lists them.
import { cpus } from 'node:os';
import { CLIENT_KINDS, CLIENT_WIRES, type ClientKind } from './conn.js';
import { SYSTEM_KINDS, SYSTEMS, type SystemKind } from './systems.js';

export const SCENARIOS = ['fanout', 'fanout-big', 'chat', 'storm', 'ingest', 'record'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Which systems each scenario measures unless --systems says otherwise. */
const DEFAULT_SYSTEMS: Record<'quick' | 'full', Record<Scenario, SystemKind[]>> = {
  full: {
    fanout: ['rtgw', 'rtgw2', 'standalone', 'socketio', 'bare', 'bare-nats'],
    'fanout-big': ['rtgw', 'standalone', 'socketio', 'bare', 'bare-nats'],
    chat: ['rtgw', 'rtgw2', 'standalone', 'socketio', 'bare', 'bare-nats'],
    storm: ['rtgw', 'rtgw2', 'standalone', 'socketio', 'bare'],
    ingest: ['rtgw', 'rtgw2'],
    record: ['rtgw', 'socketio'],
  },
  quick: {
    fanout: ['rtgw', 'socketio', 'bare', 'bare-nats'],
    'fanout-big': ['rtgw', 'socketio', 'bare', 'bare-nats'],
    chat: ['rtgw', 'rtgw2', 'socketio', 'bare'],
    storm: ['rtgw', 'rtgw2', 'standalone', 'socketio', 'bare'],
    ingest: ['rtgw', 'rtgw2'],
    record: ['rtgw', 'socketio'],
  },
};

export interface Options {
  preset: 'quick' | 'full';
  scenarios: Scenario[];
  /** Restricts every scenario to these systems (each keeps its own default order otherwise). */
  systems?: SystemKind[];
  /** Interleaved runs per system of the one-room fan-out at `members`, and of every other rate scenario. */
  runs: number;
  runsBig: number;
  members: number;
  bigMembers: number;
  chatMembers: number;
  roomSize: number;
  stormConnections: number;
  stormConcurrency: number;
  ingestPublishers: number;
  ingestWindow: number;
  ingestRooms: number;
  ingestMs: number;
  /** The clients of the record runs (a one-room fan-out at `members` with a real client library, one run each); `lean` everywhere else. */
  recordClients: ClientKind[];
  stepMs: number;
  halfMs: number;
  graceMs: number;
  maxSteps: number;
  /** The search stops once the first failing rate is within this factor of the last passing one. */
  resolution: number;
  /** Factor between search steps until the first failure. */
  growth: number;
  p99MaxMs: number;
  /** The p99 bound of `fanout-big`: the probe is the last of its room's sockets uWS writes, so latency grows with the room. */
  p99MaxMsBig: number;
  /** First rate of each system's first run, deliveries per second: one-room fan-outs, and the chat (lower: an overload of many rooms takes long to drain). */
  startDeliveries: number;
  chatStartDeliveries: number;
  /** How often a step disturbed by other processes is repeated before it counts anyway (marked ⚠). */
  disturbedRepeats: number;
  /** The equal-load step of the one-room fan-out at `members`: the same rate for every system, deliveries/s (0: none). */
  refDeliveries: number;
  memberProcs: number;
  profile: boolean;
  /** Servers on CPU 0, load generator on the other CPUs (the default with 2 or more CPUs). */
  pin: boolean;
  barePublish: 'deferred' | 'inline';
  /** A step during which other processes used more than this share of the machine is repeated, after waiting up to idleWaitSec for a quieter second. */
  busyMax: number;
  idleWaitSec: number;
}

function list<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] {
  const out = (v ?? '').split(',').filter(Boolean);
  for (const s of out)
    if (!(allowed as readonly string[]).includes(s))
      throw new Error(`${name} takes ${allowed.join(', ')} (comma-separated); not ${s}`);
  if (out.length === 0) throw new Error(`${name} needs a value`);
  return out as T[];
}

export function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    preset: quick ? 'quick' : 'full',
    scenarios: [...SCENARIOS],
    runs: quick ? 2 : 3,
    runsBig: quick ? 1 : 2,
    members: 1000,
    bigMembers: 10_000,
    chatMembers: 10_000,
    roomSize: 10,
    stormConnections: 10_000,
    stormConcurrency: 200,
    ingestPublishers: 200,
    ingestWindow: 8,
    ingestRooms: 1000,
    ingestMs: quick ? 4000 : 10_000,
    recordClients: ['socket.io-client', 'rtgw-sdk'],
    stepMs: quick ? 1000 : 5000,
    halfMs: quick ? 2000 : 10_000,
    graceMs: quick ? 1000 : 2000,
    maxSteps: quick ? 5 : 12,
    resolution: quick ? 1.35 : 1.1,
    growth: quick ? 3 : 2,
    p99MaxMs: 100,
    p99MaxMsBig: 500,
    startDeliveries: 200_000,
    chatStartDeliveries: 50_000,
    disturbedRepeats: quick ? 0 : 2,
    refDeliveries: 200_000,
    memberProcs: 1,
    profile: false,
    pin: cpus().length >= 2,
    barePublish: 'deferred',
    busyMax: 0.25,
    idleWaitSec: quick ? 3 : 60,
  };
  const num = (name: string, v: string | undefined, min: number, max: number) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min || n > max)
      throw new Error(`${name} must be a number from ${min} to ${max}`);
    return n;
  };
  const numeric: Partial<Record<string, [keyof Options, number, number]>> = {
    '--runs': ['runs', 1, 20],
    '--runs-big': ['runsBig', 1, 20],
    '--members': ['members', 2, 20_000],
    '--big-members': ['bigMembers', 2, 18_000],
    '--chat-members': ['chatMembers', 4, 18_000],
    '--room-size': ['roomSize', 2, 1000],
    '--storm-connections': ['stormConnections', 1, 18_000],
    '--storm-concurrency': ['stormConcurrency', 1, 5000],
    '--ingest-publishers': ['ingestPublishers', 1, 5000],
    '--ingest-window': ['ingestWindow', 1, 1000],
    '--ingest-rooms': ['ingestRooms', 1, 1_000_000],
    '--ingest-ms': ['ingestMs', 500, 120_000],
    '--step-ms': ['stepMs', 200, 60_000],
    '--half-ms': ['halfMs', 200, 120_000],
    '--grace-ms': ['graceMs', 100, 30_000],
    '--max-steps': ['maxSteps', 1, 30],
    '--resolution': ['resolution', 1.01, 4],
    '--growth': ['growth', 1.1, 10],
    '--p99-max-ms': ['p99MaxMs', 1, 10_000],
    '--p99-max-ms-big': ['p99MaxMsBig', 1, 10_000],
    '--start-deliveries': ['startDeliveries', 100, 100_000_000],
    '--chat-start-deliveries': ['chatStartDeliveries', 100, 100_000_000],
    '--disturbed-repeats': ['disturbedRepeats', 0, 5],
    '--ref-deliveries': ['refDeliveries', 0, 100_000_000],
    '--member-procs': ['memberProcs', 1, 8],
    '--busy-max': ['busyMax', 0, 1],
    '--idle-wait-sec': ['idleWaitSec', 0, 600],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const n = numeric[a];
    if (n) {
      (o as unknown as Record<string, number>)[n[0]] = num(a, v, n[1], n[2]);
      i++;
      continue;
    }
    switch (a) {
      case '--quick':
        continue;
      case '--profile':
        o.profile = true;
        continue;
      case '--no-pin':
        o.pin = false;
        continue;
      case '--scenarios':
        o.scenarios = list(a, v, SCENARIOS);
        break;
      case '--systems':
        o.systems = list(a, v, SYSTEM_KINDS);
        break;
      case '--record-client':
        o.recordClients = list(a, v, CLIENT_KINDS);
        break;
      case '--bare-publish':
        if (v !== 'deferred' && v !== 'inline') throw new Error('--bare-publish takes deferred or inline');
        o.barePublish = v;
        break;
      default:
        throw new Error(`unknown argument ${a}; see bench/README.md`);
    }
    i++;
  }
  if (o.chatMembers % o.roomSize !== 0) throw new Error('--chat-members must be a multiple of --room-size');
  return o;
}

/** The systems a scenario measures under these options (the record run: those `client` speaks to). */
export function systemsFor(o: Options, s: Scenario, client: ClientKind = 'lean'): SystemKind[] {
  const fits = (k: SystemKind) =>
    // The record run only against what its client speaks; router ingest only against rtgw.
    s === 'record'
      ? CLIENT_WIRES[client].includes(SYSTEMS[k].wire)
      : s === 'ingest'
        ? SYSTEMS[k].wire === 'rtgw'
        : true;
  return (o.systems ?? DEFAULT_SYSTEMS[o.preset][s]).filter(fits);
}
