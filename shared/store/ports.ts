// Storage ports. Each has a Redis implementation (durable, shared by the cluster) and a memory one
// (standalone, tests). Both must pass the same contract suite in test/contract/.

/** Proof of slot ownership, checked by every fenced write. `fence` grows at every acquisition. */
export interface Lease {
  readonly slot: number;
  readonly owner: string;
  readonly fence: number;
}

/**
 * Slot ownership. At most one owner per slot at any time; a lease lapses ttlMs after its last renewal
 * (measured on the store's clock), and every later write with the old lease is refused.
 */
export interface SlotLeases {
  /** Takes a free slot; null when someone else holds it. */
  acquire(slot: number, owner: string, ttlMs: number): Promise<Lease | null>;
  /** Extends a lease still held; false when it was lost (expired or taken), and then it stays lost. */
  renew(lease: Lease, ttlMs: number): Promise<boolean>;
  /** Gives a slot up at once so another router can take it without waiting for the TTL. */
  release(lease: Lease): Promise<void>;
  /** Current owner of every slot (null when free), indexed by slot. */
  owners(slots: number): Promise<(string | null)[]>;
  /** Marks a router alive for ttlMs. */
  heartbeat(router: string, ttlMs: number): Promise<void>;
  /** Routers whose heartbeat has not lapsed, sorted. */
  liveRouters(): Promise<string[]>;
  /** Removes a router from the live set (clean shutdown). */
  leave(router: string): Promise<void>;
}

export interface AppendRequest {
  slot: number;
  room: string;
  /** Sender shown to clients (user id, or what a backend set). */
  from: string;
  /** The message's `data`, already JSON text. */
  dataJson: string;
  /** Client message id; with `dedupBy`, a repeat within the window returns the first seq. */
  mid?: string;
  /** Whose mids these are (the publishing user, or the backend's `from`); dedup is per (room, dedupBy, mid). */
  dedupBy?: string;
  /** The connection to leave out when the message is delivered (its sender, without echo); kept in history. */
  exclude?: string;
}

export interface AppendResult {
  seq: number;
  epoch: string;
  /** The `msg` frame as stored and as clients receive it ('' for a duplicate whose first message left history). */
  frame: string;
  /** True when the mid was seen before: nothing was appended and seq/frame are the first message's. */
  duplicate: boolean;
}

export interface HistoryFrame {
  seq: number;
  frame: string;
  /** `AppendRequest.exclude` of the message. */
  exclude?: string;
}

export interface HistoryRead {
  /** The room's latest seq (0 when nothing was ever published in this epoch). */
  seq: number;
  epoch: string;
  /** Frames with seq > after, in seq order, when `complete`, each with the connection its sender left out. */
  frames: HistoryFrame[];
  /** True when history still holds every message after `after` (so nothing is missing in `frames`). */
  complete: boolean;
}

export interface RoomLogLimits {
  maxMessages: number;
  maxAgeMs: number;
  dedupWindowMs: number;
}

/** Idle rooms expire after this: past the age limit nothing is readable, past the dedup window no mid is remembered. */
export const roomTtlMs = (limits: RoomLogLimits): number => limits.maxAgeMs + limits.dedupWindowMs;

/**
 * Room sequencing and history. `append` is atomic: lease check, dedup, next seq, history entry and
 * trimming happen together or not at all; it throws NotOwnerError when the lease is no longer held.
 * Seqs of a room are 1, 2, 3, ... with no gap and no duplicate within an epoch. A room's epoch is
 * created on first use and changes only when its history was lost; `ts` comes from the store's clock.
 */
export interface RoomLog {
  append(req: AppendRequest, lease: Lease): Promise<AppendResult>;
  /** Head, epoch, and the frames after `after` (after = head gives none). Creates the epoch if needed. */
  read(slot: number, room: string, after: number): Promise<HistoryRead>;
}

export interface RoomMember {
  room: string;
  user: string;
  conn: string;
}

/**
 * Presence: who is connected and who is in which room. Entries belong to a gateway node and live
 * while that node's heartbeat does; `reap` removes the entries of lapsed nodes.
 */
export interface PresenceStore {
  heartbeat(node: string, ttlMs: number): Promise<void>;
  /**
   * Once it resolves, every direct message stored for `user` names `node` among its nodes (Inbox.append):
   * the gateway reads the user's pending messages after it, so none falls between the two.
   */
  connect(node: string, user: string, conn: string): Promise<void>;
  disconnect(node: string, user: string, conn: string): Promise<void>;
  /** True when the connection was not yet a member. */
  join(node: string, m: RoomMember): Promise<boolean>;
  /** True when the connection was a member. */
  leave(node: string, m: RoomMember): Promise<boolean>;
  members(room: string): Promise<{ users: string[]; count: number }>;
  /** Live connections of a user and the node holding each. */
  userConns(user: string): Promise<{ conn: string; node: string }[]>;
  /**
   * Removes everything held by nodes whose heartbeat lapsed. Returns the room memberships removed;
   * concurrent reapers never both return the same membership.
   */
  reap(): Promise<RoomMember[]>;
  /** Removes a node and everything it holds (clean shutdown), returning its room memberships. */
  removeNode(node: string): Promise<RoomMember[]>;
}

/** The storage side of an engine, opened by the CLI and handed to gateway and router. */
export interface Stores {
  log: RoomLog;
  inbox: Inbox;
  leases: SlotLeases;
  presence: PresenceStore;
  /** True while the backing store is reachable (readiness). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/**
 * The part of the stores a gateway may touch: room history reads (join replay, gap fill), its users'
 * pending direct messages and acks, and its own presence entries. Every write of a message goes through
 * the slot's router, whose lease fences it; the gateway never appends.
 */
export interface GatewayStores {
  log: Pick<RoomLog, 'read'>;
  inbox: Pick<Inbox, 'pending' | 'peek' | 'ack'>;
  presence: Pick<PresenceStore, 'heartbeat' | 'connect' | 'disconnect' | 'join' | 'leave' | 'members' | 'removeNode'>;
}

/**
 * The part of the stores a router may touch: fenced appends (sequencer), slot leases (slots), the retry
 * sweep (delivery), dead letters and presence reads (backend API), and reaping lapsed gateways (reaper).
 */
export interface RouterStores {
  log: Pick<RoomLog, 'append'>;
  inbox: Pick<Inbox, 'append' | 'claimDue' | 'park' | 'stats' | 'deadLetters' | 'takeDeadLetter'>;
  leases: SlotLeases;
  presence: Pick<PresenceStore, 'reap' | 'members' | 'userConns'>;
}

export interface DmAppendRequest {
  /** The recipient's slot (userSlot). */
  slot: number;
  to: string;
  from: string;
  dataJson: string;
  mid?: string;
  /** Whose mids these are; dedup is per (recipient, dedupBy, mid). */
  dedupBy?: string;
  /**
   * Whose share of the recipient's inbox the message takes (inboxMaxPerSender): DmRequest.by, i.e. the
   * sending user, `backend/<from>` for a backend, `rtgw/redrive` for a re-drive. Not `from`, which a
   * backend may set to anything.
   */
  sender: string;
}

export interface DmAppendResult {
  /** Per-recipient seq: 1, 2, 3, ... with no gap. */
  seq: number;
  /** The `dm` frame as stored and as the recipient receives it ('' for a duplicate already settled). */
  frame: string;
  duplicate: boolean;
  /** The recipient's pending messages after this append. */
  inboxSize: number;
  /** The gateway nodes holding a connection of the recipient when it was stored (presence, same step). */
  nodes: string[];
}

/** A delivery the sweeper claimed: send it now. `attempt` counts deliveries while the recipient was online. */
export interface DueDelivery {
  user: string;
  seq: number;
  frame: string;
  attempt: number;
  /** The entry's new score (its next retry time): `park` acts only while it is unchanged. */
  due: number;
  /** The gateway nodes holding a connection of the recipient when it was claimed. */
  nodes: string[];
}

/**
 * 'inbox_full' is no longer made (a full inbox refuses new messages, contract 1.1 section 7.1); it stays
 * so that dead letters stored by earlier versions still read, and its metric series stays at 0.
 */
export type DeadLetterReason = 'attempts' | 'inbox_full' | 'expired';

export interface DeadLetter {
  /** Stable id for re-drive: `<slot>:<user>:<seq>`. */
  id: string;
  user: string;
  seq: number;
  frame: string;
  attempts: number;
  reason: DeadLetterReason;
  /** When the message was stored and first sent (store clock, ms; the frame's `ts`). */
  sentTs: number;
  /** When it was dead-lettered (store clock, ms). */
  ts: number;
}

/**
 * Told how many messages an operation dead-lettered (for rtgw_dead_letters_total{reason}), or how many of
 * the slot's oldest dead letters it dropped to stay within deadLettersMaxPerSlot ('dropped', for
 * rtgw_dead_letters_dropped_total), in the process that ran it: the gateway for 'expired' on connect,
 * the router for the rest. Must not throw.
 */
export type DeadLetterObserver = (reason: DeadLetterReason | 'dropped', count: number) => void;

export interface DeliveryLimits {
  /** A delivery not acknowledged within this is sent again (first retry), then with exponential backoff. */
  ackTimeoutMs: number;
  /** Longest wait between two retries. */
  maxBackoffMs: number;
  /** Deliveries while the recipient is online before the message is dead-lettered. */
  maxAttempts: number;
  /** A pending message older than this is dead-lettered ('expired'). */
  inboxMaxAgeMs: number;
  /** Pending messages per recipient; a new message past it is refused (LimitError), nothing is evicted. */
  inboxMaxMessages: number;
  /** Pending messages one sender may have in one recipient's inbox; past it a new one is refused (LimitError). */
  inboxMaxPerSender: number;
  /** Dead letters kept per slot; the oldest past it are dropped (DeadLetterObserver's 'dropped'). */
  deadLettersMaxPerSlot: number;
  dedupWindowMs: number;
}

/**
 * How long a recipient's seq counter outlives their last append, so that no per-user key lives forever.
 * Once it lapses the recipient's seqs start again at 1. Nothing can still refer to the old ones then:
 * a dedup entry (which names a seq) lives dedupWindowMs after its append, and a pending message is
 * dead-lettered once older than inboxMaxAgeMs. Should a message that old still be in the inbox (no
 * claim looked at it yet), the new seqs continue after the inbox's highest one instead, so two pending
 * messages never share a seq. A gateway still holding a higher seq for a connected recipient delivers
 * the lower new ones at once (it takes any seq up to its last + 1 as in order), and the SDK tells them
 * from earlier ones by their `ts`, as after Redis lost an inbox. Dead-letter ids (`<slot>:<user>:<seq>`)
 * may repeat across such a restart; a re-drive's mid includes the letter's `sentTs` for that reason.
 */
export const dmMetaTtlMs = (limits: DeliveryLimits): number => limits.inboxMaxAgeMs + limits.dedupWindowMs;

/**
 * What memoryStores/redisStores take: the room log's and the inbox's limits (one dedup window for both),
 * and the slot count (RTGW_SLOTS), by which presence files a user's connections under the user's slot.
 */
export type StoreLimits = RoomLogLimits & DeliveryLimits & { slots: number };

export interface RetryStats {
  /** Entries in the compensation set (every unacknowledged message). */
  queued: number;
  /** Entries whose time has come. */
  due: number;
  /** Age of the oldest due entry (0 when none is due). */
  oldestDueMs: number;
}

/**
 * Direct messages: a per-recipient inbox and the compensation sorted set, sharded by slot. Every
 * pending (unacknowledged) message has exactly one entry in its slot's set, scored by the time it must
 * next be looked at (store clock). Nothing leaves the inbox except by `ack` or by dead-lettering (never
 * to make room), and every dead letter is kept in the slot's dead-letter list with its reason and
 * attempts, up to deadLettersMaxPerSlot (the oldest are dropped past it). Each pending message counts
 * against its sender's share of the inbox until it leaves; a sender with nothing pending there, and a
 * recipient with nothing pending and no append for dmMetaTtlMs, leave nothing stored behind.
 */
export interface Inbox {
  /**
   * Fenced like RoomLog.append: lease, dedup, limits, next per-recipient seq, inbox entry and its
   * compensation entry (due after ackTimeoutMs, attempt 1: the caller delivers at once) in one step.
   * Dedup comes before the limits: a repeated mid is answered with its first seq even at a limit.
   * Throws LimitError, storing nothing, when the inbox holds inboxMaxMessages or the sender already has
   * inboxMaxPerSender pending in it.
   */
  append(req: DmAppendRequest, lease: Lease): Promise<DmAppendResult>;
  /** Settles a message: removes it from the inbox and the compensation set. False when it was not pending. */
  ack(slot: number, user: string, seq: number): Promise<boolean>;
  /**
   * Every pending message of `user` in seq order (called when the user connects: the caller delivers
   * them), each rescheduled to now + ackTimeoutMs with its attempts restarted at 1, and the recipient's
   * latest seq (0 before their first message). Expired ones are dead-lettered instead of returned.
   */
  pending(slot: number, user: string): Promise<{ head: number; messages: { seq: number; frame: string }[] }>;
  /** Pending messages of `user` with seq > `after`, in seq order, at most `limit`; changes nothing. */
  peek(slot: number, user: string, after: number, limit: number): Promise<{ seq: number; frame: string }[]>;
  /**
   * Claims up to `limit` due entries of one slot atomically: each is either rescheduled to its next
   * retry (attempt + 1, exponential backoff with jitter) and returned for delivery, or dead-lettered
   * when out of attempts or expired. Two concurrent claimers never get the same entry; a claimer that
   * dies after claiming loses nothing (the entry comes due again at its next retry).
   */
  claimDue(slot: number, limit: number): Promise<DueDelivery[]>;
  /**
   * The recipient turned out to be offline: the claim's attempt is given back and the entry waits until
   * it expires (or `pending` re-arms it on connect). Does nothing when the entry's score is no longer
   * `due` (a connect re-armed it meanwhile) or it was settled.
   */
  park(slot: number, user: string, seq: number, due: number): Promise<void>;
  stats(slot: number): Promise<RetryStats>;
  /** Dead letters of one slot, oldest first. */
  deadLetters(slot: number, limit: number): Promise<DeadLetter[]>;
  /** Removes a dead letter and returns it (to be sent again as a new message); undefined when gone. */
  takeDeadLetter(slot: number, id: string): Promise<DeadLetter | undefined>;
}
