// The one list of programs `npm test` needs from Debian's packages, and the one place that looks for them.
//
// Run first by `npm test` (before the build, before any test): when a package is missing it installs it
// with apt-get if it can (root, or passwordless `sudo -n`, and apt-get present; never a prompt, so it
// works with CI=true and no stdin), and otherwise stops at once with the exact install command. The
// tests import findBinary/requireBinary from here, so where a program is looked for and what to install
// when it is not found is said once.
//
//   node scripts/prerequisites.mjs [--no-install] [--search=DIR:DIR...]
//
// --no-install never installs (only reports). --search replaces the directories looked in (PATH, then
// the sbin directories Debian installs servers into, which a non-root PATH lacks), so a test can run
// the script as if a program were missing without uninstalling it.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Each program the tests run, the Debian package that ships it, and the tests that need it. */
export const PREREQUISITES = [
  { bin: 'nats-server', pkg: 'nats-server', usedBy: 'every cluster test starts one' },
  { bin: 'redis-server', pkg: 'redis-server', usedBy: 'every cluster test starts one' },
  { bin: 'prometheus', pkg: 'prometheus', usedBy: 'test/ops/prometheus.test.ts scrapes a running cluster' },
  { bin: 'promtool', pkg: 'prometheus', usedBy: 'test/ops/prometheus.test.ts checks and unit-tests the alert rules' },
  // Compose v1 validates deploy/compose.yaml without a Docker engine.
  { bin: 'docker-compose', pkg: 'docker-compose', usedBy: 'test/deploy/compose.test.ts validates deploy/compose.yaml' },
  // Debian's own build: npm's playwright cannot download a browser here, playwright-core drives this one.
  { bin: 'chromium', pkg: 'chromium', usedBy: 'test/browser/demo.test.ts drives the demo page' },
];

/** Exit code when a package is missing and was not (or could not be) installed. */
export const EXIT_MISSING = 3;

/** PATH, then Debian's sbin directories (nats-server is /usr/sbin/nats-server; a user's PATH lacks them). */
export function defaultSearch(env = process.env) {
  return [...(env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);
}

/** Absolute path of an executable named `name` in `dirs`; undefined when absent. */
export function findBinary(name, dirs = defaultSearch()) {
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The Debian packages (each once, in list order) of the programs missing from `dirs`. */
export function missingPackages(dirs = defaultSearch()) {
  const pkgs = PREREQUISITES.filter((p) => findBinary(p.bin, dirs) === undefined).map((p) => p.pkg);
  return [...new Set(pkgs)];
}

/** The command a person runs to install `pkgs`: with sudo unless they are root. */
export function installCommand(pkgs, isRoot = process.getuid?.() === 0) {
  const sudo = isRoot ? '' : 'sudo ';
  return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

/** The message printed when packages are missing; also what requireBinary throws. */
export function missingMessage(pkgs, dirs = defaultSearch()) {
  const lines = PREREQUISITES.filter((p) => pkgs.includes(p.pkg) && findBinary(p.bin, dirs) === undefined).map(
    (p) => `  - ${p.bin} (Debian package ${p.pkg}): ${p.usedBy}`,
  );
  return [
    `npm test needs programs from Debian packages that are not installed (looked in ${dirs.join(delimiter)}):`,
    ...lines,
    'Install them with:',
    `  ${installCommand(pkgs)}`,
  ].join('\n');
}

/** Path of a program the tests need; throws the install command when it is missing. */
export function requireBinary(name) {
  const p = PREREQUISITES.find((x) => x.bin === name);
  if (p === undefined) throw new Error(`${name} is not in scripts/prerequisites.mjs's PREREQUISITES`);
  const path = findBinary(name);
  if (path === undefined) throw new Error(missingMessage([p.pkg]));
  return path;
}

/**
 * How to run apt-get without a prompt, or undefined when this user cannot: as root directly, otherwise
 * through `sudo -n` (fails instead of asking for a password) if that works.
 */
function aptRunner(dirs) {
  const apt = findBinary('apt-get', dirs);
  if (apt === undefined) return undefined;
  if (process.getuid?.() === 0) return (args) => run(apt, args);
  const sudo = findBinary('sudo', dirs);
  if (sudo === undefined || run(sudo, ['-n', 'true']) !== 0) return undefined;
  return (args) => run(sudo, ['-n', apt, ...args]);
}

function run(cmd, args) {
  // No stdin: nothing may wait for an answer. Output goes to stderr so it reads as the script's own.
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 2, 2],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return r.status ?? 1;
}

function main(argv) {
  const noInstall = argv.includes('--no-install');
  const search = argv.find((a) => a.startsWith('--search='));
  const dirs =
    search === undefined ? defaultSearch() : search.slice('--search='.length).split(delimiter).filter(Boolean);

  let missing = missingPackages(dirs);
  if (missing.length === 0) return 0;
  const apt = noInstall ? undefined : aptRunner(dirs);
  if (apt !== undefined) {
    console.error(`prerequisites: installing ${missing.join(' ')} with apt-get`);
    const ok = apt(['update', '-q']) === 0 && apt(['install', '-y', '-q', '--no-install-recommends', ...missing]) === 0;
    if (ok) missing = missingPackages(dirs);
    if (!ok) console.error('prerequisites: apt-get failed (its output is above)');
  } else if (!noInstall) {
    console.error('prerequisites: cannot install (needs root or passwordless sudo, and apt-get)');
  }
  if (missing.length === 0) return 0;
  console.error(missingMessage(missing, dirs));
  return EXIT_MISSING;
}

// Run as a script (not imported by a test). Node resolves symlinks in the module's URL, not in argv[1].
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  process.exitCode = main(process.argv.slice(2));
}
