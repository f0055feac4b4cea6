// Reconnect delays: exponential backoff with full jitter (a uniformly random delay up to the capped
// exponential), so clients that lost the same gateway at the same instant come back spread out.

export interface BackoffOptions {
  /** Upper bound of the first delay, ms. */
  baseMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
}

/** The delay before attempt `attempt` (0 for the first retry). `random` returns [0, 1). */
export function fullJitter(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
