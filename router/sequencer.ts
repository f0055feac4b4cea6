// Sequencing and fan-out for the slots this router owns. One subscription per owned slot; each
// `pub` is one fenced append (dedup + seq + history in one store call), then one publish of the
// ready-made frame on the room's stream, then the reply. Appends of one room are issued in arrival
// order on one store connection, so their publishes leave in seq order. A `dm` is the same with the
// recipient's inbox and user subject.
import type { Bus, BusMsg, Subscription } from '../shared/bus/bus.js';
import { errorReply, NotOwnerError, toRtgwError } from '../shared/errors.js';
import {
  decodeSlotRequest,
  encodeSlotAnswer,
  MOVED_REPLY,
  type DmRequest,
  type PubRequest,
  type SeqReply,
  type SlotRequest,
} from '../shared/cluster/messages.js';
import { SlotReplies } from '../shared/cluster/slot-rpc.js';
import { roomSlot, userSlot } from '../shared/cluster/slots.js';
import { encodeDm, encodeMessage } from '../shared/cluster/stream.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import { ErrorCode } from '../shared/protocol/codes.js';
import { frameTs } from '../shared/protocol/stored-frames.js';
import { failpoint } from '../shared/failpoints.js';
import type { AppendResult, Lease, RouterStores } from '../shared/store/ports.js';
import type { SlotEvents } from './slots.js';

interface Owned {
  sub: Subscription;
  lease: Lease;
  /** Requests being acted on; `idle` is called when the count drops to 0. */
  inflight: number;
  idle: (() => void) | undefined;
  /** Being handed over: what still arrives is answered "moved" (retry), not acted on. */
  moving: boolean;
}

/** Resolves once no request of the slot is being acted on (one waiter: the slot's hand-over or loss). */
const settled = (o: Owned): Promise<void> =>
  o.inflight === 0 ? Promise.resolve() : new Promise((resolve) => (o.idle = resolve));

export interface SequencerDeps {
  bus: Bus;
  subj: Subjects;
  log: RouterStores['log'];
  inbox: RouterStores['inbox'];
  slots: number;
  metrics: Metrics;
  logger: Logger;
}

export class Sequencer implements SlotEvents {
  private readonly owned = new Map<number, Owned>();
  /** Called when a fenced write is refused: the lease is gone, the slot must be dropped. */
  onLeaseLost: (slot: number) => void = () => {};

  private readonly replies: SlotReplies;
  /** Per-op children, resolved once: a labelled observe hashes its labels every time. */
  private readonly durations: Record<SlotRequest['op'], { observe(v: number): void }>;

  constructor(private readonly d: SequencerDeps) {
    this.replies = new SlotReplies(d.bus, d.subj);
    this.durations = { pub: d.metrics.requestDuration.labels('pub'), dm: d.metrics.requestDuration.labels('dm') };
  }

  gained(slot: number, lease: Lease): void {
    const sub = this.d.bus.subscribe(this.d.subj.slot(slot), (msg) => this.handle(slot, msg));
    this.owned.set(slot, { sub, lease, inflight: 0, idle: undefined, moving: false });
  }

  async lost(slot: number, graceful: boolean): Promise<void> {
    const o = this.owned.get(slot);
    if (!o) return;
    if (!graceful) {
      // The lease is gone: another router may be answering the same requests, so stay silent.
      this.owned.delete(slot);
      o.sub.unsubscribe();
      await settled(o);
      return;
    }
    // Hand-over, still under our lease (so nobody else can have acted on a request): in-flight appends
    // finish, later requests are answered "moved", and draining the subscription answers even the
    // ones already in transit to us. Only then is the lease released (by the caller).
    o.moving = true;
    await settled(o);
    await o.sub.drain().catch(() => o.sub.unsubscribe());
    if (this.owned.get(slot) === o) this.owned.delete(slot);
  }

  private handle(slot: number, msg: BusMsg): void {
    const o = this.owned.get(slot);
    if (!o) return; // Not ours any more; the owner answers.
    if (o.moving) {
      this.replies.send(msg, encodeSlotAnswer(MOVED_REPLY));
      return;
    }
    const req = decodeSlotRequest(msg.data);
    // The slot check guards against a sender that hashed with another RTGW_SLOTS.
    if (!req || (req.op === 'pub' ? roomSlot(req.room, this.d.slots) : userSlot(req.to, this.d.slots)) !== slot) {
      this.replies.send(msg, encodeSlotAnswer(errorReply(ErrorCode.BadRequest, 'malformed slot request')));
      return;
    }
    o.inflight++;
    void this.act(slot, o, msg, req);
  }

  /** Acts on one request and answers it; never rejects. */
  private async act(slot: number, o: Owned, msg: BusMsg, req: SlotRequest): Promise<void> {
    const started = performance.now();
    try {
      const reply = req.op === 'pub' ? await this.pub(slot, o.lease, req) : await this.dm(slot, o.lease, req);
      this.replies.send(msg, encodeSlotAnswer(reply));
      this.durations[req.op].observe((performance.now() - started) / 1000);
    } catch (e) {
      if (e instanceof NotOwnerError) {
        // Stale owner (paused or partitioned past its lease): stay silent, the real owner answers.
        this.onLeaseLost(slot);
        return;
      }
      const err = toRtgwError(e);
      if (err.code === ErrorCode.Limit) {
        // The sender reached a limit (a full inbox, its share of one): its own doing, answered as is,
        // and no warning (a client can cause as many as it likes; contract section 7.1).
        this.d.logger.debug({ slot, op: req.op, msg: err.message }, 'slot request refused by a limit');
        this.replies.send(msg, encodeSlotAnswer(errorReply(ErrorCode.Limit, err.message)));
        return;
      }
      this.d.logger.warn({ err: e, slot, op: req.op }, 'slot request failed');
      const code = err.code === ErrorCode.Internal ? ErrorCode.Unavailable : err.code;
      this.replies.send(msg, encodeSlotAnswer(errorReply(code, 'could not store the message; try again')));
    } finally {
      if (--o.inflight === 0 && o.idle) {
        const idle = o.idle;
        o.idle = undefined;
        idle();
      }
    }
  }

  private async pub(slot: number, lease: Lease, req: PubRequest): Promise<SeqReply> {
    failpoint('router.before-append');
    const r = await this.d.log.append(
      {
        slot,
        room: req.room,
        from: req.from,
        dataJson: req.d,
        mid: req.mid,
        dedupBy: req.mid === undefined ? undefined : req.by,
        exclude: req.exclude,
      },
      lease,
    );
    failpoint('router.after-append');
    this.fanOut(req.room, req.exclude, r);
    return { seq: r.seq };
  }

  /** Stored in the recipient's inbox before the answer; delivered at once to wherever they are connected. */
  private async dm(slot: number, lease: Lease, req: DmRequest): Promise<SeqReply> {
    failpoint('router.before-append');
    const r = await this.d.inbox.append(
      {
        slot,
        to: req.to,
        from: req.from,
        dataJson: req.d,
        mid: req.mid,
        dedupBy: req.mid === undefined ? undefined : req.by,
        sender: req.by,
      },
      lease,
    );
    failpoint('router.after-append');
    if (!r.duplicate) {
      this.d.metrics.dmStored.inc();
      this.d.metrics.inboxSize.observe(r.inboxSize);
    }
    // A duplicate still pending is delivered again: the first delivery may have died with a router.
    // It goes to the gateways that hold the recipient's connections (presence, read in the same step).
    if (r.frame !== '' && r.nodes.length > 0) {
      const envelope = encodeDm(req.to, r.frame);
      for (const node of r.nodes) this.d.bus.publish(this.d.subj.dm(node), envelope);
      this.d.metrics.dmSent.inc({ kind: 'first' });
    }
    return { seq: r.seq };
  }

  /**
   * A duplicate is announced again with its first seq: if the first attempt's fan-out was lost to a
   * crash, this repairs it; gateways drop seqs they already delivered, so no client sees it twice.
   */
  private fanOut(room: string, exclude: string | undefined, r: AppendResult): void {
    if (r.duplicate) this.d.metrics.duplicates.inc();
    else this.d.metrics.published.inc();
    if (r.frame === '') return;
    this.d.bus.publish(this.d.subj.room(room), encodeMessage(r.seq, frameTs(r.frame), r.epoch, exclude, r.frame));
  }
}
