// Slot hand-over on a router joining (the same handOver path a router's SIGTERM uses): every request
// sent while slots move must be answered promptly — ok, or an error a client can retry at once — and
// none may wait out RTGW_REQUEST_TIMEOUT_MS (5 s) unanswered by the router. Written for a bug: requests
// already routed to a slot's old owner were dropped silently when it unsubscribed (the gateway answered
// `unavailable` only after 5 s); the old owner now drains its subscription and answers "moved".
import { expect, it } from 'vitest';
import { History } from '../harness/history.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { metric, roomsByOwner, waitBalanced } from '../harness/nodes.js';

const suite = useCluster({ gateways: 1, routers: 1, pingOnConnect: true, logLines: 40 });
const { client } = suite;

it('a router joining takes over slots without leaving any request unanswered for the request timeout', async () => {
  const { cluster } = suite;
  await waitBalanced(cluster);
  const rooms = [...roomsByOwner(cluster, 16, 'ho').values()].flat();
  const history = new History();
  const publishers = await Promise.all([0, 1, 2, 3].map(async (i) => ({ name: `p${i}`, client: await client(0) })));
  const startedAt = Date.now();
  const run = history.publishFor({
    publishers,
    rooms,
    durationMs: 5000,
    everyMs: 5,
    maxInFlight: 50,
    answerTimeoutMs: 8000,
  });
  await waitFor(() => history.oks().length >= 100, 5000, 'publishing to be under way');
  const joinedAt = Date.now();
  const newcomer = await cluster.add('router');
  await waitBalanced(cluster);
  await run;
  const slow = history.sends
    .filter((r) => r.outcome?.kind !== 'ok' || (r.answeredAtMs ?? Infinity) - r.sentAtMs >= 3000)
    .map(
      (r) =>
        `${r.mid} sent +${r.sentAtMs - joinedAt} ms, answered after ${(r.answeredAtMs ?? NaN) - r.sentAtMs} ms: ${JSON.stringify(r.outcome)}`,
    );
  console.info('handover:', {
    oks: history.oks().length,
    slow: slow.length,
    newcomerSlots: await metric(newcomer, 'rtgw_slots_owned'),
    runMs: Date.now() - startedAt,
  });
  expect(slow).toEqual([]);
  expect(history.check().lines()).toEqual([]);
}, 40_000);
