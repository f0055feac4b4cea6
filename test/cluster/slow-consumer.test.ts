// Slow consumers (protocol §4): a connection whose send buffer grows past RTGW_MAX_BACKPRESSURE_BYTES is
// closed with 4009, the rest of its room is not held back by it, and nothing reliable is lost: it
// resumes with since/epoch and gets what it missed from history.
import type { Socket } from 'node:net';
import { expect, it } from 'vitest';
import { range, seqs } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';
import { waitFor } from '../harness/wait.js';
import { lastSeq, metric } from '../harness/nodes.js';

const MAX_BACKPRESSURE_BYTES = 64 * 1024;
const SLOW_CONSUMER_METRIC = 'rtgw_slow_consumer_disconnects_total';
// Before the gateway buffers a single byte for a reader that stopped, the loopback socket's kernel
// buffers take about 4 MB (tcp_wmem's 4 MiB maximum on the gateway side): some 3,700 of these messages.
/** The flood's bounds: it stops at the first slow-consumer close or at either of these. */
const FLOOD_MAX_MESSAGES = 8000;
const FLOOD_MAX_MS = 20_000;
// As fast as one publisher goes, 50 requests in flight (about 2.5 MB/s on this box): the gateway's sweep
// must close with 4009 before uWebSockets.js's own last-resort limit drops the socket without a close
// frame (1006).
const BATCH = 50;
const BATCH_EVERY_MS = 0;
/** Published after the close, so the slow member has missed messages whatever the buffers held. */
const AFTER_CLOSE = 20;
const PAD = 'x'.repeat(1000);

const suite = useCluster({
  gateways: 1,
  routers: 1,
  env: {
    RTGW_MAX_BACKPRESSURE_BYTES: String(MAX_BACKPRESSURE_BYTES),
    // The flood is one publisher's: above the default limit of 500 frames per second.
    RTGW_RATE_LIMIT: '100000',
    RTGW_RATE_LIMIT_BYTES: String(1024 ** 3),
    // History holds the whole flood, so the slow member's resume is complete (recovered: true).
    RTGW_HISTORY_MAX_MESSAGES: String(FLOOD_MAX_MESSAGES + AFTER_CLOSE),
  },
});
const { client } = suite;

it('closes a member that stops reading with 4009, delivers everything in order to one that reads, and the slow one recovers all it missed with since/epoch', async () => {
  const gateway = suite.cluster.gateways[0]!;
  const room = uid('slow');
  const [slow, fast, publisher] = [await client(0), await client(0), await client(0)];
  const joined = await slow.ok({ t: 'join', room });
  await fast.ok({ t: 'join', room });
  const closesBefore = await metric(gateway, SLOW_CONSUMER_METRIC);
  const slowConsumerClosed = async () => (await metric(gateway, SLOW_CONSUMER_METRIC)) > closesBefore;

  // The slow member stops reading its TCP socket: its kernel buffers fill, then the gateway's.
  const socket = (slow.ws as unknown as { _socket: Socket })._socket;
  socket.pause();
  const startedAt = Date.now();
  let published = 0;
  let closeSeen = false;
  try {
    let checkedAt = startedAt;
    while (published < FLOOD_MAX_MESSAGES && Date.now() - startedAt < FLOOD_MAX_MS) {
      const batchAt = Date.now();
      const n = Math.min(BATCH, FLOOD_MAX_MESSAGES - published);
      const oks = await Promise.all(
        range(published + 1, published + n).map((i) => publisher.ok({ t: 'pub', room, data: { i, pad: PAD } })),
      );
      expect(seqs(oks)).toEqual(range(published + 1, published + n));
      published += n;
      if (Date.now() - checkedAt >= 200) {
        checkedAt = Date.now();
        if ((closeSeen = await slowConsumerClosed())) break;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, batchAt + BATCH_EVERY_MS - Date.now())));
    }
  } finally {
    socket.resume();
  }
  const floodMs = Date.now() - startedAt;
  expect(closeSeen, `${SLOW_CONSUMER_METRIC} did not rise within ${published} messages / ${floodMs} ms`).toBe(true);

  // Resumed, it reads what the buffers held, then the close frame.
  await waitFor(() => slow.closeState !== undefined, 10_000, 'the slow member to read up to its close');
  expect(slow.closeState).toEqual({ code: 4009, reason: expect.any(String) });
  const since = lastSeq(slow.frames, room);
  expect(seqs(slow.msgs(room)), 'what the slow member received before the close').toEqual(range(1, since));

  for (let i = published + 1; i <= published + AFTER_CLOSE; i++)
    await publisher.ok({ t: 'pub', room, data: { i, pad: PAD } });
  const total = published + AFTER_CLOSE;
  console.info('slow-consumer:', { published, floodMs, slowReceivedBeforeClose: since, total });

  // The member that kept reading got every message, in order, and is still connected.
  const got = await fast.waitForMsgs(room, total, 20_000);
  expect(seqs(got)).toEqual(range(1, total));
  expect(got.map((f) => f.data.i)).toEqual(range(1, total));
  await fast.ping();
  expect(fast.isOpen).toBe(true);

  // The slow member comes back with since/epoch and gets exactly what it missed.
  const back = await client(0, slow.user);
  const j = await back.ok({ t: 'join', room, since, epoch: joined.epoch });
  expect(j).toMatchObject({ room, recovered: true, seq: total, epoch: joined.epoch });
  const replay = await back.waitForMsgs(room, total - since, 20_000);
  expect(seqs(replay)).toEqual(range(since + 1, total));
  expect(replay.map((f) => f.data.i)).toEqual(range(since + 1, total));
}, 60_000);
