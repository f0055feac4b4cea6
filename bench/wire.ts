// What the lean client needs to speak each server's protocol: the upgrade path, the handshake after it,
// the join and publish frames, which two bytes tell a data message from anything else without decoding
// it, and how to read an answer. Pure: no sockets here (conn.ts does the I/O).

/** rtgw (cluster and standalone); bare uWS (alone or behind NATS: the same frames); Socket.IO v4 over WebSocket. */
export type WireName = 'rtgw' | 'bare' | 'socketio';

/** The `data` the publisher stamps: step, index within the step, send time on the publisher's clock. */
export interface Stamp {
  s: number;
  i: number;
  ts: number;
}

const DATA_BYTES = 100;
const PAD = 'x'.repeat(DATA_BYTES);

/** The `data` of a publish: the stamp padded to about 100 bytes of JSON. */
export function stampText(step: number, i: number, ts: number): string {
  const head = `{"s":${step},"i":${i},"ts":${ts.toFixed(3)},"pad":"`;
  return head + PAD.slice(0, Math.max(0, DATA_BYTES - head.length - 2)) + '"}';
}

export interface Wire {
  readonly name: WireName;
  /** Request target of the upgrade. `room` only matters to bare uWS, which subscribes by URL. */
  path(room: string): string;
  /** The upgrade carries `Authorization: Bearer <HS256 JWT>`. */
  readonly auth: boolean;
  /** Offset of the two bytes that tell data messages apart, and the test on them. */
  readonly typeAt: number;
  isData(a: number, b: number): boolean;
  /**
   * The answer to a non-data frame from the server during the handshake: `ready` once the connection may
   * be used, `send` a frame to write back first. Undefined: ready right after the 101.
   */
  handshake?(text: string): { ready: boolean; send?: string };
  /** A frame to write back to a non-data frame after the handshake (Socket.IO's `2` ping wants `3`). */
  control?(text: string): string | undefined;
  joinFrame(room: string, id: number): string;
  /** A publish of `data` (JSON text) to `room`; `echo`: the publisher receives it too when it is a member. */
  pubFrame(room: string, id: number, data: string, echo: boolean): string;
  /** Whether the server answers every publish (bare uWS answers nothing). */
  readonly acksPub: boolean;
  /** `ok` or `err` when `text` answers a request, undefined otherwise. */
  answer(text: string): 'ok' | 'err' | undefined;
  /** The publisher's stamp inside a whole data message. */
  stampOf(text: string): Stamp | undefined;
}

const M = 0x6d;
const S = 0x73;
const P = 0x70;
const U = 0x75;

const rtgwAnswer = (text: string) =>
  text.startsWith('{"t":"ok"') ? 'ok' : text.startsWith('{"t":"err"') ? 'err' : undefined;

const rtgw: Wire = {
  name: 'rtgw',
  path: (room) => `/ws?room=${encodeURIComponent(room)}`,
  auth: true,
  typeAt: 6,
  isData: (a, b) => a === M && b === S,
  handshake: (text) => ({ ready: text.startsWith('{"t":"welcome"') }),
  joinFrame: (room, id) => `{"t":"join","id":${id},"room":${JSON.stringify(room)}}`,
  pubFrame: (room, id, data, echo) =>
    `{"t":"pub","id":${id},"room":${JSON.stringify(room)}${echo ? ',"echo":true' : ''},"data":${data}}`,
  acksPub: true,
  answer: rtgwAnswer,
  stampOf: (text) => (JSON.parse(text) as { data?: Stamp }).data,
};

/** bare-uws.ts relays every frame but a join as is, to every subscriber of the URL's room, the publisher included. */
const bare: Wire = {
  name: 'bare',
  path: rtgw.path,
  auth: false,
  typeAt: 6,
  isData: (a, b) => a === P && b === U,
  joinFrame: rtgw.joinFrame,
  pubFrame: (room, id, data) => `{"t":"pub","id":${id},"room":${JSON.stringify(room)},"data":${data}}`,
  acksPub: false,
  answer: rtgwAnswer,
  stampOf: rtgw.stampOf,
};

/**
 * Engine.IO 4 packets: `0` open, `2` ping, `3` pong, `4` message; Socket.IO packets inside a message:
 * `0` connect, `2` event, `3` ack, with an optional ack id before the JSON array. socketio-server.ts emits
 * `msg` to the whole room (`io.to(room).emit`), the publisher included when it joined.
 */
const socketio: Wire = {
  name: 'socketio',
  path: () => '/socket.io/?EIO=4&transport=websocket',
  auth: false,
  // `42["msg",...`: the event name starts at byte 4.
  typeAt: 4,
  isData: (a, b) => a === M && b === S,
  handshake: (text) => (text.startsWith('0{') ? { ready: false, send: '40' } : { ready: text.startsWith('40{') }),
  control: (text) => (text === '2' ? '3' : undefined),
  joinFrame: (room, id) => `42${id}["join",${JSON.stringify(room)}]`,
  pubFrame: (room, id, data) => `42${id}["pub",{"room":${JSON.stringify(room)},"data":${data}}]`,
  acksPub: true,
  answer: (text) => (text.startsWith('43') ? 'ok' : text.startsWith('44') ? 'err' : undefined),
  stampOf: (text) => (JSON.parse(text.slice(2)) as [string, { data?: Stamp }])[1].data,
};

export const WIRES: Record<WireName, Wire> = { rtgw, bare, socketio };
