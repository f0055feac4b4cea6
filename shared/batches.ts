// Work asked for in one burst (synchronously, e.g. by the handlers of one NATS read) grouped by key, and
// handed over once per key in a microtask queued at the burst's first item, in the order it was asked
// for: one store call or one bus message for many.
export class BurstBatches<K, T> {
  #groups = new Map<K, T[]>();
  #scheduled = false;

  constructor(private readonly flush: (key: K, items: T[]) => void) {}

  add(key: K, item: T): void {
    const group = this.#groups.get(key);
    if (group) group.push(item);
    else this.#groups.set(key, [item]);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#run());
  }

  #run(): void {
    this.#scheduled = false;
    const groups = this.#groups;
    this.#groups = new Map();
    for (const [key, items] of groups) this.flush(key, items);
  }
}
