// The hostile-client cases of contract section 7.1 that belong to one gateway process, against real
// standalone processes (memory engine, development tokens): joins overtaken by a leave or a close leave
// nothing behind, and the connection caps of a gateway (RTGW_MAX_CONNECTIONS, RTGW_MAX_CONNECT_RATE).
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import WebSocket from 'ws';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientPool, type TestClient } from '../harness/client.js';
import { httpGet, startNode, uid, type Node } from '../harness/cluster.js';
import { metrics, sum } from '../harness/metrics.js';
import { sleep, waitFor } from '../harness/wait.js';

const pool = new ClientPool();
const nodes: Node[] = [];

async function standalone(env: Record<string, string>): Promise<Node> {
  const n = await startNode('standalone', env);
  nodes.push(n);
  return n;
}

afterEach(() => pool.closeAll());
afterAll(async () => {
  await pool.closeAll();
  await Promise.all(nodes.map((n) => n.stop()));
});

const devToken = async (n: Node, user = uid('u')): Promise<string> =>
  ((await httpGet(`${n.httpUrl}/dev/token?user=${user}`)).json as { token: string }).token;
/** A bare upgrade request: the HTTP status and Retry-After of a refusal (101 when it was accepted). */
function upgrade(n: Node): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${n.httpUrl}/ws`, {
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve({ status: 101 });
    });
    req.on('error', reject);
    req.end();
  });
}

const connect = async (n: Node): Promise<TestClient> => pool.connect(n.url, { token: await devToken(n) });

describe('joins overtaken by a leave or a close (memory engine)', () => {
  let n: Node;
  beforeAll(async () => {
    n = await standalone({ RTGW_RATE_LIMIT: '1000' });
  });

  const corked = (c: TestClient, send: () => void) => {
    const socket = (c.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    send();
    socket.uncork();
  };
  const presenceCounts = async (rooms: string[]) => {
    const observer = await connect(n);
    return Promise.all(rooms.map(async (room) => (await observer.ok({ t: 'presence', room })).count as number));
  };
  const holdings = async () => {
    const e = await metrics(n);
    return {
      rooms: sum(e, 'rtgw_gateway_rooms'),
      members: sum(e, 'rtgw_gateway_room_members'),
      joiners: sum(e, 'rtgw_gateway_joiners'),
    };
  };

  it('join then leave, and joins then close, each in one write: nothing left in presence or in the gateway', async () => {
    const rooms = Array.from({ length: 20 }, () => uid('sa'));
    const a = await connect(n);
    corked(a, () =>
      rooms.forEach((room) => (a.fire({ t: 'join', room, presence: true }), a.fire({ t: 'leave', room }))),
    );
    const b = await connect(n);
    corked(b, () => {
      rooms.forEach((room, i) =>
        b.sendJson({ t: 'join', id: i + 1, room, presence: true, since: i % 2 === 0 ? 0 : undefined }),
      );
      b.ws.close(1000);
    });
    await b.closed;
    await waitFor(() => a.answers.size === 2 * rooms.length, 3000, 'every join and leave answered');
    await sleep(1200); // presence may show a gone member for at most 1 s
    expect(await presenceCounts(rooms)).toEqual(rooms.map(() => 0));
    expect(await holdings()).toEqual({ rooms: 0, members: 0, joiners: 0 });
  });
});

describe('RTGW_MAX_CONNECTIONS', () => {
  it('past the limit: HTTP 503 with Retry-After and /readyz 503 "full"; a closed connection makes room again', async () => {
    const n = await standalone({ RTGW_MAX_CONNECTIONS: '3' });
    const open = [await connect(n), await connect(n), await connect(n)];
    expect(await upgrade(n)).toEqual({ status: 503, retryAfter: '5' });
    const ready = await httpGet(`${n.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect((ready.json as { reasons: string[] }).reasons).toContain('full');
    // Refused before the token is looked at: a bad one gets the same answer, and nothing is counted as unauthorized.
    expect((await pool.refused(n.url, { token: 'not-a-token' })).status).toBe(503);
    const e = await metrics(n);
    expect(sum(e, 'rtgw_connections_rejected_total', { reason: 'full' })).toBe(2);
    expect(sum(e, 'rtgw_connections_rejected_total', { reason: 'unauthorized' })).toBe(0);
    await open[0]!.close();
    await waitFor(async () => (await httpGet(`${n.adminUrl}/readyz`)).status === 200, 3000, 'ready again');
    await connect(n);
  });
});

describe('RTGW_MAX_CONNECT_RATE', () => {
  it('upgrades past the rate get HTTP 503 with Retry-After: 1; the rate refills', async () => {
    const n = await standalone({ RTGW_MAX_CONNECT_RATE: '5' });
    const token = await devToken(n);
    const outcomes = await Promise.all(
      Array.from({ length: 15 }, () =>
        pool.connect(n.url, { token }).then(
          () => 'welcome',
          (e: { status?: number }) => `http ${e.status}`,
        ),
      ),
    );
    const welcomed = outcomes.filter((o) => o === 'welcome').length;
    expect(welcomed).toBeGreaterThanOrEqual(5);
    expect(welcomed).toBeLessThanOrEqual(7); // the burst of one second, and what refilled while the others came in
    expect(outcomes.filter((o) => o === 'http 503').length).toBe(15 - welcomed);
    expect(await upgrade(n)).toEqual({ status: 503, retryAfter: '1' });
    await sleep(1100);
    await connect(n);
  });
});

describe('frames sent before welcome', () => {
  let jwks: Server | undefined;
  afterAll(() => jwks?.close());

  it('are kept, 16 at most (then 1008), and stop at the one that closes the connection: joins after it add nothing', async () => {
    // A JWKS served over HTTPS (a test CA the node trusts) that answers after 400 ms: the first token waits
    // for it, so everything the client sends right after the upgrade arrives before `welcome`.
    const dir = mkdtempSync(join(tmpdir(), 'rtgw-jwks-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA' };
    jwks = createHttpsServer(
      { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      (_req, res) => {
        setTimeout(
          () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
          400,
        );
      },
    );
    await new Promise<void>((r) => jwks!.listen(0, '127.0.0.1', r));
    const n = await standalone({
      RTGW_JWT_JWKS_URL: `https://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
      NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
    });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
      .setSubject('early')
      .setExpirationTime('1h')
      .sign(privateKey);
    const ws = new WebSocket(`${n.url}?token=${token}`);
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    // Beside it, one that sends more than the 16 frames a connection may send before its welcome.
    const eager = new WebSocket(`${n.url}?token=${token}`);
    const eagerClosed = new Promise<[number, string]>((r) => eager.on('close', (code, why) => r([code, String(why)])));
    eager.on('open', () => {
      for (let i = 0; i < 17; i++) eager.send('{"t":"ping"}');
    });
    ws.on('open', () => {
      // Eleven bad frames (the eleventh strike closes with 1008), then joins that must not run.
      for (let i = 0; i < 11; i++) ws.send('x');
      for (let i = 0; i < 5; i++) ws.send(JSON.stringify({ t: 'join', id: i + 1, room: `early-${i}`, since: 0 }));
    });
    expect(await closed).toBe(1008);
    expect(await eagerClosed).toEqual([1008, 'too many frames before welcome']);
    await sleep(300);
    const e = await metrics(n);
    expect({
      rooms: sum(e, 'rtgw_gateway_rooms'),
      members: sum(e, 'rtgw_gateway_room_members'),
      joiners: sum(e, 'rtgw_gateway_joiners'),
    }).toEqual({ rooms: 0, members: 0, joiners: 0 });
  });
});
