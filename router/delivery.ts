// The retry worker: sweeps the compensation sets of the slots this router owns. A claimed entry was
// already rescheduled by the claim (that is its lease), so a crash here loses nothing: the entry comes
// due again. A retry is a request to each gateway node that presence says holds a connection of the
// recipient (the claim reads them): the node answers whether it still does. When none does (no node,
// every node says no, or a node is gone: "no responders", before presence notices), the recipient is
// offline and the entry is parked until the next connect instead of spending an attempt.
import { BusError, toText, type Bus } from '../shared/bus/bus.js';
import { DM_HELD, encodeDm } from '../shared/cluster/stream.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import { failpoint } from '../shared/failpoints.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { DueDelivery, RouterStores } from '../shared/store/ports.js';

const CLAIM_LIMIT = 256;
const STATS_EVERY_MS = 2000;
/** How long a retry waits for a gateway to say it holds the recipient. */
const RETRY_ANSWER_MS = 1000;

export interface DeliveryDeps {
  inbox: RouterStores['inbox'];
  bus: Bus;
  subj: Subjects;
  ownedSlots: () => number[];
  everyMs: number;
  metrics: Metrics;
  log: Logger;
}

export function startDelivery({
  inbox,
  bus,
  subj,
  ownedSlots,
  everyMs,
  metrics,
  log,
}: DeliveryDeps): () => Promise<void> {
  let stopped = false;
  let lastStats = 0;

  async function sweep(slot: number): Promise<void> {
    const due = await inbox.claimDue(slot, CLAIM_LIMIT);
    if (due.length === 0) return;
    failpoint('router.mid-sweep');
    await Promise.all(
      due.map(async (d) => {
        if (await reached(d)) {
          metrics.dmSent.inc({ kind: 'retry' });
          return;
        }
        await inbox.park(slot, d.user, d.seq, d.due);
        metrics.dmParked.inc();
      }),
    );
  }

  /**
   * Sends the retry to the recipient's nodes. False only when certainly none holds the recipient; a node
   * that did not answer in time may have delivered it, so the attempt counts and the entry stays due.
   */
  async function reached(d: DueDelivery): Promise<boolean> {
    const envelope = encodeDm(d.user, d.frame);
    const answers = await Promise.all(
      d.nodes.map((node) =>
        bus.request(subj.dm(node), envelope, RETRY_ANSWER_MS).then(
          (reply) => toText(reply) === DM_HELD,
          (e: unknown) => !(e instanceof BusError && e.code === 'no_responders'),
        ),
      ),
    );
    return answers.some((a) => a);
  }

  async function stats(slots: number[]): Promise<void> {
    const all = await Promise.all(slots.map((s) => inbox.stats(s)));
    metrics.retryQueueSize.set(all.reduce((a, s) => a + s.queued, 0));
    metrics.retryDue.set(all.reduce((a, s) => a + s.due, 0));
    metrics.retryOldestDue.set(all.reduce((a, s) => Math.max(a, s.oldestDueMs), 0) / 1000);
  }

  async function round(): Promise<void> {
    const slots = ownedSlots();
    await Promise.all(
      slots.map((s) => sweep(s).catch((e: unknown) => log.warn({ err: e, slot: s }, 'retry sweep failed'))),
    );
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
