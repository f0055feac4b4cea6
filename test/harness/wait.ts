// Waits for a condition instead of for time: tests poll what they expect, never sleep a fixed amount.

const POLL_MS = 20;

/**
 * Resolves once `cond` returns true; throws an Error naming `what` after `timeoutMs`. A `cond` that throws
 * counts as "not yet" (a server still starting refuses connections), and its last error becomes the cause.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`, lastError === undefined ? undefined : { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
