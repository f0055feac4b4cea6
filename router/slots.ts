// Slot ownership. Every slot should have exactly one live router: each router computes the same
// preferred owner per slot (rendezvous hashing over the live routers), takes free slots it prefers,
// hands over slots another live router prefers, and takes any slot left free longer than a lease
// (so a preferred router that is alive but stuck cannot orphan a slot). Leases are fenced: a router
// that was paused past its lease finds every write refused and drops the slot.
import { fnv1a } from '../shared/cluster/encode.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import type { Lease, SlotLeases } from '../shared/store/ports.js';

export interface SlotEvents {
  gained(slot: number, lease: Lease): void;
  /**
   * Stop taking requests for the slot; resolves when the ones already taken have finished. `graceful`:
   * a hand-over while the lease is still held (requests may be answered "moved"); otherwise the lease
   * is already lost.
   */
  lost(slot: number, graceful: boolean): Promise<void>;
}

/** murmur3's finalizer: FNV-1a alone leaves similar inputs with similar high bits, which skews ownership. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const preferredOwner = (slot: number, routers: readonly string[]): string | undefined => {
  let best: string | undefined;
  let bestScore = -1;
  for (const r of routers) {
    const score = mix32(fnv1a(`${r}/${slot}`));
    if (score > bestScore || (score === bestScore && r < best!)) {
      best = r;
      bestScore = score;
    }
  }
  return best;
};

export interface SlotManagerDeps {
  me: string;
  slots: number;
  leaseMs: number;
  leases: SlotLeases;
  events: SlotEvents;
  metrics: Metrics;
  log: Logger;
}

export class SlotManager {
  private readonly held = new Map<number, Lease>();
  private readonly freeSince = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** True after the first complete round: the router knows what it owns. */
  settled = false;

  constructor(private readonly d: SlotManagerDeps) {
    d.metrics.slotsTotal.set(d.slots);
  }

  lease(slot: number): Lease | undefined {
    return this.held.get(slot);
  }

  get owned(): number {
    return this.held.size;
  }

  ownedSlots(): number[] {
    return [...this.held.keys()];
  }

  async start(): Promise<void> {
    await this.tick();
    const every = Math.max(50, Math.floor(this.d.leaseMs / 3));
    const loop = () => {
      this.timer = setTimeout(() => {
        this.running = this.tick()
          .catch((e: unknown) => this.d.log.warn({ err: e }, 'slot round failed'))
          .finally(() => !this.stopped && loop());
      }, every);
    };
    loop();
  }

  /** Drops a slot whose lease turned out to be lost (renewal failed or a fenced write was refused). */
  drop(slot: number): void {
    if (this.held.has(slot)) this.d.log.warn({ slot }, 'slot lease lost');
    void this.forget(slot, false);
  }

  private async forget(slot: number, graceful: boolean): Promise<void> {
    if (!this.held.delete(slot)) return;
    this.d.metrics.slotsOwned.set(this.held.size);
    await this.d.events.lost(slot, graceful);
  }

  /** Releases every slot at once so other routers take them without waiting for the TTL. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    // Leave the live set first: a router that sees the slots free must not wait for us to take them back.
    await this.d.leases.leave(this.d.me);
    await Promise.allSettled([...this.held.values()].map((l) => this.handOver(l)));
  }

  private async tick(): Promise<void> {
    await this.d.leases.heartbeat(this.d.me, this.d.leaseMs);
    const renewals = [...this.held.values()].map(async (l) => {
      if (!(await this.d.leases.renew(l, this.d.leaseMs))) this.drop(l.slot);
    });
    const [live, owners] = await Promise.all([
      this.d.leases.liveRouters(),
      this.d.leases.owners(this.d.slots),
      ...renewals,
    ]);
    if (this.stopped) return;
    const now = Date.now();
    const work: Promise<void>[] = [];
    for (let slot = 0; slot < this.d.slots; slot++) {
      const preferred = preferredOwner(slot, live);
      const mine = this.held.get(slot);
      if (mine) {
        if (preferred !== undefined && preferred !== this.d.me) work.push(this.handOver(mine));
        continue;
      }
      if (owners[slot] !== null && owners[slot] !== undefined) {
        this.freeSince.delete(slot);
        continue;
      }
      const since = this.freeSince.get(slot) ?? now;
      this.freeSince.set(slot, since);
      if (preferred === this.d.me || now - since >= this.d.leaseMs) work.push(this.take(slot));
    }
    await Promise.all(work);
    this.d.metrics.slotsOwned.set(this.held.size);
    this.settled = true;
  }

  private async take(slot: number): Promise<void> {
    const lease = await this.d.leases.acquire(slot, this.d.me, this.d.leaseMs);
    if (!lease || this.stopped) {
      if (lease) await this.d.leases.release(lease);
      return;
    }
    this.freeSince.delete(slot);
    this.held.set(slot, lease);
    this.d.events.gained(slot, lease);
  }

  /** In-flight requests finish under the lease before it is released, so none is left unanswered. */
  private async handOver(lease: Lease): Promise<void> {
    await this.forget(lease.slot, true);
    await this.d.leases.release(lease);
    this.d.log.debug({ slot: lease.slot }, 'slot released');
  }
}
