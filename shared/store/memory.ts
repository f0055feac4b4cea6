// The memory engine's stores, for standalone and tests: one instance of each memory store, sharing the
// leases (fenced writes) and presence (the nodes a direct message names). State dies with the process.
import { MemoryInbox } from './memory-inbox.js';
import { MemoryPresence } from './memory-presence.js';
import { MemoryRoomLog } from './memory-room-log.js';
import { MemorySlotLeases } from './memory-slot-leases.js';
import type { DeadLetterObserver, StoreLimits, Stores } from './ports.js';

export interface MemoryStores extends Stores {
  readonly log: MemoryRoomLog;
  readonly inbox: MemoryInbox;
  readonly leases: MemorySlotLeases;
  readonly presence: MemoryPresence;
}

export interface MemoryStoresOptions {
  /** Counts dead letters as they are made (rtgw_dead_letters_total). */
  onDeadLetter?: DeadLetterObserver;
}

export function memoryStores(limits: StoreLimits, opts: MemoryStoresOptions = {}): MemoryStores {
  const leases = new MemorySlotLeases();
  const presence = new MemoryPresence();
  let open = true;
  return {
    log: new MemoryRoomLog(leases, limits),
    inbox: new MemoryInbox(leases, limits, (user) => presence.nodesOf(user), opts.onDeadLetter),
    leases,
    presence,
    get connected() {
      return open;
    },
    async close() {
      open = false;
    },
  };
}
