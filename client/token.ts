// Reads a JWT's `exp` so the SDK can refresh before the server closes with 4010. It does not verify the
// token (the server does); a token whose payload cannot be read just has no known expiry.

/** `exp` in ms since epoch, or undefined when the token has none or is not a readable JWT. */
export function tokenExpiryMs(token: string): number | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    // Bytes above 0x7f come out as Latin-1 characters: still valid JSON, and `exp` is a plain number.
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
