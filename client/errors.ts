// Errors the SDK rejects with. `code` is a protocol error code (shared/protocol/codes.ts) when the server
// answered `err`, or one of the SDK's own codes when the answer never came.
import type { ErrorCode } from '../shared/protocol/codes.js';

export const ClientErrorCode = {
  /** The connection closed before the answer arrived and the request is not safe to send again. */
  Disconnected: 'disconnected',
  /** The client was closed (by the application, or for good by the server). */
  Closed: 'closed',
  /** No answer within the request's deadline (the outbox's, for publishes and direct messages). */
  Timeout: 'timeout',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class RtgwClientError extends Error {
  override name = 'RtgwClientError';
  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
