// Load-generator worker: holds many room members on lean sockets and counts what each receives.
// Driven over IPC by fanout.ts; exits when its parent goes away.
import { LeanWs, signHs256 } from './lean-client.js';
import type { MemberCounts, MembersCmd, MembersReply, Target } from './protocol.js';

const POLL_MS = 5;
const JOIN_TIMEOUT_MS = 15_000;
/** A member whose join fails is tried again, and counted (README: the gateway used to drop new connections). */
const JOIN_ATTEMPTS = 5;
const secret = process.env.BENCH_JWT_SECRET ?? '';
const members: LeanWs[] = [];
/** Close codes of joined members (failed join attempts are reported by `connect` instead). */
const closeCodes: Record<string, number> = {};

const reply = (r: MembersReply) => process.send!(r);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function join(target: Target, index: number, attempt: number): Promise<LeanWs> {
  let settle: ((e?: Error) => void) | undefined;
  let member = false;
  const joined = new Promise<void>((resolve, reject) => {
    settle = (e) => (e ? reject(e) : resolve());
  });
  const ws = new LeanWs({
    host: target.host,
    port: target.port,
    path: `/ws?room=${encodeURIComponent(target.room)}`,
    // A retry uses another user id: the drop depended on the user id (on memory layout, in fact).
    token: signHs256(secret, { sub: attempt === 1 ? `m${index}` : `m${index}.${attempt}`, exp: Math.floor(Date.now() / 1000) + 3600 }),
    onOther: (p) => {
      if (!settle) return;
      const text = p.toString('utf8');
      if (text.includes('"t":"ok"')) settle();
      else if (text.includes('"t":"err"')) settle(new Error(`join refused: ${text.slice(0, 200)}`));
      else return; // welcome
      settle = undefined;
    },
    onClose: (code, reason) => {
      const k = String(code ?? 1006);
      if (member) closeCodes[k] = (closeCodes[k] ?? 0) + 1;
      settle?.(new Error(`closed ${k} (${reason}) after ${ws.other} frames, before the join was answered`));
      settle = undefined;
    },
  });
  await ws.connect();
  ws.sendText(`{"t":"join","id":1,"room":${JSON.stringify(target.room)}}`);
  const timer = setTimeout(() => settle?.(new Error('join timeout')), JOIN_TIMEOUT_MS);
  try {
    await joined;
    member = true;
  } catch (e) {
    ws.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return ws;
}

async function connectAll(target: Target, count: number, first: number, concurrency: number): Promise<MembersReply> {
  const t0 = performance.now();
  const errors: string[] = [];
  let next = 0;
  let failed = 0;
  let retried = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      for (let attempt = 1; ; attempt++) {
        try {
          members.push(await join(target, first + i, attempt));
          break;
        } catch (e) {
          if (errors.length < 5) errors.push(`m${first + i} attempt ${attempt}: ${e instanceof Error ? e.message : String(e)}`);
          if (attempt < JOIN_ATTEMPTS) {
            retried++;
            await sleep(50 * attempt);
            continue;
          }
          failed++;
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { cmd: 'connected', ok: members.length, failed, retried, errors, ms: Math.round(performance.now() - t0) };
}

function counts(target: number): MemberCounts {
  let reached = 0, over = 0, total = 0, open = 0;
  let min = Infinity, max = 0;
  for (const m of members) {
    const d = m.data;
    total += d;
    if (d >= target) reached++;
    if (d > target) over++;
    if (d < min) min = d;
    if (d > max) max = d;
    if (m.open) open++;
  }
  return { members: members.length, open, reached, min: members.length ? min : 0, max, over, total, closeCodes: { ...closeCodes } };
}

/** Until every member has `target` messages, or none still open can get there, or the deadline. */
async function wait(target: number, timeoutMs: number): Promise<MembersReply> {
  const t0 = performance.now();
  for (;;) {
    const c = counts(target);
    const ms = performance.now() - t0;
    if (c.reached === c.members) return { cmd: 'waited', done: true, ms, counts: c };
    const stuck = members.every((m) => m.data >= target || !m.open);
    if (stuck || ms > timeoutMs) return { cmd: 'waited', done: false, ms, counts: c };
    await sleep(POLL_MS);
  }
}

/** Until nothing arrived for `quietMs` (messages of a failed step still draining), at most `maxMs`. */
async function quiet(quietMs: number, maxMs: number): Promise<MembersReply> {
  const t0 = performance.now();
  const start = counts(0).total;
  let last = start;
  let since = t0;
  for (;;) {
    await sleep(POLL_MS * 4);
    const now = performance.now();
    const total = counts(0).total;
    if (total !== last) {
      last = total;
      since = now;
    } else if (now - since >= quietMs) {
      return { cmd: 'quiet', quiet: true, ms: now - t0, arrived: total - start };
    }
    if (now - t0 > maxMs) return { cmd: 'quiet', quiet: false, ms: now - t0, arrived: total - start };
  }
}

process.on('message', (m: MembersCmd) => {
  void (async () => {
    switch (m.cmd) {
      case 'connect':
        return reply(await connectAll(m.target, m.count, m.first, m.concurrency));
      case 'reset':
        for (const ws of members) ws.data = 0;
        return reply({ cmd: 'reset' });
      case 'wait':
        return reply(await wait(m.target, m.timeoutMs));
      case 'quiet':
        return reply(await quiet(m.quietMs, m.maxMs));
      case 'shutdown':
        for (const ws of members) ws.destroy();
        process.exit(0);
    }
  })().catch((e: unknown) => {
    process.stderr.write(`members: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
});
process.on('disconnect', () => process.exit(0));
