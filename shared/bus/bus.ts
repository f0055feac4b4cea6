// The Bus port: how processes talk. NatsBus is the real one, MemoryBus the in-process one.
// Semantics are NATS core semantics, which both implementations honour:
// - publish is at-most-once, fire-and-forget; messages from ONE publisher on ONE subject arrive in order;
// - a subscription with a queue group gets each message on exactly one member of the group;
// - request resolves with the first reply, or rejects with BusError 'no_responders' at once when
//   nobody is subscribed, or 'timeout';
// - a publish with a reply subject to a subject nobody is subscribed to brings a `noResponders` notice
//   to the reply subject (so pipelined requests learn that nobody got them, as `request` does).
// Subjects come from shared/cluster/subjects.ts; `*` matches one token and `>` the rest.

export interface BusMsg {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where an answer goes, when the publisher gave a reply subject. */
  readonly reply: string | undefined;
  /** The server's notice, on a reply subject, that the message published with it reached nobody (empty data). */
  readonly noResponders: boolean;
  /** Replies to a request; false when the message was not a request. */
  respond(data: Uint8Array | string): boolean;
}

export interface Subscription {
  unsubscribe(): void;
  /**
   * Unsubscribes, but first lets every message the server already routed here reach the handler;
   * resolves once none can arrive any more. (A plain unsubscribe drops what is still in transit.)
   */
  drain(): Promise<void>;
}

export type BusErrorCode = 'no_responders' | 'timeout' | 'closed';

export class BusError extends Error {
  override name = 'BusError';
  constructor(
    readonly code: BusErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Bus {
  /** `reply`: the subject answers go to (see BusMsg.respond), and a no-responders notice when nobody got it. */
  publish(subject: string, data: Uint8Array | string, reply?: string): void;
  subscribe(subject: string, handler: (msg: BusMsg) => void, opts?: { queue?: string }): Subscription;
  request(subject: string, data: Uint8Array | string, timeoutMs: number): Promise<Uint8Array>;
  /** Resolves once the server has processed every earlier publish and subscribe of this client. */
  flush(): Promise<void>;
  /** True while connected (readiness). */
  readonly connected: boolean;
  /** Drains subscriptions and pending publishes, then disconnects. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const toBytes = (d: Uint8Array | string): Uint8Array => (typeof d === 'string' ? encoder.encode(d) : d);
export const toText = (d: Uint8Array): string => decoder.decode(d);
export const toJson = <T>(d: Uint8Array): T => JSON.parse(decoder.decode(d)) as T;
