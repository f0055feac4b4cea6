// Bodies of the internal requests between gateways and routers, and the one codec of the slot-request
// seam. Replies are `{ seq }` / `{ count }` / ... or the error shape of protocol section 5.
import type { ErrorCode } from '../protocol/codes.js';
import { isRoomId, isUserId } from '../protocol/names.js';

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

const NL = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A slot request on the wire: one line of JSON with every field but `d`, then `d`, the message's data
 * as the JSON text the client sent. The data is never escaped into a string and parsed back: the router
 * hands it to the store as it came. (JSON.stringify writes no raw newline, so the first one ends the head.)
 */
export function encodeSlotRequest(req: SlotRequest): Uint8Array {
  const { d, ...head } = req;
  return encoder.encode(`${JSON.stringify(head)}\n${d}`);
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

/** The request, or undefined when it is not a well-formed slot request (never throws). */
export function decodeSlotRequest(data: Uint8Array): SlotRequest | undefined {
  const nl = data.indexOf(NL);
  if (nl < 0) return undefined;
  let head: Record<string, unknown>;
  try {
    head = JSON.parse(decoder.decode(data.subarray(0, nl))) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (
    typeof head !== 'object' ||
    head === null ||
    typeof head.from !== 'string' ||
    typeof head.by !== 'string' ||
    !optionalString(head.mid)
  )
    return undefined;
  const d = decoder.decode(data.subarray(nl + 1));
  if (head.op === 'pub' && isRoomId(head.room) && optionalString(head.exclude))
    return { ...(head as unknown as Omit<PubRequest, 'd'>), d };
  if (head.op === 'dm' && isUserId(head.to)) return { ...(head as unknown as Omit<DmRequest, 'd'>), d };
  return undefined;
}

/** To one gateway node (`<p>.node.<node>`), answered `{ count }`. */
export interface NodeRequest {
  op: 'disconnect';
  user: string;
  reason?: string;
}

export const encodeNodeRequest = (req: NodeRequest): string => JSON.stringify(req);

/** The request, or undefined when it is not a well-formed node request (never throws). */
export function decodeNodeRequest(data: Uint8Array): NodeRequest | undefined {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
  const o = v as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || o.op !== 'disconnect' || !isUserId(o.user) || !optionalString(o.reason))
    return undefined;
  return { op: 'disconnect', user: o.user, reason: o.reason as string | undefined };
}

/** A node's answer: how many connections it acted on (0 for anything else). */
export function decodeCount(data: Uint8Array): number {
  try {
    const count = (JSON.parse(decoder.decode(data)) as { count?: unknown } | null)?.count;
    return Number.isSafeInteger(count) ? (count as number) : 0;
  } catch {
    return 0;
  }
}

/** `retry`: the request was not acted on and may be sent again as is (see MOVED_REPLY). */
export type ErrorReply = { error: { code: ErrorCode; msg: string; retry?: boolean } };

/**
 * The answer of a router that is handing a slot over: it has not acted on the request, and it still
 * holds the lease, so no other router can have acted on it either. Sending it again is safe.
 */
export const MOVED_REPLY: ErrorReply = {
  error: { code: 'unavailable', msg: 'slot is moving to another router', retry: true },
};
export type SeqReply = { seq: number };

export const isErrorReply = (v: unknown): v is ErrorReply =>
  typeof v === 'object' && v !== null && typeof (v as ErrorReply).error?.code === 'string';

/** What the owner of a slot answers a slot request: its seq, or why not. */
export type SlotAnswer = SeqReply | ErrorReply;

export const encodeSlotAnswer = (a: SlotAnswer): string => ('seq' in a ? `{"seq":${a.seq}}` : JSON.stringify(a));

/** The answer, or undefined for text that is neither a seq nor an error reply (never throws). */
export function decodeSlotAnswer(text: string): SlotAnswer | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (isErrorReply(v)) return v;
  const seq = (v as { seq?: unknown } | null)?.seq;
  return Number.isSafeInteger(seq) ? { seq: seq as number } : undefined;
}
