// Injective encoding of names into one NATS token / Redis key segment: every byte outside
// [A-Za-z0-9_-@] becomes %XX, so `.`, `*`, `>`, `:`, `{`, `}` and `%` itself never appear raw.
// Two different names can never produce the same token, nor a token with subject or hash-tag syntax.
// Lone UTF-16 surrogates (JSON allows them, e.g. in a `mid`) become %uXXXX: UTF-8 would turn them all
// into U+FFFD, so two different mids would share one dedup key.
const SAFE = /^[A-Za-z0-9_\-@]*$/;
const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');

export function encodeName(name: string): string {
  if (SAFE.test(name)) return name;
  let out = '';
  for (const ch of name) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80 && SAFE.test(ch)) out += ch;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '%u' + hex(cp, 4);
    else for (const b of Buffer.from(ch, 'utf8')) out += '%' + hex(b, 2);
  }
  return out;
}

export function decodeName(token: string): string {
  if (!token.includes('%')) return token;
  return token.replace(/%u([0-9A-F]{4})|(?:%[0-9A-F]{2})+/g, (run, unit?: string) =>
    unit !== undefined ? String.fromCharCode(parseInt(unit, 16)) : decodeURIComponent(run),
  );
}

/** FNV-1a 32-bit: a stable hash shared by every process so they agree on a room's slot. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
