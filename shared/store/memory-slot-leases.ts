// SlotLeases in process memory, with the Redis leases' semantics: fences that only grow, TTLs on
// Date.now(), router heartbeats. Also the fencing check the other memory stores' writes make (holds).
import type { Lease, SlotLeases } from './ports.js';

export class MemorySlotLeases implements SlotLeases {
  private readonly held = new Map<number, { owner: string; fence: number; expiresAt: number }>();
  private readonly fences = new Map<number, number>();
  /** router -> deadline */
  private readonly routers = new Map<string, number>();

  private current(slot: number) {
    const l = this.held.get(slot);
    if (l && l.expiresAt <= Date.now()) {
      this.held.delete(slot);
      return undefined;
    }
    return l;
  }

  /** True while `lease` is its slot's current lease (what a fenced write checks). */
  holds(lease: Lease): boolean {
    const l = this.current(lease.slot);
    return l !== undefined && l.owner === lease.owner && l.fence === lease.fence;
  }

  async acquire(slot: number, owner: string, ttlMs: number): Promise<Lease | null> {
    if (this.current(slot)) return null;
    const fence = (this.fences.get(slot) ?? 0) + 1;
    this.fences.set(slot, fence);
    this.held.set(slot, { owner, fence, expiresAt: Date.now() + ttlMs });
    return { slot, owner, fence };
  }

  async renew(lease: Lease, ttlMs: number): Promise<boolean> {
    if (!this.holds(lease)) return false;
    this.held.get(lease.slot)!.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async release(lease: Lease): Promise<void> {
    if (this.holds(lease)) this.held.delete(lease.slot);
  }

  async owners(slots: number): Promise<(string | null)[]> {
    return Array.from({ length: slots }, (_, s) => this.current(s)?.owner ?? null);
  }

  async heartbeat(router: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    this.routers.set(router, now + ttlMs);
    for (const [r, deadline] of this.routers) if (deadline <= now) this.routers.delete(r);
  }

  async liveRouters(): Promise<string[]> {
    const now = Date.now();
    return [...this.routers]
      .filter(([, deadline]) => deadline > now)
      .map(([r]) => r)
      .sort();
  }

  async leave(router: string): Promise<void> {
    this.routers.delete(router);
  }
}
