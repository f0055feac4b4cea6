// parseClientFrame: every client frame type accepted when well formed, refused with bad_request
// (keeping the request id when the frame carries one) otherwise, and never throwing.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_JSON_DEPTH, MAX_MID_CHARS, parseClientFrame, type Parsed } from '../../shared/protocol/codec.js';
import { CLIENT_FRAME_TYPES } from '../../shared/protocol/frames.js';
import { isName } from '../../shared/protocol/names.js';

const parse = (v: unknown): Parsed => parseClientFrame(JSON.stringify(v));

/** An accepted frame is the value sent, with `data` as the JSON text it was sent as. */
function expectOk(v: unknown): void {
  const r = parse(v);
  const o = v as Record<string, unknown>;
  const frame = 'data' in o ? { ...o, data: JSON.stringify(o.data) } : v;
  expect(r, JSON.stringify(v)).toEqual({ ok: true, frame });
}

function expectBad(v: unknown, id: number | undefined, msg?: RegExp): void {
  expectBadText(JSON.stringify(v), id, msg);
}

function expectBadText(text: string, id: number | undefined, msg?: RegExp): void {
  const r = parseClientFrame(text);
  expect(r.ok, text).toBe(false);
  if (r.ok) return;
  expect(r.code).toBe('bad_request');
  expect(r.id).toBe(id);
  expect(r.msg.length).toBeGreaterThan(0);
  if (msg) expect(r.msg).toMatch(msg);
}

const room128 = 'r'.repeat(128);
const mid64 = 'm'.repeat(MAX_MID_CHARS);

describe('valid frames of every type', () => {
  it.each<[string, unknown]>([
    ['join', { t: 'join', id: 1, room: 'lobby' }],
    [
      'join with since, epoch, presence',
      { t: 'join', id: 2, room: 'a.b:c@d-e_f', since: 0, epoch: 'e1', presence: true },
    ],
    ['join, 128-char room', { t: 'join', id: 0, room: room128 }],
    ['leave', { t: 'leave', id: 3, room: 'lobby' }],
    ['pub', { t: 'pub', id: 4, room: 'lobby', data: { x: [1, 'two', null] } }],
    ['pub, null data, mid, echo', { t: 'pub', id: 5, room: 'lobby', data: null, mid: mid64, echo: false }],
    ['dm', { t: 'dm', id: 6, to: 'alice', data: 'hi' }],
    ['dm with mid', { t: 'dm', id: 7, to: 'bob@example.com', data: 0, mid: 'x' }],
    ['ack', { t: 'ack', seq: 12 }],
    ['ack of seq 0', { t: 'ack', seq: 0 }],
    ['send', { t: 'send', id: 8, route: 'orders.create', data: { n: 1 } }],
    ['presence', { t: 'presence', id: 9, room: 'lobby' }],
    ['refresh', { t: 'refresh', id: 10, token: 'aaa.bbb.ccc' }],
    ['ping', { t: 'ping' }],
    ['request id at MAX_SAFE_INTEGER', { t: 'leave', id: Number.MAX_SAFE_INTEGER, room: 'x' }],
  ])('%s', (_name, frame) => expectOk(frame));

  it('covers every client frame type', () => {
    const samples: unknown[] = [
      { t: 'join', id: 1, room: 'a' },
      { t: 'leave', id: 1, room: 'a' },
      { t: 'pub', id: 1, room: 'a', data: 1 },
      { t: 'dm', id: 1, to: 'u', data: 1 },
      { t: 'ack', seq: 1 },
      { t: 'send', id: 1, route: 'r', data: 1 },
      { t: 'presence', id: 1, room: 'a' },
      { t: 'refresh', id: 1, token: 't' },
      { t: 'ping' },
    ];
    const accepted = samples.map(parse).filter((r) => r.ok);
    expect(accepted.map((r) => r.ok && r.frame.t).sort()).toEqual([...CLIENT_FRAME_TYPES].sort());
  });

  it('keeps unknown extra fields and treats key order as irrelevant', () => {
    const r = parseClientFrame('{"room":"a","extra":[1],"id":3,"t":"leave"}');
    expect(r).toEqual({ ok: true, frame: { t: 'leave', id: 3, room: 'a', extra: [1] } });
  });
});

describe('invalid frames are bad_request and keep a valid id', () => {
  it.each<[string, unknown, number | undefined, RegExp?]>([
    // missing fields
    ['join without room', { t: 'join', id: 1 }, 1, /room/],
    ['join without id', { t: 'join', room: 'a' }, undefined, /id/],
    ['leave without room', { t: 'leave', id: 2 }, 2, /room/],
    ['pub without data', { t: 'pub', id: 3, room: 'a' }, 3, /data/],
    ['pub without room', { t: 'pub', id: 3, data: 1 }, 3, /room/],
    ['dm without to', { t: 'dm', id: 4, data: 1 }, 4, /to/],
    ['dm without data', { t: 'dm', id: 4, to: 'u' }, 4, /data/],
    ['ack without seq', { t: 'ack' }, undefined, /seq/],
    ['ack without seq keeps an id', { t: 'ack', id: 9 }, 9, /seq/],
    ['send without route', { t: 'send', id: 5, data: 1 }, 5, /route/],
    ['send without data', { t: 'send', id: 5, route: 'r' }, 5, /data/],
    ['presence without room', { t: 'presence', id: 6 }, 6, /room/],
    ['refresh without token', { t: 'refresh', id: 7 }, 7, /token/],
    ['no t', { id: 8, room: 'a' }, 8, /unknown/],
    // wrong types
    ['string id', { t: 'join', id: '1', room: 'a' }, undefined, /id/],
    ['negative id', { t: 'join', id: -1, room: 'a' }, undefined, /id/],
    ['fractional id', { t: 'join', id: 1.5, room: 'a' }, undefined, /id/],
    ['id above MAX_SAFE_INTEGER', { t: 'join', id: 2 ** 53, room: 'a' }, undefined, /id/],
    ['numeric room', { t: 'join', id: 1, room: 5 }, 1, /room/],
    ['string since', { t: 'join', id: 1, room: 'a', since: '3' }, 1, /since/],
    ['negative since', { t: 'join', id: 1, room: 'a', since: -1 }, 1, /since/],
    ['numeric epoch', { t: 'join', id: 1, room: 'a', epoch: 7 }, 1, /epoch/],
    ['epoch over 64 chars', { t: 'join', id: 1, room: 'a', epoch: 'e'.repeat(65) }, 1, /epoch/],
    ['string presence', { t: 'join', id: 1, room: 'a', presence: 'yes' }, 1, /presence/],
    ['numeric echo', { t: 'pub', id: 1, room: 'a', data: 1, echo: 1 }, 1, /echo/],
    ['numeric mid', { t: 'pub', id: 1, room: 'a', data: 1, mid: 5 }, 1, /mid/],
    ['empty mid', { t: 'dm', id: 1, to: 'u', data: 1, mid: '' }, 1, /mid/],
    ['string ack seq', { t: 'ack', seq: '1' }, undefined, /seq/],
    ['fractional ack seq', { t: 'ack', seq: 0.5 }, undefined, /seq/],
    ['numeric token', { t: 'refresh', id: 1, token: 1 }, 1, /token/],
    ['empty token', { t: 'refresh', id: 1, token: '' }, 1, /token/],
    ['oversized token', { t: 'refresh', id: 1, token: 'x'.repeat(16_385) }, 1, /token/],
    ['numeric t', { t: 1, id: 1 }, 1, /unknown/],
    // bad names
    ['empty room', { t: 'join', id: 1, room: '' }, 1, /room/],
    ['room of 129 chars', { t: 'join', id: 1, room: 'r'.repeat(129) }, 1, /room/],
    ['room with a space', { t: 'pub', id: 1, room: 'a b', data: 1 }, 1, /room/],
    ['room with a wildcard', { t: 'join', id: 1, room: 'a.*' }, 1, /room/],
    ['room with >', { t: 'join', id: 1, room: 'a.>' }, 1, /room/],
    ['room with braces', { t: 'presence', id: 1, room: '{a}' }, 1, /room/],
    ['room with non-ASCII', { t: 'leave', id: 1, room: 'caf\u00e9' }, 1, /room/],
    ['room with a newline', { t: 'leave', id: 1, room: 'a\n' }, 1, /room/],
    ['dm to a bad user', { t: 'dm', id: 1, to: 'a/b', data: 1 }, 1, /to/],
    ['route with a space', { t: 'send', id: 1, route: 'a b', data: 1 }, 1, /route/],
    ['route with a wildcard', { t: 'send', id: 1, route: 'a.>', data: 1 }, 1, /route/],
    ['route of 129 chars', { t: 'send', id: 1, route: 'r'.repeat(129), data: 1 }, 1, /route/],
    ['route with an empty token', { t: 'send', id: 1, route: 'a..b', data: 1 }, 1, /route/],
    ['route with a leading dot', { t: 'send', id: 1, route: '.a', data: 1 }, 1, /route/],
    ['route with a trailing dot', { t: 'send', id: 1, route: 'a.', data: 1 }, 1, /route/],
    ['route that is only a dot', { t: 'send', id: 1, route: '.', data: 1 }, 1, /route/],
    // oversized mid
    ['mid of 65 chars (pub)', { t: 'pub', id: 1, room: 'a', data: 1, mid: 'm'.repeat(MAX_MID_CHARS + 1) }, 1, /mid/],
    ['mid of 65 chars (dm)', { t: 'dm', id: 2, to: 'u', data: 1, mid: 'm'.repeat(MAX_MID_CHARS + 1) }, 2, /mid/],
    // unknown t
    ['unknown t', { t: 'subscribe', id: 11, room: 'a' }, 11, /unknown/],
    ['server-only t', { t: 'welcome', id: 12 }, 12, /unknown/],
    ['t of another case', { t: 'JOIN', id: 13, room: 'a' }, 13, /unknown/],
    ['prototype name as t', { t: 'constructor', id: 14 }, 14, /unknown/],
    // arrays and non-objects
    ['array', [{ t: 'ping' }], undefined, /object/],
    ['empty array', [], undefined, /object/],
    ['null', null, undefined, /object/],
    ['number', 42, undefined, /object/],
    ['string', 'ping', undefined, /object/],
    ['boolean', true, undefined, /object/],
  ])('%s', (_name, frame, id, msg) => expectBad(frame, id, msg));

  it.each([
    ['empty text', ''],
    ['truncated object', '{"t":"join","id":5,'],
    ['trailing garbage', '{"t":"ping"} x'],
    ['single quotes', "{'t':'ping'}"],
    ['bare word', 'ping'],
    ['two objects', '{"t":"ping"}{"t":"ping"}'],
  ])('invalid JSON: %s (no id can be known)', (_name, text) => expectBadText(text, undefined, /JSON/));
});

// ---- properties ----

const nameChars = 'ABCXYZabcxyz0189_-:@.';
const validName = fc.string({ unit: fc.constantFrom(...nameChars), minLength: 1, maxLength: 130 });
const anyField = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  validName,
  fc.nat(),
  fc.integer({ min: -5, max: Number.MAX_SAFE_INTEGER }),
  fc.boolean(),
  fc.constant(undefined),
);
/** Objects that look like client frames, so the property reaches both the accepting and refusing paths. */
const frameLike = fc.record(
  {
    t: fc.oneof(fc.constantFrom(...CLIENT_FRAME_TYPES), fc.string()),
    id: anyField,
    room: anyField,
    to: anyField,
    route: anyField,
    data: anyField,
    mid: fc.oneof(fc.string({ maxLength: 70 }), anyField),
    echo: anyField,
    seq: anyField,
    since: anyField,
    epoch: anyField,
    presence: anyField,
    token: anyField,
  },
  { requiredKeys: [] },
);

const types = new Set<string>(CLIENT_FRAME_TYPES);
const isIdLike = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** Everything an accepted frame must satisfy, written independently of the codec. */
function checkResult(input: string, r: Parsed): void {
  if (!r.ok) {
    expect(r.code).toBe('bad_request');
    expect(typeof r.msg).toBe('string');
    if (r.id !== undefined) {
      expect(isIdLike(r.id)).toBe(true);
      expect((JSON.parse(input) as { id: unknown }).id).toBe(r.id);
    }
    return;
  }
  const f = r.frame as unknown as Record<string, unknown>;
  expect(types.has(f.t as string)).toBe(true);
  if (f.t === 'ack') expect(isIdLike(f.seq)).toBe(true);
  if (f.t !== 'ack' && f.t !== 'ping') expect(isIdLike(f.id)).toBe(true);
  if (['join', 'leave', 'pub', 'presence'].includes(f.t as string)) expect(isName(f.room)).toBe(true);
  if (f.t === 'dm') expect(isName(f.to)).toBe(true);
  if (f.t === 'pub' || f.t === 'dm' || f.t === 'send') {
    // `data` is the client's own text of the value JSON.parse reads from the frame.
    expect(typeof f.data).toBe('string');
    expect(JSON.parse(f.data as string)).toEqual((JSON.parse(input) as { data: unknown }).data);
  }
  if (f.mid !== undefined && (f.t === 'pub' || f.t === 'dm')) {
    expect(typeof f.mid === 'string' && f.mid.length >= 1 && f.mid.length <= MAX_MID_CHARS).toBe(true);
  }
}

describe('properties', () => {
  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json()), (text) => {
        checkResult(text, parseClientFrame(text)); // a throw fails the property
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary JSON values, and accepted frames are valid', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v);
        checkResult(text, parseClientFrame(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('frame-like objects: accepted ones are valid; refused ones keep a valid id', () => {
    let accepted = 0;
    let refusedWithId = 0;
    fc.assert(
      fc.property(frameLike, (o) => {
        const text = JSON.stringify(o);
        const r = parseClientFrame(text);
        checkResult(text, r);
        const sentId = (JSON.parse(text) as { id?: unknown }).id; // as sent: JSON turns -0 into 0
        if (r.ok) accepted++;
        else if (isIdLike(sentId)) {
          refusedWithId++;
          expect(r.id).toBe(sentId);
        }
      }),
      { numRuns: 5000 },
    );
    // The generator must exercise both paths, or the property above proves little.
    expect(accepted).toBeGreaterThan(0);
    expect(refusedWithId).toBeGreaterThan(0);
  });

  it('accepts every well-formed join and returns it unchanged', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.string({ unit: fc.constantFrom(...nameChars), minLength: 1, maxLength: 128 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.boolean(), { nil: undefined }),
        (id, room, since, presence) => {
          const frame = JSON.parse(JSON.stringify({ t: 'join', id, room, since, presence })) as unknown;
          expectOk(frame);
        },
      ),
    );
  });
});

/** `levels` arrays nested inside each other: `[[[]]]` is 3. */
const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);

describe('nesting and data as sent', () => {
  it(`accepts ${MAX_JSON_DEPTH} levels (the frame object is the first) and refuses one more, as bad_request with the id`, () => {
    const frame = (levels: number) => `{"t":"pub","id":7,"room":"r","data":${nested(levels - 1)}}`;
    expect(parseClientFrame(frame(MAX_JSON_DEPTH)).ok).toBe(true);
    expectBadText(frame(MAX_JSON_DEPTH + 1), 7, /nested/);
  });

  it('refuses nesting in any field, and objects count like arrays', () => {
    const deepObj = '{"a":'.repeat(MAX_JSON_DEPTH) + '1' + '}'.repeat(MAX_JSON_DEPTH);
    expectBadText(`{"t":"join","id":1,"room":"r","x":${deepObj}}`, 1, /nested/);
    // An id after the deep part is found too; one inside it is not the frame's.
    expectBadText(`{"t":"join","x":${deepObj},"id":1}`, 1, /nested/);
    expectBadText(`{"t":"join","x":[${deepObj},{"id":2}]}`, undefined, /nested/);
    expectBadText(`{"t":"ping","x":${nested(MAX_JSON_DEPTH)}}`, undefined, /nested/);
  });

  it('refuses 30,000 levels (what made JSON.stringify throw) without parsing them', () => {
    const text = `{"t":"pub","id":1,"room":"r","data":${nested(30_000)}}`;
    expectBadText(text, 1, /nested/);
    // Brackets inside strings are text, not nesting.
    expect(parseClientFrame(`{"t":"pub","id":1,"room":"r","data":"${'['.repeat(30_000)}"}`).ok).toBe(true);
  });

  it('carries data exactly as sent: spacing, number spelling and escapes kept', () => {
    const text = '{"t":"pub","id":1,"room":"r","data" :  { "n" : 1.50, "s":"\\u0041\\"}]" } , "mid":"m"}';
    const r = parseClientFrame(text);
    expect(r.ok && r.frame.t === 'pub' && r.frame.data).toBe('{ "n" : 1.50, "s":"\\u0041\\"}]" }');
  });

  it('takes the last of repeated data keys, and a key spelled with escapes, as JSON.parse does', () => {
    const r1 = parseClientFrame('{"t":"dm","id":1,"to":"u","data":1,"data":[2]}');
    expect(r1.ok && r1.frame.t === 'dm' && r1.frame.data).toBe('[2]');
    const r2 = parseClientFrame('{"t":"dm","id":1,"to":"u","d\\u0061ta":{"x":"y"},"note":"data"}');
    expect(r2.ok && r2.frame.t === 'dm' && r2.frame.data).toBe('{"x":"y"}');
  });

  it('data text parses to the value sent, however the frame is laid out', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom(undefined, 0, 1, 2, '\t'), (data, indent) => {
        const text = JSON.stringify({ t: 'send', id: 1, route: 'a.b', data, z: [data] }, null, indent);
        const r = parseClientFrame(text);
        expect(r.ok).toBe(true);
        if (r.ok && r.frame.t === 'send') expect(JSON.parse(r.frame.data)).toEqual(JSON.parse(JSON.stringify(data)));
      }),
      { seed: 7, numRuns: 2000 },
    );
  });
});
