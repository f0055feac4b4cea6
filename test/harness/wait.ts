// Waits for a condition instead of for time: tests poll what they expect. A fixed wait (sleep) is only for
// what must NOT happen over a window (no redelivery, no disconnect), or to act at a chosen moment of
// running traffic.

const POLL_MS = 20;

/**
 * Resolves once `cond` returns true; throws an Error naming `what` after `timeoutMs`. A `cond` that throws
 * counts as "not yet" (a server still starting refuses connections), and its last error becomes the cause.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Lets `ms` pass. Not for waiting on something expected to happen: that is waitFor (see the header). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
