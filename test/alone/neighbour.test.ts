// A neighbour keeps its service (contract 7.1): while connections flood one gateway with the most
// expensive frames the limits allow, each at its full rate limit — data nested to the limit, near-limit
// frame sizes, joins that replay a full history, presence reads of a big room — a neighbour's ping round
// trip on the same gateway stays within a few milliseconds of the quiet one, and the members of another
// room get every message of its publisher, once and in order. The figures are printed for the README.
import { describe, expect, it } from 'vitest';
import type { TestClient } from '../harness/client.js';
import { uid } from '../harness/cluster.js';
import { useCluster } from '../harness/suite.js';
import { sleep } from '../harness/wait.js';

const RATE_LIMIT = 500; // frames per second: the default
const RATE_LIMIT_BYTES = 1024 * 1024; // bytes per second: the default
const MAX_MESSAGE_BYTES = 64 * 1024; // the default
const FLOOD_MS = 4000;

const suite = useCluster({ gateways: 1, routers: 1, env: { RTGW_LOG_LEVEL: 'warn' } });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

/** Ping round trips of `c`, one every `everyMs`, until `stop` says so. */
async function pings(c: TestClient, everyMs: number, stop: () => boolean): Promise<number[]> {
  const rtts: number[] = [];
  while (!stop()) {
    const t0 = performance.now();
    await c.ping();
    rtts.push(performance.now() - t0);
    await sleep(everyMs);
  }
  return rtts;
}

/**
 * Sends `frame(i)`, each costing `costPerFrame` frames of the rate limit, as fast as the frame and byte
 * limits allow, for `ms`. Paced by the clock so the flooder is never refused.
 */
async function flood(c: TestClient, costPerFrame: number, ms: number, frame: (i: number) => string): Promise<number> {
  const perSec = Math.min(RATE_LIMIT / costPerFrame, RATE_LIMIT_BYTES / Buffer.byteLength(frame(0))) * 0.95;
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < ms && c.isOpen) {
    const due = Math.floor(((performance.now() - start) / 1000) * perSec) + 1;
    for (; sent < due; sent++) c.send(frame(sent));
    await sleep(5);
  }
  return sent;
}

describe('a neighbour on a flooded gateway', () => {
  it('keeps its ping round trip within a few ms of the quiet one, and other members get everything in order', async () => {
    const [bigRoom, busyRoom, quietRoom] = [uid('big'), uid('busy'), uid('quiet')];
    // A room with a full history to replay and 20 members to count.
    const filler = await suite.client(0);
    for (let i = 0; i < 200; i++) filler.fire({ t: 'pub', room: bigRoom, data: { i, pad: 'x'.repeat(200) } });
    await filler.ok({ t: 'pub', room: bigRoom, data: 'last' });
    for (let i = 0; i < 20; i++) await (await suite.client(0)).ok({ t: 'join', room: bigRoom });

    const neighbour = await suite.client(0);
    const publisher = await suite.client(0);
    const members = [await suite.client(0), await suite.client(0)];
    for (const m of members) await m.ok({ t: 'join', room: quietRoom });
    const listener = await suite.client(0);
    await listener.ok({ t: 'join', room: busyRoom });

    let quietDone = false;
    const quietRun = pings(neighbour, 20, () => quietDone);
    await sleep(2000);
    quietDone = true;
    const quiet = await quietRun;

    const deep = '['.repeat(31) + JSON.stringify('y'.repeat(4000)) + ']'.repeat(31);
    const big = JSON.stringify('z'.repeat(MAX_MESSAGE_BYTES - 200));
    const attackers = await Promise.all([0, 1, 2, 3].map(() => suite.client(0)));
    let done = false;
    const loaded = pings(neighbour, 20, () => done);
    const traffic = (async () => {
      let n = 0;
      while (!done) {
        await publisher.ok({ t: 'pub', room: quietRoom, data: { n: n++ } });
        await sleep(10);
      }
      return n;
    })();
    const sent = await Promise.all([
      flood(attackers[0]!, 1, FLOOD_MS, (i) => `{"t":"pub","id":${i},"room":"${busyRoom}","data":${deep}}`),
      flood(attackers[1]!, 1, FLOOD_MS, (i) => `{"t":"pub","id":${i},"room":"${busyRoom}","data":${big}}`),
      flood(attackers[2]!, 10, FLOOD_MS, (i) => `{"t":"join","id":${i},"room":"${bigRoom}","since":0}`),
      flood(attackers[3]!, 10, FLOOD_MS, (i) => `{"t":"presence","id":${i},"room":"${bigRoom}"}`),
    ]);
    done = true;
    const [underFlood, published] = await Promise.all([loaded, traffic]);

    for (const m of members) {
      const got = await m.waitForMsgs(quietRoom, published, 10_000);
      expect(got.map((f) => (f.data as { n: number }).n)).toEqual(Array.from({ length: published }, (_, i) => i));
    }
    // The flood was answered, not refused: every attacker is still connected and none was rate limited.
    for (const a of attackers) {
      expect(a.isOpen).toBe(true);
      expect(a.of('err', (f) => f.code === 'rate_limited')).toEqual([]);
    }
    const figures = {
      quietP50Ms: +median(quiet).toFixed(2),
      floodP50Ms: +median(underFlood).toFixed(2),
      floodP99Ms: +p99(underFlood).toFixed(2),
      framesSent: sent,
      quietRoomMessages: published,
    };
    console.info('neighbour under flood:', figures);
    expect(figures.floodP50Ms).toBeLessThan(figures.quietP50Ms + 5);
  }, 60_000);
});
