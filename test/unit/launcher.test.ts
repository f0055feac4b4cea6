// bench/launcher.ts, the process launcher of the test harness and the bench, on small `sh` children:
// readiness by log line and by probe, the early exit and the deadline (both with the last log lines),
// the port-in-use signal, stop's SIGKILL after the grace period, pause/resume, and the log file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { launch, liveChildren, PortInUseError, retryPortInUse, spawnProcess, waitReady } from '../../bench/launcher.js';

const sh = (script: string) => ['/bin/sh', ['-c', script]] as const;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterAll(async () => {
  for (const p of liveChildren()) await p.stop({ signal: 'SIGKILL' });
});

describe('launcher', () => {
  it('resolves with the ready line, and stop() ends the child', async () => {
    const { proc, match } = await launch('srv', ...sh('echo starting; echo "listening on 4222"; exec sleep 30'), {
      what: 'it listened',
      timeoutMs: 5_000,
      line: /listening on (\d+)/,
    });
    expect(match?.[1]).toBe('4222');
    expect(proc.running).toBe(true);
    expect(proc.logTail()).toEqual(['starting', 'listening on 4222']);
    await proc.stop();
    expect(proc.running).toBe(false);
    expect(proc.exitStatus).toBe('SIGTERM');
    expect(liveChildren()).not.toContain(proc);
  });

  it('rejects on an early exit with its status and last lines', async () => {
    await expect(
      launch('srv', ...sh('echo "bad config"; exit 3'), { what: 'it listened', timeoutMs: 5_000, line: /listening/ }),
    ).rejects.toThrow(/^srv exited \(code 3\) before it listened\nbad config$/);
  });

  it('marks an early exit over a taken port as PortInUseError, which retryPortInUse tries again', async () => {
    let attempts = 0;
    const start = () => {
      attempts++;
      return launch(
        'srv',
        ...sh(attempts < 3 ? 'echo "Address already in use"; exit 1' : 'echo ready; exec sleep 30'),
        {
          what: 'ready',
          timeoutMs: 5_000,
          line: /^ready$/,
          portInUse: /already in use/,
        },
      );
    };
    await expect(
      launch('srv', ...sh('echo "Address already in use"; exit 1'), {
        what: 'ready',
        timeoutMs: 5_000,
        line: /^ready$/,
        portInUse: /already in use/,
      }),
    ).rejects.toBeInstanceOf(PortInUseError);
    const { proc } = await retryPortInUse(5, start);
    expect(attempts).toBe(3);
    await proc.stop();
  });

  it('kills the child and rejects with its last lines on the deadline', async () => {
    const p = launch('srv', ...sh('echo waiting; exec sleep 30'), {
      what: 'it listened',
      timeoutMs: 300,
      line: /listening/,
    });
    await expect(p).rejects.toThrow(/^srv: it listened not within 300 ms\nwaiting$/);
    expect(liveChildren().filter((c) => c.name === 'srv')).toEqual([]);
  });

  it('polls a probe after the line, and fails when the child exits while probing', async () => {
    let polls = 0;
    const { proc } = await launch('srv', ...sh('echo up; exec sleep 30'), {
      what: 'probe',
      timeoutMs: 5_000,
      line: /^up$/,
      probe: async () => ++polls >= 3,
      pollMs: 10,
    });
    expect(polls).toBe(3);
    await proc.stop();

    const dying = spawnProcess('srv', ...sh('sleep 0.2; echo bye; exit 1'));
    await expect(
      waitReady(dying, { what: 'probe', timeoutMs: 5_000, probe: async () => false, pollMs: 10 }),
    ).rejects.toThrow(/^srv exited \(code 1\) before probe\nbye$/);
  });

  it('stop() SIGKILLs a child that ignores SIGTERM after the grace period, and stops a paused one', async () => {
    const stubborn = spawnProcess('srv', ...sh('trap "" TERM; echo trapped; while :; do sleep 0.05; done'));
    await waitReady(stubborn, { what: 'trap', timeoutMs: 5_000, line: /trapped/ });
    const t0 = Date.now();
    await stubborn.stop({ graceMs: 200 });
    expect(stubborn.exitStatus).toBe('SIGKILL');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);

    const paused = spawnProcess('srv', ...sh('exec sleep 30'));
    paused.pause();
    paused.resume();
    paused.pause();
    await paused.stop({ graceMs: 2_000 });
    expect(paused.exitStatus).toBe('SIGTERM');
    expect(alive(paused.pid)).toBe(false);
  });

  it('appends the output to the log file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'launcher-'));
    try {
      const file = join(dir, 'srv.log');
      const p = spawnProcess('srv', ...sh('echo out; echo err >&2'), { logFile: file });
      await p.exited;
      await new Promise((r) => setTimeout(r, 50));
      expect(readFileSync(file, 'utf8').split('\n').sort()).toEqual(['', 'err', 'out']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
