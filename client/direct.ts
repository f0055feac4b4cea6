// Direct messages as the application sees them: each handed to the handler once, in the order the server
// sends them (first copies come in seq order), one at a time, and acknowledged after the handler returns
// (or when the application calls `ack`, with `autoAck: false`). The server redelivers until it gets an ack:
// a copy of a message already handled is not handed over again, only acknowledged again (the first ack
// may have been lost with a connection). A message whose handler threw is handed over again when the
// server redelivers it. A copy is recognized by its seq and its `ts`, which the server stores with it:
// after Redis lost the inbox, seqs start again at 1, and those are new messages.
import type { DmFrame, Json } from '../shared/protocol/frames.js';

export interface DirectMessage {
  seq: number;
  from: string;
  data: Json;
  mid?: string;
  /** Server time when it was stored, ms since epoch. */
  ts: number;
  /** Confirms receipt (automatic after the handler unless `autoAck: false`); repeated calls do nothing. */
  ack(): void;
}

/** May return a promise: the next message waits for it, and the ack comes after it resolves. */
export type DirectHandler = (dm: DirectMessage) => void | Promise<void>;

type Handling = 'queued' | 'handling' | 'unacked' | 'acked' | 'failed';

/** Seqs remembered for recognizing copies: the server's default inbox bound. */
const REMEMBERED = 10_000;

export class DirectInbox {
  private handler: DirectHandler | undefined;
  private autoAck = true;
  private readonly seen = new Map<number, { ts: number; state: Handling }>();
  private readonly queue: DmFrame[] = [];
  private busy = false;

  constructor(
    /** Sends `ack` for a seq when connected (when not, the redelivery after reconnecting is acked). */
    private readonly sendAck: (seq: number) => void,
    private readonly onHandlerError: (e: unknown, dm: DmFrame) => void,
  ) {}

  /** Messages that arrived before a handler was set wait for it. */
  setHandler(handler: DirectHandler | undefined, autoAck: boolean): void {
    this.handler = handler;
    this.autoAck = autoAck;
    void this.pump();
  }

  onFrame(f: DmFrame): void {
    const known = this.seen.get(f.seq);
    if (known !== undefined && known.ts === f.ts) {
      if (known.state === 'acked') this.sendAck(f.seq);
      if (known.state !== 'failed') return;
      known.state = 'queued';
    } else {
      this.seen.delete(f.seq);
      this.seen.set(f.seq, { ts: f.ts, state: 'queued' });
      if (this.seen.size > REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
    }
    this.queue.push(f);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.handler !== undefined && this.queue.length > 0) {
        const f = this.queue.shift()!;
        const entry = this.seen.get(f.seq);
        if (entry === undefined || entry.ts !== f.ts) continue; // superseded meanwhile
        // The handler may call `ack`, which TypeScript's narrowing cannot see: read the state as `Handling`.
        entry.state = 'handling' as Handling;
        const ack = () => {
          if (entry.state === 'acked') return;
          entry.state = 'acked';
          this.sendAck(f.seq);
        };
        try {
          await this.handler({ seq: f.seq, from: f.from, data: f.data, mid: f.mid, ts: f.ts, ack });
          if (this.autoAck) ack();
          else if (entry.state === 'handling') entry.state = 'unacked';
        } catch (e) {
          if (entry.state !== 'acked') entry.state = 'failed';
          this.onHandlerError(e, f);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
