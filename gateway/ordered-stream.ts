// One ordered stream of seq-numbered events (a room's messages, a user's direct messages): first copies
// are handed over in seq order with no gap, whatever order they arrive in. A seq that arrives ahead of a
// missing one waits while a fill, injected by the hub, reads the missing ones from the store; when the
// fill ends, what waited meanwhile is taken again in seq order. Newcomers (a room's joiners, a user's
// attaching sockets) collect every event handed over while they read their replay, so that they can be
// given exactly the events after it.
//
// The stream is the base class of the hub's per-room or per-user state, and the hub's handler is one
// object shared by all its streams, called with the stream: no closure or extra object per stream or per
// event (a user's stream lives as long as their idle connection). The stream starts held: everything waits
// until `start` gives it the head seq.

/** An event of the stream: `seq` is its place (1, 2, 3, ... within one run of seqs). */
export interface SeqEvent {
  readonly seq: number;
}

/** A receiver between its request and live: it collects every event handed over meanwhile. */
export interface Newcomer<E> {
  readonly buffer: E[];
}

/** What a hub does for its streams. Called synchronously from the stream's own methods. */
export interface StreamHandler<S, E> {
  /**
   * What a seq at or below the last one handed over is: false, a copy already handed over (dropped);
   * true, a redelivery that goes to the receivers again (they drop seqs they have seen).
   */
  readonly redeliver: boolean;
  /** Sees each event right before the stream places it (rooms: a new epoch restarts the stream here). */
  admit?(s: S, ev: E): void;
  /** Hands `ev` to the live receivers (the stream has moved its last seq and buffers it for newcomers). */
  deliver(s: S, ev: E): void;
  /**
   * Reads the seqs after `s.lastSeq` up to `upTo` from the store, hands over what it finds (`handOver`, in
   * seq order), gives up on what the store no longer has (`skipTo`), and then calls `s.endFill()`
   * exactly once, whether the read worked or not. Hazard: until then everything that arrives waits, so a
   * fill that never ends holds the stream and its queue grows without bound. A seq the fill neither
   * handed over nor skipped (a failed read) is still missing: the first waiting event still ahead of it
   * starts another fill when this one ends.
   */
  fill(s: S, upTo: number): void;
  /** The stream is not filling and has handed over all it could: rooms let caught-up joiners go live. */
  settled?(s: S): void;
}

const bySeq = (a: SeqEvent, b: SeqEvent) => a.seq - b.seq;

/**
 * `S` is the subclass itself (the handler is called with it). Hazard: the fields are set in the
 * constructor, always in the same order, and none is ever deleted, so that every stream of a hub shares
 * one hidden class (a user's stream is part of every idle connection's memory).
 */
export class OrderedStream<S extends OrderedStream<S, E, N>, E extends SeqEvent, N extends Newcomer<E>> {
  private readonly handler: StreamHandler<S, E>;
  private last = 0;
  /** True until `start`, and during a fill: events that arrive wait. */
  private held = true;
  private started = false;
  /** Made when needed: most streams never have anything waiting or anyone attaching. */
  private queue: E[] | undefined = undefined;
  private joining: Set<N> | undefined = undefined;

  constructor(handler: StreamHandler<S, E>) {
    this.handler = handler;
  }

  /** The highest seq handed over in order (or skipped, or the head given to `start`). */
  get lastSeq(): number {
    return this.last;
  }

  /** True until `start`, and while a fill runs. */
  get filling(): boolean {
    return this.held;
  }

  /** What waits for a fill to end (a fill may take the stream's own copy of a seq rather than the store's). */
  get waiting(): readonly E[] | undefined {
    return this.queue;
  }

  get newcomers(): ReadonlySet<N> | undefined {
    return this.joining;
  }

  /** Once: the head is known; what waited for it is taken in seq order. Later calls do nothing. */
  start(head: number): void {
    if (this.started) return;
    this.started = true;
    if (head > this.last) this.last = head;
    this.endFill();
  }

  /** An event from the wire. */
  push(ev: E): void {
    if (this.held) (this.queue ??= []).push(ev);
    else this.accept(ev);
  }

  /** Starts a fill up to `upTo` unless one runs (or the stream is not started, when nothing is missing yet). */
  fill(upTo: number): void {
    if (this.held) return;
    this.held = true;
    this.handler.fill(this as unknown as S, upTo);
  }

  /**
   * Hands `ev` over: to the live receivers and to every newcomer's buffer. Used by fills for what they
   * read (in seq order), and by the stream itself.
   */
  handOver(ev: E): void {
    if (ev.seq > this.last) this.last = ev.seq;
    this.handler.deliver(this as unknown as S, ev);
    const joining = this.joining;
    if (joining !== undefined) for (const n of joining) n.buffer.push(ev);
  }

  /** A fill gives up on the seqs up to `seq` (gone from the store): nothing waits for them any more. */
  skipTo(seq: number): void {
    if (seq > this.last) this.last = seq;
  }

  /** The seqs start again after `seq` (rooms: a new epoch). Moves the last seq either way. */
  restartAt(seq: number): void {
    this.last = seq;
  }

  /** Ends a fill (or the wait for the head): what waited is taken in seq order, until a fill starts again. */
  endFill(): void {
    this.held = false;
    const waiting = this.queue;
    if (waiting !== undefined) {
      this.queue = undefined;
      waiting.sort(bySeq);
      for (let i = 0; i < waiting.length; i++) {
        if (this.held) {
          // A fill started (the accept before put its event in a new queue): the rest waits again, in order.
          // Pushed one by one: a spread of a long queue could overflow the stack.
          const queue = (this.queue ??= []);
          for (let j = i; j < waiting.length; j++) queue.push(waiting[j]!);
          return;
        }
        this.accept(waiting[i]!);
      }
    }
    // The last one taken may have started a fill.
    if (!this.held) this.handler.settled?.(this as unknown as S);
  }

  addNewcomer(n: N): void {
    (this.joining ??= new Set()).add(n);
  }

  hasNewcomer(n: N): boolean {
    return this.joining?.has(n) ?? false;
  }

  /**
   * False when it was not there. The set is dropped once empty; a loop over `newcomers` that removes
   * goes on over the old set, so nothing it calls may add a newcomer (it would go to a new set, unseen).
   */
  removeNewcomer(n: N): boolean {
    const joining = this.joining;
    if (joining === undefined || !joining.delete(n)) return false;
    if (joining.size === 0) this.joining = undefined;
    return true;
  }

  /** Delivers `ev` if it is next (or a redelivery), drops it if a copy was handed over, or starts a fill. */
  private accept(ev: E): void {
    const h = this.handler;
    if (h.admit !== undefined) h.admit(this as unknown as S, ev);
    // Read after `admit`, which may have restarted the seqs.
    const next = this.last + 1;
    if (ev.seq > next) {
      (this.queue ??= []).push(ev);
      this.fill(ev.seq - 1);
      return;
    }
    if (ev.seq < next && !h.redeliver) return;
    this.handOver(ev);
    h.settled?.(this as unknown as S);
  }
}
