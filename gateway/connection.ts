// One client connection as the gateway sees it. The WebSocket is valid from open to close only.
import type { WebSocket } from 'uWebSockets.js';
import type { Claims } from './auth.js';
import { Strikes, TokenBucket } from './ratelimit.js';

export interface Conn {
  readonly id: string;
  readonly user: string;
  claims: Claims;
  ws: WebSocket<ConnData>;
  /** False from the close event on: late async work must not touch `ws`. */
  open: boolean;
  /** Rooms joined or being joined, with whether `joined`/`left` events were asked for. */
  readonly rooms: Map<string, { presence: boolean }>;
  readonly bucket: TokenBucket;
  readonly strikes: Strikes;
  expiry?: NodeJS.Timeout;
}

/** uWS user data, set at upgrade: verified claims, or why the (completed) upgrade is closed at once. */
export type ConnData = { claims?: Claims; reject?: { code: number; reason: string }; conn?: Conn };

let counter = 0;
/** Globally unique: node id plus a per-process counter. */
export const newConnId = (node: string): string => `${node}~${(++counter).toString(36)}`;
