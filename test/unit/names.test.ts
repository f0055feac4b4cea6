// Names and the permission patterns of a token's `rooms` / `pub` claims: exact names, prefixes ending
// in `*`, `*` alone; an absent claim allows everything, an empty list nothing; `a`, `a.b`, `a.*` unrelated.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isName, isPatternList, isRoomId, isUserId, matchesAny } from '../../shared/protocol/names.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:@.';
/** Few distinct characters, so generated names often share prefixes and the interesting cases come up. */
const small = fc.string({ unit: fc.constantFrom('a', 'b', '.', ':', '_'), minLength: 1, maxLength: 6 });
const name = fc.oneof(small, fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 1, maxLength: 128 }));

describe('isName', () => {
  it('accepts 1 to 128 characters of the alphabet', () => {
    expect(isName(ALPHABET)).toBe(true);
    expect(isName('a')).toBe(true);
    expect(isName('x'.repeat(128))).toBe(true);
    expect(isRoomId('room:1@x.y')).toBe(true);
    expect(isUserId('user-1_2')).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['129 characters', 'x'.repeat(129)],
    ['space', 'a b'],
    ['star', 'a*'],
    ['gt', 'a.>'],
    ['slash', 'a/b'],
    ['percent', 'a%2E'],
    ['braces', '{a}'],
    ['comma', 'a,b'],
    ['trailing newline', 'a\n'],
    ['leading newline', '\na'],
    ['NUL', 'a\u0000'],
    ['non-ASCII letter', '\u00e9'],
    ['full-width letter', '\uff41'],
  ])('refuses %s', (_n, s) => {
    expect(isName(s)).toBe(false);
    expect(isRoomId(s)).toBe(false);
    expect(isUserId(s)).toBe(false);
  });

  it.each([[undefined], [null], [1], [['a']], [{}]])('refuses non-string %j', (v) => {
    expect(isName(v)).toBe(false);
  });

  it('property: agrees with a character-by-character check', () => {
    fc.assert(
      fc.property(fc.oneof(name, fc.string({ maxLength: 130 }), fc.string({ unit: 'binary', maxLength: 5 })), (s) => {
        const expected = s.length >= 1 && s.length <= 128 && [...s].every((c) => ALPHABET.includes(c));
        expect(isName(s)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('matchesAny', () => {
  it('absent claim allows everything', () => {
    expect(matchesAny(undefined, 'anything')).toBe(true);
    expect(matchesAny(undefined, 'a.b')).toBe(true);
  });

  it('an empty list allows nothing', () => {
    expect(matchesAny([], 'a')).toBe(false);
    expect(matchesAny([], '*')).toBe(false);
  });

  it('`*` alone allows every name', () => {
    expect(matchesAny(['*'], 'a')).toBe(true);
    expect(matchesAny(['*'], 'x.y:z@w')).toBe(true);
  });

  it('an exact pattern allows only that name', () => {
    expect(matchesAny(['a'], 'a')).toBe(true);
    expect(matchesAny(['a'], 'a.b')).toBe(false);
    expect(matchesAny(['a'], 'ab')).toBe(false);
    expect(matchesAny(['a'], 'A')).toBe(false);
    expect(matchesAny(['a.b'], 'a')).toBe(false);
    expect(matchesAny(['a.b'], 'a.b')).toBe(true);
    expect(matchesAny(['a.b'], 'a.b.c')).toBe(false);
  });

  it('`a.*` allows `a.b` and `a.` but not `a`', () => {
    expect(matchesAny(['a.*'], 'a.b')).toBe(true);
    expect(matchesAny(['a.*'], 'a.b.c')).toBe(true);
    expect(matchesAny(['a.*'], 'a.')).toBe(true);
    expect(matchesAny(['a.*'], 'a')).toBe(false);
    expect(matchesAny(['a.*'], 'ab')).toBe(false);
    expect(matchesAny(['a.*'], 'b.a')).toBe(false);
  });

  it('a prefix without a dot is a plain string prefix', () => {
    expect(matchesAny(['team-*'], 'team-1')).toBe(true);
    expect(matchesAny(['team-*'], 'team')).toBe(false);
  });

  it('any matching pattern in the list allows', () => {
    expect(matchesAny(['x', 'a.*'], 'a.b')).toBe(true);
    expect(matchesAny(['x', 'y.*'], 'a.b')).toBe(false);
  });

  it('property: an exact pattern allows exactly its own name', () => {
    fc.assert(
      fc.property(name, name, (p, n) => {
        expect(matchesAny([p], n)).toBe(p === n);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: a prefix pattern allows exactly the names starting with the prefix', () => {
    fc.assert(
      fc.property(name, name, (prefix, n) => {
        expect(matchesAny([prefix + '*'], n)).toBe(n.startsWith(prefix));
        // and never the prefix's own parent: `a.*` does not reach `a`
        if (prefix.endsWith('.')) expect(matchesAny([prefix + '*'], prefix.slice(0, -1))).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: a list allows a name iff one of its patterns does', () => {
    const pattern = fc.oneof(
      small,
      small.map((s) => s + '*'),
      fc.constant('*'),
    );
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 5 }), small, (ps, n) => {
        expect(matchesAny(ps, n)).toBe(ps.some((p) => matchesAny([p], n)));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: `a`, `a.b` and `a.*` are unrelated as names', () => {
    fc.assert(
      fc.property(name, small, (a, b) => {
        const child = `${a}.${b}`;
        expect(matchesAny([a], child)).toBe(false);
        expect(matchesAny([child], a)).toBe(false);
        expect(matchesAny([`${a}.*`], a)).toBe(false);
        expect(matchesAny([`${a}.*`], child)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('isPatternList', () => {
  it('accepts names, prefixes ending in one `*`, and `*`', () => {
    expect(isPatternList([])).toBe(true);
    expect(isPatternList(['a', 'a.*', '*', 'x:y@z-1_2', 'x'.repeat(128) + '*'])).toBe(true);
  });

  it.each([
    ['not an array', 'a'],
    ['an object', { 0: 'a' }],
    ['null', null],
    ['undefined', undefined],
    ['a non-string element', ['a', 1]],
    ['an empty pattern', ['']],
    ['`**`', ['**']],
    ['two trailing stars', ['a**']],
    ['a star in the middle', ['a*b']],
    ['a leading star', ['*a']],
    ['a space', ['a b']],
    ['`>`', ['a.>']],
    ['a name over 128 characters', ['x'.repeat(129)]],
    ['non-ASCII', ['caf\u00e9*']],
  ])('refuses %s', (_n, v) => {
    expect(isPatternList(v)).toBe(false);
  });

  it('property: lists of well-formed patterns are accepted; one bad element spoils the list', () => {
    const good = fc.oneof(
      name,
      name.map((s) => s + '*'),
      fc.constant('*'),
    );
    const bad = fc.oneof(
      fc.constant(''),
      fc.constant('**'),
      name.map((s) => s + '**'),
      fc.tuple(name, name).map(([a, b]) => `${a}*${b}`),
      name.map((s) => s + ' '),
    );
    fc.assert(
      fc.property(fc.array(good, { maxLength: 5 }), bad, fc.nat(), (list, b, at) => {
        expect(isPatternList(list)).toBe(true);
        const spoiled = [...list];
        spoiled.splice(at % (list.length + 1), 0, b);
        expect(isPatternList(spoiled)).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});
