// Sequencing and fan-out for the slots this router owns. One subscription per owned slot; each
// `pub` is one fenced append (dedup + seq + history in one store call), then one publish of the
// ready-made frame on the room's stream, then the reply. Appends of one room are issued in arrival
// order on one store connection, so their publishes leave in seq order.
import type { Bus, BusMsg, Subscription } from '../shared/bus/bus.js';
import { errorReply, NotOwnerError, toRtgwError } from '../shared/errors.js';
import type { SlotRequest } from '../shared/cluster/messages.js';
import { roomSlot } from '../shared/cluster/slots.js';
import { encodeMessage } from '../shared/cluster/stream.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import type { Logger } from '../shared/log.js';
import type { Metrics } from '../shared/metrics.js';
import { ErrorCode } from '../shared/protocol/codes.js';
import { isRoomId } from '../shared/protocol/names.js';
import type { AppendResult, Lease, RoomLog } from '../shared/store/ports.js';
import type { SlotEvents } from './slots.js';

interface Owned {
  sub: Subscription;
  lease: Lease;
  inflight: Set<Promise<void>>;
}

/** The frame ends with `"ts":<ms>}` (built by the store); reading it back avoids parsing the frame. */
const frameTs = (frame: string): number => Number(frame.slice(frame.lastIndexOf('"ts":') + 5, -1));

export class Sequencer implements SlotEvents {
  private readonly owned = new Map<number, Owned>();
  /** Called when a fenced write is refused: the lease is gone, the slot must be dropped. */
  onLeaseLost: (slot: number) => void = () => {};

  constructor(
    private readonly bus: Bus,
    private readonly subj: Subjects,
    private readonly log: RoomLog,
    private readonly slots: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  gained(slot: number, lease: Lease): void {
    const sub = this.bus.subscribe(this.subj.slot(slot), (msg) => this.handle(slot, msg));
    this.owned.set(slot, { sub, lease, inflight: new Set() });
  }

  async lost(slot: number): Promise<void> {
    const o = this.owned.get(slot);
    if (!o) return;
    this.owned.delete(slot);
    o.sub.unsubscribe();
    await Promise.allSettled(o.inflight);
  }

  private handle(slot: number, msg: BusMsg): void {
    const o = this.owned.get(slot);
    if (!o) return; // Not ours any more; the owner answers.
    let req: SlotRequest;
    try {
      req = JSON.parse(Buffer.from(msg.data).toString('utf8')) as SlotRequest;
    } catch {
      msg.respond(JSON.stringify(errorReply(ErrorCode.BadRequest, 'request is not JSON')));
      return;
    }
    if (req.op !== 'pub' || !isRoomId(req.room) || typeof req.d !== 'string' || typeof req.from !== 'string' || roomSlot(req.room, this.slots) !== slot) {
      msg.respond(JSON.stringify(errorReply(ErrorCode.BadRequest, 'malformed slot request')));
      return;
    }
    const started = performance.now();
    const work = this.log
      .append({ slot, room: req.room, from: req.from, dataJson: req.d, mid: req.mid, dedupBy: req.mid === undefined ? undefined : req.by }, o.lease)
      .then((r) => {
        this.fanOut(req.room, req.exclude, r);
        msg.respond(`{"seq":${r.seq}}`);
        this.metrics.requestDuration.observe({ op: 'pub' }, (performance.now() - started) / 1000);
      })
      .catch((e: unknown) => {
        if (e instanceof NotOwnerError) {
          // Stale owner (paused or partitioned past its lease): stay silent, the real owner answers.
          this.onLeaseLost(slot);
          return;
        }
        const err = toRtgwError(e);
        this.logger.warn({ err: e, slot, room: req.room }, 'append failed');
        msg.respond(JSON.stringify(errorReply(err.code === ErrorCode.Internal ? ErrorCode.Unavailable : err.code, 'could not store the message; try again')));
      })
      .finally(() => o.inflight.delete(work));
    o.inflight.add(work);
  }

  /**
   * A duplicate is announced again with its first seq: if the first attempt's fan-out was lost to a
   * crash, this repairs it; gateways drop seqs they already delivered, so no client sees it twice.
   */
  private fanOut(room: string, exclude: string | undefined, r: AppendResult): void {
    if (r.duplicate) this.metrics.duplicates.inc();
    else this.metrics.published.inc();
    if (r.frame === '') return;
    this.bus.publish(this.subj.room(room), encodeMessage(r.seq, frameTs(r.frame), r.epoch, exclude, r.frame));
  }
}
