// Redis stalls (SIGSTOP: the socket stays open, nothing answers) under traffic, longer than the request
// timeout and the slot lease. While it is stopped nothing can be stored, so no request sent during the
// stall may be answered `ok` before it resumes: the answers are `unavailable` (the gateway's request
// timeout). After SIGCONT the service comes back by itself, and the history checker finds every ok'd
// pub with every member and every ok'd dm with its recipient, once per seq, in order, acknowledged.
import { expect, it } from 'vitest';
import { FAST_ENV, REQUEST_TIMEOUT_MS, useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

const PAUSE_AFTER_MS = 1500;
/** Past the request timeout (so stalled requests are answered while Redis is still stopped) and the lease. */
const PAUSE_MS = 4000;

const sc = useScenario({
  gateways: 2,
  routers: 2,
  env: FAST_ENV,
  // A test that fails during the pause leaves Redis stopped: resume it so the cluster can stop.
  beforeStop: (c) => c.redis.resume(),
});

it('while Redis is stopped nothing is answered ok; after SIGCONT every ok’d pub and dm is delivered in order and acknowledged', async () => {
  const w = await sc.build({
    roomsPerRouter: 1,
    roomBase: 'rp',
    membersPerGateway: 1,
    recipients: 4,
    publishersPerGateway: 1,
    dmSendersPerGateway: 1,
  });
  const { history } = w;
  const { pausedAt, resumedAt } = (await w.drive(
    {
      durationMs: PAUSE_AFTER_MS + PAUSE_MS + 2000,
      everyMs: 25,
      maxInFlight: 200,
      answerTimeoutMs: REQUEST_TIMEOUT_MS + 3000,
      resendForMs: 8000,
      resendAfterMs: 250,
    },
    {
      atMs: PAUSE_AFTER_MS,
      strike: async () => {
        sc.cluster.redis.pause();
        const paused = Date.now();
        await waitFor(() => Date.now() - paused >= PAUSE_MS, PAUSE_MS + 1000, 'the end of the pause');
        sc.cluster.redis.resume();
        return { pausedAt: paused, resumedAt: Date.now() };
      },
    },
  ))!;

  // Sent while Redis was stopped and answered before it resumed: never ok.
  const duringPause = history.sends.filter(
    (x) => x.sentAtMs >= pausedAt && x.answeredAtMs !== undefined && x.answeredAtMs < resumedAt,
  );
  expect(
    duringPause
      .filter((x) => x.outcome?.kind === 'ok')
      .map(
        (x) => `${x.op} ${x.mid} ok'd ${x.answeredAtMs! - pausedAt} ms into the pause: ${JSON.stringify(x.outcome)}`,
      ),
  ).toEqual([]);
  expect(duringPause.length, 'requests sent and answered during the pause').toBeGreaterThan(0);
  expect(new Set(duringPause.map((x) => (x.outcome?.kind === 'err' ? x.outcome.code : x.outcome?.kind)))).toEqual(
    new Set(['unavailable']),
  );

  // Every request answered once, errors only `unavailable`; every message ok'd in the end; delivered and acknowledged.
  await w.verify({
    reliable: true,
    onProblems: () =>
      console.error(
        `Redis paused +${pausedAt - history.events[0]!.atMs}ms, resumed +${resumedAt - history.events[0]!.atMs}ms`,
      ),
    report: (result) => [
      'redis-pause:',
      {
        pausedMs: resumedAt - pausedAt,
        answeredDuringPause: duringPause.reduce<Record<string, number>>((a, x) => {
          const k = x.outcome?.kind === 'err' ? `err:${x.outcome.code}` : String(x.outcome?.kind);
          return { ...a, [k]: (a[k] ?? 0) + 1 };
        }, {}),
        pubs: history.summary('pub'),
        dms: history.summary('dm'),
        recipients: Object.fromEntries(Object.entries(result.recipients).map(([u, v]) => [u, v.stats])),
        firstOkAfterResumeMs: Math.min(
          ...history.sends
            .filter((x) => x.outcome?.kind === 'ok' && x.answeredAtMs! >= resumedAt)
            .map((x) => x.answeredAtMs! - resumedAt),
        ),
      },
    ],
  });
}, 60_000);
