// Fails the run early, with the fix spelled out, when what the cluster tests spawn is missing:
// the nats-server and redis-server binaries and the built CLI (`npm test` builds it first).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingBinary, whichBinary } from '../../bench/launcher.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of an executable on PATH or in /usr/sbin, /usr/bin, /usr/local/bin; undefined when absent. */
export const findBinary = whichBinary;

export default function setup(): void {
  const problems: string[] = [];
  for (const bin of ['nats-server', 'redis-server']) {
    if (whichBinary(bin) === undefined) problems.push(missingBinary(bin));
  }
  if (!existsSync(join(root, 'dist', 'cli.js'))) {
    problems.push('dist/cli.js not found: run `npm run build` first (`npm test` does)');
  }
  if (problems.length > 0) throw new Error(`test prerequisites missing:\n  - ${problems.join('\n  - ')}`);
}
