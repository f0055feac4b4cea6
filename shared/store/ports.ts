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
}

export interface AppendResult {
  seq: number;
  epoch: string;
  /** The `msg` frame as stored and as clients receive it ('' for a duplicate whose first message left history). */
  frame: string;
  /** True when the mid was seen before: nothing was appended and seq/frame are the first message's. */
  duplicate: boolean;
}

export interface HistoryRead {
  /** The room's latest seq (0 when nothing was ever published in this epoch). */
  seq: number;
  epoch: string;
  /** Frames with seq > after, in seq order, when `complete`. */
  frames: { seq: number; frame: string }[];
  /** True when history still holds every message after `after` (so nothing is missing in `frames`). */
  complete: boolean;
}

export interface RoomLogLimits {
  maxMessages: number;
  maxAgeMs: number;
  dedupWindowMs: number;
}

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
  leases: SlotLeases;
  presence: PresenceStore;
  /** True while the backing store is reachable (readiness). */
  readonly connected: boolean;
  close(): Promise<void>;
}
