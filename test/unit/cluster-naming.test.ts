// Names → NATS subjects and Redis keys: injective, no subject or hash-tag syntax can leak in, and every
// key of one slot shares that slot's single hash tag.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeName, encodeName, fnv1a } from '../../shared/cluster/encode.js';
import { subjects } from '../../shared/cluster/subjects.js';
import { keys } from '../../shared/cluster/keys.js';
import { DEFAULT_SLOTS, roomSlot, userSlot } from '../../shared/cluster/slots.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:@.';
const name = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'b', '.', ':', '@', '-'), minLength: 1, maxLength: 6 }),
  fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 1, maxLength: 128 }),
);
/** UTF-16 code units, lone surrogates included: a `mid` is any JSON string and JSON allows them. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n));
const anyString = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', '%', '2', 'E', '.', '*', '>', ' ', ':', '{', '}', 'u'), maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: codeUnit, maxLength: 10 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  name,
);
const prefix = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/);
const slotCount = fc.integer({ min: 1, max: 16384 });

/** Redis Cluster's hash tag rule: the text between the first `{` and the first `}` after it, if non-empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}
const count = (s: string, c: string) => s.split(c).length - 1;

describe('encodeName / decodeName', () => {
  it('leaves safe names alone and escapes subject, key and escape syntax', () => {
    expect(encodeName('abc-XYZ_09@x')).toBe('abc-XYZ_09@x');
    expect(encodeName('a.b')).toBe('a%2Eb');
    expect(encodeName('a:b')).toBe('a%3Ab');
    expect(encodeName('%2E')).toBe('%252E');
    expect(encodeName('{x}')).toBe('%7Bx%7D');
    expect(encodeName('\u00e9')).toBe('%C3%A9');
  });

  it('keeps lone surrogates apart from U+FFFD and from each other', () => {
    const tokens = ['\ud800', '\udfff', '\ufffd', '\ud800\udc00', 'x\ud800'].map(encodeName);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(decodeName(encodeName('a\ud800b'))).toBe('a\ud800b');
  });

  it('property: decodeName inverts encodeName', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        expect(decodeName(encodeName(s))).toBe(s);
      }),
      { numRuns: 3000 },
    );
  });

  it('property: injective — distinct names give distinct tokens', () => {
    fc.assert(
      fc.property(anyString, anyString, (a, b) => {
        fc.pre(a !== b);
        expect(encodeName(a)).not.toBe(encodeName(b));
      }),
      { numRuns: 3000 },
    );
    // near misses that a lossy or ambiguous escape would merge
    const pairs: [string, string][] = [
      ['a.b', 'a%2Eb'],
      ['%', '%25'],
      ['a:b', 'a%3Ab'],
      ['\ud800', '\ufffd'],
      ['%uD800', '\ud800'],
      ['A', 'a'],
    ];
    for (const [a, b] of pairs) expect(encodeName(a)).not.toBe(encodeName(b));
  });

  it('property: tokens never hold `.`, `*`, `>`, whitespace, `:`, `{`, `}`', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        expect(encodeName(s)).not.toMatch(/[.*>\s:{}]/);
        expect(encodeName(s)).toMatch(/^[A-Za-z0-9_\-@%]*$/);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('subjects', () => {
  it('builds the documented subjects', () => {
    const s = subjects('rtgw');
    expect(s.api('publish')).toBe('rtgw.api.publish');
    expect(s.api('dm')).toBe('rtgw.api.dm');
    expect(s.api('presence')).toBe('rtgw.api.presence');
    expect(s.api('disconnect')).toBe('rtgw.api.disconnect');
    expect(s.event('connect')).toBe('rtgw.events.connect');
    expect(s.event('disconnect')).toBe('rtgw.events.disconnect');
    expect(s.route('orders.create')).toBe('rtgw.in.orders.create');
    expect(s.room('a.b')).toBe('rtgw.room.a%2Eb');
  });

  it('property: a room subject has exactly 3 tokens and no wildcard', () => {
    fc.assert(
      fc.property(prefix, name, (p, room) => {
        const subj = subjects(p).room(room);
        expect(subj.split('.')).toHaveLength(3);
        expect(subj.split('.').every((t) => t.length > 0)).toBe(true);
        expect(subj).not.toMatch(/[*>\s]/);
        expect(subj.startsWith(`${p}.room.`)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: distinct rooms, users and nodes get distinct subjects; users and rooms never meet', () => {
    fc.assert(
      fc.property(prefix, name, name, (p, a, b) => {
        const s = subjects(p);
        if (a !== b) {
          expect(s.room(a)).not.toBe(s.room(b));
          expect(s.dm(a)).not.toBe(s.dm(b));
          expect(s.node(a)).not.toBe(s.node(b));
          expect(s.replies(a)).not.toBe(s.replies(b));
        }
        expect(s.room(a)).not.toBe(s.dm(b));
        expect(s.node(a)).not.toBe(s.dm(b));
        for (const subject of [s.dm(a), s.node(a), s.replies(a)]) expect(subject.split('.')).toHaveLength(3);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: distinct prefixes never share a subject', () => {
    fc.assert(
      fc.property(prefix, prefix, name, (p, q, room) => {
        fc.pre(p !== q);
        expect(subjects(p).room(room)).not.toBe(subjects(q).room(room));
      }),
    );
  });

  it('property: a route keeps its dot-separated tokens, each encoded', () => {
    const token = fc.string({ unit: fc.constantFrom(...ALPHABET.replace('.', '')), minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(fc.array(token, { minLength: 1, maxLength: 5 }), (parts) => {
        const subj = subjects('rtgw').route(parts.join('.'));
        expect(subj.split('.')).toEqual(['rtgw', 'in', ...parts.map(encodeName)]);
        expect(subj).not.toMatch(/[*>\s]/);
      }),
    );
  });

  it('property: slot subjects differ per slot', () => {
    fc.assert(
      fc.property(fc.nat(16383), fc.nat(16383), (a, b) => {
        expect(subjects('rtgw').slot(a) === subjects('rtgw').slot(b)).toBe(a === b);
      }),
    );
  });
});

describe('keys', () => {
  const slotKeys = (k: ReturnType<typeof keys>, slot: number, room: string, user: string, mid: string) => [
    k.lease(slot),
    k.fence(slot),
    k.roomMeta(slot, room),
    k.roomHistory(slot, room),
    k.dedup(slot, room, user, mid),
    k.dmMeta(slot, user),
    k.inbox(slot, user),
    k.userConns(slot, user),
    k.retry(slot),
    k.retryAttempts(slot),
    k.dmSenders(slot),
    k.dmSenderOf(slot),
    k.deadLetters(slot),
  ];

  it('property: every key of a slot holds exactly one hash tag, the same for the whole slot', () => {
    fc.assert(
      fc.property(prefix, fc.nat(16383), name, name, anyString, (p, slot, room, user, mid) => {
        const ks = slotKeys(keys(p), slot, room, user, mid);
        for (const key of ks) {
          expect(count(key, '{')).toBe(1);
          expect(count(key, '}')).toBe(1);
          expect(hashTag(key)).toBe(hashTag(ks[0]!));
        }
        expect(hashTag(ks[0]!)).toBeDefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('property: different slots have different hash tags', () => {
    fc.assert(
      fc.property(prefix, fc.nat(16383), fc.nat(16383), (p, a, b) => {
        fc.pre(a !== b);
        expect(hashTag(keys(p).lease(a))).not.toBe(hashTag(keys(p).lease(b)));
      }),
    );
  });

  it('property: keys outside slots hold no braces, so they never form a hash tag by accident', () => {
    fc.assert(
      fc.property(prefix, anyString, (p, n) => {
        const k = keys(p);
        for (const key of [k.presence(n), k.nodeAlive(n), k.nodeHoldings(n), k.routers(), k.nodes()]) {
          expect(key).not.toMatch(/[{}]/);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('property: distinct rooms (and users, nodes) get distinct keys', () => {
    fc.assert(
      fc.property(prefix, fc.nat(63), name, name, (p, slot, a, b) => {
        fc.pre(a !== b);
        const k = keys(p);
        expect(k.roomMeta(slot, a)).not.toBe(k.roomMeta(slot, b));
        expect(k.roomHistory(slot, a)).not.toBe(k.roomHistory(slot, b));
        expect(k.presence(a)).not.toBe(k.presence(b));
        expect(k.userConns(slot, a)).not.toBe(k.userConns(slot, b));
        expect(k.userConns(slot, a).startsWith(k.userConnsPrefix(slot))).toBe(true);
        expect(k.nodeAlive(a)).not.toBe(k.nodeAlive(b));
        expect(k.nodeHoldings(a)).not.toBe(k.nodeHoldings(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: dedup keys are injective over (scope, sender, mid)', () => {
    const part = fc.oneof(anyString, fc.constantFrom('a', 'a:b', 'b', ':', 'a%3Ab'));
    fc.assert(
      fc.property(fc.tuple(part, part, part), fc.tuple(part, part, part), (x, y) => {
        fc.pre(x.some((v, i) => v !== y[i]));
        expect(keys('rtgw').dedup(3, ...x)).not.toBe(keys('rtgw').dedup(3, ...y));
      }),
      { numRuns: 3000 },
    );
    // the case a plain `:` join would merge
    expect(keys('rtgw').dedup(3, 'a:b', 'c', 'm')).not.toBe(keys('rtgw').dedup(3, 'a', 'b:c', 'm'));
  });

  it('property: a room key never equals any other kind of key', () => {
    fc.assert(
      fc.property(prefix, fc.nat(63), name, (p, slot, n) => {
        const k = keys(p);
        const all = [
          k.roomMeta(slot, n),
          k.roomHistory(slot, n),
          k.dedup(slot, n, n, n),
          k.lease(slot),
          k.fence(slot),
          k.presence(n),
          k.userConns(slot, n),
          k.nodeAlive(n),
          k.nodeHoldings(n),
          k.routers(),
          k.nodes(),
        ];
        expect(new Set(all).size).toBe(all.length);
        for (const key of all) expect(key.startsWith(`${p}:`)).toBe(true);
      }),
    );
  });
});

describe('roomSlot / userSlot', () => {
  it('fnv1a matches the published FNV-1a 32-bit test vectors, so every process agrees', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });

  it('pins a few slots: a change here would move every room of a running cluster', () => {
    expect(roomSlot('lobby', DEFAULT_SLOTS)).toBe(54);
    expect(userSlot('lobby', DEFAULT_SLOTS)).toBe(59);
    expect([roomSlot('a', 64), roomSlot('b', 64), userSlot('a', 64)]).toEqual([61, 4, 36]);
    expect(roomSlot('lobby', 16384)).toBe(1718);
  });

  it('property: stable and in range', () => {
    fc.assert(
      fc.property(name, slotCount, (n, slots) => {
        const r = roomSlot(n, slots);
        const u = userSlot(n, slots);
        for (const s of [r, u]) {
          expect(Number.isInteger(s)).toBe(true);
          expect(s).toBeGreaterThanOrEqual(0);
          expect(s).toBeLessThan(slots);
        }
        expect(roomSlot(n, slots)).toBe(r);
        expect(userSlot(n, slots)).toBe(u);
        // a string equal in value but built differently hashes the same
        expect(roomSlot([...n].join(''), slots)).toBe(r);
      }),
      { numRuns: 2000 },
    );
  });

  it('spreads rooms over the slots', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(roomSlot(`room-${i}`, DEFAULT_SLOTS));
    expect(seen.size).toBe(DEFAULT_SLOTS);
  });
});
