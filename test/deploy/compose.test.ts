// The compose file as Compose itself reads it: Debian's docker-compose validates and renders it
// without a Docker engine (`config` never talks to one).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { requireBinary } from '../../scripts/prerequisites.mjs';

const run = promisify(execFile);
const compose = fileURLToPath(new URL('../../deploy/compose.yaml', import.meta.url));
const secret = 'compose-test-secret-0123456789abcdef';

async function config(env: Record<string, string>) {
  return run(requireBinary('docker-compose'), ['-p', 'rtgw', '-f', compose, 'config'], {
    env: { ...process.env, ...env },
  }).catch((e: { stderr?: string }) => {
    return { stdout: '', stderr: String(e.stderr ?? e), failed: true as const };
  });
}

describe('deploy/compose.yaml', () => {
  it('is valid for docker-compose and renders every service with the secret and Redis settings', async () => {
    const r = await config({ RTGW_JWT_SECRET: secret });
    expect('failed' in r, r.stderr).toBe(false);
    const rendered = parse(r.stdout) as {
      services: Record<string, { environment?: Record<string, string>; command?: string | string[] }>;
    };
    const names = Object.keys(rendered.services);
    for (const s of ['nats', 'redis', 'router-1', 'router-2', 'gateway-1', 'gateway-2', 'prometheus', 'grafana'])
      expect(names).toContain(s);
    expect(rendered.services['gateway-1']!.environment?.RTGW_JWT_SECRET).toBe(secret);
    const redis = [rendered.services.redis!.command].flat().join(' ');
    expect(redis).toMatch(/noeviction/);
    expect(redis).toMatch(/appendonly yes/);
  });

  it('refuses to render without a token secret, naming the variable', async () => {
    const r = await config({ RTGW_JWT_SECRET: '' });
    expect('failed' in r).toBe(true);
    expect(r.stderr).toMatch(/RTGW_JWT_SECRET/);
  });
});
