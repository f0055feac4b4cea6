// The client SDK under test, on the real `ws` package: clients whose raw frames (both ways) and events are
// recorded with their times, closed together after a test, and optionally wired into a History so the
// Jepsen-style checker judges what the *application* saw (one receiver per client, across reconnects).
import WebSocket from 'ws';
import {
  RtgwClient,
  type ClientEvents,
  type ClientOptions,
  type RoomMessage,
  type WebSocketConstructor,
} from '../../client/index.js';
import type { Frame } from './client.js';
import type { History } from './history.js';
import { waitFor } from './wait.js';

export interface Tap {
  /** Frames the client received, parsed, with the time they arrived. */
  readonly received: { at: number; f: Frame }[];
  /** Frames the client sent, parsed. */
  readonly sent: { at: number; f: Frame }[];
  /** Called with each frame as it is sent. */
  onSent?: (f: Frame) => void;
}

/** A `ws` WebSocket that records every frame it sends and receives into `tap`. */
function tappedWebSocket(tap: Tap): WebSocketConstructor {
  return class TappedWebSocket extends WebSocket {
    constructor(url: string) {
      super(url);
      this.addEventListener('message', (ev) =>
        tap.received.push({ at: Date.now(), f: JSON.parse(String(ev.data)) as Frame }),
      );
    }
    // `any`: one signature that fits both of ws's overloads.
    override send(data: any, ...rest: any[]): void {
      const f = JSON.parse(String(data)) as Frame;
      tap.sent.push({ at: Date.now(), f });
      tap.onSent?.(f);
      (super.send as (...a: unknown[]) => void).call(this, data, ...rest);
    }
  };
}

type Recorded = { [K in keyof ClientEvents]: { type: K; at: number; ev: ClientEvents[K] } }[keyof ClientEvents];

export interface SdkClient {
  readonly client: RtgwClient;
  readonly tap: Tap;
  /** Events of one type. */
  eventsOf<K extends keyof ClientEvents>(type: K): { at: number; ev: ClientEvents[K] }[];
  /** Resolves at the first event of `type` that passes `test`, whether already recorded or still to come. */
  event<K extends keyof ClientEvents>(
    type: K,
    timeoutMs: number,
    test?: (ev: ClientEvents[K]) => boolean,
  ): Promise<ClientEvents[K]>;
}

type PoolOptions = Omit<ClientOptions, 'WebSocket'>;

export class SdkPool {
  private readonly clients: RtgwClient[] = [];

  /** `defaults`: options every client of the pool gets unless `create` says otherwise (e.g. fast reconnects). */
  constructor(private readonly defaults: Partial<PoolOptions> = {}) {}

  /** A client with `ws` tapped and every event recorded; not connected yet. */
  create(opts: PoolOptions): SdkClient {
    const tap: Tap = { received: [], sent: [] };
    const client = new RtgwClient({ ...this.defaults, ...opts, WebSocket: tappedWebSocket(tap) });
    this.clients.push(client);
    const events: Recorded[] = [];
    for (const type of [
      'state',
      'connecting',
      'connected',
      'disconnected',
      'closed',
      'drain',
      'token',
      'error',
    ] as const) {
      client.on(type, (ev) => events.push({ type, at: Date.now(), ev } as Recorded));
    }
    const eventsOf = <K extends keyof ClientEvents>(type: K) =>
      events.filter((e) => e.type === type).map((e) => ({ at: e.at, ev: e.ev as ClientEvents[K] }));
    return {
      client,
      tap,
      eventsOf,
      async event(type, timeoutMs, test = () => true) {
        let found: ClientEvents[typeof type] | undefined;
        await waitFor(
          () => {
            const e = events.find((x) => x.type === type && test(x.ev as never));
            found = e?.ev as never;
            return e !== undefined;
          },
          timeoutMs,
          `client event ${String(type)}`,
        );
        return found!;
      },
    };
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}

/** A History message as the SDK hands it over, shaped like the frame the checker reads. */
function asFrame(room: string, m: RoomMessage): Frame {
  return { t: 'msg', room, seq: m.seq, from: m.from, mid: m.mid, data: m.data };
}

/**
 * Wires an SDK client into `history` as receiver `who`: every message and direct message the application
 * gets, and every ack sent, is recorded under one pseudo-connection (`<who>/app`), so the checker's order
 * and repeat counts are the application's, across reconnects.
 */
export function recordApp(history: History, who: string, c: SdkClient): { room(name: string): void } {
  const conn = `${who}/app`;
  c.client.onDirect((dm) =>
    history.recordReceive(who, c.client.user!, conn, {
      t: 'dm',
      seq: dm.seq,
      from: dm.from,
      mid: dm.mid,
      data: dm.data,
    }),
  );
  // Acks as they leave for the server (the SDK sends them after the handler returns).
  c.tap.onSent = (f) => f.t === 'ack' && history.recordAck(who, c.client.user!, conn, f.seq as number);
  return {
    room(name: string) {
      const room = c.client.room(name);
      if (!room) throw new Error(`recordApp: ${who} is not in ${name}`);
      room.on('message', (m) => history.recordReceive(who, c.client.user!, conn, asFrame(name, m)));
      void room.joined.then((s) => history.recordJoin(who, name, s.seq, { conn }));
    },
  };
}
