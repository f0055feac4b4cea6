// Guarantee 2's last clause: a recipient that never acknowledges. Each dm is delivered again and again
// with backoff (first after the ack timeout, then exponential with jitter), exactly maxAttempts times,
// then dead-lettered with reason 'attempts': listed by `<prefix>.api.deadletters`, counted in
// rtgw_dead_letters_total, never silently dropped. `<prefix>.api.redrive` then sends each again under
// a new seq; the recipient (acking now) gets each once, and nothing is retried after the acks.
import { expect, it } from 'vitest';
import type { DeadLetter } from '../../shared/store/ports.js';
import type { Frame } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { History } from '../harness/history.js';
import { expectRetryQueueEmpty, metricSum, metricWith } from '../harness/nodes.js';
import { ACK_TIMEOUT_MS, FAST_ENV, MAX_ATTEMPTS, MAX_BACKOFF_MS, useScenario } from '../harness/scenario.js';
import { waitFor } from '../harness/wait.js';

/** The sweeper runs every ackTimeout/4 (router/index.ts); deliveries also cross NATS and a gateway on 2 busy cores. */
const LATE_MS = ACK_TIMEOUT_MS / 4 + 200;
const N = 3;
/** Deadline of each backend API request. */
const API_TIMEOUT_MS = 5000;

// No traffic loop and no fault of the cluster's: the recipient itself is the fault (it never acks).
const suite = useScenario({ gateways: 2, routers: 2, env: FAST_ENV, bus: 'rtgw-faults-dropped-acks', logLines: 60 });
const { client, api } = suite;

const live = () => suite.cluster.nodes.filter((n) => !n.hasExited);
const sumMetric = (name: string) => metricSum(live(), name);
/** Samples of metric `name` carrying `label` (e.g. `reason="attempts"`), summed over the live nodes. */
const sample = (name: string, label: string) => metricWith(live(), name, label);
const RETRIES = ['rtgw_dm_deliveries_total', 'kind="retry"'] as const;
const DEAD_BY_ATTEMPTS = ['rtgw_dead_letters_total', 'reason="attempts"'] as const;

it('unacknowledged dms are retried with backoff, dead-lettered after the last attempt, counted, and re-driven under new seqs', async () => {
  const history = new History();
  const deaf = uid('deaf');
  const recipient = await client(0, deaf);
  let acking = false;
  history.watch(recipient, deaf, { ack: () => acking });
  const sender = await client(1);
  const deadBefore = await sumMetric('rtgw_dead_letters_total');
  const [retriesBefore, byAttemptsBefore] = [await sample(...RETRIES), await sample(...DEAD_BY_ATTEMPTS)];

  const sent = [];
  for (let i = 0; i < N; i++) sent.push(await history.dmUntilOk(sender, 'sender', deaf, 5000));
  expect(sent.map((d) => d.outcome)).toEqual([1, 2, 3].map((seq) => ({ kind: 'ok', seq })));

  // Dead-lettered after the last attempt: ackTimeout + the backoffs (at most 300 + 300 + 600 + 1000 ms).
  let letters: DeadLetter[] = [];
  await waitFor(
    async () =>
      (letters = (await api<{ deadLetters: DeadLetter[] }>('deadletters', { user: deaf }, API_TIMEOUT_MS)).deadLetters)
        .length >= N,
    10_000,
    `${N} dead letters for ${deaf}`,
  );
  expect(
    letters
      .map((d) => ({ user: d.user, seq: d.seq, reason: d.reason, attempts: d.attempts }))
      .sort((a, b) => a.seq - b.seq),
  ).toEqual([1, 2, 3].map((seq) => ({ user: deaf, seq, reason: 'attempts', attempts: MAX_ATTEMPTS })));
  for (const d of letters) {
    expect(d.id).toMatch(/^\d+:.+:\d+$/);
    expect(JSON.parse(d.frame)).toMatchObject({
      t: 'dm',
      seq: d.seq,
      from: sender.user,
      data: { id: sent[d.seq - 1]!.mid },
    });
  }
  await waitFor(
    async () => (await sumMetric('rtgw_dead_letters_total')) - deadBefore === N,
    5000,
    `rtgw_dead_letters_total to count ${N} more`,
  ).catch(() => undefined);
  expect(
    (await sumMetric('rtgw_dead_letters_total')) - deadBefore,
    'rtgw_dead_letters_total (all nodes) increase',
  ).toBe(N);
  expect((await sample(...DEAD_BY_ATTEMPTS)) - byAttemptsBefore, `${DEAD_BY_ATTEMPTS.join(' ')} increase`).toBe(N);
  // Every retry counted: maxAttempts - 1 per message (the first delivery is kind="first").
  expect((await sample(...RETRIES)) - retriesBefore, `${RETRIES.join(' ')} increase`).toBe(N * (MAX_ATTEMPTS - 1));

  // Each was delivered exactly maxAttempts times, with backoff between the deliveries. dm-claim.lua:
  // attempt 1 is due ackTimeout after the append; claiming attempt k (k >= 2) schedules the next look
  // at claim + min(maxBackoff, ackTimeout * 2^(k-2)) * uniform[0.5, 1]. Bounds are cumulative from the
  // send: the append came after `sentAtMs` and before `answeredAtMs`, and a delivery is received after
  // its claim, so the lower bounds are exact; the upper ones allow LATE_MS per step for sweeps and load.
  const waits = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, k) => Math.min(MAX_BACKOFF_MS, ACK_TIMEOUT_MS * 2 ** k));
  const backoffs: Record<number, number[]> = {};
  for (const d of letters) {
    const rec = sent[d.seq - 1]!;
    const times = history
      .receives({ user: deaf })
      .filter((e) => e.frame.seq === d.seq)
      .map((e) => e.atMs);
    expect(times.length, `deliveries of seq ${d.seq}`).toBe(MAX_ATTEMPTS);
    backoffs[d.seq] = [...times.slice(1), d.ts].map((t, i) => t - times[i]!);
    const what = `seq ${d.seq}: deliveries at +${times.map((t) => t - rec.sentAtMs).join(', +')} ms, dead letter at +${d.ts - rec.sentAtMs} ms after the send`;
    // Retry k (k = 1..maxAttempts-1) is delivery k+1; the dead letter comes one wait after the last.
    [...times.slice(1), d.ts].forEach((t, k) => {
      const min = rec.sentAtMs + ACK_TIMEOUT_MS + waits.slice(0, k).reduce((a, w) => a + w / 2, 0);
      const max = rec.answeredAtMs! + ACK_TIMEOUT_MS + waits.slice(0, k).reduce((a, w) => a + w, 0) + (k + 1) * LATE_MS;
      expect(
        t,
        `${what}: ${k + 1 < MAX_ATTEMPTS ? `retry ${k + 1}` : 'dead letter'} not before +${min - rec.sentAtMs} ms`,
      ).toBeGreaterThanOrEqual(min);
      expect(
        t,
        `${what}: ${k + 1 < MAX_ATTEMPTS ? `retry ${k + 1}` : 'dead letter'} not after +${max - rec.sentAtMs} ms`,
      ).toBeLessThanOrEqual(max);
    });
  }

  // Re-drive: each comes back under a new seq; the recipient acks now, and gets each exactly once.
  acking = true;
  const from = recipient.frames.length;
  const ids = letters.map((d) => d.id);
  const { redriven, missing } = await api<{ redriven: { id: string; seq: number }[]; missing: string[] }>(
    'redrive',
    { ids },
    API_TIMEOUT_MS,
  );
  expect(missing).toEqual([]);
  // Re-driven in their original order, whatever order they were dead-lettered (jitter) or listed in.
  expect(redriven.map((r) => letters.find((x) => x.id === r.id)!.seq)).toEqual([1, 2, 3]);
  expect(redriven.map((r) => r.seq)).toEqual([4, 5, 6]);
  for (const r of redriven) {
    const d = letters.find((x) => x.id === r.id)!;
    history.recordRedrive(deaf, sent[d.seq - 1]!.mid, d.seq, r.seq);
  }
  expect(redriven.map((r) => r.seq).sort((a, b) => a - b)).toEqual([4, 5, 6]);
  await waitFor(
    () => redriven.every((r) => recipient.frames.slice(from).some((f: Frame) => f.t === 'dm' && f.seq === r.seq)),
    5000,
    'the re-driven dms',
  );
  // A second re-drive of the same ids finds nothing: they left the dead-letter list.
  expect(await api('redrive', { ids }, API_TIMEOUT_MS)).toEqual({ redriven: [], missing: ids });
  expect((await api<{ deadLetters: DeadLetter[] }>('deadletters', { user: deaf }, API_TIMEOUT_MS)).deadLetters).toEqual(
    [],
  );

  // Nothing is retried after the acks: the retry queue drains and no further frame arrives.
  await expectRetryQueueEmpty(live());
  // Absence needs a window: one ack timeout plus the longest backoff, in which any retry would come.
  const quietFrom = recipient.frames.length;
  await new Promise((r) => setTimeout(r, ACK_TIMEOUT_MS + MAX_BACKOFF_MS));
  expect(recipient.frames.slice(quietFrom).filter((f) => f.t === 'dm')).toEqual([]);
  for (const r of redriven)
    expect(
      recipient.frames.filter((f) => f.t === 'dm' && f.seq === r.seq),
      `deliveries of re-driven seq ${r.seq}`,
    ).toHaveLength(1);

  const result = history.check({ deadLetters: letters, settled: true });
  console.info('dropped-acks:', {
    backoffs,
    deadLetters: letters.map((d) => `${d.id} ${d.reason} ${d.attempts}`),
    redriven,
    stats: result.recipients[deaf]?.stats,
  });
  expect(result.lines()).toEqual([]);
}, 60_000);
