// Server frames, written and read in one place each. Every frame the gateway writes goes through
// `encodeServerFrame` (typed on ServerFrame), except `msg` and `dm`, which the store builds once and the
// gateway passes on as bytes (their layout: shared/redis/lua/include/frames.lua). The SDK reads every
// frame through `decodeServerFrame`. Pure: the client SDK imports it.
import { isErrorCode } from './codes.js';
import type { ServerFrame } from './frames.js';

/** The JSON text of a server frame. */
export const encodeServerFrame = (f: ServerFrame): string => JSON.stringify(f);

type Obj = Record<string, unknown>;
const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The fields each frame type must have, checked before the frame is trusted as that type. */
const SHAPES: Record<ServerFrame['t'], (o: Obj) => boolean> = {
  welcome: (o) => num(o.v) && str(o.conn) && str(o.user) && num(o.hb),
  ok: (o) => num(o.id),
  err: (o) => isErrorCode(o.code) && str(o.msg) && (o.id === undefined || num(o.id)),
  msg: (o) => str(o.room) && num(o.seq) && str(o.from) && 'data' in o && num(o.ts),
  dm: (o) => num(o.seq) && str(o.from) && 'data' in o && num(o.ts),
  joined: (o) => str(o.room) && str(o.user) && str(o.conn),
  left: (o) => str(o.room) && str(o.user) && str(o.conn),
  drain: (o) => num(o.ms),
  epoch: (o) => str(o.room) && str(o.epoch) && num(o.seq),
  removed: (o) => str(o.room) && str(o.reason),
  pong: () => true,
};

/**
 * A server frame from its text: `frame` when it is one; `unknown` for an object whose `t` this version
 * does not know (a newer server may add types: a client ignores them); `invalid` with why otherwise
 * (not JSON, not an object, or a known type missing a field).
 */
export function decodeServerFrame(text: string): { frame: ServerFrame } | { unknown: string } | { invalid: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { invalid: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { invalid: 'not a JSON object' };
  const o = v as Obj;
  if (typeof o.t !== 'string') return { invalid: 'no frame type' };
  if (!Object.hasOwn(SHAPES, o.t)) return { unknown: o.t };
  return SHAPES[o.t as ServerFrame['t']](o)
    ? { frame: o as ServerFrame }
    : { invalid: `a ${o.t} frame without its fields` };
}
