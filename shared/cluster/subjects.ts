// The ONLY place NATS subjects are built. Every variable part goes through encodeName (or, for
// routes, token by token), so no room, user or node name can add subject tokens or wildcards.
import { encodeName } from './encode.js';

export type Subjects = ReturnType<typeof subjects>;

/** The last token of a slot client's batch of answers (slot-rpc.ts); request ids start at 1. */
export const REPLY_BATCH = '0';

export function subjects(prefix: string) {
  const p = prefix;
  const repliesMarker = `${p}.reply.`;
  return {
    /** Requests to the router that owns a slot (pub, dm): `<p>.slot.<n>`. */
    slot: (slot: number) => `${p}.slot.${slot}`,
    /** A slot client's answers (slot-rpc.ts): `.<id>` per request, `.0` for batches. */
    replies: (client: string) => `${repliesMarker}${encodeName(client)}`,
    // The subjects under `replies(client)` take that subject, built once per client, rather than the
    // client's name: they are built per request, and the name need not be encoded again each time.
    /** What a slot client subscribes to: every answer under its `replies` subject. */
    allReplies: (replies: string) => `${replies}.*`,
    /** The reply subject of a slot client's request `id`. */
    replyTo: (replies: string, id: number) => `${replies}.${id}`,
    /** Where a slot's owner sends a slot client a burst of answers at once. */
    batchReply: (replies: string) => `${replies}.${REPLY_BATCH}`,
    /**
     * A request's reply subject as a slot client's `replies` subject and its last token (the request id);
     * undefined for any other reply subject (a plain request's inbox).
     */
    parseReply: (reply: string): { replies: string; token: string } | undefined => {
      const dot = reply.lastIndexOf('.');
      if (!reply.startsWith(repliesMarker) || dot < repliesMarker.length) return undefined;
      return { replies: reply.slice(0, dot), token: reply.slice(dot + 1) };
    },
    /** A room's ordered stream of sequenced messages and presence events. */
    room: (room: string) => `${p}.room.${encodeName(room)}`,
    /** Control requests to one gateway node (disconnect a user, ...). */
    node: (node: string) => `${p}.node.${encodeName(node)}`,
    /** Direct messages for the users connected to one gateway node: `<encoded user>\n<dm frame>`. */
    dm: (node: string) => `${p}.dm.${encodeName(node)}`,
    /** Backend API (request/reply), answered by any router. */
    api: (op: 'publish' | 'dm' | 'presence' | 'disconnect' | 'deadletters' | 'redrive') => `${p}.api.${op}`,
    /** A client's `send` to backend services: dot-separated route tokens, each encoded. */
    route: (route: string) => `${p}.in.${route.split('.').map(encodeName).join('.')}`,
    event: (kind: 'connect' | 'disconnect') => `${p}.events.${kind}`,
  };
}
