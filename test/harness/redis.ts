// Starts a real redis-server for tests on a free loopback port, empty and without persistence, and
// restarts it (empty) on the same port so clients reconnect. Servers still running when the test
// process exits are killed, so a crashed test leaves no redis-server behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { requireBinary } from '../../scripts/prerequisites.mjs';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>`; stays the same across restart(). */
  readonly url: string;
  readonly port: number;
  /** Of the current process: changes on restart(). */
  readonly pid: number;
  /** SIGTERM (after SIGCONT, in case it is paused), then waits for the exit; SIGKILL after a grace period. */
  stop(): Promise<void>;
  /** Sends a signal and waits for the exit, e.g. SIGKILL to simulate a crash. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server (if running), then starts an empty one on the same port. */
  restart(): Promise<void>;
  /** SIGSTOP: the socket stays open but nothing answers (a stalled or partitioned server). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, e.g. `['--maxmemory-policy', 'allkeys-lru']`; later ones win. */
  args?: string[];
  startupTimeoutMs?: number;
}

const STOP_GRACE_MS = 5_000;
const LOG_LINES_KEPT = 40;
const PORT_ATTEMPTS = 5;
const PING_POLL_MS = 20;
const READY = /Ready to accept connections/;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = requireBinary('redis-server');
  const args = opts.args ?? [];
  const startupTimeoutMs = opts.startupTimeoutMs ?? 10_000;

  let current: Running | undefined;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < PORT_ATTEMPTS && !current; attempt++) {
    try {
      current = await launch(bin, await freePort(), args, startupTimeoutMs);
    } catch (e) {
      if (!(e instanceof PortInUseError)) throw e;
      lastError = e; // another process took the port between our probe and the spawn
    }
  }
  if (!current) {
    throw new Error(`redis-server found no free port after ${PORT_ATTEMPTS} attempts`, { cause: lastError });
  }
  let running: Running = current;
  const port = running.port;

  const waitExit = async (signal: NodeJS.Signals) => {
    const { child, exited } = running;
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a stopped process would hold the signal pending
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return running.child.pid!;
    },
    stop: () => waitExit('SIGTERM'),
    kill: (signal = 'SIGKILL') => waitExit(signal),
    async restart() {
      await waitExit('SIGTERM');
      // The port was ours a moment ago; retry briefly in case the old socket is still being torn down.
      for (let attempt = 1; ; attempt++) {
        try {
          running = await launch(bin, port, args, startupTimeoutMs);
          return;
        } catch (e) {
          if (!(e instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw e;
        }
      }
    },
    pause() {
      running.child.kill('SIGSTOP');
    },
    resume() {
      running.child.kill('SIGCONT');
    },
  };
}

class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port === 0 ? reject(new Error('no port assigned')) : resolve(port)));
    });
  });
}

interface Running {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
}

/** True when something on the port answers PING with +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1_000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

/** Spawns one server and resolves once it answers PING; rejects on an early exit or after the deadline. */
async function launch(bin: string, port: number, extra: string[], startupTimeoutMs: number): Promise<Running> {
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--save', '',
    '--appendonly', 'no',
    '--maxmemory-policy', 'noeviction',
    '--dir', tmpdir(),
    ...extra,
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let exitedEarly: string | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));
  child.once('exit', (code, signal) => (exitedEarly = signal ?? `code ${code}`));
  child.once('error', (e) => (spawnError = e));

  // Keep reading for the server's whole life: a full pipe would block it, and the tail explains failures.
  const log: string[] = [];
  let partial = '';
  let listening = false;
  const read = (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (READY.test(line)) listening = true;
      log.push(line);
      if (log.length > LOG_LINES_KEPT) log.shift();
    }
  };
  child.stdout!.on('data', read);
  child.stderr!.on('data', read);
  const tail = () => (log.length > 0 ? `\n${log.join('\n')}` : '');

  const deadline = Date.now() + startupTimeoutMs;
  for (;;) {
    if (spawnError) throw new Error(`cannot run ${bin}: ${spawnError.message}`, { cause: spawnError });
    if (exitedEarly !== undefined) {
      await exited; // let the last output arrive
      const text = `redis-server exited (${exitedEarly}) before it answered PING on port ${port}${tail()}`;
      throw /already in use/i.test(log.join('\n')) ? new PortInUseError(text) : new Error(text);
    }
    // The log line proves our child bound the port (not another server that answers PING there).
    if (listening && (await ping(port)) && exitedEarly === undefined) return { child, port, exited };
    if (Date.now() >= deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer PING within ${startupTimeoutMs}ms on port ${port}${tail()}`);
    }
    await new Promise((r) => setTimeout(r, PING_POLL_MS));
  }
}
