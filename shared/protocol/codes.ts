// Error codes and close codes of the wire contract. The client SDK reads this file too, so it stays pure.

export const ErrorCode = {
  BadRequest: 'bad_request',
  Unauthorized: 'unauthorized',
  Forbidden: 'forbidden',
  TooLarge: 'too_large',
  RateLimited: 'rate_limited',
  Unavailable: 'unavailable',
  NoRoute: 'no_route',
  Timeout: 'timeout',
  Internal: 'internal',
  /** A configured limit was reached: retrying the same request at once will not help. */
  Limit: 'limit',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const errorCodes = new Set<string>(Object.values(ErrorCode));
export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && errorCodes.has(s);
}

export const CloseCode = {
  Normal: 1000,
  Drain: 1001,
  Policy: 1008,
  TooLarge: 1009,
  Unauthorized: 4001,
  SlowConsumer: 4009,
  TokenExpired: 4010,
  DisconnectedByBackend: 4011,
  /** Too many connections of this user on this gateway. */
  TooManyConnections: 4012,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which reconnecting with the same token cannot help. */
export const needsNewToken = (code: number): boolean =>
  code === CloseCode.Unauthorized || code === CloseCode.TokenExpired;

/** Close codes after which a client should not reconnect on its own. */
export const isTerminalClose = (code: number): boolean => code === CloseCode.DisconnectedByBackend;

export const PROTOCOL_VERSION = 1;
