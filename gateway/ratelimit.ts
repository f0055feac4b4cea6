// Per-connection limits: a token bucket for frames, and a strike counter for abuse.

/** Allows `perSec` frames a second on average with bursts of twice that. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perSec: number,
    private readonly burst = perSec * 2,
  ) {
    this.tokens = burst;
    this.last = performance.now();
  }
  /** Takes `cost` tokens, or none when fewer are left. */
  take(cost = 1): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSec) / 1000);
    this.last = now;
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }
}

/** True once more than `max` strikes fall within `windowMs` (a sliding window over the last max+1). */
export class Strikes {
  private readonly times: number[] = [];
  constructor(
    private readonly max = 10,
    private readonly windowMs = 10_000,
  ) {}
  hit(now = performance.now()): boolean {
    this.times.push(now);
    if (this.times.length > this.max + 1) this.times.shift();
    return this.times.length > this.max && now - this.times[0]! <= this.windowMs;
  }
}
