// The import-boundary test (style.md): which folder may import which, which files alone may import
// NATS, ioredis and uWebSockets.js, and that no module imports itself through others (findCycles), in the
// product and in bench/. Import specifiers are read with TypeScript's own pre-processor, so comments and
// strings that look like imports are not mistaken for them.
//
// And the naming boundary: shared/cluster/subjects.ts alone builds NATS subjects and keys.ts alone
// builds Redis keys (checkNaming, on TypeScript's syntax tree, so comments never count).
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

function sourcePaths(): string[] {
  return [...SCANNED_DIRS.flatMap(tsFiles), ...SCANNED_FILES.filter((f) => existsSync(posix.join(ROOT, f)))];
}

export function scanRepo(): SourceFile[] {
  return sourcePaths().map((path) => ({
    path,
    specifiers: specifiersOf(readFileSync(posix.join(ROOT, path), 'utf8')),
  }));
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
      if (
        under(path, 'shared') &&
        target !== undefined &&
        /^(gateway|router|client)\/|^cli\.[mc]?[jt]s$/.test(target)
      ) {
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

// ---------------------------------------------------------------------------------------------------
// Naming: who builds subjects and keys.

const SUBJECTS_FILE = 'shared/cluster/subjects.ts';
const KEYS_FILE = 'shared/cluster/keys.ts';

/** The literal text between the substitutions of every template literal in `source`. */
function templateTexts(path: string, source: string): string[] {
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isTemplateExpression(n)) out.push(n.head.text, ...n.templateSpans.map((s) => s.literal.text));
    ts.forEachChild(n, visit);
  };
  visit(ts.createSourceFile(path, source, ts.ScriptTarget.ES2022, true));
  return out;
}

export interface NamingShapes {
  /** The fixed tokens of subjects.ts, dots included: `.room.`, `.api.`, ... */
  subjectTokens: string[];
  /** The fixed segments of keys.ts, colons included: `:rm:`, `:lease`, `:{` ... */
  keySegments: string[];
}

/**
 * What subjects.ts and keys.ts put between a name and the next: read from them, so a subject or key
 * kind added there is guarded at once. Segments of one letter (`:s` of the hash tag) are left out:
 * too short to tell a key from other text.
 */
export function namingShapes(subjectsSource: string, keysSource: string): NamingShapes {
  const subjectTokens = templateTexts(SUBJECTS_FILE, subjectsSource).filter((t) => /^\.[a-z]+\.$/.test(t));
  const keySegments = templateTexts(KEYS_FILE, keysSource).filter((t) => /^:([a-z]{2,}:?|\{)$/.test(t));
  return { subjectTokens: [...new Set(subjectTokens)], keySegments: [...new Set(keySegments)] };
}

/** Bus methods whose argument `i` is a subject (Bus in shared/bus/bus.ts: publish's third is its reply subject). */
const SUBJECT_ARGS = new Map([
  ['publish', [0, 2]],
  ['subscribe', [0]],
  ['request', [0]],
]);
/** Names the prefix goes by (config's `prefix`, subjects' and keys' `p`). */
const isPrefix = (e: ts.Expression) =>
  (ts.isIdentifier(e) && (e.text === 'prefix' || e.text === 'p')) ||
  (ts.isPropertyAccessExpression(e) && e.name.text === 'prefix');
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Every place outside subjects.ts that builds a NATS subject and outside keys.ts that builds a Redis key,
 * as `file:line: problem` lines. Built means:
 *  - a subject argument of a bus call (publish, its reply, subscribe, request) written in place as a
 *    string, template or `+` concatenation instead of coming from subjects.ts;
 *  - a template or concatenation that starts with the prefix followed by `.` (a subject) or `:` (a key);
 *  - a string or template text holding one of subjects.ts's tokens (`.room.`...) or `_INBOX` (NATS's
 *    reply inboxes: only the bus implementations, shared/bus/, name those), or one of keys.ts's segments.
 */
export function checkNaming(files: readonly { path: string; source: string }[], shapes: NamingShapes): string[] {
  const out: string[] = [];
  const keyRe = new RegExp(`(${shapes.keySegments.map(escape).join('|')})(?![a-z])`);
  for (const { path, source } of files) {
    const mayBuildSubjects = path === SUBJECTS_FILE;
    const mayBuildKeys = path === KEYS_FILE;
    const sf = ts.createSourceFile(path, source, ts.ScriptTarget.ES2022, true);
    const bad = (n: ts.Node, why: string) =>
      out.push(`${path}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}: ${n.getText(sf)}: ${why}`);
    const isBuilt = (e: ts.Expression) =>
      ts.isTemplateExpression(e) ||
      ts.isStringLiteralLike(e) ||
      (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.PlusToken);
    /** The leftmost part of a template or concatenation, and the text right after it. */
    const startsWithPrefix = (e: ts.Node): string | undefined => {
      if (ts.isTemplateExpression(e) && e.head.text === '' && isPrefix(e.templateSpans[0]!.expression))
        return e.templateSpans[0]!.literal.text[0];
      if (
        ts.isBinaryExpression(e) &&
        e.operatorToken.kind === ts.SyntaxKind.PlusToken &&
        isPrefix(e.left) &&
        ts.isStringLiteralLike(e.right)
      )
        return e.right.text[0];
      return undefined;
    };
    const visit = (n: ts.Node): void => {
      if (!mayBuildSubjects && ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression)) {
        for (const i of SUBJECT_ARGS.get(n.expression.name.text) ?? []) {
          const arg = n.arguments[i];
          if (arg !== undefined && isBuilt(arg)) bad(arg, `a subject built outside ${SUBJECTS_FILE}`);
        }
      }
      const after = startsWithPrefix(n);
      if (after === '.' && !mayBuildSubjects) bad(n, `prefix + '.' builds a subject: only ${SUBJECTS_FILE} does`);
      if (after === ':' && !mayBuildKeys) bad(n, `prefix + ':' builds a Redis key: only ${KEYS_FILE} does`);
      const texts = ts.isStringLiteralLike(n)
        ? [n.text]
        : ts.isTemplateExpression(n)
          ? [n.head.text, ...n.templateSpans.map((s) => s.literal.text)]
          : [];
      for (const t of texts) {
        if (!mayBuildSubjects && shapes.subjectTokens.some((tok) => t.includes(tok)))
          bad(n, `a subject token: only ${SUBJECTS_FILE} builds subjects`);
        if (!under(path, 'shared/bus') && /\b_INBOX\b/.test(t))
          bad(n, 'a NATS inbox: only the bus implementations (shared/bus/) name them');
        if (!mayBuildKeys && keyRe.test(t)) bad(n, `a Redis key segment: only ${KEYS_FILE} builds keys`);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

const read = (path: string) => readFileSync(posix.join(ROOT, path), 'utf8');
const realShapes = () => namingShapes(read(SUBJECTS_FILE), read(KEYS_FILE));

describe('naming boundaries of this repository', () => {
  it('reads the shapes of subjects.ts and keys.ts', () => {
    const shapes = realShapes();
    expect(shapes.subjectTokens).toEqual(
      expect.arrayContaining(['.slot.', '.reply.', '.room.', '.api.', '.in.', '.events.']),
    );
    expect(shapes.keySegments).toEqual(expect.arrayContaining([':{', ':lease', ':rm:', ':ui:', ':routers', ':nodes']));
    expect(shapes.keySegments).not.toContain(':s');
  });

  it('no file but subjects.ts builds a subject, and none but keys.ts builds a key', () => {
    const files = sourcePaths().map((path) => ({ path, source: read(path) }));
    expect(checkNaming(files, realShapes())).toEqual([]);
  });
});

describe('checkNaming catches every way of building a name', () => {
  const shapes = realShapes();
  const clean = [
    { path: SUBJECTS_FILE, source: read(SUBJECTS_FILE) },
    { path: KEYS_FILE, source: read(KEYS_FILE) },
    // What looks close but builds no name: a JWT's signing input, a file name, a log line, a uWS topic,
    // an id, a bus call with subjects from subjects.ts, a reply subject passed along as received.
    {
      path: 'gateway/ok.ts',
      source: [
        'const signingInput = `${h}.${p}`;',
        'const file = `./lua/${name}.lua`;',
        'log(`cannot listen on ${cfg.host}:${cfg.port}`);',
        "const topic = 'r:' + room;",
        'const id = `${slot}:${user}:${seq}`;',
        'bus.publish(subj.room(room), data);',
        'bus.publish(subj.slot(slot), body, subj.replyTo(replies, id));',
        'this.bus.subscribe(this.subj.node(node), onMsg);',
        'bus.publish(msg.reply, data);',
        "const max = 'RTGW_INBOX_MAX_MESSAGES';",
        '// a comment about `${p}.reply.${client}.${id}` and _INBOX',
      ].join('\n'),
    },
    { path: 'shared/bus/memory.ts', source: 'const inbox = `_INBOX.${++n}`;' },
  ];

  it('passes legitimate code', () => {
    expect(checkNaming(clean, shapes)).toEqual([]);
  });

  it.each<[string, string, RegExp]>([
    [
      "slot-rpc's old reply subject",
      'this.bus.publish(this.subj.slot(s), body, `${this.#replies}.${id}`);',
      /subject built outside/,
    ],
    [
      "slot-rpc's old subscription",
      'this.#sub = bus.subscribe(`${this.#replies}.*`, onReply);',
      /subject built outside/,
    ],
    ["slot-rpc's old batch subject", 'bus.publish(`${client}.${BATCH}`, lines);', /subject built outside/],
    ['a subject concatenated in a call', "bus.request(subj.api('dm') + '.x', body, 1000);", /subject built outside/],
    ['a literal subject in a call', "bus.subscribe('rtgw.events.connect', h);", /subject built outside/],
    ['prefix + . in a template', 'const s = `${cfg.prefix}.things.${x}`;', /prefix \+ '\.' builds a subject/],
    ['prefix + . concatenated', "const s = prefix + '.things';", /prefix \+ '\.' builds a subject/],
    ['a subject token in a template', 'const s = `${x}.room.${y}`;', /subject token/],
    ['a subject token in a string', "const s = 'rtgw.api.publish';", /subject token/],
    ['a NATS inbox outside the bus', 'const inbox = `_INBOX.${id}`;', /NATS inbox/],
    ['prefix + : in a template', 'const k = `${prefix}:whatever:${x}`;', /builds a Redis key/],
    ['prefix + : concatenated', "const k = cfg.prefix + ':nodes';", /builds a Redis key/],
    ['a key segment in a template', 'const k = `${tag}:rm:${room}`;', /Redis key segment/],
    ['a key segment at the end of a string', "const k = base + ':lease';", /Redis key segment/],
    ['a hash tag', 'const k = `${p2}:{${p2}:s${slot}}`;', /Redis key segment/],
  ])('%s', (_name, source, why) => {
    const found = checkNaming([...clean, { path: 'router/bad.ts', source }], shapes);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((line) => line.startsWith('router/bad.ts:1: '))).toBe(true);
    expect(found.join('\n')).toMatch(why);
  });
});

/**
 * Every import cycle among the files, each as `a.ts -> b.ts -> a.ts`. Type-only imports count too: a
 * cycle of types still means two modules that cannot be read, or moved, one without the other.
 */
export function findCycles(files: readonly SourceFile[]): string[] {
  const known = new Set(files.map((f) => f.path));
  const edges = new Map(
    files.map(({ path, specifiers }) => [
      path,
      specifiers.flatMap((s) => {
        const target = resolve(path, s)?.replace(/\.js$/, '.ts');
        return target !== undefined && known.has(target) ? [target] : [];
      }),
    ]),
  );
  const out: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (path: string) => {
    stack.push(path);
    for (const next of edges.get(path) ?? []) {
      const at = stack.indexOf(next);
      if (at >= 0) out.push([...stack.slice(at), next].join(' -> '));
      else if (!done.has(next)) visit(next);
    }
    stack.pop();
    done.add(path);
  };
  for (const { path } of files) if (!done.has(path)) visit(path);
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

  it('has no import cycle', () => {
    expect(findCycles(files)).toEqual([]);
  });
});

describe('findCycles', () => {
  it('finds a cycle of two and one of three, and passes a graph without', () => {
    const two: SourceFile[] = [
      { path: 'shared/store/memory.ts', specifiers: ['./memory-inbox.js', './ports.js'] },
      { path: 'shared/store/memory-inbox.ts', specifiers: ['./memory.js', './ports.js'] },
      { path: 'shared/store/ports.ts', specifiers: [] },
    ];
    expect(findCycles(two)).toEqual([
      'shared/store/memory.ts -> shared/store/memory-inbox.ts -> shared/store/memory.ts',
    ]);
    const three: SourceFile[] = [
      { path: 'router/a.ts', specifiers: ['./b.js'] },
      { path: 'router/b.ts', specifiers: ['../shared/c.js', 'node:fs'] },
      { path: 'shared/c.ts', specifiers: ['../router/a.js'] },
    ];
    expect(findCycles(three)).toEqual(['router/a.ts -> router/b.ts -> shared/c.ts -> router/a.ts']);
    const none: SourceFile[] = [
      { path: 'shared/store/memory.ts', specifiers: ['./memory-inbox.js', './memory-slot-leases.js'] },
      { path: 'shared/store/memory-inbox.ts', specifiers: ['./memory-slot-leases.js'] },
      { path: 'shared/store/memory-slot-leases.ts', specifiers: [] },
    ];
    expect(findCycles(none)).toEqual([]);
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
      'const s = "import z from \'quoted\'";',
      'export const notAnImport = 1;',
    ].join('\n');
    expect(specifiersOf(src).sort()).toEqual([
      './a.js',
      './b.js',
      './d.js',
      './e.js',
      './f.js',
      './g.js',
      './h.js',
      'c',
      'i',
    ]);
  });
});

describe('checkBoundaries catches every broken rule', () => {
  const clean: SourceFile[] = [
    { path: 'shared/protocol/codec.ts', specifiers: ['./codes.js', './frames.js'] },
    { path: 'shared/config.ts', specifiers: ['node:os', './cluster/slots.js', './protocol/codes.js'] },
    { path: 'shared/bus/nats.ts', specifiers: ['@nats-io/transport-node', './bus.js'] },
    { path: 'shared/redis/connection.ts', specifiers: ['ioredis'] },
    { path: 'shared/store/redis-room-log.ts', specifiers: ['ioredis', '../redis/scripts.js'] },
    { path: 'gateway/server.ts', specifiers: ['uWebSockets.js', '../shared/config.js', 'jose'] },
    { path: 'router/router.ts', specifiers: ['../shared/bus/bus.js', 'node:crypto'] },
    { path: 'client/index.ts', specifiers: ['./socket.js', '../shared/protocol/codec.js'] },
    {
      path: 'cli.ts',
      specifiers: ['./gateway/server.js', './router/router.js', './shared/redis/connection.js', './shared/bus/nats.js'],
    },
  ];

  it('passes a clean graph', () => {
    expect(checkBoundaries(clean)).toEqual([]);
  });

  it.each<[string, SourceFile, RegExp]>([
    [
      'protocol importing shared/',
      { path: 'shared/protocol/codec.ts', specifiers: ['../config.js'] },
      /shared\/protocol/,
    ],
    ['protocol importing a node: module', { path: 'shared/protocol/names.ts', specifiers: ['node:crypto'] }, /no node/],
    [
      'protocol importing a bare built-in',
      { path: 'shared/protocol/names.ts', specifiers: ['buffer'] },
      /shared\/protocol/,
    ],
    ['protocol importing a package', { path: 'shared/protocol/frames.ts', specifiers: ['jose'] }, /shared\/protocol/],
    [
      'protocol escaping with ../../',
      { path: 'shared/protocol/x.ts', specifiers: ['../../gateway/a.js'] },
      /shared\/protocol/,
    ],
    [
      'shared importing gateway/',
      { path: 'shared/metrics.ts', specifiers: ['../gateway/server.js'] },
      /never imports gateway/,
    ],
    [
      'shared importing router/',
      { path: 'shared/store/ports.ts', specifiers: ['../../router/room.js'] },
      /never imports/,
    ],
    ['shared importing client/', { path: 'shared/log.ts', specifiers: ['../client/index.js'] }, /never imports/],
    ['shared importing the CLI', { path: 'shared/log.ts', specifiers: ['../cli.js'] }, /CLI/],
    ['NATS outside the bus file', { path: 'shared/bus/bus.ts', specifiers: ['@nats-io/transport-node'] }, /NATS/],
    ['NATS core in a gateway', { path: 'gateway/egress.ts', specifiers: ['@nats-io/nats-core'] }, /NATS/],
    ['ioredis in a router', { path: 'router/history.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in the memory engine', { path: 'shared/store/memory.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in a memory store', { path: 'shared/store/memory-room-log.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in the ports', { path: 'shared/store/ports.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['ioredis in a nested store folder', { path: 'shared/store/x/redis.ts', specifiers: ['ioredis'] }, /ioredis/],
    ['uWebSockets.js outside gateway/', { path: 'shared/http.ts', specifiers: ['uWebSockets.js'] }, /uWebSockets/],
    ['uWebSockets.js in the router', { path: 'router/admin.ts', specifiers: ['uWebSockets.js'] }, /uWebSockets/],
    ['client importing shared/', { path: 'client/index.ts', specifiers: ['../shared/config.js'] }, /client\//],
    ['client importing a package', { path: 'client/index.ts', specifiers: ['ws'] }, /client\//],
    ['client importing node:', { path: 'client/node.ts', specifiers: ['node:events'] }, /client\//],
    [
      'gateway importing router/',
      { path: 'gateway/ingress.ts', specifiers: ['../router/room.js'] },
      /never imports router/,
    ],
    [
      'router importing gateway/',
      { path: 'router/fanout.ts', specifiers: ['../gateway/egress.js'] },
      /never imports gateway/,
    ],
    ['the CLI importing NATS itself', { path: 'cli.ts', specifiers: ['@nats-io/transport-node'] }, /NATS/],
    ['the CLI importing ioredis itself', { path: 'cli.ts', specifiers: ['ioredis'] }, /ioredis/],
    [
      'an import leaving the repository',
      { path: 'gateway/a.ts', specifiers: ['../../elsewhere.js'] },
      /outside the repository/,
    ],
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

describe('bench/ imports', () => {
  const bench = tsFiles('bench')
    .filter((p) => !p.startsWith('bench/dist/'))
    .map((path) => ({ path, specifiers: specifiersOf(readFileSync(posix.join(ROOT, path), 'utf8')) }));

  it('form no cycle', () => {
    expect(bench.map((f) => f.path)).toContain('bench/protocol.ts');
    expect(findCycles(bench)).toEqual([]);
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
    expect(findCycles(files)).toEqual(['bench/a.ts -> bench/b.ts -> bench/c.ts -> bench/a.ts']);
    expect(findCycles(files.slice(0, 2))).toEqual([]);
  });
});
