// The ONLY place NATS subjects are built. Every variable part goes through encodeName (or, for
// routes, token by token), so no room, user or node name can add subject tokens or wildcards.
import { encodeName } from './encode.js';

export type Subjects = ReturnType<typeof subjects>;

export function subjects(prefix: string) {
  const p = prefix;
  return {
    /** Requests to the router that owns a slot (pub, dm): `<p>.slot.<n>`. */
    slot: (slot: number) => `${p}.slot.${slot}`,
    /** A slot client's answers (slot-rpc.ts): `.<id>` per request, `.0` for batches. */
    replies: (client: string) => `${p}.reply.${encodeName(client)}`,
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
