// Parsing and strict validation of client frames. Pure: the gateway and tests call it, nothing else.
// A frame's `data` is carried on as the JSON text the client sent (never re-serialized), and nesting
// is bounded before anything is parsed, so a frame costs time linear in its size.
import { ErrorCode } from './codes.js';
import { CLIENT_FRAME_TYPES, type ClientFrame, type RawJson } from './frames.js';
import { isRoomId, isUserId } from './names.js';

export type Parsed = { ok: true; frame: ClientFrame } | { ok: false; id?: number; code: ErrorCode; msg: string };

export const MAX_MID_CHARS = 64;
/** Deepest nesting of arrays and objects in a client frame, the frame object itself counted (contract 7.1). */
export const MAX_JSON_DEPTH = 32;
export const MAX_ROUTE_CHARS = 128;
const MAX_TOKEN_CHARS = 16_384;

type Obj = Record<string, unknown>;

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** A client message id: what `pub` and `dm` (and the backend API) accept as `mid`. */
export const isMid = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= MAX_MID_CHARS;
const optional = (o: Obj, k: string, test: (v: unknown) => boolean): boolean => o[k] === undefined || test(o[k]);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

const frameTypes = new Set<string>(CLIENT_FRAME_TYPES);
/** A route becomes subject tokens (`<p>.in.a.b`): no empty token, so no `a..b` or trailing dot. */
const ROUTE = /^[A-Za-z0-9_\-:@]+(\.[A-Za-z0-9_\-:@]+)*$/;
const isRoute = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_ROUTE_CHARS && ROUTE.test(v);

/** Why a frame of a known type is invalid, or undefined when it is valid. */
function problem(o: Obj): string | undefined {
  switch (o.t) {
    case 'ping':
      return undefined;
    case 'ack':
      return isSeq(o.seq) ? undefined : '`seq` must be a non-negative integer';
  }
  if (!isId(o.id)) return '`id` must be a non-negative integer';
  switch (o.t) {
    case 'join':
      if (!isRoomId(o.room)) return 'bad room name';
      if (!optional(o, 'since', isSeq)) return '`since` must be a non-negative integer';
      if (!optional(o, 'epoch', (v) => typeof v === 'string' && v.length <= 64)) return 'bad `epoch`';
      return optional(o, 'presence', isBool) ? undefined : '`presence` must be a boolean';
    case 'leave':
    case 'presence':
      return isRoomId(o.room) ? undefined : 'bad room name';
    case 'pub':
      if (!isRoomId(o.room)) return 'bad room name';
      if (!('data' in o)) return '`data` is required';
      if (!optional(o, 'mid', isMid)) return '`mid` must be a string of 1 to 64 characters';
      return optional(o, 'echo', isBool) ? undefined : '`echo` must be a boolean';
    case 'dm':
      if (!isUserId(o.to)) return 'bad user id in `to`';
      if (!('data' in o)) return '`data` is required';
      return optional(o, 'mid', isMid) ? undefined : '`mid` must be a string of 1 to 64 characters';
    case 'send':
      if (!isRoute(o.route))
        return '`route` must be dot-separated tokens of A-Z a-z 0-9 _ - : @, at most 128 characters';
      return 'data' in o ? undefined : '`data` is required';
    case 'refresh':
      return typeof o.token === 'string' && o.token.length > 0 && o.token.length <= MAX_TOKEN_CHARS
        ? undefined
        : '`token` must be a non-empty string';
  }
  return 'unknown frame type';
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

type Span = { from: number; to: number };

/**
 * One pass over a frame's text, before it is parsed: whether arrays and objects nest deeper than
 * `MAX_JSON_DEPTH`, and the spans of the top-level `data` and `id` values (the last of repeated keys,
 * as JSON.parse keeps). On text that is not valid JSON the spans are meaningless, and
 * JSON.parse refuses the text anyway.
 */
function scan(text: string): { tooDeep: boolean; data?: Span; id?: Span } {
  const found: { tooDeep: boolean; data?: Span; id?: Span } = { tooDeep: false };
  let depth = 0;
  // At depth 1: the key just read, and where its value started (-1 while reading a key).
  let key: string | undefined;
  let valueAt = -1;
  const endValue = (at: number) => {
    if ((key === 'data' || key === 'id') && valueAt >= 0) {
      let to = at;
      while (to > valueAt && text.charCodeAt(to - 1) <= 0x20) to--;
      found[key] = { from: valueAt, to };
    }
    key = undefined;
    valueAt = -1;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
      if (depth === 1 && valueAt < 0) {
        const raw = text.slice(start, i + 1);
        key = raw.includes('\\') ? safeString(raw) : raw.slice(1, -1);
      }
      continue;
    }
    switch (c) {
      case 0x7b: // {
      case 0x5b: // [
        // Past the limit the scan goes on, counting only, for an `id` that comes after the deep part.
        if (++depth > MAX_JSON_DEPTH) found.tooDeep = true;
        break;
      case 0x7d: // }
      case 0x5d: // ]
        if (depth-- === 1) endValue(i);
        break;
      case 0x3a: // :
        if (depth === 1) {
          valueAt = i + 1;
          while (valueAt < text.length && text.charCodeAt(valueAt) <= 0x20) valueAt++;
        }
        break;
      case 0x2c: // ,
        if (depth === 1) endValue(i);
        break;
    }
  }
  return found;
}

const safeString = (raw: string): string | undefined => {
  try {
    return JSON.parse(raw) as string;
  } catch {
    return undefined;
  }
};

/** The request id at `span` (a top-level `id` found by scan), when it is one. */
function requestId(text: string, span: Span | undefined): number | undefined {
  const raw = span && text.slice(span.from, span.to);
  return raw && /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}

/** The frame's top-level `id` when it is a request id, read without parsing (for a frame refused unread). */
export const frameId = (text: string): number | undefined => requestId(text, scan(text).id);

/** Parses one text frame. Never throws: every failure is a `bad_request` with the request id when known. */
export function parseClientFrame(text: string): Parsed {
  const { tooDeep, data, id: idSpan } = scan(text);
  if (tooDeep) {
    // Not parsed (that is the work refused), but the request is answered with its id.
    return {
      ok: false,
      id: requestId(text, idSpan),
      code: ErrorCode.BadRequest,
      msg: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, code: ErrorCode.BadRequest, msg: 'frame is not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { ok: false, code: ErrorCode.BadRequest, msg: 'frame must be a JSON object' };
  }
  const o = v as Obj;
  const id = isId(o.id) ? o.id : undefined;
  if (typeof o.t !== 'string' || !frameTypes.has(o.t)) {
    return { ok: false, id, code: ErrorCode.BadRequest, msg: 'unknown frame type' };
  }
  const why = problem(o);
  if (why !== undefined) return { ok: false, id, code: ErrorCode.BadRequest, msg: why };
  // The parsed value was only for validation: `data` goes on as the client's own text.
  if (data !== undefined && 'data' in o) o.data = text.slice(data.from, data.to) as RawJson;
  return { ok: true, frame: o as unknown as ClientFrame };
}
