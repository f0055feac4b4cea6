// Typed errors carrying a wire error code: the code, not the class, survives a trip over NATS.
import { ErrorCode } from './protocol/codes.js';

export class RtgwError extends Error {
  override name = 'RtgwError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A slot request reached a router that no longer owns the slot: the caller should retry. */
export class NotOwnerError extends RtgwError {
  override name = 'NotOwnerError';
  constructor(slot: number) {
    super(ErrorCode.Unavailable, `slot ${slot} is not owned by this router`);
  }
}

/**
 * A configured limit refused the request (a full inbox, a sender's share of one). The client caused it,
 * so it goes to the client as is (`limit`), and retrying at once will not help.
 */
export class LimitError extends RtgwError {
  override name = 'LimitError';
  constructor(message: string) {
    super(ErrorCode.Limit, message);
  }
}

/** The body of an error reply on NATS: `{"error":{"code","msg"}}` (protocol section 5). */
export const errorReply = (code: ErrorCode, msg: string) => ({ error: { code, msg } });

export const toRtgwError = (e: unknown): RtgwError =>
  e instanceof RtgwError ? e : new RtgwError(ErrorCode.Internal, 'internal error', { cause: e });
