// rtgw client SDK: `new RtgwClient({ url, getToken })`. See docs/client.md.
export { RtgwClient } from './client.js';
export type { ClientEvents, ClientOptions, ClientState, WebSocketConstructor } from './client.js';
export { Room } from './rooms.js';
export type {
  JoinOptions,
  PresenceChange,
  RoomEvents,
  RoomMessage,
  RoomState,
  Subscribed,
  Unrecovered,
} from './rooms.js';
export type { DirectHandler, DirectMessage } from './direct.js';
export { ClientErrorCode, RtgwClientError } from './errors.js';
export { fullJitter } from './backoff.js';
export { CloseCode, ErrorCode } from '../shared/protocol/codes.js';
