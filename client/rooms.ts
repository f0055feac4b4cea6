// One joined room as the application sees it. The room remembers where it is (last seq and epoch) and
// re-joins with `since`/`epoch` after every reconnect, so the server replays exactly what was missed; when
// it cannot (history trimmed or lost), the room says so with an `unrecovered` event and goes on from the
// room's head. Messages are handed over once, in seq order: duplicates are dropped by seq, and this
// client's own publishes (without echo) are held back when a replay brings them.
import { ErrorCode } from '../shared/protocol/codes.js';
import type { Json } from '../shared/protocol/frames.js';
import { Emitter } from './emitter.js';
import { RtgwClientError } from './errors.js';
import type { OkFrame } from '../shared/protocol/frames.js';
import type { Outgoing, RequestOptions } from './requests.js';

export interface RoomMessage {
  room: string;
  seq: number;
  from: string;
  data: Json;
  mid?: string;
  /** Server time at sequencing, ms since epoch. */
  ts: number;
}

export interface PresenceChange {
  type: 'joined' | 'left';
  user: string;
  conn: string;
}

export interface Subscribed {
  /** The room's latest seq when the join took effect. */
  seq: number;
  epoch: string;
  /** The join asked for what was missed (a re-join, or a first join with `since`). */
  recovering: boolean;
  /** Everything missed was replayed (false when not recovering). */
  recovered: boolean;
}

export interface Unrecovered {
  /** Where the room was (undefined epoch: not known). */
  since: number;
  epoch: string | undefined;
  /** Where it goes on from: messages after `since` up to `seq` are not coming. */
  seq: number;
  newEpoch: string;
  /** `history`: the server no longer holds them; `epoch`: the room's history was lost and restarted. */
  why: 'history' | 'epoch';
}

export interface RoomEvents {
  message: RoomMessage;
  presence: PresenceChange;
  /** Every successful (re-)join. */
  subscribed: Subscribed;
  /** Messages were missed for good; reload what depends on them from your own backend. */
  unrecovered: Unrecovered;
  /** The server refused the join (for example `forbidden`) or removed the connection from the room; the room is left. */
  error: RtgwClientError;
}

export interface JoinOptions {
  /** Receive `joined`/`left` events of the room's members. */
  presence?: boolean;
  /** Resume from this seq (and epoch), e.g. a position the application saved earlier. */
  since?: number;
  epoch?: string;
}

/** What a room needs from its client. */
export interface RoomHost {
  /** The user the server welcomed this client as. */
  user(): string | undefined;
  connected(): boolean;
  request(frame: Outgoing, opts: Omit<RequestOptions, 'timeoutMs'> & { timeoutMs?: number }): void;
  publish(room: string, data: Json, opts?: { echo?: boolean; mid?: string }): Promise<number>;
  presence(room: string): Promise<{ users: string[]; count: number }>;
  forget(room: Room): void;
}

export type RoomState = 'joining' | 'joined' | 'left';

export class Room extends Emitter<RoomEvents> {
  state: RoomState = 'joining';
  /** Resolves at the first successful join; rejects if the server refuses it. */
  readonly joined: Promise<Subscribed>;
  private seq: number | undefined;
  private epoch: string | undefined;
  private resolveJoined!: (s: Subscribed) => void;
  private rejectJoined!: (e: RtgwClientError) => void;
  /** Mids of this client's publishes without echo that await their `ok`. */
  private readonly ownPending = new Set<string>();
  /** Seqs of this client's publishes without echo that the room has not passed yet. */
  private readonly ownSeqs = new Set<number>();

  constructor(
    private readonly host: RoomHost,
    readonly name: string,
    private readonly opts: JoinOptions,
  ) {
    super();
    this.seq = opts.since;
    this.epoch = opts.epoch;
    this.joined = new Promise((resolve, reject) => {
      this.resolveJoined = resolve;
      this.rejectJoined = reject;
    });
    // Awaiting `joined` is optional: the refusal is also an `error` event.
    this.joined.catch(() => undefined);
  }

  /** Where the room is: save it to resume later with `join(room, { since, epoch })`. */
  get position(): { seq: number | undefined; epoch: string | undefined } {
    return { seq: this.seq, epoch: this.epoch };
  }

  publish(data: Json, opts?: { echo?: boolean; mid?: string }): Promise<number> {
    return this.host.publish(this.name, data, opts);
  }

  presence(): Promise<{ users: string[]; count: number }> {
    return this.host.presence(this.name);
  }

  /** Leaves the room; nothing more is delivered for it. */
  leave(): Promise<void> {
    if (this.state === 'left') return Promise.resolve();
    this.state = 'left';
    this.host.forget(this);
    // A new connection never re-joins a left room: nothing to tell the server.
    if (!this.host.connected()) return Promise.resolve();
    return new Promise((resolve) => {
      // An error (or a lost connection) still leaves: the server drops a closed connection's rooms.
      this.host.request(
        { t: 'leave', room: this.name },
        { resend: false, onOk: () => resolve(), onErr: () => resolve() },
      );
    });
  }

  /** Sends the join, resuming from the room's position when it has one. Called on every connection. */
  join(): void {
    if (this.state === 'left') return;
    this.state = 'joining';
    const frame: Outgoing = { t: 'join', room: this.name };
    if (this.opts.presence) frame.presence = true;
    if (this.seq !== undefined) {
      frame.since = this.seq;
      if (this.epoch !== undefined) frame.epoch = this.epoch;
    }
    this.host.request(frame, {
      resend: false,
      onOk: (f) => this.onJoined(f),
      onErr: (e) => {
        // A lost connection re-joins on the next one; anything else is the server's final word.
        if (e.code === 'disconnected' || this.state === 'left') return;
        this.state = 'left';
        this.host.forget(this);
        this.rejectJoined(e);
        this.emit('error', e);
      },
    });
  }

  private onJoined(f: OkFrame): void {
    if (this.state === 'left') return;
    const seq = f.seq as number;
    const epoch = f.epoch as string;
    const recovering = this.seq !== undefined;
    const recovered = recovering && f.recovered === true;
    if (recovering && !recovered) {
      const why = this.epoch !== undefined && this.epoch !== epoch ? 'epoch' : 'history';
      this.emit('unrecovered', { since: this.seq!, epoch: this.epoch, seq, newEpoch: epoch, why });
    }
    if (!recovered) this.seq = seq;
    if (epoch !== this.epoch) this.ownSeqs.clear();
    this.epoch = epoch;
    this.advance();
    this.state = 'joined';
    const s: Subscribed = { seq, epoch, recovering, recovered };
    this.resolveJoined(s);
    this.emit('subscribed', s);
  }

  /** A `msg` frame of this room. */
  onMessage(f: RoomMessage): void {
    if (this.state === 'left') return;
    if (this.seq !== undefined && f.seq <= this.seq) return; // seen already
    this.seq = f.seq;
    const own = this.isOwn(f);
    this.advance();
    if (own) return;
    this.emit('message', { room: f.room, seq: f.seq, from: f.from, data: f.data, mid: f.mid, ts: f.ts });
  }

  /** A `removed` frame: the server took the connection out of the room (a refreshed token no longer allows it). */
  onRemoved(reason: string): void {
    if (this.state === 'left') return;
    this.state = 'left';
    this.host.forget(this);
    this.emit('error', new RtgwClientError(ErrorCode.Forbidden, `removed from the room: ${reason}`));
  }

  /** An `epoch` frame: the room's history was lost and restarted at `seq` (the next message is seq + 1). */
  onEpoch(epoch: string, seq: number): void {
    if (this.state === 'left' || epoch === this.epoch) return;
    this.emit('unrecovered', { since: this.seq ?? 0, epoch: this.epoch, seq, newEpoch: epoch, why: 'epoch' });
    this.seq = seq;
    this.epoch = epoch;
    this.ownSeqs.clear();
  }

  onPresence(type: 'joined' | 'left', user: string, conn: string): void {
    if (this.state !== 'left') this.emit('presence', { type, user, conn });
  }

  /** This client publishes without echo to the room: the message must not come back to it. */
  ownSent(mid: string): void {
    this.ownPending.add(mid);
  }

  ownAnswered(mid: string, seq: number | undefined): void {
    this.ownPending.delete(mid);
    if (seq === undefined || (this.seq !== undefined && seq <= this.seq)) return;
    this.ownSeqs.add(seq);
    this.advance();
  }

  /**
   * Moves the position over this client's own messages right after it: the server does not send them
   * back, and a position stuck below them would make the next re-join replay (or miss) more than needed.
   */
  private advance(): void {
    if (this.seq === undefined) return;
    for (const s of this.ownSeqs) if (s <= this.seq) this.ownSeqs.delete(s);
    while (this.ownSeqs.delete(this.seq + 1)) this.seq++;
  }

  private isOwn(f: RoomMessage): boolean {
    if (this.ownSeqs.size === 0 && this.ownPending.size === 0) return false;
    if (f.from !== this.host.user()) return false;
    // A replay can bring it before its `ok` (the publish was re-sent and deduplicated) or after.
    return this.ownPending.has(f.mid as string) || this.ownSeqs.has(f.seq);
  }
}
