// Token expiry (gateway/expiry.ts): a connection is closed at its token's exp, once; a refresh moves it; a
// closed connection is never armed (a refresh answered after its close must not keep it until exp).
import { afterEach, describe, expect, it } from 'vitest';
import type { Conn } from '../../gateway/connection.js';
import { Expiry } from '../../gateway/expiry.js';
import { sleep, waitFor } from '../harness/wait.js';

const conn = (expInSec: number, open = true) =>
  ({ id: 'c', claims: { exp: Date.now() / 1000 + expInSec }, open, expirySecond: 0 }) as unknown as Conn;

describe('Expiry', () => {
  const made: Expiry[] = [];
  const expiry = (expired: (c: Conn) => void) => {
    const e = new Expiry(expired);
    made.push(e);
    return e;
  };
  afterEach(() => made.splice(0).forEach((e) => e.stop()));

  it('expires an open connection at its exp, once', async () => {
    const gone: Conn[] = [];
    const c = conn(0.5);
    expiry((x) => gone.push(x)).arm(c);
    expect(c.expirySecond).toBeGreaterThan(0);
    await waitFor(() => gone.length > 0, 3000, 'the expiry');
    await sleep(1200); // a second walk of the buckets does not expire it again
    expect(gone).toEqual([c]);
  });

  it('never arms a closed connection, so nothing holds it until its exp', () => {
    const c = conn(3600, false);
    expiry(() => undefined).arm(c);
    expect(c.expirySecond).toBe(0);
  });
});
