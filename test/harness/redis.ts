// Starts a real redis-server for tests on a free loopback port, empty and without persistence, and
// restarts it (empty) on the same port so clients reconnect. Spawning, readiness, the log tail of errors,
// signals and killing whatever is left when the test process exits are bench/launcher.ts's.
import { tmpdir } from 'node:os';
import {
  freePort,
  launch,
  LOOPBACK,
  PortInUseError,
  redisServerArgs,
  retryPortInUse,
  tcpProbe,
  type Launched,
} from '../../bench/launcher.js';
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

const PORT_ATTEMPTS = 5;
const PING_POLL_MS = 20;

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = requireBinary('redis-server');
  const extra = opts.args ?? [];
  const timeoutMs = opts.startupTimeoutMs ?? 10_000;
  const start = async (port: number) => {
    const args = [...redisServerArgs(port, tmpdir()), ...extra];
    const { proc } = await launch('redis-server', bin, args, {
      what: `it answered PING on port ${port}`,
      timeoutMs,
      // The log line proves our child bound the port (not another server that answers PING there).
      line: /Ready to accept connections/,
      probe: () => tcpProbe(port, 'PING\r\n', '+PONG'),
      pollMs: PING_POLL_MS,
      portInUse: /already in use/i,
    });
    return proc;
  };

  // Another process may take the port between our probe and the spawn: then another port.
  let port = 0;
  let current: Launched = await retryPortInUse(PORT_ATTEMPTS, async () => start((port = await freePort()))).catch(
    (e: unknown) => {
      if (!(e instanceof PortInUseError)) throw e;
      throw new Error(`redis-server found no free port after ${PORT_ATTEMPTS} attempts`, { cause: e });
    },
  );

  const waitExit = (signal: NodeJS.Signals) => current.stop({ signal });
  return {
    url: `redis://${LOOPBACK}:${port}`,
    port,
    get pid() {
      return current.pid;
    },
    stop: () => waitExit('SIGTERM'),
    kill: (signal = 'SIGKILL') => waitExit(signal),
    async restart() {
      await waitExit('SIGTERM');
      // The port was ours a moment ago; retry briefly in case the old socket is still being torn down.
      current = await retryPortInUse(PORT_ATTEMPTS, () => start(port));
    },
    pause() {
      current.pause();
    },
    resume() {
      current.resume();
    },
  };
}
