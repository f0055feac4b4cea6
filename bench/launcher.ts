// Starts and watches the child processes of the tests and the bench (nats-server, redis-server, the
// bench's servers and workers): finds binaries, hands out free loopback ports, waits for readiness (a log
// line, a probe, or both) raced against an early exit and a deadline, keeps each child's last log lines
// for error messages, tracks children by PID and SIGKILLs those still running when this process exits,
// stops them with SIGTERM and then SIGKILL after a grace period, and pauses and resumes them.
//
// It lives in bench/ because bench/tsconfig.json compiles bench/*.ts alone (rootDir '.') into bench/dist,
// where the bench runs from; the tests run TypeScript through vitest and import it from here
// (test/harness/nats.ts, redis.ts, global-setup.ts, cluster.ts). It depends on nothing else in bench/.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, type WriteStream } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** Everything the launcher starts listens on loopback only. */
export const LOOPBACK = '127.0.0.1';

/**
 * A throwaway redis-server on loopback: no persistence, files in `dir`, and the eviction policy rtgw
 * requires (it refuses an evicting Redis).
 */
export const redisServerArgs = (port: number, dir: string): string[] => [
  '--port',
  String(port),
  '--bind',
  LOOPBACK,
  '--save',
  '',
  '--appendonly',
  'no',
  '--maxmemory-policy',
  'noeviction',
  '--dir',
  dir,
];
const STOP_GRACE_MS = 5_000;
const LOG_LINES_KEPT = 40;
/** How long an early exit's error waits for the rest of the child's output (a grandchild may hold the pipe). */
const LAST_OUTPUT_WAIT_MS = 1_000;

// ---------------------------------------------------------------------------------------------------
// Binaries

const BINARY_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/bin'];

/** Absolute path of an executable on PATH or in /usr/sbin, /usr/bin, /usr/local/bin; undefined when absent. */
export function whichBinary(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...BINARY_DIRS]) {
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

/** The message for a missing binary, with the fix (the Debian package is named like the binary for ours). */
export function missingBinary(name: string, pkg = name): string {
  return `${name} not found on PATH, /usr/sbin, /usr/bin or /usr/local/bin: install it (\`apt-get install ${pkg}\`)`;
}

/** Like whichBinary, but throws with the fix spelled out when the binary is absent. */
export function findBinary(name: string, pkg = name): string {
  const file = whichBinary(name);
  if (file === undefined) throw new Error(missingBinary(name, pkg));
  return file;
}

// ---------------------------------------------------------------------------------------------------
// Ports

/** Ports handed out so far: the kernel may offer a just-closed port again, and two servers must not get the same one. */
const handedOut = new Set<number>();

/** A loopback port that was free a moment ago and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, LOOPBACK, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port !== 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port after 50 attempts');
}

/** A child that exited because its port was taken (see ReadyWait.portInUse): worth another try on another port. */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/**
 * Runs `start` until it does not fail with PortInUseError, at most `attempts` times: between our probe of
 * a port and the child's bind, another process may take it (or, on a restart on the same port, the old
 * socket may still be going away).
 */
export async function retryPortInUse<T>(attempts: number, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (!(e instanceof PortInUseError) || attempt >= attempts) throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Children

export interface Launched {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves once the process has exited; never rejects. */
  readonly exited: Promise<void>;
  /** False once the process has exited. */
  readonly running: boolean;
  /** How it ended (`code 1`, `SIGKILL`); undefined while it runs. */
  readonly exitStatus: string | undefined;
  /** Its last lines of output (stdout and stderr as they came), for error messages; empty when not piped. */
  logTail(): string[];
  /** Calls `fn` with every later line of output until the returned function is called. */
  onLine(fn: (line: string) => void): () => void;
  /** Sends a signal by PID; a no-op once it exited. */
  signal(sig: NodeJS.Signals): void;
  /**
   * Sends `sig` (default SIGTERM; after SIGCONT, since a stopped process would hold it pending), SIGKILL
   * after `graceMs`, and resolves once it exited.
   */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<void>;
  /** SIGSTOP: its sockets stay open but nothing answers (a stalled or partitioned server). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

/** Every child still running, in start order, by PID. */
const live = new Map<number, Launched>();
/** Of each child: resolves once its output streams have ended. */
const outputClosed = new WeakMap<Launched, Promise<void>>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort (a crashed test or an exception past every handler): nothing started here outlives us.
  process.once('exit', () => {
    for (const p of live.values()) p.signal('SIGKILL');
  });
}

export interface OutputOptions {
  /** Also append everything the child writes to this file. */
  logFile?: string;
  /** Lines kept for logTail() (default 40). */
  logLines?: number;
}

/**
 * Tracks a child spawned by the caller (e.g. a `fork` with IPC): by PID until it exits, killed when this
 * process exits; its piped stdout/stderr, if any, are read for the whole of its life (a full pipe would
 * block the child) into the log tail and `logFile`. Throws when the child did not start.
 */
export function adopt(name: string, child: ChildProcess, out: OutputOptions = {}): Launched {
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError ??= e)); // an unhandled 'error' event would crash the parent
  if (child.pid === undefined) throw new Error(`cannot start ${name}`);
  const pid = child.pid;
  installExitHook();

  let exitStatus: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, sig) => {
      exitStatus = sig ?? `code ${code}`;
      live.delete(pid);
      resolve();
    }),
  );
  // 'close' comes after the child's output streams ended: what an early-exit error should quote.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

  const keep = out.logLines ?? LOG_LINES_KEPT;
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  let file: WriteStream | undefined;
  if (out.logFile !== undefined) {
    file = createWriteStream(out.logFile, { flags: 'a' });
    file.on('error', () => {}); // a log that cannot be written must not take the run down
    void closed.then(() => file!.end());
  }
  const reader = () => {
    let partial = '';
    return (chunk: Buffer) => {
      file?.write(chunk);
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > keep) lines.shift();
        for (const fn of listeners) fn(line);
      }
    };
  };
  child.stdout?.on('data', reader());
  child.stderr?.on('data', reader());

  const signal = (sig: NodeJS.Signals) => {
    if (exitStatus !== undefined) return;
    try {
      process.kill(pid, sig);
    } catch {
      // raced with its exit
    }
  };
  const p: Launched = {
    name,
    pid,
    child,
    exited,
    get running() {
      return exitStatus === undefined;
    },
    get exitStatus() {
      return exitStatus ?? (spawnError ? `error: ${spawnError.message}` : undefined);
    },
    logTail: () => lines.slice(),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    signal,
    async stop({ signal: sig = 'SIGTERM', graceMs = STOP_GRACE_MS } = {}) {
      if (exitStatus !== undefined) return;
      if (sig !== 'SIGKILL') signal('SIGCONT');
      signal(sig);
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
  };
  outputClosed.set(p, closed);
  live.set(pid, p);
  return p;
}

/** Spawns `cmd` with its output piped (see adopt) and tracks it; does not wait for anything. */
export function spawnProcess(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: OutputOptions & { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Launched {
  const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return adopt(name, child, opts);
}

/** Every child still running, oldest first. */
export const liveChildren = (): Launched[] => [...live.values()];

// ---------------------------------------------------------------------------------------------------
// Readiness

export interface ReadyWait {
  /** What is awaited, for messages: `${name} exited (code 1) before ${what}`. */
  what: string;
  timeoutMs: number;
  /** A line of output that says it is ready; its match is what waitReady resolves. Lines already kept count too. */
  line?: RegExp;
  /** Polled (after `line`, when both are given) until it resolves true; a rejection counts as false. */
  probe?: () => Promise<boolean>;
  pollMs?: number;
  /** Output that, on an early exit, means the port was taken: the error is then a PortInUseError. */
  portInUse?: RegExp;
}

/** Resolves once `p` is ready; rejects when it exits first or on the deadline, with its last log lines. */
export async function waitReady(p: Launched, r: ReadyWait): Promise<RegExpExecArray | undefined> {
  const deadline = Date.now() + r.timeoutMs;
  const tail = () => (p.logTail().length > 0 ? `\n${p.logTail().join('\n')}` : '');
  const exitError = async () => {
    await Promise.race([outputClosed.get(p), delay(LAST_OUTPUT_WAIT_MS)]);
    const text = `${p.name} exited (${p.exitStatus}) before ${r.what}${tail()}`;
    return r.portInUse?.test(p.logTail().join('\n')) ? new PortInUseError(text) : new Error(text);
  };
  const timeoutError = () => new Error(`${p.name}: ${r.what} not within ${r.timeoutMs} ms${tail()}`);

  let match: RegExpExecArray | undefined;
  if (r.line) {
    const re = r.line;
    for (const l of p.logTail()) match ??= re.exec(l) ?? undefined;
    if (!match) {
      let off = () => {};
      let timer: NodeJS.Timeout | undefined;
      const seen = await Promise.race([
        new Promise<RegExpExecArray>((resolve) => {
          off = p.onLine((l) => {
            const m = re.exec(l);
            if (m) resolve(m);
          });
        }),
        p.exited.then(() => 'exited' as const),
        new Promise<'timeout'>(
          (resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()))),
        ),
      ]);
      off();
      clearTimeout(timer);
      if (seen === 'exited') throw await exitError();
      if (seen === 'timeout') throw timeoutError();
      match = seen;
    }
  }
  if (r.probe) {
    for (;;) {
      if (!p.running) throw await exitError();
      if ((await r.probe().catch(() => false)) && p.running) break;
      if (Date.now() >= deadline) throw timeoutError();
      await delay(r.pollMs ?? 50);
    }
  }
  return match;
}

/** spawnProcess, then waitReady; when it is not ready, SIGKILLs it (and waits for the exit) before rejecting. */
export async function launch(
  name: string,
  cmd: string,
  args: readonly string[],
  ready: ReadyWait,
  opts: OutputOptions & { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ proc: Launched; match: RegExpExecArray | undefined }> {
  const proc = spawnProcess(name, cmd, args, opts);
  try {
    return { proc, match: await waitReady(proc, ready) };
  } catch (e) {
    await proc.stop({ signal: 'SIGKILL' });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// Probes

/** The status of GET `path` on loopback `port` (rejects when nothing answers within a second). */
export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: LOOPBACK, port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Sends `payload` on a fresh TCP connection to loopback `port`; true when the answer contains `expect` within a second. */
export function tcpProbe(port: number, payload: string, expect: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: LOOPBACK, port });
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
