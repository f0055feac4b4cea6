// The bench's view of its processes: where it runs from, which CPUs servers and load generator get, the
// bench's names for launcher.ts's spawning, readiness waits and stops (every process it started is
// stopped by PID, even on errors), and CPU seconds and RSS from /proc.
import { execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  adopt,
  findBinary,
  freePort,
  httpStatus,
  liveChildren,
  LOOPBACK,
  redisServerArgs,
  spawnProcess,
  tcpProbe,
  waitReady,
  type Launched,
} from './launcher.js';

/** bench/dist, where the compiled bench runs from; bench/; the project root (rtgw's dist/ is below it). */
export const HERE = dirname(fileURLToPath(import.meta.url));
export const BENCH = resolve(HERE, '..');
export const ROOT = resolve(BENCH, '..');
/** Everything listens and connects on loopback only. */
export const HOST = LOOPBACK;
/** With pinning, every server process runs on CPU 0 and the load generator on the others. */
export const SERVER_CPUS = '0';
export const LOADGEN_CPUS = cpus().length > 2 ? `1-${cpus().length - 1}` : '1';

/** A process the bench started: launcher.ts tracks it by PID and kills it if the bench dies first. */
export type Proc = Launched;

export { findBinary, freePort, httpStatus, redisServerArgs, tcpProbe };

/** Starts a server process with its output appended to `logFile` (its last lines also go into errors). */
export function startProc(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): Proc {
  return spawnProcess(name, cmd, args, { env, logFile });
}

/** Forks a bench worker with an IPC channel; its stderr goes to ours. */
export function forkWorker(name: string, file: string, env: NodeJS.ProcessEnv): Proc {
  return adopt(name, fork(file, [], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
}

/** SIGTERM, then SIGKILL after a grace period; by PID, only processes this bench started. */
export const stopProc = (p: Proc): Promise<void> => p.stop();

/** Stops everything still running, newest first (clients before the servers they use). */
export async function stopAll(): Promise<void> {
  for (const p of liveChildren().reverse()) await p.stop();
}

export const running = (p: Proc) => p.running;

/** Restricts a process and all its threads to `cpuList` (taskset syntax, e.g. `0` or `1-3`); threads made later inherit it. */
export function pin(pid: number, cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

/** Polls `check` every 50 ms until it resolves true; fails on the deadline or when `p` exits first. */
export async function waitFor(what: string, p: Proc, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await waitReady(p, { what, probe: check, timeoutMs });
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
