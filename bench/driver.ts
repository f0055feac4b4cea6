// Load-generator worker: the publisher and the one probe member, in one process so that the probe
// measures publish-to-receive latency on the same clock (performance.now) the publisher stamped.
// The publisher paces `pub` frames on a 1 ms timer, writing each tick's frames in one socket write.
import { encodeFrame, LeanWs, signHs256 } from './lean-client.js';
import type { DriverCmd, DriverReply, StepPlan, StepReport, Target } from './protocol.js';
import { summarize } from './stats.js';

const DATA_BYTES = 100;
const secret = process.env.BENCH_JWT_SECRET ?? '';
const reply = (r: DriverReply) => process.send!(r);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let publisher: LeanWs;
let probe: LeanWs;
let room = '';
let system: Target['system'] = 'rtgw';

// Current step, written by the probe's and the publisher's callbacks.
let stepNo = -1;
let lat = new Float64Array(0);
let received = 0;
let inOrder = true;
let stale = 0;
let oks = 0;
let errs = 0;
let errSample: string[] = [];

function onProbe(p: Buffer): void {
  const now = performance.now();
  const f = JSON.parse(p.toString('utf8')) as { data?: { s?: number; i?: number; ts?: number } };
  const d = f.data;
  if (!d || d.s !== stepNo) {
    stale++;
    return;
  }
  if (d.i !== received) inOrder = false;
  if (received < lat.length) lat[received] = now - d.ts!;
  received++;
}

function onPublisherReply(p: Buffer): void {
  const text = p.toString('utf8');
  if (text.startsWith('{"t":"ok"')) oks++;
  else if (text.startsWith('{"t":"err"')) {
    errs++;
    if (errSample.length < 5) errSample.push(text.slice(0, 200));
  }
}

function open(target: Target, sub: string, wantData: boolean, onData?: (p: Buffer) => void, onOther?: (p: Buffer) => void): LeanWs {
  return new LeanWs({
    host: target.host,
    port: target.port,
    path: `/ws?room=${encodeURIComponent(target.room)}`,
    token: signHs256(secret, { sub, exp: Math.floor(Date.now() / 1000) + 3600 }),
    wantData,
    onData,
    onOther,
  });
}

async function connect(target: Target, probeIndex: number): Promise<number> {
  room = target.room;
  system = target.system;
  // rtgw: the publisher proves it is live with ping/pong before any pub (bare uWS would relay a ping to the room).
  for (let attempt = 1; ; attempt++) {
    let pong: (() => void) | undefined;
    const ponged = new Promise<void>((r) => (pong = r));
    publisher = open(target, attempt === 1 ? 'publisher' : `publisher.${attempt}`, false, undefined, (p) => {
      if (p.toString('utf8') === '{"t":"pong"}') pong?.();
      else onPublisherReply(p);
    });
    await publisher.connect();
    if (system !== 'rtgw') break;
    publisher.sendText('{"t":"ping"}');
    await Promise.race([ponged, sleep(2000)]);
    if (publisher.open) break;
    publisher.destroy();
    if (attempt >= 5) throw new Error('the publisher connection keeps being closed');
    await sleep(50 * attempt);
  }
  // Retried like the members' joins (see members.ts).
  for (let attempt = 1; ; attempt++) {
    let settle: ((e?: Error) => void) | undefined;
    const joined = new Promise<void>((resolve, reject) => (settle = (e) => (e ? reject(e) : resolve())));
    probe = open(target, attempt === 1 ? `m${probeIndex}` : `m${probeIndex}.${attempt}`, true, onProbe, (p) => {
      if (p.toString('utf8').includes('"t":"ok"')) settle?.();
    });
    const timer = setTimeout(() => settle?.(new Error('probe join timeout')), 15_000);
    try {
      await probe.connect();
      probe.onClose = (code) => settle?.(new Error(`probe closed ${code ?? 1006} before its join was answered`));
      probe.sendText(`{"t":"join","id":1,"room":${JSON.stringify(room)}}`);
      await joined;
      probe.onClose = undefined;
      return attempt - 1;
    } catch (e) {
      probe.destroy();
      if (attempt >= 5) throw e;
      await sleep(50 * attempt);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** One publish frame: ~100 bytes of `data` carrying the step, the index and the send time. */
function pubFrame(i: number): Buffer {
  const head = `{"s":${stepNo},"i":${i},"ts":${performance.now().toFixed(3)},"pad":"`;
  const pad = 'x'.repeat(Math.max(0, DATA_BYTES - head.length - 2));
  return encodeFrame(0x1, Buffer.from(`{"t":"pub","id":${i},"room":${JSON.stringify(room)},"data":${head}${pad}"}}`));
}

async function step(plan: StepPlan): Promise<StepReport> {
  stepNo = plan.step;
  lat = new Float64Array(plan.count);
  received = 0;
  inOrder = true;
  stale = 0;
  oks = 0;
  errs = 0;
  errSample = [];
  if (!publisher.open || !probe.open) throw new Error(`${publisher.open ? 'probe' : 'publisher'} connection closed (${(publisher.open ? probe : publisher).closeCode ?? 1006})`);
  let sent = 0;
  let maxBacklog = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(plan.count, Math.floor(((performance.now() - t0) * plan.rate) / 1000) + 1);
      if (due > sent) {
        const frames: Buffer[] = [];
        while (sent < due) frames.push(pubFrame(sent++));
        publisher.writeRaw(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
        maxBacklog = Math.max(maxBacklog, publisher.writableLength);
      }
      if (sent >= plan.count) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const sendMs = performance.now() - t0;
  const deadline = performance.now() + plan.graceMs;
  const wantOks = system === 'rtgw';
  while ((received < plan.count || (wantOks && oks + errs < plan.count)) && performance.now() < deadline && probe.open) await sleep(2);
  const probeDoneMs = performance.now() - t0;
  return {
    sent,
    sendMs,
    achievedRate: sent > 1 ? ((sent - 1) * 1000) / Math.max(sendMs, 1e-3) : 0,
    probeReceived: received,
    probeInOrder: inOrder && received <= plan.count,
    stale,
    latencyMs: summarize(lat.subarray(0, Math.min(received, lat.length))),
    oks,
    errs,
    errSample,
    maxPublisherBacklog: maxBacklog,
    probeDoneMs,
  };
}

process.on('message', (m: DriverCmd) => {
  void (async () => {
    switch (m.cmd) {
      case 'connect':
        return reply({ cmd: 'connected', retried: await connect(m.target, m.probeIndex) });
      case 'step':
        return reply({ cmd: 'stepped', ...(await step(m)) });
      case 'shutdown':
        probe?.destroy();
        publisher?.destroy();
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ cmd: 'error', msg: e instanceof Error ? e.message : String(e) }));
});
process.on('disconnect', () => process.exit(0));
