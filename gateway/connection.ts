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
  /** Set once its pending direct messages were sent: from then on it gets the live ones. */
  dmLive?: boolean;
  /** Rooms joined or being joined, with whether `joined`/`left` events were asked for. */
  readonly rooms: Map<string, { presence: boolean }>;
  readonly bucket: TokenBucket;
  readonly strikes: Strikes;
  expiry?: NodeJS.Timeout;
}

/**
 * uWS user data. The upgrade is completed at once and the token verified after `open` (see server.ts):
 * until then `token` is set and early frames wait in `early`; afterwards `conn` is set.
 */
export type ConnData = { token?: string; early?: { text: string; binary: boolean }[]; closed?: boolean; conn?: Conn };

let counter = 0;
/** Globally unique: node id plus a per-process counter. */
export const newConnId = (node: string): string => `${node}~${(++counter).toString(36)}`;
