// The codecs of shared/cluster/messages.ts. Slot requests: a head line of JSON and the data's text as
// sent; whatever the data's layout (newlines, escapes, unicode), the router decodes exactly what the
// gateway encoded, the data byte for byte. Node requests and their counts. Anything else is refused,
// never thrown on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCount,
  decodeNodeRequest,
  decodeSlotAnswer,
  decodeSlotRequest,
  encodeNodeRequest,
  encodeSlotAnswer,
  encodeSlotRequest,
  MOVED_REPLY,
  type SlotRequest,
} from '../../shared/cluster/messages.js';

const name = fc.string({ unit: fc.constantFrom(...'abcXYZ019_-:@.'), minLength: 1, maxLength: 20 });
const dataText = fc
  .tuple(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(undefined, 0, 2, '\t', '\n'))
  .map(([v, indent]) => JSON.stringify(v, null, indent as never));
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const request: fc.Arbitrary<SlotRequest> = fc.oneof(
  fc.record({
    op: fc.constant('pub' as const),
    room: name,
    from: fc.string(),
    d: dataText,
    mid: optional(fc.string()),
    by: fc.string(),
    exclude: optional(fc.string()),
  }),
  fc.record({
    op: fc.constant('dm' as const),
    to: name,
    from: fc.string(),
    d: dataText,
    mid: optional(fc.string()),
    by: fc.string(),
  }),
);
const withoutUndefined = (r: SlotRequest) =>
  JSON.parse(JSON.stringify({ ...r, d: undefined })) as Record<string, unknown>;

describe('slot requests', () => {
  it('decode to what was encoded, the data text unchanged', () => {
    fc.assert(
      fc.property(request, (r) => {
        const back = decodeSlotRequest(encodeSlotRequest(r));
        expect(back).toBeDefined();
        expect(back!.d).toBe(r.d);
        expect(withoutUndefined(back!)).toEqual(withoutUndefined(r));
      }),
      { seed: 11, numRuns: 2000 },
    );
  });

  it('carry the data unescaped: its bytes follow the head line as they are', () => {
    const d = '{"text":"a\\"b\\n","n":1.50}';
    const bytes = encodeSlotRequest({ op: 'pub', room: 'r', from: 'u', d, by: 'u' });
    expect(Buffer.from(bytes).toString().split('\n').slice(1).join('\n')).toBe(d);
  });

  it.each<[string, string]>([
    ['no head line', '{"op":"pub","room":"r","from":"u","by":"u"}'],
    ['a head that is not JSON', '{op\n1'],
    ['an unknown op', '{"op":"nuke","room":"r","from":"u","by":"u"}\n1'],
    ['a bad room', '{"op":"pub","room":"a b","from":"u","by":"u"}\n1'],
    ['a bad recipient', '{"op":"dm","to":"","from":"u","by":"u"}\n1'],
    ['no from', '{"op":"pub","room":"r","by":"u"}\n1'],
    ['a numeric mid', '{"op":"dm","to":"u","from":"u","by":"u","mid":5}\n1'],
    ['a head that is null', 'null\n1'],
  ])('refuses %s', (_what, text) => {
    expect(decodeSlotRequest(Buffer.from(text))).toBeUndefined();
  });
});

describe('node requests', () => {
  const bytes = (s: string) => Buffer.from(s);

  it('decode to what was encoded', () => {
    for (const req of [
      { op: 'disconnect' as const, user: 'alice' },
      { op: 'disconnect' as const, user: 'a@b.c', reason: 'bye' },
    ]) {
      expect(decodeNodeRequest(bytes(encodeNodeRequest(req)))).toEqual(req);
    }
  });

  it.each([
    '',
    'null',
    '[]',
    '{"op":"nuke","user":"a"}',
    '{"op":"disconnect","user":"a b"}',
    '{"op":"disconnect","user":"a","reason":5}',
  ])('refuses %j', (text) => {
    expect(decodeNodeRequest(bytes(text))).toBeUndefined();
  });

  it('a count is a safe integer, anything else counts 0', () => {
    expect(decodeCount(bytes('{"count":3}'))).toBe(3);
    for (const text of ['', 'null', '{"count":"3"}', '{"count":1.5}', '{}']) expect(decodeCount(bytes(text))).toBe(0);
  });
});

describe('slot answers', () => {
  it('decode to what was encoded: a seq, or an error reply with its retry flag', () => {
    for (const a of [{ seq: 7 }, { error: { code: 'limit' as const, msg: 'full' } }, MOVED_REPLY]) {
      expect(decodeSlotAnswer(encodeSlotAnswer(a))).toEqual(a);
    }
  });

  it.each(['', 'null', '{}', '{"seq":"7"}', '{"seq":1.5}', '{"error":{}}', '[1]'])('refuses %j', (text) => {
    expect(decodeSlotAnswer(text)).toBeUndefined();
  });
});
