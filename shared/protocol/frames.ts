// Frames of the wire contract: a discriminated union on `t` for each direction.
import type { ErrorCode } from './codes.js';
import type { RoomId, UserId } from './names.js';

/** Any JSON value, as carried in `data`. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** JSON text exactly as a client sent it (one value: valid, nesting bounded), carried on without re-encoding. */
export type RawJson = string & { readonly __rawJson: unique symbol };

export type ClientFrame =
  | { t: 'join'; id: number; room: RoomId; since?: number; epoch?: string; presence?: boolean }
  | { t: 'leave'; id: number; room: RoomId }
  | { t: 'pub'; id: number; room: RoomId; data: RawJson; mid?: string; echo?: boolean }
  | { t: 'dm'; id: number; to: UserId; data: RawJson; mid?: string }
  | { t: 'ack'; seq: number }
  | { t: 'send'; id: number; route: string; data: RawJson }
  | { t: 'presence'; id: number; room: RoomId }
  | { t: 'refresh'; id: number; token: string }
  | { t: 'ping' };

export type ClientFrameType = ClientFrame['t'];
export type Request = Extract<ClientFrame, { id: number }>;

export interface MsgFrame {
  t: 'msg';
  room: RoomId;
  seq: number;
  from: string;
  data: Json;
  mid?: string;
  ts: number;
}

export interface DmFrame {
  t: 'dm';
  seq: number;
  from: string;
  data: Json;
  mid?: string;
  ts: number;
}

export type OkFrame = { t: 'ok'; id: number } & { [k: string]: Json | undefined };
export type ErrFrame = { t: 'err'; id?: number; code: ErrorCode; msg: string };
export type PresenceFrame = { t: 'joined' | 'left'; room: RoomId; user: UserId; conn: string };

export type ServerFrame =
  | { t: 'welcome'; v: number; conn: string; user: string; hb: number }
  | OkFrame
  | ErrFrame
  | MsgFrame
  | DmFrame
  | PresenceFrame
  | { t: 'drain'; ms: number }
  /** The room's history was lost and restarted: seqs after `seq` follow, in the new `epoch`. */
  | { t: 'epoch'; room: RoomId; epoch: string; seq: number }
  /** The connection is no longer in the room (a refresh narrowed its token's `rooms`): nothing more of it follows. */
  | { t: 'removed'; room: RoomId; reason: 'forbidden' }
  | { t: 'pong' };

export type ServerFrameType = ServerFrame['t'];

/** Frame types counted in metrics: a fixed set, so the label cannot take user-chosen values. */
export const CLIENT_FRAME_TYPES = ['join', 'leave', 'pub', 'dm', 'ack', 'send', 'presence', 'refresh', 'ping'] as const;
export const SERVER_FRAME_TYPES = [
  'welcome',
  'ok',
  'err',
  'msg',
  'dm',
  'joined',
  'left',
  'drain',
  'epoch',
  'removed',
  'pong',
] as const;
