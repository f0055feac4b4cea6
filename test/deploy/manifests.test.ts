// Offline checks of deploy/: every Kubernetes manifest validates against the Kubernetes schemas
// (kubernetes-models), has no key its schema does not know (misspellings, which the schemas' validators
// accept), and the gateway/router objects have the operational properties rtgw relies on; the example
// overlay and the KEDA component are built with a small kustomize subset and checked the same way; the
// compose file and the Dockerfile are parsed and checked for what the cluster needs.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deploy = join(root, 'deploy');
const k8s = join(deploy, 'k8s');

type Obj = Record<string, any>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function readYamlDocs(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  const out: Obj[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${relative(root, file)}: ${d.errors.map((e) => e.message).join('; ')}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function filesUnder(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, re));
    else if (re.test(name)) out.push(p);
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------------------
// RFC 6902 JSON Patch (add, remove, replace, test, move, copy) on plain JSON values.

function unescapePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`bad JSON pointer ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function getAt(doc: unknown, tokens: string[], path: string): unknown {
  let cur: any = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(t) || Number(t) >= cur.length) throw new Error(`path ${path}: no index ${t}`);
      cur = cur[Number(t)];
    } else if (isObj(cur)) {
      if (!Object.hasOwn(cur, t)) throw new Error(`path ${path}: no member ${t}`);
      cur = cur[t];
    } else throw new Error(`path ${path}: ${t} is inside a scalar`);
  }
  return cur;
}

export function applyJsonPatch(doc: unknown, ops: Obj[]): unknown {
  let result = structuredClone(doc);
  for (const op of ops) {
    const tokens = unescapePointer(op.path);
    const path: string = op.path;
    const parentOf = (toks: string[]) => getAt(result, toks.slice(0, -1), path) as any;
    const last = tokens[tokens.length - 1]!;
    const add = (toks: string[], value: unknown) => {
      if (toks.length === 0) return void (result = value);
      const parent = parentOf(toks);
      const key = toks[toks.length - 1]!;
      if (Array.isArray(parent)) {
        const i = key === '-' ? parent.length : Number(key);
        if (!/^(0|[1-9]\d*|-)$/.test(key) || i > parent.length) throw new Error(`add ${path}: bad index`);
        parent.splice(i, 0, value);
      } else if (isObj(parent)) parent[key] = value;
      else throw new Error(`add ${path}: parent is a scalar`);
    };
    const remove = (toks: string[]) => {
      const parent = parentOf(toks);
      const key = toks[toks.length - 1]!;
      getAt(result, toks, path); // must exist
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
    };
    switch (op.op) {
      case 'add':
        add(tokens, structuredClone(op.value));
        break;
      case 'remove':
        remove(tokens);
        break;
      case 'replace':
        getAt(result, tokens, path);
        if (tokens.length === 0) result = structuredClone(op.value);
        else parentOf(tokens)[Array.isArray(parentOf(tokens)) ? Number(last) : last] = structuredClone(op.value);
        break;
      case 'test': {
        const actual = getAt(result, tokens, path);
        if (JSON.stringify(actual) !== JSON.stringify(op.value)) {
          throw new Error(`test ${path}: expected ${JSON.stringify(op.value)}, found ${JSON.stringify(actual)}`);
        }
        break;
      }
      case 'move':
      case 'copy': {
        const from = unescapePointer(op.from);
        const value = structuredClone(getAt(result, from, op.from));
        if (op.op === 'move') remove(from);
        add(tokens, value);
        break;
      }
      default:
        throw new Error(`unsupported JSON patch op ${JSON.stringify(op.op)}`);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// The kustomize subset deploy/k8s uses: resources (files and directories), components, namespace, images,
// configMapGenerator (literals, files; create/merge; options.labels), patches with a target that are
// either RFC 6902 operation lists or a strategic-merge `$patch: delete` of the whole object. Anything
// else in a kustomization fails the build, so the tests cannot silently ignore a feature they do not model.
// Generated names keep no hash suffix here (kustomize adds one unless disableNameSuffixHash).

const KUSTOMIZATION_KEYS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'components',
  'namespace',
  'images',
  'configMapGenerator',
  'patches',
]);
const GENERATOR_KEYS = new Set(['name', 'behavior', 'literals', 'files', 'options']);
const GENERATOR_OPTION_KEYS = new Set(['disableNameSuffixHash', 'labels', 'annotations']);
const PATCH_KEYS = new Set(['target', 'patch']);
const TARGET_KEYS = new Set(['group', 'version', 'kind', 'name', 'namespace']);
const IMAGE_KEYS = new Set(['name', 'newName', 'newTag', 'digest']);

function expectKeys(o: Obj, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(o)) if (!allowed.has(k)) throw new Error(`${where}: unknown key ${JSON.stringify(k)}`);
}

interface Built {
  objects: Obj[];
  /** files configMapGenerator read, absolute */
  generatorFiles: string[];
}

function id(o: Obj): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata?.name}`;
}

function matches(o: Obj, target: Obj): boolean {
  const [group, version] = String(o.apiVersion).includes('/') ? String(o.apiVersion).split('/') : ['', o.apiVersion];
  return (
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version) &&
    (target.kind === undefined || target.kind === o.kind) &&
    (target.name === undefined || target.name === o.metadata?.name)
  );
}

export function kustomize(dir: string, expectKind: 'Kustomization' | 'Component' = 'Kustomization'): Built {
  const kfile = join(dir, 'kustomization.yaml');
  const [k] = readYamlDocs(kfile);
  const where = relative(root, kfile);
  if (!k) throw new Error(`${where} is empty`);
  expectKeys(k, KUSTOMIZATION_KEYS, where);
  expect(k.kind, `${where} kind`).toBe(expectKind);
  expect(k.apiVersion, `${where} apiVersion`).toBe(
    expectKind === 'Component' ? 'kustomize.config.k8s.io/v1alpha1' : 'kustomize.config.k8s.io/v1beta1',
  );
  let objects: Obj[] = [];
  const generatorFiles: string[] = [];
  const addObjects = (list: Obj[]) => {
    for (const o of list) {
      if (objects.some((x) => id(x) === id(o))) throw new Error(`${where}: ${id(o)} defined twice`);
      objects.push(o);
    }
  };
  for (const r of (k.resources ?? []) as string[]) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${where}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) {
      const b = kustomize(p);
      addObjects(b.objects);
      generatorFiles.push(...b.generatorFiles);
    } else addObjects(readYamlDocs(p));
  }
  for (const g of (k.configMapGenerator ?? []) as Obj[]) {
    expectKeys(g, GENERATOR_KEYS, `${where} configMapGenerator`);
    if (g.options) expectKeys(g.options, GENERATOR_OPTION_KEYS, `${where} configMapGenerator options`);
    const data: Record<string, string> = {};
    for (const lit of (g.literals ?? []) as string[]) {
      const i = lit.indexOf('=');
      if (i <= 0) throw new Error(`${where}: bad literal ${lit}`);
      data[lit.slice(0, i)] = lit.slice(i + 1);
    }
    for (const f of (g.files ?? []) as string[]) {
      const [key, path] = f.includes('=') ? (f.split('=', 2) as [string, string]) : [f.split('/').pop()!, f];
      const abs = resolve(dir, path);
      generatorFiles.push(abs);
      if (!existsSync(abs))
        throw new Error(`${where}: configMapGenerator file ${path} does not exist (${relative(root, abs)})`);
      data[key] = readFileSync(abs, 'utf8');
    }
    const existing = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === g.name);
    if (g.behavior === 'merge' || g.behavior === 'replace') {
      if (!existing)
        throw new Error(
          `${where}: configMapGenerator ${g.name} has behavior ${g.behavior} but no base ConfigMap of that name`,
        );
      existing.data = g.behavior === 'merge' ? { ...existing.data, ...data } : data;
    } else {
      if (g.behavior !== undefined && g.behavior !== 'create') throw new Error(`${where}: bad behavior ${g.behavior}`);
      const labels = g.options?.labels;
      addObjects([
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, ...(labels ? { labels } : {}) }, data },
      ]);
    }
  }
  for (const c of (k.components ?? []) as string[]) {
    const comp = kustomize(resolve(dir, c), 'Component');
    // A component's kustomization is applied to the objects accumulated so far: rebuild with them.
    const compK = readYamlDocs(join(resolve(dir, c), 'kustomization.yaml'))[0]!;
    addObjects(comp.objects.filter((o) => !objects.some((x) => id(x) === id(o))));
    objects = applyPatches(objects, compK.patches ?? [], `${c}/kustomization.yaml`);
  }
  // A Component's patches act on the objects of the kustomization that uses it: the caller applies them.
  if (expectKind === 'Kustomization') objects = applyPatches(objects, k.patches ?? [], where);
  if (k.namespace !== undefined) {
    for (const o of objects) if (o.kind !== 'Namespace') o.metadata = { ...o.metadata, namespace: k.namespace };
  }
  for (const img of (k.images ?? []) as Obj[]) {
    expectKeys(img, IMAGE_KEYS, `${where} images`);
    let used = false;
    for (const o of objects) {
      for (const c of [
        ...(o.spec?.template?.spec?.containers ?? []),
        ...(o.spec?.template?.spec?.initContainers ?? []),
      ]) {
        const [name] = String(c.image).split(/[:@]/);
        if (name !== img.name) continue;
        used = true;
        c.image = `${img.newName ?? img.name}${img.digest ? `@${img.digest}` : `:${img.newTag ?? 'latest'}`}`;
      }
    }
    if (!used) throw new Error(`${where}: image ${img.name} matches no container`);
  }
  return { objects, generatorFiles };
}

function applyPatches(objects: Obj[], patches: Obj[], where: string): Obj[] {
  let out = objects;
  for (const p of patches) {
    expectKeys(p, PATCH_KEYS, `${where} patches`);
    if (!p.target) throw new Error(`${where}: every patch needs a target in this subset`);
    expectKeys(p.target, TARGET_KEYS, `${where} patch target`);
    const hits = out.filter((o) => matches(o, p.target));
    if (hits.length === 0) throw new Error(`${where}: patch target ${JSON.stringify(p.target)} matches no resource`);
    const body = parse(String(p.patch));
    if (Array.isArray(body)) {
      out = out.map((o) => (matches(o, p.target) ? (applyJsonPatch(o, body) as Obj) : o));
    } else if (isObj(body) && body.$patch === 'delete') {
      const { $patch: _, ...rest } = body;
      for (const h of hits) {
        if (rest.kind !== h.kind || rest.metadata?.name !== h.metadata?.name)
          throw new Error(`${where}: delete patch body does not name its target`);
      }
      out = out.filter((o) => !matches(o, p.target));
    } else throw new Error(`${where}: only RFC 6902 lists and $patch: delete are modelled`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Schema validation of built-in kinds with kubernetes-models, and the unknown-key walk against the
// TypeScript interfaces kubernetes-models ships (its validators allow additional properties).

const modulePath = (o: Obj) => `kubernetes-models/${o.apiVersion}/${o.kind}`;
const BUILTIN = /^(v1|apps\/v1|policy\/v1|autoscaling\/v2|networking\.k8s\.io\/v1)$/;

async function validateBuiltin(o: Obj): Promise<void> {
  const mod = (await import(modulePath(o))) as Record<string, any>;
  const Cls = mod[o.kind];
  if (typeof Cls !== 'function') throw new Error(`kubernetes-models has no class ${o.kind} for ${o.apiVersion}`);
  new Cls(o).validate();
}

let checker: ts.TypeChecker | undefined;
const rootTypes = new Map<string, ts.Type>();

/** Loads the kubernetes-models interfaces of the given kinds through the TypeScript checker. */
function interfaceTypes(objs: Obj[]): Map<string, ts.Type> {
  const kinds = [...new Map(objs.map((o) => [`${o.apiVersion}/${o.kind}`, o])).values()];
  if (kinds.every((o) => rootTypes.has(`${o.apiVersion}/${o.kind}`))) return rootTypes;
  const virtual = join(root, 'test/deploy/__k8s_types__.ts');
  const src =
    kinds.map((o, i) => `import type { I${o.kind} as T${i} } from '${modulePath(o)}';`).join('\n') +
    '\n' +
    kinds.map((_, i) => `export type Root${i} = T${i};`).join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (f, lang, ...rest) =>
    f === virtual ? ts.createSourceFile(f, src, lang) : getSourceFile.call(host, f, lang, ...rest);
  host.fileExists = (f) => f === virtual || fileExists.call(host, f);
  host.readFile = (f) => (f === virtual ? src : readFile.call(host, f));
  const program = ts.createProgram([virtual], options, host);
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (diags.length > 0) throw new Error(ts.formatDiagnostics(diags, host));
  checker = program.getTypeChecker();
  const sf = program.getSourceFile(virtual)!;
  let i = 0;
  for (const st of sf.statements) {
    if (ts.isTypeAliasDeclaration(st)) {
      const o = kinds[i++]!;
      rootTypes.set(`${o.apiVersion}/${o.kind}`, checker.getTypeAtLocation(st.name));
    }
  }
  return rootTypes;
}

/** Paths of keys in `value` that `type` does not declare. */
function unknownKeys(value: unknown, type: ts.Type, path: string, out: string[]): void {
  const c = checker!;
  if (value === null || typeof value !== 'object') return;
  let t = c.getNonNullableType(type);
  if (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
  if (t.isUnion()) {
    const candidates = t.types.filter((m) =>
      Array.isArray(value) ? c.isArrayType(m) : m.flags & ts.TypeFlags.Object && !c.isArrayType(m),
    );
    if (candidates.length !== 1) {
      out.push(`${path} (value of a type the schema does not allow here)`);
      return;
    }
    t = candidates[0]!;
  }
  if (Array.isArray(value)) {
    if (!c.isArrayType(t)) return void out.push(`${path} (array where the schema has ${c.typeToString(t)})`);
    const el = c.getTypeArguments(t as ts.TypeReference)[0]!;
    value.forEach((v, i) => unknownKeys(v, el, `${path}[${i}]`, out));
    return;
  }
  const index = c.getIndexInfoOfType(t, ts.IndexKind.String);
  for (const [k, v] of Object.entries(value)) {
    const prop = t.getProperty(k);
    if (prop) unknownKeys(v, c.getTypeOfSymbol(prop), `${path}.${k}`, out);
    else if (index) unknownKeys(v, index.type, `${path}.${k}`, out);
    else out.push(`${path}.${k}`);
  }
}

function misspelledKeys(o: Obj, all: Obj[]): string[] {
  const types = interfaceTypes(all.filter((x) => BUILTIN.test(x.apiVersion)));
  const out: string[] = [];
  unknownKeys(o, types.get(`${o.apiVersion}/${o.kind}`)!, o.kind, out);
  return out;
}

// Custom resources: the fields these manifests may use (allowed keys) and the ones the CRDs require.
// `'*'` = free-form map/value; `[shape]` = list of shape.
type Shape = '*' | Shape[] | { [k: string]: Shape };
const META: Shape = { name: '*', namespace: '*', labels: '*', annotations: '*' };
const BEHAVIOR: Shape = {
  scaleUp: {
    stabilizationWindowSeconds: '*',
    selectPolicy: '*',
    policies: [{ type: '*', value: '*', periodSeconds: '*' }],
  },
  scaleDown: {
    stabilizationWindowSeconds: '*',
    selectPolicy: '*',
    policies: [{ type: '*', value: '*', periodSeconds: '*' }],
  },
};
const CRD_SHAPES: Record<string, Shape> = {
  'monitoring.coreos.com/v1/ServiceMonitor': {
    apiVersion: '*',
    kind: '*',
    metadata: META,
    spec: {
      jobLabel: '*',
      targetLabels: '*',
      podTargetLabels: '*',
      namespaceSelector: { any: '*', matchNames: '*' },
      selector: { matchLabels: '*', matchExpressions: '*' },
      endpoints: [
        {
          port: '*',
          targetPort: '*',
          path: '*',
          scheme: '*',
          interval: '*',
          scrapeTimeout: '*',
          honorLabels: '*',
          relabelings: [
            {
              sourceLabels: '*',
              separator: '*',
              targetLabel: '*',
              regex: '*',
              modulus: '*',
              replacement: '*',
              action: '*',
            },
          ],
          metricRelabelings: [
            {
              sourceLabels: '*',
              separator: '*',
              targetLabel: '*',
              regex: '*',
              modulus: '*',
              replacement: '*',
              action: '*',
            },
          ],
        },
      ],
    },
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    apiVersion: '*',
    kind: '*',
    metadata: META,
    spec: {
      groups: [
        {
          name: '*',
          interval: '*',
          limit: '*',
          rules: [
            { alert: '*', record: '*', expr: '*', for: '*', keep_firing_for: '*', labels: '*', annotations: '*' },
          ],
        },
      ],
    },
  },
  'keda.sh/v1alpha1/ScaledObject': {
    apiVersion: '*',
    kind: '*',
    metadata: META,
    spec: {
      scaleTargetRef: { apiVersion: '*', kind: '*', name: '*', envSourceContainerName: '*' },
      minReplicaCount: '*',
      maxReplicaCount: '*',
      idleReplicaCount: '*',
      pollingInterval: '*',
      cooldownPeriod: '*',
      fallback: { failureThreshold: '*', replicas: '*' },
      advanced: {
        restoreToOriginalReplicaCount: '*',
        horizontalPodAutoscalerConfig: { name: '*', behavior: BEHAVIOR },
      },
      triggers: [
        {
          type: '*',
          name: '*',
          metricType: '*',
          useCachedMetrics: '*',
          metadata: '*',
          authenticationRef: { name: '*', kind: '*' },
        },
      ],
    },
  },
};

function shapeErrors(v: unknown, s: Shape, path: string, out: string[]): void {
  if (s === '*' || v === null || v === undefined) return;
  if (Array.isArray(s)) {
    if (!Array.isArray(v)) return void out.push(`${path} must be a list`);
    v.forEach((x, i) => shapeErrors(x, s[0]!, `${path}[${i}]`, out));
    return;
  }
  if (!isObj(v)) return void out.push(`${path} must be a map`);
  for (const [k, x] of Object.entries(v)) {
    if (!(k in s)) out.push(`${path}.${k}`);
    else shapeErrors(x, s[k]!, `${path}.${k}`, out);
  }
}

function crdRequiredErrors(o: Obj): string[] {
  const e: string[] = [];
  const need = (cond: unknown, what: string) => void (cond ? undefined : e.push(what));
  need(typeof o.metadata?.name === 'string' && o.metadata.name !== '', 'metadata.name');
  if (o.kind === 'ServiceMonitor') {
    need(isObj(o.spec?.selector), 'spec.selector');
    need(Array.isArray(o.spec?.endpoints) && o.spec.endpoints.length > 0, 'spec.endpoints');
    for (const ep of o.spec?.endpoints ?? []) need(ep.port ?? ep.targetPort, 'spec.endpoints[].port');
  } else if (o.kind === 'PrometheusRule') {
    need(Array.isArray(o.spec?.groups) && o.spec.groups.length > 0, 'spec.groups');
    for (const g of o.spec?.groups ?? []) {
      need(typeof g.name === 'string', 'spec.groups[].name');
      for (const r of g.rules ?? []) {
        need(typeof r.expr === 'string' && r.expr.trim() !== '', `rule ${r.alert ?? r.record}: expr`);
        need(
          (r.alert === undefined) !== (r.record === undefined),
          `rule ${r.alert ?? r.record}: exactly one of alert, record`,
        );
      }
    }
  } else if (o.kind === 'ScaledObject') {
    need(typeof o.spec?.scaleTargetRef?.name === 'string', 'spec.scaleTargetRef.name');
    need(Array.isArray(o.spec?.triggers) && o.spec.triggers.length > 0, 'spec.triggers');
    for (const t of o.spec?.triggers ?? []) {
      need(typeof t.type === 'string', 'spec.triggers[].type');
      need(isObj(t.metadata), 'spec.triggers[].metadata');
      if (t.type === 'prometheus') {
        for (const f of ['serverAddress', 'query', 'threshold'])
          need(typeof t.metadata?.[f] === 'string', `prometheus trigger metadata.${f} (a string)`);
      }
    }
  }
  return e;
}

async function validateAll(objs: Obj[]): Promise<void> {
  const problems: string[] = [];
  for (const o of objs) {
    const key = `${o.apiVersion}/${o.kind}`;
    try {
      if (BUILTIN.test(o.apiVersion)) {
        await validateBuiltin(o);
        for (const k of misspelledKeys(o, objs)) problems.push(`${id(o)}: unknown key ${k}`);
      } else if (CRD_SHAPES[key]) {
        const out: string[] = [];
        shapeErrors(o, CRD_SHAPES[key]!, o.kind, out);
        for (const k of out) problems.push(`${id(o)}: unknown key ${k}`);
        for (const k of crdRequiredErrors(o)) problems.push(`${id(o)}: missing/invalid ${k}`);
      } else problems.push(`${id(o)}: no schema known for ${key}`);
    } catch (e) {
      problems.push(`${id(o)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  expect(problems).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------
// Helpers over built objects.

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in ${objs.map(id).join(', ')}`);
  return o;
}

const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

function envValue(container: Obj, name: string, configMaps: Obj[]): string | undefined {
  const e = (container.env ?? []).find((x: Obj) => x.name === name);
  if (e) return e.value;
  for (const src of container.envFrom ?? []) {
    const cm = configMaps.find((c) => c.kind === 'ConfigMap' && c.metadata.name === src.configMapRef?.name);
    if (cm?.data?.[name] !== undefined) return cm.data[name];
  }
  return undefined;
}

function bytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(q);
  if (!m) throw new Error(`quantity ${q} not understood`);
  const mult: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * mult[m[2] ?? '']!;
}

function containerPort(c: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return (c.ports ?? []).find((p: Obj) => p.name === port)?.containerPort;
}

/** Operational properties every rtgw Deployment must have; gateway-specific ones when `gateway`. */
function checkRtgwDeployment(objs: Obj[], name: string, role: 'gateway' | 'router'): void {
  const d = find(objs, 'Deployment', name);
  const pod = d.spec.template.spec;
  const c = pod.containers.find((x: Obj) => x.name === role);
  expect(c, `${name} container ${role}`).toBeDefined();
  expect(c.args).toEqual([role]);
  expect(
    selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels),
    `${name} selector matches its pods`,
  ).toBe(true);

  const adminPort = Number(envValue(c, 'RTGW_ADMIN_PORT', objs) ?? 8081);
  expect(containerPort(c, c.readinessProbe.httpGet.port)).toBe(adminPort);
  expect(c.readinessProbe.httpGet.path).toBe('/readyz');
  expect(containerPort(c, c.livenessProbe.httpGet.port)).toBe(adminPort);
  expect(c.livenessProbe.httpGet.path).toBe('/healthz');
  if (c.startupProbe) expect(containerPort(c, c.startupProbe.httpGet.port)).toBe(adminPort);

  for (const v of ['RTGW_NATS_URL', 'RTGW_REDIS_URL'])
    expect(envValue(c, v, objs), `${name} ${v}`).toMatch(/^\w+:\/\/\S+$/);
  const key = (c.env ?? []).find((e: Obj) =>
    ['RTGW_JWT_SECRET', 'RTGW_JWT_PUBLIC_KEY', 'RTGW_JWT_JWKS_URL'].includes(e.name),
  );
  expect(key, `${name} token key`).toBeDefined();
  if (key.name === 'RTGW_JWT_SECRET')
    expect(key.valueFrom?.secretKeyRef?.name, 'RTGW_JWT_SECRET comes from a Secret').toBeTruthy();

  expect(pod.enableServiceLinks).toBe(false);
  expect(pod.securityContext.runAsNonRoot).toBe(true);
  expect(pod.securityContext.runAsUser ?? c.securityContext?.runAsUser).toBeGreaterThan(0);
  expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
  // Node writes to /tmp (e.g. os.tmpdir users); with a read-only root it must be a writable emptyDir.
  const tmp = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/tmp');
  expect(tmp, `${name} mounts /tmp`).toBeDefined();
  expect((pod.volumes ?? []).find((v: Obj) => v.name === tmp.name)?.emptyDir).toBeDefined();

  const spread = pod.topologySpreadConstraints ?? [];
  expect(spread.map((t: Obj) => t.topologyKey)).toEqual(
    expect.arrayContaining(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']),
  );
  for (const t of spread)
    expect(
      selects(t.labelSelector.matchLabels, d.spec.template.metadata.labels),
      `${name} spread selects its pods`,
    ).toBe(true);

  expect(bytes(c.resources.requests.memory)).toBeGreaterThan(0);
  expect(bytes(c.resources.limits.memory)).toBeGreaterThanOrEqual(bytes(c.resources.requests.memory));

  const drain = Number(envValue(c, 'RTGW_DRAIN_SECONDS', objs) ?? 10);
  if (role === 'gateway') {
    const pre = c.lifecycle?.preStop;
    const preStopSeconds =
      pre?.sleep?.seconds ?? (pre?.exec?.command?.[0] === 'sleep' ? Number(pre.exec.command[1]) : NaN);
    expect(preStopSeconds, 'gateway preStop pauses').toBeGreaterThan(0);
    // preStop, then the drain, then the process' own forced exit at drain + 15 s: the kubelet must not SIGKILL first.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStopSeconds + drain + 15);
  } else {
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(drain + 15);
  }
}

// Sizing assumption documented in gateway-deployment.yaml: ~80 MB base + ~4 KB per idle connection.
const BASE_BYTES = 80e6;
const PER_CONNECTION_BYTES = 4e3;

function checkGatewayScaling(objs: Obj[]): void {
  const d = find(objs, 'Deployment', 'rtgw-gateway');
  const c = d.spec.template.spec.containers[0];
  const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler');
  const so = objs.find((o) => o.kind === 'ScaledObject');
  expect(Boolean(hpa) !== Boolean(so), 'exactly one of the HPA and the KEDA ScaledObject').toBe(true);
  let perPod: number;
  if (hpa) {
    expect(hpa.spec.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name });
    const m = hpa.spec.metrics.find((x: Obj) => x.type === 'Pods' && x.pods.metric.name === 'rtgw_connections');
    expect(m, 'HPA scales on rtgw_connections per pod').toBeDefined();
    expect(m.pods.target.type).toBe('AverageValue');
    perPod = Number(m.pods.target.averageValue);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
  } else {
    expect(so!.spec.scaleTargetRef.name).toBe(d.metadata.name);
    const t = so!.spec.triggers.find((x: Obj) => x.type === 'prometheus');
    expect(t.metadata.query).toMatch(/rtgw_connections\{[^}]*role="gateway"/);
    expect(t.metricType).toBe('AverageValue');
    perPod = Number(t.metadata.threshold);
  }
  expect(perPod).toBeGreaterThan(0);
  // The memory request must hold the target number of connections under the sizing assumption.
  expect(bytes(c.resources.requests.memory)).toBeGreaterThanOrEqual(BASE_BYTES + perPod * PER_CONNECTION_BYTES);
}

function checkWiring(objs: Obj[]): void {
  const gw = find(objs, 'Deployment', 'rtgw-gateway');
  const router = find(objs, 'Deployment', 'rtgw-router');
  const podLabels = (d: Obj) => d.spec.template.metadata.labels;
  const svc = find(objs, 'Service', 'rtgw-gateway');
  expect(selects(svc.spec.selector, podLabels(gw))).toBe(true);
  expect(selects(svc.spec.selector, podLabels(router))).toBe(false);
  const gwContainer = gw.spec.template.spec.containers[0];
  const wsPort = svc.spec.ports.find((p: Obj) => p.name === 'ws');
  expect(containerPort(gwContainer, wsPort.targetPort)).toBe(Number(envValue(gwContainer, 'RTGW_PORT', objs) ?? 8080));
  expect(
    svc.spec.ports.map((p: Obj) => p.targetPort),
    'admin port stays off the public Service',
  ).not.toContain('admin');

  for (const [pdbName, d] of [
    ['rtgw-gateway', gw],
    ['rtgw-router', router],
  ] as const) {
    const pdb = find(objs, 'PodDisruptionBudget', pdbName);
    expect(selects(pdb.spec.selector.matchLabels, podLabels(d))).toBe(true);
  }

  const sm = find(objs, 'ServiceMonitor', 'rtgw');
  const scraped = objs.filter(
    (o) => o.kind === 'Service' && selects(sm.spec.selector.matchLabels, o.metadata.labels ?? {}),
  );
  // The alert rules select on these job names; the ServiceMonitor takes them from jobLabel.
  expect(scraped.map((s) => s.metadata.labels[sm.spec.jobLabel]).sort()).toEqual(['rtgw-gateway', 'rtgw-router']);
  for (const s of scraped) {
    const d = [gw, router].find((x) => selects(s.spec.selector, podLabels(x)))!;
    expect(d, `${s.metadata.name} selects a Deployment`).toBeDefined();
    for (const ep of sm.spec.endpoints) {
      const port = s.spec.ports.find((p: Obj) => p.name === ep.port);
      expect(port, `${s.metadata.name} has the port ${ep.port}`).toBeDefined();
      const c = d.spec.template.spec.containers[0];
      expect(containerPort(c, port.targetPort)).toBe(Number(envValue(c, 'RTGW_ADMIN_PORT', objs) ?? 8081));
    }
    expect(Object.keys(s.metadata.labels)).not.toContain('role');
  }

  const dash = find(objs, 'ConfigMap', 'rtgw-grafana-dashboard');
  expect(dash.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
}

// ---------------------------------------------------------------------------------------------------

describe('test helpers', () => {
  it('the RFC 6902 applier applies and refuses what it should', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    expect(
      applyJsonPatch(doc, [
        { op: 'add', path: '/a/b/1', value: 9 },
        { op: 'replace', path: '/c', value: 'y' },
        { op: 'remove', path: '/a/b/0' },
        { op: 'add', path: '/a/b/-', value: 3 },
        { op: 'test', path: '/a/b', value: [9, 2, 3] },
        { op: 'copy', from: '/c', path: '/d' },
      ]),
    ).toEqual({ a: { b: [9, 2, 3] }, c: 'y', d: 'y' });
    expect(doc.a.b).toEqual([1, 2]);
    expect(() => applyJsonPatch(doc, [{ op: 'replace', path: '/nope', value: 1 }])).toThrow(/no member/);
    expect(() => applyJsonPatch(doc, [{ op: 'test', path: '/c', value: 'z' }])).toThrow(/expected/);
    expect(() => applyJsonPatch(doc, [{ op: 'remove', path: '/a/b/5' }])).toThrow(/no index/);
  });

  it('the unknown-key walk finds misspelled keys kubernetes-models accepts', async () => {
    const d = structuredClone(find(kustomize(join(k8s, 'base')).objects, 'Deployment', 'rtgw-gateway'));
    d.spec.template.spec.containers[0].imagee = 'x';
    d.spec.template.spec.containers[0].readinessProbe.httpGet.paht = '/readyz';
    d.spec.template.spec.securityContext.runAsNonroot = true;
    await validateBuiltin(d); // the schema validator lets them through...
    expect(misspelledKeys(d, [d]).sort()).toEqual([
      'Deployment.spec.template.spec.containers[0].imagee',
      'Deployment.spec.template.spec.containers[0].readinessProbe.httpGet.paht',
      'Deployment.spec.template.spec.securityContext.runAsNonroot',
    ]);
    const bad = structuredClone(d);
    bad.spec.replicas = 'two';
    await expect(validateBuiltin(bad)).rejects.toThrow(/replicas/);
    const so = {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: 'x' },
      spec: { scaleTargetRef: {}, triggers: [{ type: 'prometheus', metdata: {} }] },
    };
    const out: string[] = [];
    shapeErrors(so, CRD_SHAPES['keda.sh/v1alpha1/ScaledObject']!, 'ScaledObject', out);
    expect(out).toEqual(['ScaledObject.spec.triggers[0].metdata']);
    expect(crdRequiredErrors(so)).toEqual(
      expect.arrayContaining(['spec.scaleTargetRef.name', 'spec.triggers[].metadata']),
    );
  });

  it('the kustomize subset refuses a patch whose target does not exist', () => {
    expect(() =>
      applyPatches(
        [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'a' } }],
        [{ target: { kind: 'Service', name: 'b' }, patch: '[]' }],
        'x',
      ),
    ).toThrow(/matches no resource/);
  });
});

describe('every YAML file under deploy/ parses', () => {
  const files = filesUnder(deploy, /\.ya?ml$/);
  it('finds the manifests', () => {
    expect(files.map((f) => relative(deploy, f))).toEqual(
      expect.arrayContaining([
        'compose.yaml',
        'k8s/base/kustomization.yaml',
        'k8s/overlays/example/kustomization.yaml',
      ]),
    );
  });
  it.each(files.map((f) => [relative(deploy, f), f]))('%s', (_, f) => {
    expect(readYamlDocs(f).length).toBeGreaterThan(0);
  });
});

describe('every Kubernetes manifest file validates', () => {
  const files = filesUnder(k8s, /\.ya?ml$/).filter(
    (f) => !/kustomization\.yaml$/.test(f) && !f.includes('prometheus-adapter'),
  );
  it.each(files.map((f) => [relative(k8s, f), f]))('%s', async (_, f) => {
    const objs = readYamlDocs(f);
    for (const o of objs) {
      expect(typeof o.apiVersion, `${relative(k8s, f)} apiVersion`).toBe('string');
      expect(typeof o.kind).toBe('string');
    }
    await validateAll(objs);
  });
});

const builds: Array<[string, () => Built]> = [
  ['base', () => kustomize(join(k8s, 'base'))],
  ['overlays/example', () => kustomize(join(k8s, 'overlays/example'))],
  [
    'base + components/keda',
    () => {
      const b = kustomize(join(k8s, 'base'));
      const comp = kustomize(join(k8s, 'components/keda'), 'Component');
      const compK = readYamlDocs(join(k8s, 'components/keda/kustomization.yaml'))[0]!;
      return {
        objects: applyPatches([...b.objects, ...comp.objects], compK.patches, 'components/keda'),
        generatorFiles: b.generatorFiles,
      };
    },
  ],
];

describe.each(builds)('kustomize build %s', (_name, build) => {
  it('validates against the schemas with no unknown keys', async () => {
    await validateAll(build().objects);
  });
  it('gateway Deployment: admin-port probes, preStop + drain within the grace period, hardening, spread', () => {
    checkRtgwDeployment(build().objects, 'rtgw-gateway', 'gateway');
  });
  it('router Deployment: admin-port probes, hardening, spread', () => {
    checkRtgwDeployment(build().objects, 'rtgw-router', 'router');
  });
  it('gateway autoscaling on connections per pod, memory request sized for the target', () => {
    checkGatewayScaling(build().objects);
  });
  it('Services, PDBs, ServiceMonitor and dashboard select what they should', () => {
    checkWiring(build().objects);
  });
});

describe('overlays/example', () => {
  it('its patches change the base where intended', () => {
    const base = kustomize(join(k8s, 'base')).objects;
    const ov = kustomize(join(k8s, 'overlays/example')).objects;
    expect(ov.map(id).sort()).toEqual(base.map(id).sort());
    for (const o of ov) expect(o.metadata.namespace).toBe('rtgw');
    const gw = find(ov, 'Deployment', 'rtgw-gateway').spec.template.spec;
    expect(gw.containers[0].image).toBe('registry.example.com/rtgw:0.1.0');
    expect(envValue(gw.containers[0], 'RTGW_DRAIN_SECONDS', ov)).toBe('30');
    expect(find(ov, 'HorizontalPodAutoscaler', 'rtgw-gateway').spec).toMatchObject({ minReplicas: 3, maxReplicas: 50 });
    expect(find(ov, 'Service', 'rtgw-gateway').spec.type).toBe('LoadBalancer');
    expect(find(ov, 'ConfigMap', 'rtgw-config').data.RTGW_NATS_URL).not.toBe(
      find(base, 'ConfigMap', 'rtgw-config').data.RTGW_NATS_URL,
    );
    expect(find(ov, 'ConfigMap', 'rtgw-config').data.RTGW_LOG_LEVEL, 'merge keeps base literals').toBe('info');
  });
  it('the KEDA component replaces the HPA by a ScaledObject', () => {
    const objs = builds[2]![1]().objects;
    expect(objs.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toEqual([]);
    expect(find(objs, 'ScaledObject', 'rtgw-gateway').spec.scaleTargetRef.name).toBe('rtgw-gateway');
  });
});

describe('monitoring content comes from deploy/prometheus and deploy/grafana', () => {
  it('PrometheusRule spec.groups equal the groups of deploy/prometheus/alerts.yml', () => {
    const alerts = join(deploy, 'prometheus/alerts.yml');
    expect(existsSync(alerts), 'deploy/prometheus/alerts.yml exists').toBe(true);
    const [rule] = readYamlDocs(join(k8s, 'base/prometheusrule.yaml'));
    const groups = parse(readFileSync(alerts, 'utf8')).groups;
    expect(groups.length).toBeGreaterThan(0);
    expect(rule!.spec.groups).toEqual(groups);
  });
  it('the dashboard ConfigMap is generated from deploy/grafana/rtgw-dashboard.json', () => {
    const b = kustomize(join(k8s, 'base'));
    const file = join(deploy, 'grafana/rtgw-dashboard.json');
    expect(b.generatorFiles).toContain(file);
    const cm = find(b.objects, 'ConfigMap', 'rtgw-grafana-dashboard');
    expect(JSON.parse(cm.data['rtgw-dashboard.json'])).toEqual(JSON.parse(readFileSync(file, 'utf8')));
  });
});

// ---------------------------------------------------------------------------------------------------
// Compose and Dockerfile.

const COMPOSE_SERVICE_KEYS = new Set([
  'image',
  'build',
  'restart',
  'environment',
  'read_only',
  'tmpfs',
  'cap_drop',
  'security_opt',
  'healthcheck',
  'depends_on',
  'command',
  'stop_grace_period',
  'ports',
  'volumes',
  'user',
  'entrypoint',
]);

describe('deploy/compose.yaml', () => {
  const compose = parse(readFileSync(join(deploy, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
  const svc = compose.services as Record<string, Obj>;
  const rtgw = ['router-1', 'router-2', 'gateway-1', 'gateway-2'];

  it('has NATS, Redis, 2 routers, 2 gateways, Prometheus and Grafana, with known keys only', () => {
    expect(Object.keys(svc).sort()).toEqual([
      'gateway-1',
      'gateway-2',
      'grafana',
      'nats',
      'prometheus',
      'redis',
      'router-1',
      'router-2',
    ]);
    for (const k of Object.keys(compose))
      expect(['services', 'volumes', 'networks'].includes(k) || k.startsWith('x-'), `top-level ${k}`).toBe(true);
    for (const [name, s] of Object.entries(svc))
      for (const k of Object.keys(s)) expect(COMPOSE_SERVICE_KEYS.has(k), `${name}.${k}`).toBe(true);
  });

  it('runs Redis with noeviction and AOF on a volume', () => {
    const cmd: string[] = svc.redis!.command;
    expect(cmd[cmd.indexOf('--maxmemory-policy') + 1]).toBe('noeviction');
    expect(cmd[cmd.indexOf('--appendonly') + 1]).toBe('yes');
    const [vol] = String(svc.redis!.volumes[0]).split(':');
    expect(Object.keys(compose.volumes)).toContain(vol);
  });

  it('runs each rtgw service with its role, NATS, Redis, a required key and a grace period covering the drain', () => {
    for (const name of rtgw) {
      const s = svc[name]!;
      expect(s.command).toEqual([name.replace(/-\d$/, '')]);
      expect(s.build).toMatchObject({ context: '..', dockerfile: 'deploy/Dockerfile' });
      expect(existsSync(join(deploy, s.build.context, s.build.dockerfile))).toBe(true);
      expect(s.environment.RTGW_NATS_URL).toBe('nats://nats:4222');
      expect(s.environment.RTGW_REDIS_URL).toBe('redis://redis:6379');
      expect(s.environment.RTGW_JWT_SECRET).toMatch(/^\$\{RTGW_JWT_SECRET:\?/);
      expect(s.environment.RTGW_NODE_ID).toBe(name);
      expect(s.read_only).toBe(true);
      expect(s.depends_on.redis.condition).toBe('service_healthy');
      const grace = Number(/^(\d+)s$/.exec(s.stop_grace_period)?.[1]);
      const drain = Number(s.environment.RTGW_DRAIN_SECONDS ?? 10);
      expect(grace).toBeGreaterThanOrEqual(name.startsWith('gateway') ? drain + 15 : 10);
      expect(s.healthcheck.test.join(' ')).toContain(`127.0.0.1:${s.environment.RTGW_ADMIN_PORT}/readyz`);
    }
    const published = ['gateway-1', 'gateway-2'].map((g) => String(svc[g]!.ports[0]).split(':')[0]);
    expect(new Set(published).size).toBe(2);
  });

  it('Prometheus scrapes every rtgw service on its admin port with the job names the alerts use', () => {
    const vols: string[] = svc.prometheus!.volumes;
    const mount = vols.map((v) => v.split(':')).find(([, target]) => target === '/etc/prometheus');
    expect(mount, 'deploy/prometheus mounted at /etc/prometheus').toBeDefined();
    const promDir = resolve(deploy, mount![0]!);
    const cfgArg = (svc.prometheus!.command as string[]).find((a) => a.startsWith('--config.file='))!;
    const cfg = parse(readFileSync(join(promDir, relative('/etc/prometheus', cfgArg.split('=')[1]!)), 'utf8'));
    for (const rf of cfg.rule_files) expect(existsSync(join(promDir, rf)), `rule file ${rf}`).toBe(true);
    const targets = (job: string) =>
      cfg.scrape_configs
        .find((j: Obj) => j.job_name === job)
        .static_configs.flatMap((s: Obj) => s.targets)
        .sort();
    const expected = (role: string) =>
      rtgw
        .filter((n) => n.startsWith(role))
        .map((n) => `${n}:${svc[n]!.environment.RTGW_ADMIN_PORT}`)
        .sort();
    expect(targets('rtgw-gateway')).toEqual(expected('gateway'));
    expect(targets('rtgw-router')).toEqual(expected('router'));
  });

  it('Grafana is provisioned with the Prometheus datasource and deploy/grafana/rtgw-dashboard.json', () => {
    const vols: string[] = svc.grafana!.volumes;
    const dash = vols.map((v) => v.split(':')).find(([src]) => src === './grafana/rtgw-dashboard.json');
    expect(dash).toBeDefined();
    const prov = vols.map((v) => v.split(':')).find(([, t]) => t === '/etc/grafana/provisioning')!;
    const provDir = resolve(deploy, prov[0]!);
    const provider = parse(readFileSync(join(provDir, 'dashboards/rtgw.yml'), 'utf8')).providers[0];
    expect(dirname(dash![1]!)).toBe(provider.options.path);
    const ds = parse(readFileSync(join(provDir, 'datasources/prometheus.yml'), 'utf8')).datasources[0];
    expect(ds.url).toBe('http://prometheus:9090');
  });
});

describe('deploy/Dockerfile', () => {
  const lines = readFileSync(join(deploy, 'Dockerfile'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  /** The sources of the COPY lines that copy from the build context (not from another stage). */
  const copiedSources = lines
    .filter((x) => /^COPY\s/i.test(x) && !x.includes('--from'))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));
  const stages: string[][] = [];
  for (const l of lines) {
    if (/^FROM\s/i.test(l)) stages.push([]);
    stages[stages.length - 1]?.push(l);
  }

  it('is multi-stage on node:20-bookworm-slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s[0]).toMatch(/^FROM node:20-bookworm-slim(\s+AS\s+\w+)?$/i);
  });

  it('runs as a non-root user with an exec-form command of the CLI', () => {
    const final = stages[stages.length - 1]!;
    const user = final.filter((l) => /^USER\s/i.test(l)).pop();
    expect(user).toBeDefined();
    expect(user!.split(/\s+/)[1]!.split(':')[0]).not.toMatch(/^(0|root)$/);
    const entry = final.find((l) => /^ENTRYPOINT\s/i.test(l))!;
    const cmd = final.find((l) => /^CMD\s/i.test(l))!;
    const argv = [...JSON.parse(entry.replace(/^ENTRYPOINT\s+/i, '')), ...JSON.parse(cmd.replace(/^CMD\s+/i, ''))];
    expect(argv).toEqual(['node', 'dist/cli.js', 'gateway']);
    expect(final.some((l) => /^COPY --from=\w+ \S*dist/.test(l))).toBe(true);
  });

  it('copies everything `npm run build` reads: the tsconfig includes and the scripts it runs', () => {
    const copied = new Set(copiedSources);
    const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] };
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { build: string } };
    const scripts = [...pkg.scripts.build.matchAll(/\bnode\s+(\S+)/g)].map((m) => m[1]!.split('/')[0]!);
    for (const src of ['tsconfig.json', ...tsconfig.include, ...scripts]) expect(copied.has(src), src).toBe(true);
  });

  it('copies sources that exist', () => {
    for (const src of copiedSources) expect(existsSync(join(root, src)), src).toBe(true);
  });
});
