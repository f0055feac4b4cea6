// Backend control of one gateway's connections over `<p>.node.<node>` (router/api.ts sends it): today
// `disconnect`, which closes a user's connections here with 4011 and answers how many.
import type { Bus, Subscription } from '../shared/bus/bus.js';
import { decodeNodeRequest } from '../shared/cluster/messages.js';
import type { Subjects } from '../shared/cluster/subjects.js';
import { CloseCode } from '../shared/protocol/codes.js';
import { endSocket } from './connection.js';
import type { Connections } from './registry.js';

export function listenForControl(bus: Bus, subj: Subjects, node: string, conns: Connections): Subscription {
  return bus.subscribe(subj.node(node), (msg) => {
    const req = decodeNodeRequest(msg.data);
    if (!req) return;
    const victims = [...conns.ofUser(req.user)];
    const reason = req.reason?.slice(0, 120) ?? 'disconnected by backend';
    for (const c of victims) endSocket(c.ws, CloseCode.DisconnectedByBackend, reason);
    msg.respond(JSON.stringify({ count: victims.length }));
  });
}
