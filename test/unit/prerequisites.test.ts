// scripts/prerequisites.mjs, run as `npm test` runs it, against directories of stub programs instead of
// the machine's: a missing program stops the run with the exact install command and exit code 3, never
// prompting (no stdin); with apt-get at hand it installs the missing package (a stub apt-get that logs
// its arguments and "installs" the program) and lets the run go on. And the wiring: `npm test` runs the
// script first, `.ci/run` runs exactly the README's test command.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_MISSING, PREREQUISITES } from '../../scripts/prerequisites.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = join(root, 'scripts', 'prerequisites.mjs');
const isRoot = process.getuid?.() === 0;
const sudo = isRoot ? '' : 'sudo ';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stub(dir: string, name: string, body = 'exit 0'): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

/** A directory holding a stub of every program of the list except `without`. */
function machine(without: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'rtgw-prereq-'));
  dirs.push(dir);
  for (const p of PREREQUISITES) if (!without.includes(p.bin)) stub(dir, p.bin);
  return dir;
}

function runScript(dir: string, ...flags: string[]) {
  return spawnSync(process.execPath, [script, `--search=${dir}`, ...flags], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: 'true' },
    timeout: 20_000,
  });
}

describe('scripts/prerequisites.mjs', () => {
  it('says nothing and exits 0 when every program is there', () => {
    const r = runScript(machine([]), '--no-install');
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
  });

  it('stops with the exact install command when docker-compose is missing and installing is forbidden', () => {
    const dir = machine(['docker-compose']);
    const r = runScript(dir, '--no-install');
    expect(r.status).toBe(EXIT_MISSING);
    expect(EXIT_MISSING).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        `npm test needs programs from Debian packages that are not installed (looked in ${dir}):`,
        '  - docker-compose (Debian package docker-compose): test/deploy/compose.test.ts validates deploy/compose.yaml',
        'Install them with:',
        `  ${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends docker-compose`,
        '',
      ].join('\n'),
    );
  });

  it('names a package once when two of its programs are missing, and only the missing program', () => {
    const r = runScript(machine(['promtool', 'chromium']), '--no-install');
    expect(r.status).toBe(EXIT_MISSING);
    expect(r.stderr).toContain('  - promtool (Debian package prometheus)');
    expect(r.stderr).not.toContain('  - prometheus ');
    expect(r.stderr).toContain(`${sudo}apt-get install -y --no-install-recommends prometheus chromium\n`);
  });

  it('without apt-get (and not told --no-install) says it cannot install, then the same message', () => {
    const r = runScript(machine(['nats-server']));
    expect(r.status).toBe(EXIT_MISSING);
    expect(r.stderr).toMatch(/^prerequisites: cannot install \(needs root or passwordless sudo, and apt-get\)\n/);
    expect(r.stderr).toContain(
      `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends nats-server\n`,
    );
  });

  it('installs a missing package with apt-get, without prompting, and goes on', () => {
    const dir = machine(['docker-compose']);
    const log = join(dir, 'apt.log');
    // apt-get logs its arguments (and its environment's frontend); `install` puts docker-compose in place.
    stub(
      dir,
      'apt-get',
      [
        `echo "$DEBIAN_FRONTEND $*" >> ${log}`,
        `if [ "$1" = install ]; then printf '#!/bin/sh\\n' > ${dir}/docker-compose; chmod 755 ${dir}/docker-compose; fi`,
      ].join('\n'),
    );
    // For a non-root run: passwordless sudo that runs its command (drops -n).
    stub(dir, 'sudo', '[ "$1" = -n ] && shift; exec "$@"');
    const r = runScript(dir);
    expect(r.stderr).toBe('prerequisites: installing docker-compose with apt-get\n');
    expect(r.status).toBe(0);
    expect(readFileSync(log, 'utf8')).toBe(
      'noninteractive update -q\nnoninteractive install -y -q --no-install-recommends docker-compose\n',
    );
  });

  it('when apt-get fails, stops with the message', () => {
    const dir = machine(['chromium']);
    stub(dir, 'apt-get', 'exit 100');
    stub(dir, 'sudo', '[ "$1" = -n ] && shift; exec "$@"');
    const r = runScript(dir);
    expect(r.status).toBe(EXIT_MISSING);
    expect(r.stderr).toContain('prerequisites: apt-get failed (its output is above)\n');
    expect(r.stderr).toContain(`apt-get install -y --no-install-recommends chromium\n`);
  });
});

describe('the test command', () => {
  it('npm test runs the prerequisites first, then the lint and format checks, before the build and any test', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.test).toMatch(/^node scripts\/prerequisites\.mjs && npm run lint && npm run build && /);
    expect(pkg.scripts.lint).toBe('eslint . && prettier --check .');
  });

  it(".ci/run runs exactly the README's test command, after npm ci", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toMatch(/^npm test +#/m);
    const commands = readFileSync(join(root, '.ci', 'run'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(commands.slice(-2)).toEqual(['npm ci --no-audit --no-fund', 'npm test']);
    expect(commands.join('\n')).not.toMatch(/apt-get|vitest/);
  });

  it('the README names every Debian package of the list', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const p of PREREQUISITES) expect(readme).toContain(`\`${p.pkg}\``);
  });
});
