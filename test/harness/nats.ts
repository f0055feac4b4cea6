// Starts a real nats-server for tests on a port the server picks (never a fixed one), and stops or
// restarts it on that same port so clients can reconnect. Servers still running when the test process
// exits are killed, so a crashed test leaves no nats-server behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { requireBinary } from '../../scripts/prerequisites.mjs';

export interface NatsServer {
  /** `nats://127.0.0.1:<port>`; stays the same across restart(). */
  readonly url: string;
  readonly port: number;
  /** Of the current process: changes on restart(). */
  readonly pid: number;
  /** SIGTERM, then waits for the exit (SIGKILL if it has not exited after a few seconds). */
  stop(): Promise<void>;
  /** Sends a signal and returns at once, e.g. SIGKILL to simulate a crash. */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the server (if still running), then starts a new one on the same port. */
  restart(): Promise<void>;
}

export interface StartNatsOptions {
  /** Extra nats-server arguments, e.g. `['-js']`. */
  args?: string[];
  startupTimeoutMs?: number;
}

const LISTENING = /Listening for client connections on [^\s:]+:(\d+)/;
const STOP_GRACE_MS = 5_000;
const LOG_LINES_KEPT = 40;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServer> {
  const bin = requireBinary('nats-server');
  const args = opts.args ?? [];
  const startupTimeoutMs = opts.startupTimeoutMs ?? 10_000;
  let current = await launch(bin, -1, args, startupTimeoutMs);
  const port = current.port;

  const stop = async () => {
    const { child, exited } = current;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.child.pid!;
    },
    stop,
    kill(signal = 'SIGKILL') {
      current.child.kill(signal);
    },
    async restart() {
      await stop();
      current = await launch(bin, port, args, startupTimeoutMs);
    },
  };
}

interface Running {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
}

/** Spawns one server and resolves once it listens; rejects on an early exit or after the deadline. */
function launch(bin: string, port: number, args: string[], startupTimeoutMs: number): Promise<Running> {
  const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));

  // Keep reading for the server's whole life: a full pipe would block its logging, and the tail explains failures.
  const log: string[] = [];
  let partial = '';
  let onLine: ((line: string) => void) | undefined;
  const read = (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      log.push(line);
      if (log.length > LOG_LINES_KEPT) log.shift();
      onLine?.(line);
    }
  };
  child.stdout!.on('data', read);
  child.stderr!.on('data', read);
  const tail = () => (log.length > 0 ? `\n${log.join('\n')}` : '');

  return new Promise<Running>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      onLine = undefined;
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`nats-server did not listen within ${startupTimeoutMs}ms${tail()}`)),
      startupTimeoutMs,
    );
    child.once('error', (e) => fail(new Error(`cannot run ${bin}: ${e.message}`, { cause: e })));
    child.once('exit', (code, signal) => fail(new Error(`nats-server exited (${signal ?? `code ${code}`}) before it listened${tail()}`)));
    onLine = (line) => {
      const m = LISTENING.exec(line);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      onLine = undefined;
      resolve({ child, port: Number(m[1]), exited });
    };
  });
}
