// Processes the bench starts, and how it watches them: free loopback ports, readiness waits, CPU
// seconds from /proc, and a registry that stops every process it started, by PID, even on errors.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/dist, where the compiled bench runs from; bench/; the project root (rtgw's dist/ is below it). */
export const HERE = dirname(fileURLToPath(import.meta.url));
export const BENCH = resolve(HERE, '..');
export const ROOT = resolve(BENCH, '..');
/** Everything listens and connects on loopback only. */
export const HOST = '127.0.0.1';
/** With pinning, every server process runs on CPU 0 and the load generator on the others. */
export const SERVER_CPUS = '0';
export const LOADGEN_CPUS = cpus().length > 2 ? `1-${cpus().length - 1}` : '1';

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<void>;
}

const live = new Map<number, Proc>();
const STOP_GRACE_MS = 5000;

process.once('exit', () => {
  // Last resort (an exception past every handler): nothing the bench started may outlive it.
  for (const p of live.values()) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

function track(name: string, child: ChildProcess): Proc {
  if (child.pid === undefined) throw new Error(`cannot start ${name}`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const p: Proc = { name, pid: child.pid, child, exited };
  live.set(p.pid, p);
  void exited.then(() => live.delete(p.pid));
  return p;
}

export function findBinary(name: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/usr/local/bin']) {
    if (dir && existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  throw new Error(`${name} not found on PATH, /usr/sbin or /usr/bin (Debian package \`${name}\`)`);
}

/** Starts a server process with its output appended to `logFile`. */
export function startProc(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): Proc {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return track(name, child);
}

/** Forks a bench worker with an IPC channel; its stderr goes to ours. */
export function forkWorker(name: string, file: string, env: NodeJS.ProcessEnv): Proc {
  return track(name, fork(file, [], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
}

/** SIGTERM, then SIGKILL after a grace period; by PID, only processes this bench started. */
export async function stopProc(p: Proc): Promise<void> {
  if (!live.has(p.pid)) return;
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.exited, new Promise<void>((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]);
  clearTimeout(timer);
  if (live.has(p.pid)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
    await p.exited;
  }
}

/** Stops everything still running, newest first (clients before the servers they use). */
export async function stopAll(): Promise<void> {
  for (const p of [...live.values()].reverse()) await stopProc(p);
}

export const running = (p: Proc) => live.has(p.pid);

/** Restricts a process and all its threads to `cpuList` (taskset syntax, e.g. `0` or `1-3`); threads made later inherit it. */
export function pin(pid: number, cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

/** Ports handed out so far: the kernel may offer a just-closed port again, and two servers must not get the same one. */
const handedOut = new Set<number>();

/** A loopback port nothing listens on and this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (;;) {
    const p = await probePort();
    if (handedOut.has(p)) continue;
    handedOut.add(p);
    return p;
  }
}

function probePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it resolves true; fails on the deadline or when `p` exits first. */
export async function waitFor(what: string, p: Proc, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(p)) throw new Error(`${p.name} exited before ${what}`);
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Sends `payload` on a fresh TCP connection and resolves true when the answer contains `expect`. */
export function tcpProbe(port: number, payload: string, expect: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => payload && s.write(payload));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes(expect)) done(true);
    });
  });
}

let clkTck = 0;
/** Clock ticks per second of /proc's CPU times. */
function tck(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU seconds (user + system) a process has used so far; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / tck();
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores; idle and iowait excluded). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) / tck();
}

/** Resident set size of a process in bytes (VmRSS); NaN once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
