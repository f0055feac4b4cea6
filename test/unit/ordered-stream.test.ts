// The ordered-stream core on its own: random arrival orders, duplicates, seqs gone from the store,
// fills that end (or fail) at random points, a head given late, and newcomers coming and going. Checked:
// first copies are handed over in seq order, once each when seqs at or below the last one are dropped
// (rooms), every arrival handed over when they are redeliveries (dms), nothing missing that the wire or
// the store had, and each newcomer buffered exactly what was handed over while it was there.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderedStream, type Newcomer, type StreamHandler } from '../../gateway/ordered-stream.js';

interface Ev {
  readonly seq: number;
  /** Where the copy came from, so that a fill's copy can be told from the wire's. */
  readonly from: 'wire' | 'store';
  readonly gen: number;
}

class Stream extends OrderedStream<Stream, Ev, Newcomer<Ev>> {}

type Step =
  | { t: 'arrive'; seq: number }
  | { t: 'start' }
  | { t: 'fillDone' }
  | { t: 'fillFail' }
  | { t: 'join' }
  | { t: 'leave' };

interface Run {
  /** Every handOver, in order. */
  log: Ev[];
  /** Handovers made by fills, per seq. */
  filled: Map<number, number>;
  arrived: Map<number, number>;
  /** Newcomers with the part of `log` they were there for (`to` set once removed). */
  newcomers: { n: Newcomer<Ev>; from: number; to: number | undefined }[];
  settledWhileFilling: number;
  fillWhileFilling: number;
  s: Stream;
}

/** Plays `steps`, then starts the stream if nothing did and ends every fill with success. */
function play(redeliver: boolean, n: number, head: number, gone: Set<number>, steps: Step[]): Run {
  let fill: { upTo: number } | undefined;
  const run: Run = {
    log: [],
    filled: new Map(),
    arrived: new Map(),
    newcomers: [],
    settledWhileFilling: 0,
    fillWhileFilling: 0,
    s: undefined as unknown as Stream,
  };
  const handler: StreamHandler<Stream, Ev> = {
    redeliver,
    deliver: (_s, ev) => void run.log.push(ev),
    fill: (_s, upTo) => {
      if (fill) run.fillWhileFilling++;
      fill = { upTo };
    },
    settled: (s) => {
      if (s.filling) run.settledWhileFilling++;
    },
  };
  const s = (run.s = new Stream(handler));
  // Like the inbox's peek: what the store still has after the last seq, up to `upTo`, in seq order.
  const endFill = (ok: boolean) => {
    const f = fill!;
    fill = undefined;
    if (ok) {
      for (let seq = s.lastSeq + 1; seq <= f.upTo; seq++) {
        if (gone.has(seq)) continue;
        run.filled.set(seq, (run.filled.get(seq) ?? 0) + 1);
        s.handOver({ seq, from: 'store', gen: 0 });
      }
      s.skipTo(f.upTo);
    }
    s.endFill();
  };
  for (const step of steps) {
    switch (step.t) {
      case 'arrive':
        run.arrived.set(step.seq, (run.arrived.get(step.seq) ?? 0) + 1);
        s.push({ seq: step.seq, from: 'wire', gen: 0 });
        break;
      case 'start':
        s.start(head);
        break;
      case 'fillDone':
      case 'fillFail':
        if (fill) endFill(step.t === 'fillDone');
        break;
      case 'join': {
        const nc: Newcomer<Ev> = { buffer: [] };
        s.addNewcomer(nc);
        run.newcomers.push({ n: nc, from: run.log.length, to: undefined });
        break;
      }
      case 'leave': {
        const nc = run.newcomers.find((x) => x.to === undefined);
        if (nc) {
          expect(s.removeNewcomer(nc.n)).toBe(true);
          expect(s.removeNewcomer(nc.n)).toBe(false);
          nc.to = run.log.length;
        }
        break;
      }
    }
  }
  s.start(head);
  for (let i = 0; fill && i < 10 * n + 10; i++) endFill(true);
  expect(fill, 'a fill still running after the end').toBeUndefined();
  expect(s.filling).toBe(false);
  expect(s.waiting).toBeUndefined();
  return run;
}

const scenario = fc.integer({ min: 1, max: 24 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    head: fc.integer({ min: 0, max: n }),
    gone: fc.uniqueArray(fc.integer({ min: 1, max: n }), { maxLength: n }),
    steps: fc.array(
      fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 1, max: n }).map((seq): Step => ({ t: 'arrive', seq })) },
        { weight: 1, arbitrary: fc.constant<Step>({ t: 'start' }) },
        { weight: 3, arbitrary: fc.constant<Step>({ t: 'fillDone' }) },
        { weight: 1, arbitrary: fc.constant<Step>({ t: 'fillFail' }) },
        { weight: 1, arbitrary: fc.constant<Step>({ t: 'join' }) },
        { weight: 1, arbitrary: fc.constant<Step>({ t: 'leave' }) },
      ),
      { maxLength: 80 },
    ),
  }),
);

/** Common to both kinds: order of first copies (of seqs the store has), nothing missing, newcomers' buffers, the handler's calls. */
function checkCommon(run: Run, head: number, gone: Set<number>): void {
  const firsts: number[] = [];
  const seen = new Set<number>();
  for (const ev of run.log) {
    // A seq gone from the store may come later as a retry (dms: it was acknowledged): not a first copy.
    if (!seen.has(ev.seq) && ev.seq > head && !gone.has(ev.seq)) firsts.push(ev.seq);
    seen.add(ev.seq);
  }
  for (let i = 1; i < firsts.length; i++)
    expect(firsts[i]!, `first copies in order: ${firsts.join(',')}`).toBeGreaterThan(firsts[i - 1]!);
  // Everything after the head up to the highest seq that arrived, that the store has, was handed over.
  const maxArrived = Math.max(0, ...run.arrived.keys());
  for (let seq = head + 1; seq <= maxArrived; seq++)
    if (!gone.has(seq)) expect(seen.has(seq), `seq ${seq} handed over`).toBe(true);
  expect(run.s.lastSeq).toBe(Math.max(head, maxArrived));
  for (const nc of run.newcomers) expect(nc.n.buffer).toEqual(run.log.slice(nc.from, nc.to));
  expect(run.settledWhileFilling).toBe(0);
  expect(run.fillWhileFilling).toBe(0);
}

describe('OrderedStream', () => {
  it('drops copies at or below the last seq: every seq after the head handed over once, in order (rooms)', () => {
    fc.assert(
      fc.property(scenario, ({ n, head, gone: goneList, steps }) => {
        const gone = new Set(goneList);
        const run = play(false, n, head, gone, steps);
        checkCommon(run, head, gone);
        const seqs = run.log.map((e) => e.seq);
        for (let i = 1; i < seqs.length; i++)
          expect(seqs[i]!, `handed over in order, once: ${seqs.join(',')}`).toBeGreaterThan(seqs[i - 1]!);
        for (const seq of seqs) expect(seq).toBeGreaterThan(head);
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('passes seqs at or below the last one through: every arrival handed over, first copies in order (dms)', () => {
    fc.assert(
      fc.property(scenario, ({ n, head, gone: goneList, steps }) => {
        const gone = new Set(goneList);
        const run = play(true, n, head, gone, steps);
        checkCommon(run, head, gone);
        const count = new Map<number, number>();
        for (const ev of run.log) count.set(ev.seq, (count.get(ev.seq) ?? 0) + 1);
        for (let seq = 1; seq <= n; seq++) {
          expect(count.get(seq) ?? 0, `seq ${seq}: every arrival and every fill copy`).toBe(
            (run.arrived.get(seq) ?? 0) + (run.filled.get(seq) ?? 0),
          );
        }
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('holds everything until start, then takes it in seq order from the head on', () => {
    const log: number[] = [];
    const s = new Stream({
      redeliver: false,
      deliver: (_s, ev) => void log.push(ev.seq),
      fill: () => expect.fail('no fill needed'),
    });
    for (const seq of [5, 3, 4, 2, 4]) s.push({ seq, from: 'wire', gen: 0 });
    expect(log).toEqual([]);
    expect(s.filling).toBe(true);
    s.start(2);
    expect(log).toEqual([3, 4, 5]);
    s.start(100); // only the first start counts
    s.push({ seq: 6, from: 'wire', gen: 0 });
    expect(log).toEqual([3, 4, 5, 6]);
  });

  it('lets admit restart the seqs (a room epoch): the new run is taken from where it restarted', () => {
    const log: string[] = [];
    let gen = 0;
    const handler: StreamHandler<Stream, Ev> = {
      redeliver: false,
      admit: (s, ev) => {
        if (ev.gen !== gen) {
          gen = ev.gen;
          s.restartAt(ev.seq - 1);
        }
      },
      deliver: (_s, ev) => void log.push(`${ev.gen}:${ev.seq}`),
      fill: () => expect.fail('no fill needed'),
    };
    const s = new Stream(handler);
    s.start(0);
    for (const seq of [1, 2, 3]) s.push({ seq, from: 'wire', gen: 0 });
    for (const seq of [2, 3]) s.push({ seq, from: 'wire', gen: 1 });
    s.push({ seq: 3, from: 'wire', gen: 1 });
    expect(log).toEqual(['0:1', '0:2', '0:3', '1:2', '1:3']);
    expect(s.lastSeq).toBe(3);
  });

  it('drops the newcomer set once empty, and a removal during a loop over it goes on over the old set', () => {
    const s = new Stream({ redeliver: false, deliver: () => {}, fill: () => {} });
    const a: Newcomer<Ev> = { buffer: [] };
    const b: Newcomer<Ev> = { buffer: [] };
    s.addNewcomer(a);
    s.addNewcomer(b);
    const visited: Newcomer<Ev>[] = [];
    for (const x of s.newcomers!) {
      visited.push(x);
      s.removeNewcomer(x);
    }
    expect(visited).toEqual([a, b]);
    expect(s.newcomers).toBeUndefined();
    expect(s.hasNewcomer(a)).toBe(false);
  });
});
