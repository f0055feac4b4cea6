// The demo page in a real browser: Debian's Chromium driven by playwright-core, two pages chatting through
// `rtgw standalone` in development mode (on NATS and Redis, so history outlives the process). Presence
// updates both ways, a direct message arrives, and a restart of the server mid-conversation loses and
// repeats nothing on either page: messages typed while it was down wait in the SDK's outbox, the new
// server's key makes the SDK fetch a new token (4001), and the rooms resume from history. A screenshot is
// taken and checked, by the browser's own image decoder, to be far from blank.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNode, uid, type Node } from '../harness/cluster.js';
import { startNats, type NatsServer } from '../harness/nats.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { requireBinary } from '../../scripts/prerequisites.mjs';

/** The flags this machine's Chromium needs headless as root, with no network beyond loopback. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const artifacts = fileURLToPath(new URL('../../.vitest-tmp/', import.meta.url));

let nats: NatsServer;
let redis: RedisServer;
let node: Node;
let browser: Browser;
const prefix = uid('demo').replace('-', '');

const standalone = (port?: number, adminPort?: number) =>
  startNode('standalone', {
    RTGW_NATS_URL: nats.url,
    RTGW_REDIS_URL: redis.url,
    RTGW_NATS_PREFIX: prefix,
    ...(port === undefined ? {} : { RTGW_PORT: String(port), RTGW_ADMIN_PORT: String(adminPort) }),
  });

beforeAll(async () => {
  const executablePath = requireBinary('chromium');
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  node = await standalone();
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await node?.stop();
  await Promise.all([nats?.stop(), redis?.stop()]);
});

async function enter(name: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error(`${name} page error:`, e.message));
  await page.goto(node.httpUrl + '/');
  await page.fill('#name', name);
  await page.click('#enter');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 10_000 });
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.click('#send');
}

/** The room log as the page shows it: [sender, text, seq] per line (seq '' while sending). */
const log = (page: Page) =>
  page.$$eval('#log [data-testid="msg"]', (lis) =>
    lis.map((li) => [
      li.querySelector('.from')!.textContent,
      li.querySelector('.text')!.textContent,
      (li as HTMLElement).dataset.seq ?? '',
    ]),
  );
const members = (page: Page) =>
  page.$$eval('#members [data-testid="member"]', (lis) => lis.map((li) => li.textContent));
/** Waits until `page`'s member list is exactly `names`. */
const membersAre = (page: Page, names: string[]) =>
  page.waitForFunction(
    (want) =>
      [...document.querySelectorAll('#members [data-testid="member"]')].map((li) => li.textContent).join(',') === want,
    names.join(','),
    { timeout: 10_000 },
  );

/** Waits until `page`'s log holds `n` lines, each with its seq. */
const settled = (page: Page, n: number) =>
  page.waitForFunction(
    (count) => {
      const lis = [...document.querySelectorAll('#log [data-testid="msg"]')] as HTMLElement[];
      return lis.length === count && lis.every((li) => li.dataset.seq !== undefined);
    },
    n,
    { timeout: 20_000 },
  );

it('two pages chat, see each other come and go, exchange a direct message, and lose nothing across a server restart', async () => {
  const alice = await enter('alice');
  const bob = await enter('bob');
  // Presence: alice's list gains bob when bob joins the lobby.
  await membersAre(alice, ['alice', 'bob']);
  expect(await members(bob)).toEqual(['alice', 'bob']);

  await say(alice, 'hi bob');
  await bob.waitForSelector('#log [data-testid="msg"]:has-text("hi bob")');
  await say(bob, 'hi alice');
  await settled(alice, 2);
  await settled(bob, 2);

  // A direct message, bob to alice.
  await bob.fill('#dm-to', 'alice');
  await bob.fill('#dm-text', 'psst');
  await bob.click('#dm-send');
  await alice.waitForSelector('#dms [data-testid="dm"]:has-text("psst")');
  expect(await alice.$eval('#dms [data-testid="dm"] .from', (e) => e.textContent)).toBe('bob');

  // The server goes away mid-conversation; both keep typing; it comes back on the same port.
  const { port, adminPort } = node;
  expect(await node.stop()).toBe(0);
  await alice.waitForSelector('#status:not([data-state="connected"])');
  await say(alice, 'are you there?');
  await say(bob, 'still here');
  node = await standalone(port, adminPort);
  await alice.waitForSelector('#status[data-state="connected"]', { timeout: 20_000 });
  await bob.waitForSelector('#status[data-state="connected"]', { timeout: 20_000 });
  await say(alice, 'welcome back');
  await say(bob, 'thanks');

  for (const page of [alice, bob]) await settled(page, 6);
  const [a, b] = [await log(alice), await log(bob)];
  const expected = [
    ['alice', 'hi bob'],
    ['bob', 'hi alice'],
    ['alice', 'are you there?'],
    ['bob', 'still here'],
    ['alice', 'welcome back'],
    ['bob', 'thanks'],
  ];
  // Each page shows every message exactly once; both agree on each message's seq, and seqs are 1..6.
  const sorted = (rows: (string | null)[][]) => [...rows].sort((x, y) => Number(x[2]) - Number(y[2]));
  for (const rows of [a, b]) {
    expect(rows.map(([from, text]) => [from, text]).sort()).toEqual([...expected].sort());
    expect(rows.map((r) => Number(r[2])).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
  }
  expect(sorted(a)).toEqual(sorted(b));

  // Presence after the restart, and when bob's page goes away.
  await membersAre(alice, ['alice', 'bob']);
  await bob.context().close();
  await membersAre(alice, ['alice']);

  // A screenshot, judged by the browser's own PNG decoder: mostly not one colour, with text and widgets.
  mkdirSync(artifacts, { recursive: true });
  const png = await alice.screenshot({ path: join(artifacts, 'demo.png') });
  const stats = await alice.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [img.width, img.height];
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, img.width, img.height).data;
    const counts = new Map<number, number>();
    for (let i = 0; i < px.length; i += 4) {
      const c = (px[i]! << 16) | (px[i + 1]! << 8) | px[i + 2]!;
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    return {
      width: img.width,
      height: img.height,
      colours: counts.size,
      top: Math.max(...counts.values()) / (px.length / 4),
    };
  }, png.toString('base64'));
  expect(stats.width).toBeGreaterThan(600);
  expect(stats.colours, 'distinct colours in the screenshot').toBeGreaterThan(50);
  expect(stats.top, 'share of the most common colour').toBeLessThan(0.9);
}, 90_000);
