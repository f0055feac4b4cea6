// The Redis connection: refuses an evicting server, fails fast instead of hanging while Redis is
// down or stalled, and recovers when it is back.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertNoEviction, openRedis } from '../../shared/redis/connection.js';
import { redisStores } from '../../shared/store/redis.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';
import { DEFAULT_LIMITS, uniquePrefix } from './backends.js';

type Client = Awaited<ReturnType<typeof openRedis>>;

describe('Redis connection', () => {
  const servers: RedisServer[] = [];
  const clients: Client[] = [];
  const server = async (args: string[] = []) => {
    const s = await startRedis({ args });
    servers.push(s);
    return s;
  };
  const client = async (url: string, opts?: Parameters<typeof openRedis>[2]) => {
    const c = await openRedis(url, 'connection-test', opts);
    clients.push(c);
    return c;
  };
  let plain: RedisServer;

  beforeAll(async () => {
    plain = await server();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('accepts a noeviction server and refuses an allkeys-lru one', async () => {
    expect(await assertNoEviction(await client(plain.url))).toBeNull();
    const lru = await server(['--maxmemory-policy', 'allkeys-lru']);
    await expect(assertNoEviction(await client(lru.url))).rejects.toThrow(/"allkeys-lru".*"noeviction"/);
  });

  it('warns, without refusing, when CONFIG is disabled', async () => {
    const locked = await server(['--rename-command', 'CONFIG', '']);
    const warning = await assertNoEviction(await client(locked.url));
    expect(warning).toMatch(/maxmemory-policy.*noeviction/);
  });

  it('rejects with a clear error when nothing answers, within its deadline', async () => {
    const gone = await server();
    await gone.stop();
    const started = Date.now();
    await expect(openRedis(gone.url, 'nobody', { connectDeadlineMs: 500 })).rejects.toThrow(
      new RegExp(`Redis redis://127\\.0\\.0\\.1:${gone.port}/? unreachable`),
    );
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('fails a command within seconds while the server is stalled, and works again after', async () => {
    const s = await server();
    const c = await client(s.url, { commandTimeoutMs: 500 });
    await c.set('k', 'v');
    s.pause();
    try {
      const started = Date.now();
      await expect(c.get('k')).rejects.toThrow(/timed out/i);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      s.resume();
    }
    await waitFor(async () => (await c.get('k')) === 'v', 5_000, 'the client to answer again');
  });

  it('fails fast while the server is down, reports it, and recovers with an empty history', async () => {
    const s = await server();
    const c = await client(s.url);
    const stores = redisStores(c, uniquePrefix(), DEFAULT_LIMITS);
    const lease = (await stores.leases.acquire(0, 'r1', 60_000))!;
    const before = await stores.log.append({ slot: 0, room: 'room', from: 'u', dataJson: '1' }, lease);
    expect(stores.connected).toBe(true);

    await s.kill('SIGKILL');
    await waitFor(() => !stores.connected, 5_000, 'connected to turn false');
    const started = Date.now();
    await expect(stores.log.read(0, 'room', 0)).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(4_000);

    await s.restart();
    await waitFor(() => stores.connected, 10_000, 'connected to turn true');
    const after = await stores.log.read(0, 'room', 1);
    expect(after).toMatchObject({ seq: 0, complete: false });
    expect(after.epoch).not.toBe(before.epoch);
    await stores.close();
    expect(c.status).toBe('end');
  });
});
