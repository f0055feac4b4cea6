// The retry worker: sweeps the compensation sets of the slots this router owns. A claimed entry was
// already rescheduled by the claim (that is its lease), so a crash here loses nothing: the entry comes
// due again. A retry is a request on the recipient's subject, which every gateway holding one of their
// connections answers: "no responders" is the exact, immediate sign that the recipient is offline (a
// killed gateway's subscriptions vanish with its connection, before presence would notice), and then
// the entry is parked until the next connect instead of spending an attempt.
import { BusError, type Bus } from '../shared/bus/bus.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import { failpoint } from '../shared/failpoints.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { Inbox } from '../shared/store/ports.js';

const CLAIM_LIMIT = 256;
const STATS_EVERY_MS = 2000;
/** How long a retry waits for a gateway to say it holds the recipient. */
const RETRY_ANSWER_MS = 1000;

export function startDelivery(
  inbox: Inbox,
  bus: Bus,
  subj: Subjects,
  ownedSlots: () => number[],
  everyMs: number,
  metrics: Metrics,
  log: Logger,
): () => Promise<void> {
  let stopped = false;
  let lastStats = 0;

  async function sweep(slot: number): Promise<void> {
    const due = await inbox.claimDue(slot, CLAIM_LIMIT);
    if (due.length === 0) return;
    failpoint('router.mid-sweep');
    await Promise.all(
      due.map(async (d) => {
        try {
          await bus.request(subj.user(d.user), d.frame, RETRY_ANSWER_MS);
        } catch (e) {
          if (e instanceof BusError && e.code === 'no_responders') {
            await inbox.park(slot, d.user, d.seq, d.due);
            metrics.dmParked.inc();
            return;
          }
          // No answer in time: it may have been delivered; the attempt counts and the entry stays due.
        }
        metrics.dmSent.inc({ kind: 'retry' });
      }),
    );
  }

  async function stats(slots: number[]): Promise<void> {
    const all = await Promise.all(slots.map((s) => inbox.stats(s)));
    metrics.retryQueueSize.set(all.reduce((a, s) => a + s.queued, 0));
    metrics.retryDue.set(all.reduce((a, s) => a + s.due, 0));
    metrics.retryOldestDue.set(all.reduce((a, s) => Math.max(a, s.oldestDueMs), 0) / 1000);
  }

  async function round(): Promise<void> {
    const slots = ownedSlots();
    await Promise.all(slots.map((s) => sweep(s).catch((e: unknown) => log.warn({ err: e, slot: s }, 'retry sweep failed'))));
    if (Date.now() - lastStats >= STATS_EVERY_MS) {
      lastStats = Date.now();
      await stats(slots).catch((e: unknown) => log.warn({ err: e }, 'retry stats failed'));
    }
  }

  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    timer = setTimeout(() => {
      running = round().finally(() => !stopped && loop());
    }, everyMs);
  };
  loop();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
