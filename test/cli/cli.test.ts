// The command line as an operator meets it: `rtgw standalone` on a bare machine (memory engine,
// development mode), refusals with one clear line and the documented exit codes, clean shutdown.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../harness/client.js';
import { freePort, httpGet, startNode, type Node } from '../harness/cluster.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const started: Node[] = [];

afterEach(async () => {
  for (const n of started.splice(0)) if (!n.hasExited) await n.stop();
});

/** Runs the CLI to its exit; returns the code and every line it wrote. */
function run(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<{ code: number | null; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RTGW_')));
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...clean, RTGW_HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rtgw ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, lines: out.split('\n').filter((l) => l.trim() !== '') });
    });
  });
}

const standalone = async (env: Record<string, string> = {}) => {
  const n = await startNode('standalone', env);
  started.push(n);
  return n;
};

describe('rtgw standalone on a bare machine', () => {
  it('serves development tokens, and two clients chat through it', async () => {
    const n = await standalone();
    expect(n.logs().join('\n')).toMatch(/DEVELOPMENT MODE/);
    expect(n.logs().join('\n')).toContain(`ws://127.0.0.1:${n.port}/ws`);
    const base = n.httpUrl;
    const tokenFor = async (user: string) =>
      ((await httpGet(`${base}/dev/token?user=${user}`)).json as { token: string }).token;
    const alice = await connect(n.url, { token: await tokenFor('alice') });
    const bob = await connect(n.url, { token: await tokenFor('bob') });
    expect(alice.user).toBe('alice');
    await alice.ok({ t: 'join', room: 'lobby' });
    await bob.ok({ t: 'join', room: 'lobby' });
    const ok = await bob.ok({ t: 'pub', room: 'lobby', data: { text: 'hi alice' } });
    const [msg] = await alice.waitForMsgs('lobby', 1);
    expect(msg).toMatchObject({ room: 'lobby', seq: ok.seq, from: 'bob', data: { text: 'hi alice' } });
    alice.terminate();
    bob.terminate();
    // A bad user name gets a clear 400, and no token.
    const bad = await httpGet(`${base}/dev/token?user=${encodeURIComponent('a b')}`);
    expect(bad.status).toBe(400);
    expect(bad.body).not.toContain('token"');
  });

  it('serves the demo page at / and the SDK bundle it loads, and says where', async () => {
    const n = await standalone();
    expect(n.logs().join('\n')).toContain(`demo page: http://127.0.0.1:${n.port}/`);
    const page = await fetch(`${n.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<title>rtgw demo</title>');
    const script = html.match(/<script type="module" src="([^"]+)">/)?.[1];
    expect(script).toBe('/demo.js');
    const app = await (await fetch(`${n.httpUrl}${script}`)).text();
    const sdkPath = app.match(/from '([^']+)'/)?.[1];
    expect(sdkPath).toBe('/sdk/rtgw.js');
    const sdk = await fetch(`${n.httpUrl}${sdkPath}`);
    expect(sdk.headers.get('content-type')).toMatch(/^text\/javascript/);
    const bundle = await sdk.text();
    // One self-contained ES module: it exports the client and imports nothing.
    expect(bundle).toMatch(/export\s*\{[^}]*\bRtgwClient\b/);
    expect(bundle).not.toMatch(/^\s*import\s/m);
  });

  it('does not serve /dev/token or the demo page when a key is configured', async () => {
    const n = await standalone({ RTGW_JWT_SECRET: 'a-real-secret-of-at-least-32-bytes!!' });
    expect((await httpGet(`${n.httpUrl}/dev/token?user=alice`)).status).toBe(404);
    expect((await httpGet(`${n.httpUrl}/`)).status).toBe(404);
    expect((await httpGet(`${n.httpUrl}/sdk/rtgw.js`)).status).toBe(404);
    expect(n.logs().join('\n')).not.toMatch(/DEVELOPMENT MODE/);
  });

  it('exits 0 after SIGTERM, telling connected clients to go elsewhere first', async () => {
    const n = await standalone({ RTGW_DRAIN_SECONDS: '1' });
    const token = ((await httpGet(`${n.httpUrl}/dev/token?user=carol`)).json as { token: string }).token;
    const c = await connect(n.url, { token });
    const code = await n.stop();
    expect(code).toBe(0);
    expect(c.of('drain')).toHaveLength(1);
    expect((await c.closed).code).toBe(1001);
  });
});

describe('refusals: one clear line and the documented exit code', () => {
  it('bad configuration exits 2', async () => {
    const { code, lines } = await run(['standalone'], { RTGW_PORT: 'eighty' });
    expect(code).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/RTGW_PORT/);
  });

  it('a gateway without a key exits 2', async () => {
    const { code, lines } = await run(['gateway'], {
      RTGW_NATS_URL: 'nats://127.0.0.1:1',
      RTGW_REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(code).toBe(2);
    expect(lines.join('\n')).toMatch(/RTGW_JWT_SECRET/);
  });

  it('an unknown role exits 2', async () => {
    const { code, lines } = await run(['gatewya'], {});
    expect(code).toBe(2);
    expect(lines.join('\n')).toMatch(/unknown role/);
  });

  it('a port in use exits 1 with one error line naming it', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const { code, lines } = await run(['standalone'], {
        RTGW_PORT: String(port),
        RTGW_ADMIN_PORT: String(await freePort()),
      });
      expect(code).toBe(1);
      const errors = lines.filter((l) => /"level":(50|60)/.test(l));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(String(port));
    } finally {
      busy.close();
    }
  });

  it("refuses to run on uWebSockets.js's pure-JS fallback", async () => {
    const { code, lines } = await run(['standalone'], {
      UWS_USE_FALLBACK: '1',
      RTGW_PORT: String(await freePort()),
      RTGW_ADMIN_PORT: String(await freePort()),
    });
    expect(code).toBe(1);
    expect(lines.join('\n')).toMatch(/native addon is not loaded/);
  });

  it('--help prints the roles', async () => {
    const { code, lines } = await run(['--help'], {});
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(/standalone.*\n.*gateway.*\n.*router/);
  });
});
