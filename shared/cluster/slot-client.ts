// Sends a request to whichever router owns a slot. While a slot changes hands nobody may be
// subscribed for a moment: "no responders" is safe to retry (nobody received the request), and so is
// a handing-over router's explicit "moved" answer, so we retry with backoff until the deadline. A
// timeout is not retried: the owner may have acted on it.
import { BusError, toBytes, toJson, type Bus } from '../bus/bus.js';
import { RtgwError } from '../errors.js';
import { ErrorCode } from '../protocol/codes.js';
import { isErrorReply, type SlotRequest } from './messages.js';
import type { Subjects } from './subjects.js';

export async function requestSlot<T>(bus: Bus, subj: Subjects, slot: number, req: SlotRequest, timeoutMs: number): Promise<T> {
  // While disconnected the request could not leave; answering at once beats waiting out the timeout.
  if (!bus.connected) throw new RtgwError(ErrorCode.Unavailable, 'not connected to the cluster bus; try again');
  const body = toBytes(JSON.stringify(req));
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    if (left <= 0) throw new RtgwError(ErrorCode.Unavailable, 'no router owns this room right now; try again');
    const backoff = () => new Promise((r) => setTimeout(r, Math.min(25 * 2 ** attempt, 250, Math.max(1, deadline - Date.now()))));
    let reply: unknown;
    try {
      reply = toJson(await bus.request(subj.slot(slot), body, left));
    } catch (e) {
      if (e instanceof BusError && e.code === 'no_responders') {
        await backoff();
        continue;
      }
      throw new RtgwError(ErrorCode.Unavailable, e instanceof BusError && e.code === 'timeout' ? 'router did not answer in time' : 'bus unavailable', { cause: e });
    }
    if (isErrorReply(reply)) {
      if (reply.error.retry === true) {
        await backoff();
        continue;
      }
      throw new RtgwError(reply.error.code, reply.error.msg);
    }
    return reply as T;
  }
}
