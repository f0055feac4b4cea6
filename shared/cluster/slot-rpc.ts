// Requests to the router that owns a slot (pub, dm), pipelined: no NATS request/reply per message.
//
// A SlotClient sends each request as a publish whose reply subject names the client and the request,
// `<p>.reply.<client>.<id>`, and keeps one subscription to `<p>.reply.<client>.*`. The owner answers
// through SlotReplies, which gathers the answers of one burst per client into one message on
// `<p>.reply.<client>.0`, a line `<id> <answer JSON>` each (subjects.ts builds and parses them all). NATS itself answers on the request's own
// reply subject when nobody owns the slot (no responders): nobody got the request, so it is sent again,
// as it is after a handing-over router's "moved" answer, with backoff until the deadline. A request
// that reached a router and got no answer by the deadline is not repeated (the owner may have acted):
// it fails with `unavailable`. Deadlines are checked by one timer for all requests, not one each.
import { BurstBatches } from '../batches.js';
import { toText, type Bus, type BusMsg, type Subscription } from '../bus/bus.js';
import { RtgwError } from '../errors.js';
import { ErrorCode } from '../protocol/codes.js';
import { decodeSlotAnswer, encodeSlotRequest, type SeqReply, type SlotRequest } from './messages.js';
import { REPLY_BATCH, type Subjects } from './subjects.js';

const SWEEP_MS = 25;

interface Pending {
  slot: number;
  body: Uint8Array;
  deadline: number;
  attempt: number;
  /** Waiting to be sent again (no owner, or moving) until this time. */
  retryAt: number | undefined;
  resolve: (reply: SeqReply) => void;
  reject: (e: Error) => void;
}

export class SlotClient {
  readonly #replies: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly subj: Subjects,
    client: string,
    private readonly timeoutMs: number,
  ) {
    this.#replies = subj.replies(client);
    this.#sub = bus.subscribe(subj.allReplies(this.#replies), (msg) => this.#onReply(msg));
  }

  /** Resolves with the owner's answer; rejects with RtgwError (its error reply, or `unavailable`). */
  request(slot: number, req: SlotRequest): Promise<SeqReply> {
    // While disconnected the request could not leave; answering at once beats waiting out the timeout.
    if (!this.bus.connected)
      return Promise.reject(new RtgwError(ErrorCode.Unavailable, 'not connected to the cluster bus; try again'));
    return new Promise<SeqReply>((resolve, reject) => {
      const id = this.#next++;
      const p: Pending = {
        slot,
        body: encodeSlotRequest(req),
        deadline: Date.now() + this.timeoutMs,
        attempt: 0,
        retryAt: undefined,
        resolve,
        reject,
      };
      this.#pending.set(id, p);
      this.#send(id, p);
      this.#sweep ??= setInterval(() => this.#tick(), SWEEP_MS);
    });
  }

  /** Fails what is still waiting and stops listening. */
  close(): void {
    this.#sub.unsubscribe();
    for (const [id, p] of this.#pending) this.#settle(id, p, new RtgwError(ErrorCode.Unavailable, 'shutting down'));
  }

  #send(id: number, p: Pending): void {
    p.retryAt = undefined;
    try {
      this.bus.publish(this.subj.slot(p.slot), p.body, this.subj.replyTo(this.#replies, id));
    } catch (e) {
      this.#settle(id, p, new RtgwError(ErrorCode.Unavailable, 'bus unavailable', { cause: e }));
    }
  }

  #onReply(msg: BusMsg): void {
    const token = msg.subject.slice(this.#replies.length + 1);
    if (token !== REPLY_BATCH) return this.#answer(Number(token), msg.noResponders ? undefined : toText(msg.data));
    for (const line of toText(msg.data).split('\n')) {
      const sp = line.indexOf(' ');
      if (sp > 0) this.#answer(Number(line.slice(0, sp)), line.slice(sp + 1));
    }
  }

  /** `text` undefined: nobody owns the slot right now. */
  #answer(id: number, text: string | undefined): void {
    const p = this.#pending.get(id);
    if (!p) return; // settled already (a late answer after the deadline)
    const reply = text === undefined ? undefined : decodeSlotAnswer(text);
    if (text !== undefined && reply === undefined) {
      return this.#settle(
        id,
        p,
        new RtgwError(ErrorCode.Internal, 'router answered with something that is not a slot answer'),
      );
    }
    if (reply === undefined || ('error' in reply && reply.error.retry === true)) {
      p.retryAt = Date.now() + Math.min(25 * 2 ** p.attempt++, 250);
      return;
    }
    if ('error' in reply) return this.#settle(id, p, new RtgwError(reply.error.code, reply.error.msg));
    this.#settle(id, p, reply);
  }

  #settle(id: number, p: Pending, outcome: Error | SeqReply): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0 && this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  #tick(): void {
    const now = Date.now();
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        const why =
          p.retryAt !== undefined ? 'no router owns this room right now; try again' : 'router did not answer in time';
        this.#settle(id, p, new RtgwError(ErrorCode.Unavailable, why));
      } else if (p.retryAt !== undefined && p.retryAt <= now) {
        this.#send(id, p);
      }
    }
  }
}

/**
 * The owner's side: answers a SlotClient's requests in one message per client and burst (the answers
 * produced by one batch of store replies), any other request with a plain reply.
 */
export class SlotReplies {
  readonly #subj: Subjects;
  /** Answer lines by the client's `replies` subject. */
  readonly #batches: BurstBatches<string, string>;

  constructor(bus: Bus, subj: Subjects) {
    this.#subj = subj;
    this.#batches = new BurstBatches((replies, lines) => {
      try {
        bus.publish(subj.batchReply(replies), lines.join('\n'));
      } catch {
        // The bus is closing: those clients time out, as they would with a router that died.
      }
    });
  }

  send(msg: BusMsg, answer: string): void {
    const to = msg.reply === undefined ? undefined : this.#subj.parseReply(msg.reply);
    if (to === undefined) {
      msg.respond(answer);
      return;
    }
    this.#batches.add(to.replies, `${to.token} ${answer}`);
  }
}
