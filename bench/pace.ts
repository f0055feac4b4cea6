// The publishers' clock: `count` messages at `rate` per second on a 1 ms timer, each tick sending what
// has come due since the last (so a late timer sends a burst rather than falling behind).

export interface Paced {
  sent: number;
  /** From the first send to the last. */
  sendMs: number;
  /** (sent - 1) / sendMs: the rate the publisher really kept. */
  achievedRate: number;
}

/** Calls `send(n)` with the n messages due now until `count` are sent; `afterTick` runs after every tick that sent. */
export async function pace(
  rate: number,
  count: number,
  send: (n: number) => void,
  afterTick?: () => void,
): Promise<Paced> {
  let sent = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      if (due > sent) {
        send(due - sent);
        sent = due;
        afterTick?.();
      }
      if (sent >= count) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const sendMs = performance.now() - t0;
  return { sent, sendMs, achievedRate: sent > 1 ? ((sent - 1) * 1000) / Math.max(sendMs, 1e-3) : 0 };
}
