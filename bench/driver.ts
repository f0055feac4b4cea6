// Load-generator worker: the publisher and the one probe member of a one-room fan-out, in one process so
// that the probe measures publish-to-receive latency on the same clock (performance.now) the publisher
// stamped. The publisher writes each tick's frames (pace.ts) in one write.
import { benchToken, joinMember, openConn, type BenchConn, type Target } from './conn.js';
import type { DriverCmd, DriverReply, StepPlan, StepReport } from './protocol.js';
import { pace } from './pace.js';
import { errText, sleep } from './util.js';
import { stampText, WIRES, type Stamp } from './wire.js';

const reply = (r: DriverReply) => process.send!(r);

let publisher: BenchConn;
let probe: BenchConn;
let room = '';
let acksPub = false;

// Current step, written by the probe's callback.
let stepNo = -1;
let lat: number[] = [];
let received = 0;
let inOrder = true;
let stale = 0;

function onProbe(d: Stamp): void {
  const now = performance.now();
  if (d.s !== stepNo) {
    stale++;
    return;
  }
  if (d.i !== received) inOrder = false;
  lat.push(now - d.ts);
  received++;
}

async function connect(target: Target, r: string, probeUser: number): Promise<number> {
  room = r;
  acksPub = WIRES[target.wire].acksPub;
  // The publisher joins nothing; it uses the first endpoint, the probe the one its user number picks, as members do.
  publisher = openConn(target.client, {
    ...target.endpoints[0]!,
    wire: target.wire,
    room,
    token: benchToken('publisher'),
  });
  await publisher.connect();
  const errors: string[] = [];
  const made = await joinMember(target, probeUser, room, { onStamp: onProbe }, errors);
  probe = made.conn;
  return made.retried;
}

async function step(plan: StepPlan): Promise<StepReport> {
  stepNo = plan.step;
  lat = [];
  received = 0;
  inOrder = true;
  stale = 0;
  publisher.oks = 0;
  publisher.errs = 0;
  publisher.errSample.length = 0;
  if (!publisher.open || !probe.open)
    throw new Error(
      `${publisher.open ? 'probe' : 'publisher'} connection closed (${(publisher.open ? probe : publisher).closeCode ?? 1006})`,
    );
  let next = 0;
  let maxBacklog = 0;
  const t0 = performance.now();
  const { sent, sendMs, achievedRate } = await pace(
    plan.rate,
    plan.count,
    (n) =>
      publisher.publish(
        room,
        Array.from({ length: n }, () => stampText(stepNo, next++, performance.now())),
        false,
      ),
    () => (maxBacklog = Math.max(maxBacklog, publisher.backlog)),
  );
  const deadline = performance.now() + plan.graceMs;
  while (
    (received < plan.count || (acksPub && publisher.oks + publisher.errs < plan.count)) &&
    performance.now() < deadline &&
    probe.open
  )
    await sleep(2);
  const probeDoneMs = performance.now() - t0;
  return {
    sent,
    sendMs,
    achievedRate,
    probeReceived: received,
    probeInOrder: inOrder && received <= plan.count,
    stale,
    samples: lat,
    oks: publisher.oks,
    errs: publisher.errs,
    errSample: [...publisher.errSample],
    maxPublisherBacklog: maxBacklog,
    probeDoneMs,
  };
}

process.on('message', (m: DriverCmd) => {
  void (async () => {
    switch (m.cmd) {
      case 'connect':
        return reply({ cmd: 'connected', retried: await connect(m.target, m.room, m.probeUser) });
      case 'step':
        return reply({ cmd: 'stepped', ...(await step(m)) });
      case 'shutdown':
        probe?.destroy();
        publisher?.destroy();
        process.exit(0);
    }
  })().catch((e: unknown) => reply({ cmd: 'error', msg: errText(e) }));
});
process.on('disconnect', () => process.exit(0));
