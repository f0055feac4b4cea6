// Starts a real nats-server for tests on a port the server picks (never a fixed one), and stops or
// restarts it on that same port so clients can reconnect. Spawning, readiness, the log tail of errors and
// killing whatever is left when the test process exits are bench/launcher.ts's.
import { launch, LOOPBACK, type Launched } from '../../bench/launcher.js';
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

/** nats-server's own line once it listens; with `-p -1` it is where we learn the port it picked. */
const LISTENING = /Listening for client connections on [^\s:]+:(\d+)/;

export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServer> {
  const bin = requireBinary('nats-server');
  const args = opts.args ?? [];
  const timeoutMs = opts.startupTimeoutMs ?? 10_000;
  /** `port` -1: the server picks one (no race with another process between a probe and the bind). */
  const start = async (port: number) => {
    const { proc, match } = await launch('nats-server', bin, ['-a', LOOPBACK, '-p', String(port), ...args], {
      what: 'it listened',
      timeoutMs,
      line: LISTENING,
    });
    return { proc, port: Number(match![1]) };
  };
  const first = await start(-1);
  let current: Launched = first.proc;
  const port = first.port;

  const stop = () => current.stop();
  return {
    url: `nats://${LOOPBACK}:${port}`,
    port,
    get pid() {
      return current.pid;
    },
    stop,
    kill(signal = 'SIGKILL') {
      current.signal(signal);
    },
    async restart() {
      await stop();
      current = (await start(port)).proc;
    },
  };
}
