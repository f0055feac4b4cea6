// The envelopes of messages for gateways on NATS: one header line, then the client frame as is, so a
// gateway reads a few header bytes and hands the frame bytes to its sockets without parsing or
// re-encoding it. Room streams (`<p>.room.<room>`):
//   m <seq> <ts> <epoch> <excludeConn|->\n<msg frame>
//   p <excludeConn|->\n<joined/left frame>
// `excludeConn` is the sending connection when it did not ask for `echo`. Direct messages for a
// gateway's users (`<p>.dm.<node>`):
//   <encoded user>\n<dm frame>
import type { PresenceFrame } from '../protocol/frames.js';
import type { RoomId, UserId } from '../protocol/names.js';
import { encodeServerFrame } from '../protocol/server-codec.js';
import { decodeName, encodeName } from './encode.js';

export type StreamEvent =
  | { kind: 'm'; seq: number; ts: number; epoch: string; exclude: string | undefined; frame: Uint8Array }
  | { kind: 'p'; exclude: string | undefined; frame: Uint8Array };

const NL = 10;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function encodeMessage(seq: number, ts: number, epoch: string, exclude: string | undefined, frame: string) {
  return encoder.encode(`m ${seq} ${ts} ${epoch} ${exclude ?? '-'}\n${frame}`);
}

/**
 * A `joined` or `left` event of a room's member, left out of the delivery to `exclude`. The member's
 * names were checked when they entered (a client's frame and token, or the store that kept them).
 */
export function encodePresence(
  t: PresenceFrame['t'],
  m: { room: string; user: string; conn: string },
  exclude: string | undefined,
) {
  const frame: PresenceFrame = { t, room: m.room as RoomId, user: m.user as UserId, conn: m.conn };
  return encoder.encode(`p ${exclude ?? '-'}\n${encodeServerFrame(frame)}`);
}

/** Undefined for anything that is not a well-formed envelope (it is dropped, never thrown on). */
export function decodeStream(data: Uint8Array): StreamEvent | undefined {
  const nl = data.indexOf(NL);
  if (nl < 0) return undefined;
  const head = decoder.decode(data.subarray(0, nl)).split(' ');
  const frame = data.subarray(nl + 1);
  const ex = (s: string | undefined) => (s === undefined || s === '-' ? undefined : s);
  if (head[0] === 'p' && head.length === 2) return { kind: 'p', exclude: ex(head[1]), frame };
  if (head[0] !== 'm' || head.length !== 5) return undefined;
  const seq = Number(head[1]);
  const ts = Number(head[2]);
  if (!Number.isSafeInteger(seq) || !Number.isFinite(ts)) return undefined;
  return { kind: 'm', seq, ts, epoch: head[3]!, exclude: ex(head[4]), frame };
}

export function encodeDm(user: string, frame: string): Uint8Array {
  return encoder.encode(`${encodeName(user)}\n${frame}`);
}

/** Undefined when malformed (dropped, never thrown on). */
export function decodeDm(data: Uint8Array): { user: string; frame: Uint8Array } | undefined {
  const nl = data.indexOf(NL);
  if (nl <= 0) return undefined;
  try {
    return { user: decodeName(decoder.decode(data.subarray(0, nl))), frame: data.subarray(nl + 1) };
  } catch {
    return undefined;
  }
}

/** A gateway's answers to a dm retry: it holds a connection of the recipient, or it does not. */
export const DM_HELD = '1';
export const DM_ABSENT = '0';
