// One client connection as the gateway sees it. The WebSocket is valid from open to close only.
import type { WebSocket } from 'uWebSockets.js';
import type { CloseCode } from '../shared/protocol/codes.js';
import type { RoomId } from '../shared/protocol/names.js';
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
  dmLive: boolean;
  /**
   * Rooms joined or being joined, with whether `joined`/`left` events were asked for, and whether a refresh
   * took the connection out of the room while its join was under way (made at the first join).
   */
  rooms: Map<RoomId, { presence: boolean; removed: boolean }> | undefined;
  /** Frames, and bytes of frames, it may still send (RTGW_RATE_LIMIT, RTGW_RATE_LIMIT_BYTES). */
  readonly bucket: TokenBucket;
  readonly byteBucket: TokenBucket;
  /** Made at the first bad or rate-limited frame. */
  strikes: Strikes | undefined;
  /** The expiry bucket it waits in (expiry.ts), 0 when none. */
  expirySecond: number;
}

/**
 * uWS user data. The upgrade is completed at once and the token verified after `open` (see server.ts):
 * until then `token` is set and early frames wait in `early`; afterwards `conn` is set. Every field is
 * there from the start (undefined when unused), never deleted: an object whose shape changes late costs
 * a property array or falls into dictionary mode, a few hundred bytes per idle connection.
 */
export type ConnData = {
  token: string | undefined;
  early: { text: string; binary: boolean }[] | undefined;
  closed: boolean;
  /** The close code the gateway ended the socket with (endSocket), 0 while it has not. */
  endCode: number;
  conn: Conn | undefined;
};

/**
 * Ends a socket with a close code the gateway chose. The close handler counts a closed connection under
 * this code; a socket the client closed counts as `other` (a client must not choose label values).
 */
export function endSocket(ws: WebSocket<ConnData>, code: CloseCode, reason: string): void {
  ws.getUserData().endCode = code;
  ws.end(code, reason);
}

let counter = 0;
/** Globally unique: node id plus a per-process counter. */
export const newConnId = (node: string): string => `${node}~${(++counter).toString(36)}`;
