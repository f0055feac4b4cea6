// The import-boundary test (style.md): which folder may import which, and which files alone may import
// NATS, ioredis and uWebSockets.js; and that bench/ has no import cycle. Import specifiers are read with
// TypeScript's own pre-processor, so comments and strings that look like imports are not mistaken for them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

export interface SourceFile {
  /** Repository-relative path with `/` separators, e.g. `shared/protocol/codec.ts`. */
  path: string;
  specifiers: string[];
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCANNED_DIRS = ['shared', 'gateway', 'router', 'client'];
const SCANNED_FILES = ['cli.ts'];

function tsFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(posix.join(ROOT, dir));
  } catch {
    return []; // a folder nobody has written yet
  }
  return entries.flatMap((e) => {
    const rel = posix.join(dir, e);
    if (statSync(posix.join(ROOT, rel)).isDirectory()) return tsFiles(rel);
    return /\.(m|c)?ts$/.test(e) && !e.endsWith('.d.ts') ? [rel] : [];
  });
}

export function specifiersOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

export function scanRepo(): SourceFile[] {
  const files = [...SCANNED_DIRS.flatMap(tsFiles), ...SCANNED_FILES.filter((f) => existsSync(posix.join(ROOT, f)))];
  return files.map((path) => ({ path, specifiers: specifiersOf(readFileSync(posix.join(ROOT, path), 'utf8')) }));
}

const isNats = (s: string) => s.startsWith('@nats-io/') || s === 'nats' || s.startsWith('nats/');
const isIoredis = (s: string) => s === 'ioredis' || s.startsWith('ioredis/');
const isUws = (s: string) => s === 'uWebSockets.js' || s.startsWith('uWebSockets.js/');
const under = (path: string, dir: string) => path.startsWith(dir + '/');

/** A relative specifier as a repository-relative path; undefined for packages and built-ins. */
function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return posix.normalize(posix.join(posix.dirname(from), spec));
}

/** Every broken rule, as `file: problem` lines; empty when the import graph respects the boundaries. */
export function checkBoundaries(files: readonly SourceFile[]): string[] {
  const out: string[] = [];
  for (const { path, specifiers } of files) {
    for (const spec of specifiers) {
      const target = resolve(path, spec);
      const bad = (why: string) => out.push(`${path}: imports ${JSON.stringify(spec)}: ${why}`);

      if (under(path, 'shared/protocol') && !(target !== undefined && under(target, 'shared/protocol'))) {
        bad('shared/protocol/ imports only from shared/protocol/ (no packages, no node: modules)');
      }
      if (under(path, 'shared') && target !== undefined && /^(gateway|router|client)\/|^cli\.[mc]?[jt]s$/.test(target)) {
        bad('shared/ never imports gateway/, router/, client/ or the CLI');
      }
      if (isNats(spec) && path !== 'shared/bus/nats.ts') {
        bad('only shared/bus/nats.ts imports NATS');
      }
      if (isIoredis(spec) && !(under(path, 'shared/redis') || /^shared\/store\/redis[^/]*\.ts$/.test(path))) {
        bad('only shared/redis/ and shared/store/redis*.ts import ioredis');
      }
      if (isUws(spec) && !under(path, 'gateway')) {
        bad('only gateway/ imports uWebSockets.js');
      }
      if (
        under(path, 'client') &&
        !(target !== undefined && (under(target, 'client') || under(target, 'shared/protocol')))
      ) {
        bad('client/ imports only from client/ and shared/protocol/');
      }
      if (under(path, 'gateway') && target !== undefined && under(target, 'router')) {
        bad('gateway/ never imports router/');
      }
      if (under(path, 'router') && target !== undefined && under(target, 'gateway')) {
        bad('router/ never imports gateway/');
      }
      if (target !== undefined && target.startsWith('../')) {
        bad('imports from outside the repository');
      }
    }
  }
  return out;
}

describe('import boundaries of this repository', () => {
  const files = scanRepo();

  it('finds the source files', () => {
    const paths = files.map((f) => f.path);
    expect(paths).toContain('shared/protocol/codec.ts');
    expect(paths).toContain('shared/config.ts');
    // the scanner sees real imports
    const codec = files.find((f) => f.path === 'shared/protocol/codec.ts')!;
    expect(codec.specifiers).toContain('./codes.js');
  });

  it('respects every boundary', () => {
    expect(checkBoundaries(files)).toEqual([]);
  });
});

describe('specifiersOf', () => {
  it('reads every kind of import and re-export, and ignores comments and strings', () => {
    const src = [
      "import a from './a.js';",
      "import type { B } from './b.js';",
      "import * as c from 'c';",
      "import {\n  d1,\n  d2,\n} from './d.js';",
      "import './e.js';",
      "export * from './f.js';",
      "export { g } from './g.js';",
      "export type { H } from './h.js';",
      "const i = await import('i');",
      "// import x from 'commented';",
      "/* import y from 'blocked'; */",
      "const s = \"import z from 'quoted'\";",
      'export const notAnImport = 1;',
    ].join('\n');
    expect(specifiersOf(src).sort()).toEqual(['./a.js', './b.js', './d.js', './e.js', './f.js', './g.js', './h.js', 'c', 'i']);
  });
});

describe('checkBoundaries catches every broken rule', () => {
  const clean: SourceFile[] = [
    { path: 'shared/protocol/codec.ts', specifiers: ['./codes.js', './frames.js'] },
    { path: 'shared/config.ts', specifiers: ['node:os', './cluster/slots.js', './protocol/codes.js'] },
    { path: 'shared/bus/nats.ts', specifiers: ['@nats-io/transport-node', './bus.js'] },
    { path: 'shared/redis/connection.ts', specifiers: ['ioredis'] },
    { path: 'shared/store/redis-history.ts', specifiers: ['ioredis', '../redis/connection.js'] },
    { path: 'gateway/server.ts', specifiers: ['uWebSockets.js', '../shared/config.js', 'jose'] },
    { path: 'router/router.ts', specifiers: ['../shared/bus/bus.js', 'node:crypto'] },
    { path: 'client/index.ts', specifiers: ['./socket.js', '../shared/protocol/codec.js'] },
    { path: 'cli.ts', specifiers: ['./gateway/server.js', './router/router.js', './shared/redis/connection.js', './shared/bus/nats.js'] },
  ];

  it('passes a clean graph', () => {
    expect(checkBoundaries(clean)).toEqual([]);
  });

  it.each<[string, SourceFile, RegExp]>([
    ['protocol importing shared/', { path: 'shared/protocol/codec.ts', specifiers: ['../config.js'] }, /shared\/protocol/],
    ['protocol importing a node: module', { path: 'shared/protocol/names.ts', specifiers: ['node:crypto'] }, /no node/],
    ['protocol importing a bare built-in', { path: 'shared/protocol/names.ts', specifiers: ['buffer'] }, /shared\/protocol/],
    ['protocol importing a package', { path: 'shared/protocol/frames.ts', specifiers: ['jose'] }, /shared\/protocol/],
    ['protocol escaping with ../../', { path: 'shared/protocol/x.ts', specifiers: ['../../gateway/a.js'] }, /shared\/protocol/],
    ['shared importing gateway/', { path: 'shared/metrics.ts', specifiers: ['../gateway/server.js'] }, /never imports gateway/],
    ['shared importing router/', { path: 'shared/store/ports.ts', specifiers: ['../../router/room.js'] }, /never imports/],
    ['shared importing client/', { path: 'shared/log.ts', specifiers: ['../client/index.js'] }, /never imports/],
    ['shared importing the CLI', { path: 'shared/log.ts', specifiers: ['../cli.js'] }, /CLI/],
    ['NATS outside the bus file', { path: 'shared/bus/bus.ts', specifiers: ['@nats-io/transport-node'] }, /NATS/],
    ['NATS core in a gateway', { path: 'gateway/egress.ts', specifiers: ['@nats-io/nats-core'] }, /NATS/],
    ['ioredis in a router', { path: 'router/history.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in a non-redis store', { path: 'shared/store/memory.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in a nested store folder', { path: 'shared/store/x/redis.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['uWebSockets.js outside gateway/', { path: 'shared/http.ts', specifiers: ['uWebSockets.js'] }, /uWebSockets/],
    ['uWebSockets.js in the router', { path: 'router/admin.ts', specifiers: ['uWebSockets.js'] }, /uWebSockets/],
    ['client importing shared/', { path: 'client/index.ts', specifiers: ['../shared/config.js'] }, /client\//],
    ['client importing a package', { path: 'client/index.ts', specifiers: ['ws'] }, /client\//],
    ['client importing node:', { path: 'client/node.ts', specifiers: ['node:events'] }, /client\//],
    ['gateway importing router/', { path: 'gateway/ingress.ts', specifiers: ['../router/room.js'] }, /never imports router/],
    ['router importing gateway/', { path: 'router/fanout.ts', specifiers: ['../gateway/egress.js'] }, /never imports gateway/],
    ['the CLI importing NATS itself', { path: 'cli.ts', specifiers: ['@nats-io/transport-node'] }, /NATS/],
    ['the CLI importing ioredis itself', { path: 'cli.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['an import leaving the repository', { path: 'gateway/a.ts', specifiers: ['../../elsewhere.js'] }, /outside the repository/],
  ])('%s', (_name, file, why) => {
    const found = checkBoundaries([...clean, file]);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((line) => line.startsWith(file.path + ': '))).toBe(true);
    expect(found.join('\n')).toMatch(why);
  });

  it('end to end: a violating source file read by specifiersOf is caught', () => {
    const source = "// protocol must stay pure\nimport { hostname } from 'node:os';\nexport const h = hostname();\n";
    const found = checkBoundaries([{ path: 'shared/protocol/bad.ts', specifiers: specifiersOf(source) }]);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('node:os');
  });
});

/** Every import cycle among `files` (relative imports only, type-only ones included), as `a -> b -> a` lines. */
export function importCycles(files: readonly SourceFile[]): string[] {
  const known = new Set(files.map((f) => f.path));
  const edges = new Map(
    files.map((f) => [
      f.path,
      f.specifiers.flatMap((s) => {
        const t = resolve(f.path, s)?.replace(/\.js$/, '.ts');
        return t !== undefined && known.has(t) ? [t] : [];
      }),
    ]),
  );
  const cycles: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (n: string) => {
    if (stack.includes(n)) {
      cycles.push([...stack.slice(stack.indexOf(n)), n].join(' -> '));
      return;
    }
    if (done.has(n)) return;
    stack.push(n);
    for (const m of edges.get(n) ?? []) visit(m);
    stack.pop();
    done.add(n);
  };
  for (const f of files) visit(f.path);
  return cycles;
}

describe('bench/ imports', () => {
  const bench = tsFiles('bench')
    .filter((p) => !p.startsWith('bench/dist/'))
    .map((path) => ({ path, specifiers: specifiersOf(readFileSync(posix.join(ROOT, path), 'utf8')) }));

  it('form no cycle', () => {
    expect(bench.map((f) => f.path)).toContain('bench/protocol.ts');
    expect(importCycles(bench)).toEqual([]);
  });

  it('launcher.ts, which the test harness imports too, imports nothing else of the repository', () => {
    const launcher = bench.find((f) => f.path === 'bench/launcher.ts')!;
    expect(launcher.specifiers.filter((s) => s.startsWith('.'))).toEqual([]);
  });

  it('the cycle finder finds a cycle through type-only imports', () => {
    const files: SourceFile[] = [
      { path: 'bench/a.ts', specifiers: ['./b.js', 'node:fs'] },
      { path: 'bench/b.ts', specifiers: ['./c.js'] },
      { path: 'bench/c.ts', specifiers: [...specifiersOf("import type { A } from './a.js';")] },
      { path: 'bench/d.ts', specifiers: ['./a.js'] },
    ];
    expect(importCycles(files)).toEqual(['bench/a.ts -> bench/b.ts -> bench/c.ts -> bench/a.ts']);
    expect(importCycles(files.slice(0, 2))).toEqual([]);
  });
});
