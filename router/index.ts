// The router: owns slots (rooms and recipients), sequences and fans out, retries direct messages,
// answers the backend API, reaps presence.
import type { RouterDeps } from '../shared/deps.js';
import { SlotClient } from '../shared/cluster/slot-rpc.js';
import { serveApi } from './api.js';
import { startDelivery } from './delivery.js';
import { startReaper } from './reaper.js';
import { Sequencer } from './sequencer.js';
import { SlotManager } from './slots.js';

export interface Router {
  /** True once it has taken part in a full ownership round. */
  readonly settled: boolean;
  /** Releases slots (others take them at once), stops serving. */
  close(): Promise<void>;
}

export async function startRouter(d: RouterDeps): Promise<Router> {
  const { cfg, bus, stores, subj, metrics, log } = d;
  const sequencer = new Sequencer({
    bus,
    subj,
    log: stores.log,
    inbox: stores.inbox,
    slots: cfg.slots,
    metrics,
    logger: log,
  });
  const slots = new SlotManager({
    me: cfg.nodeId,
    slots: cfg.slots,
    leaseMs: cfg.leaseMs,
    leases: stores.leases,
    events: sequencer,
    metrics,
    log,
  });
  sequencer.onLeaseLost = (slot) => slots.drop(slot);
  const slotClient = new SlotClient(bus, subj, `router-${cfg.nodeId}`, cfg.requestTimeoutMs);
  const stopApi = serveApi({ bus, subj, slots: slotClient, cfg, stores, log });
  const stopReaper = startReaper({
    presence: stores.presence,
    bus,
    subj,
    everyMs: Math.max(100, Math.floor(cfg.presenceTtlMs / 4)),
    metrics,
    log,
  });
  await slots.start();
  const sweepEveryMs = Math.max(20, Math.min(250, Math.floor(cfg.dmAckTimeoutMs / 4)));
  const stopDelivery = startDelivery({
    inbox: stores.inbox,
    bus,
    subj,
    ownedSlots: () => slots.ownedSlots(),
    everyMs: sweepEveryMs,
    metrics,
    log,
  });
  log.info({ slots: slots.owned }, 'router started');
  return {
    get settled() {
      return slots.settled;
    },
    async close() {
      stopApi();
      slotClient.close();
      stopReaper();
      await stopDelivery();
      await slots.stop();
    },
  };
}
