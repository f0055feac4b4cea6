// Removes the presence of gateways that stopped heart-beating and tells the rooms (`left`).
// Every router runs it; the store guarantees each removed membership is reported once.
import type { Bus } from '../shared/bus/bus.js';
import { encodePresence } from '../shared/cluster/stream.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { RouterStores } from '../shared/store/ports.js';

export interface ReaperDeps {
  presence: RouterStores['presence'];
  bus: Bus;
  subj: Subjects;
  everyMs: number;
  metrics: Metrics;
  log: Logger;
}

export function startReaper({ presence, bus, subj, everyMs, metrics, log }: ReaperDeps): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    presence
      .reap()
      .then((gone) => {
        for (const m of gone) bus.publish(subj.room(m.room), encodePresence('left', m, undefined));
        if (gone.length > 0) {
          metrics.presenceReaped.inc(gone.length);
          log.info({ count: gone.length }, 'reaped presence of dead gateways');
        }
      })
      .catch((e: unknown) => log.warn({ err: e }, 'presence reap failed'))
      .finally(() => {
        busy = false;
      });
  }, everyMs);
  return () => clearInterval(timer);
}
