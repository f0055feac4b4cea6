// Fails the run early, with the fix spelled out, when what the cluster tests spawn is missing:
// the nats-server and redis-server binaries and the built CLI (`npm test` builds it first).
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of an executable on PATH or in /usr/sbin, /usr/bin; undefined when absent. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin'];
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

export default function setup(): void {
  const problems: string[] = [];
  for (const bin of ['nats-server', 'redis-server']) {
    if (findBinary(bin) === undefined) {
      problems.push(`${bin} not found on PATH, /usr/sbin or /usr/bin: install it with \`apt-get install ${bin}\``);
    }
  }
  if (!existsSync(join(root, 'dist', 'cli.js'))) {
    problems.push('dist/cli.js not found: run `npm run build` first (`npm test` does)');
  }
  if (problems.length > 0) throw new Error(`test prerequisites missing:\n  - ${problems.join('\n  - ')}`);
}
