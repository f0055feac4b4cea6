// Small helpers every bench process shares (orchestrator, workers, self-check), defined once here.

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An error's message, for reports and IPC; a thrown non-Error as text. */
export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
