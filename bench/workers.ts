// The load generator's worker processes (members.ts, driver.ts), forked with an IPC channel and pinned
// off the servers' CPU, each answering one command at a time.
import { join } from 'node:path';
import type { DriverCmd, DriverReply, MembersCmd, MembersReply } from './protocol.js';
import { forkWorker, HERE, LOADGEN_CPUS, pin, stopProc, type Proc } from './procs.js';

export class Worker<C, R extends { cmd: string }> {
  private waiting: ((r: R) => void) | undefined;
  constructor(readonly proc: Proc) {
    proc.child.on('message', (m: R) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.(m);
    });
  }

  call(cmd: C, timeoutMs: number): Promise<R> {
    if (this.waiting) throw new Error(`${this.proc.name}: a command is already in flight`);
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`${this.proc.name}: no answer to ${JSON.stringify(cmd).slice(0, 80)} within ${timeoutMs} ms`));
      }, timeoutMs);
      const exit = () => reject(new Error(`${this.proc.name} exited`));
      this.proc.child.once('exit', exit);
      this.waiting = (r) => {
        clearTimeout(timer);
        this.proc.child.off('exit', exit);
        if (r.cmd === 'error') reject(new Error(`${this.proc.name}: ${(r as unknown as { msg: string }).msg}`));
        else resolve(r);
      };
      this.proc.child.send(cmd as object);
    });
  }

  /** Sends `cmd` and insists on the answer `want` (narrowed). */
  async expect<K extends R['cmd']>(cmd: C, want: K, timeoutMs: number): Promise<Extract<R, { cmd: K }>> {
    const r = await this.call(cmd, timeoutMs);
    if (r.cmd !== want) throw new Error(`${this.proc.name}: answered ${r.cmd}, not ${want}`);
    return r as Extract<R, { cmd: K }>;
  }

  stop(): Promise<void> {
    return stopProc(this.proc);
  }
}

export type MembersWorker = Worker<MembersCmd, MembersReply>;
export type DriverWorker = Worker<DriverCmd, DriverReply>;

function fork<C, R extends { cmd: string }>(name: string, file: string, secret: string, pinned: boolean): Worker<C, R> {
  const w = new Worker<C, R>(forkWorker(name, join(HERE, file), { ...process.env, BENCH_JWT_SECRET: secret }));
  if (pinned) pin(w.proc.pid, LOADGEN_CPUS);
  return w;
}

export const forkMembers = (i: number, secret: string, pinned: boolean): MembersWorker =>
  fork(`members${i}`, 'members.js', secret, pinned);
export const forkDriver = (secret: string, pinned: boolean): DriverWorker =>
  fork('driver', 'driver.js', secret, pinned);
