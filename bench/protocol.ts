// IPC between the orchestrator (fanout.ts) and its load-generator workers (members.ts, driver.ts).
import type { LatencySummary } from './stats.js';

export type System = 'rtgw' | 'bare';

export interface Target {
  host: string;
  port: number;
  room: string;
  system: System;
}

export type MembersCmd =
  | { cmd: 'connect'; target: Target; count: number; first: number; concurrency: number }
  | { cmd: 'reset' }
  | { cmd: 'wait'; target: number; timeoutMs: number }
  | { cmd: 'quiet'; quietMs: number; maxMs: number }
  | { cmd: 'shutdown' };

export interface MemberCounts {
  members: number;
  open: number;
  /** Members that reached the target count (exactly or more). */
  reached: number;
  min: number;
  max: number;
  /** Members with more than the target: duplicates. */
  over: number;
  total: number;
  closeCodes: Record<string, number>;
}

export type MembersReply =
  | { cmd: 'connected'; ok: number; failed: number; retried: number; errors: string[]; ms: number }
  | { cmd: 'reset' }
  | { cmd: 'waited'; done: boolean; ms: number; counts: MemberCounts }
  | { cmd: 'quiet'; quiet: boolean; ms: number; arrived: number };

export interface StepPlan {
  step: number;
  /** Target publish rate, messages per second. */
  rate: number;
  count: number;
  /** How long after the last publish the probe may still wait for its messages. */
  graceMs: number;
}

export type DriverCmd = { cmd: 'connect'; target: Target; probeIndex: number } | ({ cmd: 'step' } & StepPlan) | { cmd: 'shutdown' };

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
  latencyMs: LatencySummary;
  /** rtgw answers every pub with `ok` (or `err`); bare uWS answers nothing. */
  oks: number;
  errs: number;
  errSample: string[];
  /** Largest publisher send buffer seen: the server not reading fast enough shows here. */
  maxPublisherBacklog: number;
  /** From the first publish until the probe had everything (or gave up). */
  probeDoneMs: number;
}

export type DriverReply = { cmd: 'connected'; retried: number } | { cmd: 'error'; msg: string } | ({ cmd: 'stepped' } & StepReport);
