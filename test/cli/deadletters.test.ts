// `rtgw deadletters list|redrive` as an operator runs it, against a real cluster with a dead letter in it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientPool, type TestClient } from '../harness/client.js';
import { startCluster, uid, type Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
let cluster: Cluster;
const pool = new ClientPool();

beforeAll(async () => {
  // One delivery and no retry: an unacknowledged dm is dead-lettered one ack timeout after it is sent.
  cluster = await startCluster({
    gateways: 1,
    routers: 1,
    env: { RTGW_DM_ACK_TIMEOUT_MS: '100', RTGW_DM_MAX_ATTEMPTS: '1' },
  });
}, 60_000);
afterAll(async () => {
  await pool.closeAll();
  await cluster?.stop();
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'deadletters', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const natsEnv = () => ({ RTGW_NATS_URL: cluster.nats.url, RTGW_NATS_PREFIX: cluster.env.RTGW_NATS_PREFIX! });
const client = async (user: string): Promise<TestClient> =>
  pool.connect(cluster.gateways[0]!.url, { token: await cluster.token(user) });

describe('rtgw deadletters', () => {
  it('lists a dead letter with its reason and attempts, and re-drives it under a new seq', async () => {
    const deaf = uid('deaf');
    const recipient = await client(deaf); // connected, never acks
    const sender = await client(uid('sender'));
    const ok = await sender.ok({ t: 'dm', to: deaf, data: { text: 'are you there?' } });
    await recipient.next((f) => f.t === 'dm' && f.seq === ok.seq);

    let listed: { deadLetters: { id: string; user: string; seq: number; reason: string; attempts: number }[] } = {
      deadLetters: [],
    };
    await waitFor(
      async () => {
        const r = await run(['list', '--user', deaf], natsEnv());
        expect(r.code, r.err).toBe(0);
        listed = JSON.parse(r.out);
        return listed.deadLetters.length === 1;
      },
      10_000,
      'the dm to be dead-lettered',
    );
    expect(listed.deadLetters[0]).toMatchObject({ user: deaf, seq: ok.seq, reason: 'attempts', attempts: 1 });

    const r = await run(['redrive', '--all', '--user', deaf], natsEnv());
    expect(r.code, r.err).toBe(0);
    const { redriven, missing } = JSON.parse(r.out) as { redriven: { id: string; seq: number }[]; missing: string[] };
    expect(missing).toEqual([]);
    expect(redriven).toEqual([{ id: listed.deadLetters[0]!.id, seq: ok.seq + 1 }]);
    const again = await recipient.next((f) => f.t === 'dm' && f.seq === ok.seq + 1);
    expect(again.data).toEqual({ text: 'are you there?' });
    recipient.sendJson({ t: 'ack', seq: again.seq });

    const after = JSON.parse((await run(['list', '--user', deaf], natsEnv())).out) as typeof listed;
    expect(after.deadLetters).toEqual([]);
  });

  it('explains its usage and exits 2 without a NATS URL or with an unknown verb', async () => {
    const noUrl = await run(['list'], { RTGW_NATS_URL: '' });
    expect(noUrl.code).toBe(2);
    expect(noUrl.err).toMatch(/usage: rtgw deadletters/);
    const badVerb = await run(['purge'], natsEnv());
    expect(badVerb.code).toBe(2);
  });

  it('refuses a prefix the config loader refuses, before connecting, and exits 2', async () => {
    const r = await run(['list'], { ...natsEnv(), RTGW_NATS_PREFIX: 'a.b' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/usage: rtgw deadletters/);
    expect(r.err).toContain('bad configuration: RTGW_NATS_PREFIX must be 1 to 32 characters');
  });
});
