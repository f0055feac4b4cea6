// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function and by module, idle excluded.
//   node bench/dist/prof-summary.js <file.cpuprofile> [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  name: string;
  /** Sampled non-idle milliseconds. */
  totalMs: number;
  top: { fn: string; where: string; ms: number; pct: number }[];
  byModule: { module: string; ms: number; pct: number }[];
}

/** Which package or part of rtgw a frame belongs to. */
function moduleOf(cf: CallFrame): string {
  const u = cf.url;
  if (u === '') return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1]!;
  if (u.startsWith('node:')) return 'node:' + (u.slice(5).split('/')[0] === 'internal' ? 'internal' : u.slice(5));
  const dist = /\/dist\/(.+)$/.exec(u);
  if (dist) return 'rtgw ' + dist[1]!.replace(/\.js$/, '');
  return u.replace(/^file:\/\//, '');
}

export function summarizeProfile(file: string, name: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  }
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const mods = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const where = cf.url === '' ? '' : `${moduleOf(cf)}:${cf.lineNumber + 1}`;
    const key = `${cf.functionName}|${where}`;
    const f = fns.get(key) ?? { fn: cf.functionName || '(anonymous)', where, us: 0 };
    f.us += us;
    fns.set(key, f);
    const m = moduleOf(cf);
    mods.set(m, (mods.get(m) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / Math.max(total, 1)) * 1000) / 10;
  return {
    name,
    totalMs: Math.round(total / 1000),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ fn: f.fn, where: f.where, ms: Math.round(f.us / 1000), pct: pct(f.us) })),
    byModule: [...mods.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([module, us]) => ({ module, ms: Math.round(us / 1000), pct: pct(us) })),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/dist/prof-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const s = summarizeProfile(file, file, Number(process.argv[3] ?? 30));
  process.stdout.write(`${s.totalMs} ms non-idle\n\nby module:\n`);
  for (const m of s.byModule.slice(0, 20)) process.stdout.write(`  ${String(m.pct).padStart(5)}%  ${m.module}\n`);
  process.stdout.write('\nself time by function:\n');
  for (const f of s.top) process.stdout.write(`  ${String(f.pct).padStart(5)}%  ${f.fn}  ${f.where}\n`);
}
