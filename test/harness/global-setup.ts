// Fails the run early, with the fix spelled out, when the built CLI the cluster tests spawn is missing
// (`npm test` builds it first). The Debian programs the tests run are checked by
// scripts/prerequisites.mjs, the one list of them: `npm test` runs it before anything else, and each
// harness finds its program through its requireBinary, which names the install command.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

export default function setup(): void {
  if (!existsSync(join(root, 'dist', 'cli.js'))) {
    throw new Error('test prerequisites missing: dist/cli.js not found: run `npm run build` first (`npm test` does)');
  }
}
