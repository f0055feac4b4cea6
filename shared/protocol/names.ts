// Room and user names, and the permission patterns of a token's `rooms` / `pub` claims.

export type RoomId = string & { readonly __brand: 'RoomId' };
export type UserId = string & { readonly __brand: 'UserId' };
export type ConnId = string & { readonly __brand: 'ConnId' };

/** 1..128 characters of A-Z a-z 0-9 _ - : @ . — shared by rooms and user ids. */
const NAME = /^[A-Za-z0-9_\-:@.]{1,128}$/;

export const isName = (s: unknown): s is string => typeof s === 'string' && NAME.test(s);
export const isRoomId = (s: unknown): s is RoomId => isName(s);
export const isUserId = (s: unknown): s is UserId => isName(s);

/**
 * A pattern is an exact name or a prefix ending in `*`. `undefined` (claim absent) allows everything;
 * an empty list allows nothing. `*` alone allows every name.
 */
export function matchesAny(patterns: readonly string[] | undefined, name: string): boolean {
  if (patterns === undefined) return true;
  for (const p of patterns) {
    if (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p) return true;
  }
  return false;
}

/** Claims may only hold well-formed patterns: a name, optionally followed by one trailing `*`, or `*`. */
export function isPatternList(v: unknown): v is string[] {
  return (
    Array.isArray(v) &&
    v.every((p) => typeof p === 'string' && (p === '*' || isName(p.endsWith('*') ? p.slice(0, -1) : p)))
  );
}
