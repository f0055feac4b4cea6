// Bodies of the internal requests between gateways and routers (JSON on NATS).
// Replies are `{ seq }` / `{ count }` / ... or the error shape of protocol section 5.
import type { ErrorCode } from '../protocol/codes.js';

/** To the owner of a room's slot: sequence and fan out one message. */
export interface PubRequest {
  op: 'pub';
  room: string;
  from: string;
  /** `data` as JSON text, passed through untouched into the frame. */
  d: string;
  mid?: string;
  /** Whose mids these are: the publishing user, or the backend's `from`. */
  by: string;
  /** The sending connection, left out of the fan-out (absent when it asked for `echo`). */
  exclude?: string;
}

/** To the owner of the recipient's slot: store one direct message in the inbox and deliver it. */
export interface DmRequest {
  op: 'dm';
  to: string;
  from: string;
  d: string;
  mid?: string;
  by: string;
}

export type SlotRequest = PubRequest | DmRequest;

/** To one gateway node. */
export interface NodeRequest {
  op: 'disconnect';
  user: string;
  reason?: string;
}

/** `retry`: the request was not acted on and may be sent again as is (see MOVED_REPLY). */
export type ErrorReply = { error: { code: ErrorCode; msg: string; retry?: boolean } };

/**
 * The answer of a router that is handing a slot over: it has not acted on the request, and it still
 * holds the lease, so no other router can have acted on it either. Sending it again is safe.
 */
export const MOVED_REPLY = JSON.stringify({ error: { code: 'unavailable', msg: 'slot is moving to another router', retry: true } });
export type SeqReply = { seq: number };

export const isErrorReply = (v: unknown): v is ErrorReply =>
  typeof v === 'object' && v !== null && typeof (v as ErrorReply).error?.code === 'string';
