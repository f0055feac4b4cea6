// The ONLY place Redis keys are built. A slot's lease and the keys of every room and user in that
// slot share one hash tag, so Lua scripts that check the lease and write the room stay on one
// Redis Cluster node. Names are encoded (see encode.ts), so no name can collide with another key.
import { encodeName } from './encode.js';

export type Keys = ReturnType<typeof keys>;

export function keys(prefix: string) {
  const p = prefix;
  const tag = (slot: number) => `${p}:{${p}:s${slot}}`;
  return {
    /** String `<owner>|<fence>` with a TTL: who owns the slot. */
    lease: (slot: number) => `${tag(slot)}:lease`,
    /** Counter: the slot's fencing token, incremented at every acquisition. */
    fence: (slot: number) => `${tag(slot)}:fence`,
    /** Hash {seq, epoch}: a room's last seq and the id of its unbroken history. */
    roomMeta: (slot: number, room: string) => `${tag(slot)}:rm:${encodeName(room)}`,
    /** Sorted set of frames scored by seq: the room's bounded history. */
    roomHistory: (slot: number, room: string) => `${tag(slot)}:rh:${encodeName(room)}`,
    /** String holding the first seq of a (room or recipient, sender, mid); expires with the dedup window. */
    dedup: (slot: number, scope: string, sender: string, mid: string) =>
      `${tag(slot)}:dd:${encodeName(scope)}:${encodeName(sender)}:${encodeName(mid)}`,
    /** Like `dedup`, for room messages only: a room and a recipient of the same name in one slot never share one. */
    roomDedup: (slot: number, room: string, sender: string, mid: string) =>
      `${tag(slot)}:rd:${encodeName(room)}:${encodeName(sender)}:${encodeName(mid)}`,
    /**
     * Hash {seq}: a direct-message recipient's last per-recipient seq. Expires dmMetaTtlMs (ports.ts) after
     * the recipient's last append, when nothing can still refer to its seqs; then they start again at 1.
     */
    dmMeta: (slot: number, user: string) => `${tag(slot)}:um:${encodeName(user)}`,
    /** Sorted set of `dm` frames scored by seq: a recipient's pending (unacknowledged) direct messages. */
    inbox: (slot: number, user: string) => `${tag(slot)}:ui:${encodeName(user)}`,
    /**
     * `inbox(slot, user)` is this plus the member's encoded user: the claim script reaches a user's inbox
     * from a compensation entry this way (same slot, so still one Redis Cluster slot per script).
     */
    inboxPrefix: (slot: number) => `${tag(slot)}:ui:`,
    /**
     * The compensation sorted set of a slot: one member `<encoded user>|<seq>` per pending dm (encoded
     * names hold no `|`; the dm-*.lua scripts build and split it), scored by its next look (ms).
     */
    retry: (slot: number) => `${tag(slot)}:rq`,
    /** Hash `<encoded user>|<seq>` -> deliveries made while the recipient was online. */
    retryAttempts: (slot: number) => `${tag(slot)}:ra`,
    /**
     * Hash `<encoded recipient>|<encoded sender>` -> that sender's pending messages in that inbox (the
     * inboxMaxPerSender limit). A field is deleted when it reaches 0, so the hash empties with the inboxes.
     */
    dmSenders: (slot: number) => `${tag(slot)}:ds`,
    /** Hash compensation member `<encoded recipient>|<seq>` -> encoded sender, while that message is pending. */
    dmSenderOf: (slot: number) => `${tag(slot)}:df`,
    /** List of dead-letter JSON entries of a slot, oldest first; at most deadLettersMaxPerSlot. */
    deadLetters: (slot: number) => `${tag(slot)}:dl`,
    /** Sorted set of live routers scored by their last heartbeat (Redis time, ms). */
    routers: () => `${p}:routers`,
    /** Hash conn -> `user|node`: a room's members. */
    presence: (room: string) => `${p}:pr:${encodeName(room)}`,
    /**
     * Hash conn -> node: a user's live connections, under the user's slot tag so that the dm scripts of
     * that slot read where to deliver in the same atomic step (see userConnsPrefix).
     */
    userConns: (slot: number, user: string) => `${tag(slot)}:uc:${encodeName(user)}`,
    /** `userConns(slot, user)` is this plus the encoded user: the claim script reaches it as it does the inbox. */
    userConnsPrefix: (slot: number) => `${tag(slot)}:uc:`,
    /** String with a TTL: a gateway node is alive while it exists. */
    nodeAlive: (node: string) => `${p}:na:${encodeName(node)}`,
    /** Set of `c <user> <conn>` and `m <room> <user> <conn>` entries a node holds, for reaping. */
    nodeHoldings: (node: string) => `${p}:nh:${encodeName(node)}`,
    /** Set of gateway nodes that may hold presence. */
    nodes: () => `${p}:nodes`,
  };
}
