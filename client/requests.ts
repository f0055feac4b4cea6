// Requests and their answers. A request waits for a connection, goes out with a fresh `id`, and is settled
// by the one `ok`/`err` that answers that id. A request marked `resend` is the outbox: when the connection
// it went out on closes before the answer, it is sent again on the next one, and an `unavailable` (or
// another answer that means "try again") sends it again after a short backoff. Only requests the server
// applies once are marked so: `pub` and `dm` carry a `mid`, which the server deduplicates, and reads.
// Any other request in flight when the connection closes fails with `disconnected`.
import { ErrorCode, isErrorCode } from '../shared/protocol/codes.js';
import type { ErrFrame, Json, OkFrame } from '../shared/protocol/frames.js';
import { fullJitter } from './backoff.js';
import { ClientErrorCode, RtgwClientError } from './errors.js';

/** A client frame without its `id`, which is assigned per attempt. */
export type Outgoing = { t: string; [k: string]: Json | undefined };

export interface RequestOptions {
  /** Safe to send again after a lost connection or a "try again" answer (see the module header). */
  resend: boolean;
  /** From now until the request fails with `timeout` (it is not sent again after that). */
  timeoutMs: number;
  /** Called synchronously with the answer, before the next frame is read. */
  onOk(f: OkFrame): void;
  onErr(e: RtgwClientError): void;
}

interface Entry extends RequestOptions {
  readonly frame: Outgoing;
  /** The id of the attempt in flight on the current connection. */
  id?: number;
  retries: number;
  deadline: ReturnType<typeof setTimeout>;
  retry?: ReturnType<typeof setTimeout>;
}

/** Answers that mean "not done, try again": a request that is safe to repeat is sent again for them. */
const TRY_AGAIN = new Set<string>([
  ErrorCode.Unavailable,
  ErrorCode.RateLimited,
  ErrorCode.Timeout,
  ErrorCode.Internal,
]);
const RETRY_BACKOFF = { baseMs: 250, maxMs: 5000 };

export class Requests {
  private nextId = 1;
  private readonly inFlight = new Map<number, Entry>();
  /** Waiting for a connection, oldest first. */
  private waiting: Entry[] = [];
  /** Every unsettled request, wherever it is (in flight, waiting, or waiting out a retry backoff). */
  private readonly live = new Set<Entry>();
  private transmit: ((text: string) => void) | undefined;
  private closed: RtgwClientError | undefined;

  /** Unsettled requests: the outbox and everything else not yet answered. */
  get size(): number {
    return this.live.size;
  }

  add(frame: Outgoing, opts: RequestOptions): void {
    if (this.closed) return opts.onErr(this.closed);
    const e: Entry = {
      ...opts,
      frame,
      retries: 0,
      deadline: setTimeout(
        () =>
          this.fail(
            e,
            new RtgwClientError(ClientErrorCode.Timeout, `no answer to ${frame.t} within ${opts.timeoutMs} ms`),
          ),
        opts.timeoutMs,
      ),
    };
    this.live.add(e);
    this.send(e);
  }

  /** Settles the request an `ok`/`err` answers; false when it answers none of ours. */
  answer(f: OkFrame | ErrFrame): boolean {
    const e = f.id === undefined ? undefined : this.inFlight.get(f.id);
    if (!e) return false;
    this.inFlight.delete(f.id!);
    e.id = undefined;
    if (f.t === 'ok') {
      this.settle(e);
      e.onOk(f);
    } else if (e.resend && TRY_AGAIN.has(f.code)) {
      e.retry = setTimeout(
        () => {
          e.retry = undefined;
          this.send(e);
        },
        fullJitter(e.retries++, RETRY_BACKOFF),
      );
    } else {
      this.fail(e, new RtgwClientError(isErrorCode(f.code) ? f.code : ErrorCode.Internal, f.msg));
    }
    return true;
  }

  /** A connection is ready (welcomed): what waited goes out on it, oldest first. */
  online(transmit: (text: string) => void): void {
    this.transmit = transmit;
    const waiting = this.waiting;
    this.waiting = [];
    for (const e of waiting) this.send(e);
  }

  /** The connection closed: the outbox waits for the next one, in its original order; the rest fail. */
  offline(): void {
    this.transmit = undefined;
    const unanswered = [...this.inFlight.values()];
    this.inFlight.clear();
    const again: Entry[] = [];
    for (const e of unanswered) {
      e.id = undefined;
      if (e.resend) again.push(e);
      else
        this.fail(
          e,
          new RtgwClientError(ClientErrorCode.Disconnected, `the connection closed before ${e.frame.t} was answered`),
        );
    }
    this.waiting = [...again, ...this.waiting];
  }

  /** Fails every unsettled request, and any made later, with `err`: the client is closed for good. */
  close(err: RtgwClientError): void {
    this.closed = err;
    this.transmit = undefined;
    for (const e of [...this.live]) this.fail(e, err);
    this.inFlight.clear();
    this.waiting = [];
  }

  private send(e: Entry): void {
    if (!this.live.has(e)) return;
    if (!this.transmit) {
      this.waiting.push(e);
      return;
    }
    const id = this.nextId++;
    e.id = id;
    this.inFlight.set(id, e);
    this.transmit(JSON.stringify({ ...e.frame, id }));
  }

  private settle(e: Entry): void {
    this.live.delete(e);
    clearTimeout(e.deadline);
    clearTimeout(e.retry);
    if (e.id !== undefined) this.inFlight.delete(e.id);
  }

  private fail(e: Entry, err: RtgwClientError): void {
    if (!this.live.has(e)) return;
    this.settle(e);
    const i = this.waiting.indexOf(e);
    if (i >= 0) this.waiting.splice(i, 1);
    e.onErr(err);
  }
}
