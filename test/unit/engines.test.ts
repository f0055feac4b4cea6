// package.json's `engines` promises only the Node versions the installed uWebSockets.js build has a native
// addon for: the gateway refuses its pure-JS fallback (gateway/native.ts), so on any other Node it would
// not start. A widened range without a new uWS build, or a README that says otherwise, fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
/** process.versions.modules of each Node major (nodejs.org/en/download/releases, "NODE_MODULE_VERSION"). */
const ABI_OF_MAJOR: Record<number, number> = { 16: 93, 18: 108, 20: 115, 22: 127, 24: 137 };

it('engines allows exactly the Node majors whose ABI the uWS build ships, and the README says which', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
  const m = /^>=(\d+) <(\d+)$/.exec(pkg.engines.node);
  expect(m, `engines.node ${pkg.engines.node} is not of the form ">=A <B"`).not.toBeNull();
  const [from, to] = [Number(m![1]), Number(m![2])];
  const binaries = readdirSync(join(root, 'node_modules', 'uWebSockets.js', 'binaries'));
  const platform = `${process.platform}_${process.arch}`;
  const shipped = new Set(
    binaries
      .map((f) => new RegExp(`^uws_${platform}_(\\d+)\\.node$`).exec(f)?.[1])
      .filter((x) => x !== undefined)
      .map(Number),
  );
  for (let major = from; major < to; major++) {
    expect(shipped, `Node ${major} (ABI ${ABI_OF_MAJOR[major]}) has no uws_${platform} addon`).toContain(
      ABI_OF_MAJOR[major],
    );
  }
  // The next even (LTS) major past the range has no addon: otherwise the range is narrower than it need be.
  const next = to % 2 === 0 ? to : to + 1;
  expect(shipped.has(ABI_OF_MAJOR[next] ?? -1), `the uWS build now ships Node ${next}'s ABI: widen engines`).toBe(
    false,
  );
  // This very run is on an allowed Node, and the addon it loaded is one of those.
  expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(from);
  expect(Number(process.versions.node.split('.')[0])).toBeLessThan(to);
  expect(shipped).toContain(Number(process.versions.modules));
  expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain(`\`engines\`: \`${pkg.engines.node}\``);
});
