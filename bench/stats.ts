// Small statistics helpers for the bench: percentiles of a latency sample, medians of runs.

/** Nearest-rank percentile (q in 0..1) of an ascending-sorted array; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** Percentiles of `samples` (copied, then sorted). */
export function summarize(samples: ArrayLike<number>): LatencySummary {
  const s = Float64Array.from(samples).sort();
  const r = round3;
  return {
    n: s.length,
    p50: r(percentile(s, 0.5)),
    p90: r(percentile(s, 0.9)),
    p99: r(percentile(s, 0.99)),
    p999: r(percentile(s, 0.999)),
    max: r(s.length ? s[s.length - 1]! : NaN),
  };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median with min and max of the finite values (the median of an even count is the mean of the middle two). */
export function spread(values: number[]): Spread {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** Log-spaced latency buckets: 10 per decade from 0.1 ms; a sample falls in the first bucket whose upper edge is at or above it. */
export interface Histogram {
  /** Upper edges, ms; the last bucket also holds everything above it. */
  edgesMs: number[];
  counts: number[];
}

const EDGES_MS = Array.from({ length: 51 }, (_, i) => Math.round(0.1 * 10 ** (i / 10) * 1000) / 1000); // 0.1 ms .. 10 s

export function histogram(samples: ArrayLike<number>): Histogram {
  const counts = new Array<number>(EDGES_MS.length).fill(0);
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i]!;
    let b = v <= EDGES_MS[0]! ? 0 : Math.ceil(10 * Math.log10(v / 0.1) - 1e-9);
    if (b >= EDGES_MS.length) b = EDGES_MS.length - 1;
    counts[b]!++;
  }
  return { edgesMs: EDGES_MS, counts };
}
