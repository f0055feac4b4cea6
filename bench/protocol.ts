// IPC between the orchestrator (bench.ts) and its load-generator workers (members.ts, driver.ts).
import type { Target } from './conn.js';
import type { LatencySummary } from './stats.js';

/** A room a members process fills: `members` connections join it; with `publish`, they also publish to it (echo on). */
export interface RoomPlan {
  room: string;
  members: number;
  publish: boolean;
}

export interface Failures {
  failed: number;
  retried: number;
  errors: string[];
}

export type MembersCmd =
  | {
      cmd: 'connect';
      target: Target;
      rooms: RoomPlan[];
      /** User ids are m<firstUser>, m<firstUser + 1>...; connection j goes to endpoint (firstUser + j) mod endpoints. */
      firstUser: number;
      concurrency: number;
      /** At most this many publishing rooms get one member that decodes what it receives, for latency. */
      samplers: number;
    }
  | { cmd: 'reset' }
  | {
      cmd: 'wait';
      /** What a member of a room this process does not publish to must receive (the driver's count). */
      base: number;
      /** Publish `count` messages at `rate` msg/s over this process's publishing members, round-robin, first. */
      publish?: { step: number; rate: number; count: number };
      timeoutMs: number;
    }
  | { cmd: 'quiet'; quietMs: number; maxMs: number }
  /** Router ingest: starts the publishers, answers `ingesting` after the warm-up; `ingest-stop` ends it and reports from the warm-up's end. */
  | {
      cmd: 'ingest';
      target: Target;
      publishers: number;
      rooms: number;
      window: number;
      warmupMs: number;
      firstUser: number;
    }
  | { cmd: 'ingest-stop' }
  | { cmd: 'storm'; target: Target; count: number; concurrency: number; firstUser: number }
  | { cmd: 'reconnect'; expected: number; timeoutMs: number }
  | { cmd: 'drop' }
  | { cmd: 'shutdown' };

export interface MemberCounts {
  members: number;
  open: number;
  /** Members that reached their target count (exactly or more). */
  reached: number;
  /** Lowest and highest count relative to each member's target (0 = exactly its target). */
  minShort: number;
  maxOver: number;
  /** Members with more than their target: duplicates. */
  over: number;
  total: number;
  /** Sum of the members' targets: the deliveries the step should have made in this process. */
  expected: number;
  closeCodes: Record<string, number>;
}

/** What the members' own publishers did in a step (chat). */
export interface PublishReport {
  sent: number;
  sendMs: number;
  achievedRate: number;
  oks: number;
  errs: number;
  errSample: string[];
  /** Publish-to-receive latency samples (ms) of the sampling members, on this process's clock. */
  samples: number[];
}

export interface StormReport {
  ok: number;
  failed: number;
  ms: number;
  /** Upgrade to ready, per connection. */
  latencyMs: LatencySummary;
  errors: string[];
}

export interface ReconnectReport {
  closed: number;
  reconnected: number;
  /** Attempts that failed and were tried again (on the next endpoint). */
  failedAttempts: number;
  /** From the first close to the last reconnect. */
  ms: number;
  closeCodes: Record<string, number>;
  /** Close to ready again, per connection. */
  gapMs: LatencySummary;
  errors: string[];
}

export interface IngestReport {
  sent: number;
  acked: number;
  errs: number;
  errSample: string[];
  ms: number;
  /** Mean publish-to-answer time, from Little's law (publishers x window in flight / answer rate). */
  meanAckMs: number;
  closed: number;
}

export type MembersReply =
  | ({ cmd: 'connected'; ok: number; ms: number } & Failures)
  | { cmd: 'reset' }
  | { cmd: 'waited'; done: boolean; ms: number; counts: MemberCounts; publish?: PublishReport }
  | { cmd: 'quiet'; quiet: boolean; ms: number; arrived: number }
  | { cmd: 'ingesting' }
  | ({ cmd: 'ingested' } & IngestReport)
  | ({ cmd: 'stormed' } & StormReport)
  | ({ cmd: 'reconnected' } & ReconnectReport)
  | { cmd: 'dropped' }
  | { cmd: 'error'; msg: string };

export interface StepPlan {
  step: number;
  /** Target publish rate, messages per second. */
  rate: number;
  count: number;
  /** How long after the last publish the probe may still wait for its messages. */
  graceMs: number;
}

export type DriverCmd =
  | { cmd: 'connect'; target: Target; room: string; probeUser: number }
  | ({ cmd: 'step' } & StepPlan)
  | { cmd: 'shutdown' };

export interface StepReport {
  sent: number;
  /** From the first publish to the last. */
  sendMs: number;
  achievedRate: number;
  /** Probe: messages of this step received, in order, without duplicates. */
  probeReceived: number;
  probeInOrder: boolean;
  /** Messages of earlier steps that arrived during this one. */
  stale: number;
  /** Publish-to-receive latency samples, ms, in arrival order (the orchestrator summarizes them). */
  samples: number[];
  /** rtgw and Socket.IO answer every pub; bare uWS answers nothing. */
  oks: number;
  errs: number;
  errSample: string[];
  /** Largest publisher send buffer seen: the server not reading fast enough shows here. */
  maxPublisherBacklog: number;
  /** From the first publish until the probe had everything (or gave up). */
  probeDoneMs: number;
}

export type DriverReply =
  { cmd: 'connected'; retried: number } | { cmd: 'error'; msg: string } | ({ cmd: 'stepped' } & StepReport);
