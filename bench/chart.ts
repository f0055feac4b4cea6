// The results chart, as hand-written SVG: one bar panel per figure (max deliveries/s of each rate
// scenario, connects/s, idle memory, router ingest; bars at the median, whiskers from min to max), and
// the latency distribution at half of each system's own max in the one-room fan-out (percentile plot:
// log latency against 0, 90, 99, 99.9%).
import type { Histogram, Spread } from './stats.js';

export interface BarGroup {
  title: string;
  bars: { name: string; value: Spread }[];
  /** Axis and label text of a value. */
  format: (v: number) => string;
}

const W = 960;
const COLORS: Record<string, string> = {
  rtgw: '#1f77b4',
  rtgw2: '#17becf',
  standalone: '#9467bd',
  socketio: '#d62728',
  bare: '#2ca02c',
  'bare-nats': '#bcbd22',
};
const color = (k: string) => COLORS[k] ?? '#7f7f7f';
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, extra = '') =>
  `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${stroke}" ${extra}/>`;

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

function bars(groups: BarGroup[], y0: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  const left = 170;
  const right = W - 40;
  const barH = 16;
  let y = y0;
  for (const g of groups) {
    const sums = g.bars.filter((s) => s.value.n > 0);
    if (!sums.length) continue;
    const top = niceMax(Math.max(...sums.map((s) => s.value.max)));
    const x = (v: number) => left + ((right - left) * v) / top;
    svg.push(text(20, y + 14, g.title, 'font-weight="bold"'));
    y += 24;
    for (let i = 0; i <= 5; i++) {
      const v = (top * i) / 5;
      svg.push(line(x(v), y - 4, x(v), y + sums.length * (barH + 6), '#ddd'));
      svg.push(
        text(x(v), y + sums.length * (barH + 6) + 12, g.format(v), 'font-size="10" text-anchor="middle" fill="#555"'),
      );
    }
    for (const s of sums) {
      const m = s.value;
      svg.push(text(left - 8, y + barH - 3, s.name, 'font-size="12" text-anchor="end"'));
      svg.push(
        `<rect x="${left}" y="${y}" width="${(x(m.median) - left).toFixed(1)}" height="${barH}" fill="${color(s.name)}"/>`,
      );
      if (m.n > 1) svg.push(line(x(m.min), y + barH / 2, x(m.max), y + barH / 2, '#000', 'stroke-width="1.5"'));
      svg.push(text(Math.max(x(m.median), x(m.max)) + 6, y + barH - 3, g.format(m.median), 'font-size="11"'));
      y += barH + 6;
    }
    y += 30;
  }
  return { svg, height: y - y0 };
}

function cdf(series: { name: string; h: Histogram }[], y0: number): { svg: string[]; height: number } {
  const svg: string[] = [];
  const list = series.filter((s) => s.h.counts.some((c) => c > 0));
  if (!list.length) return { svg, height: 0 };
  const left = 70;
  const right = W - 180;
  const top = y0 + 30;
  const bottom = top + 240;
  const lo = 0.1;
  const hi = 1000;
  const x = (ms: number) =>
    left + ((right - left) * Math.log10(Math.min(hi, Math.max(lo, ms)) / lo)) / Math.log10(hi / lo);
  // Percentile scale: 0% at the bottom, then 90%, 99%, 99.9% equally spaced (the tail is what matters).
  const nines = 3;
  const y = (q: number) => bottom - ((bottom - top) * Math.min(nines, -Math.log10(Math.max(1e-9, 1 - q)))) / nines;
  svg.push(
    text(
      20,
      y0 + 14,
      'Latency at half of own max, one big room: share of messages delivered within (probe: every message of every run)',
      'font-weight="bold"',
    ),
  );
  for (const ms of [0.1, 1, 10, 100, 1000]) {
    svg.push(line(x(ms), top, x(ms), bottom, '#ddd'));
    svg.push(text(x(ms), bottom + 14, `${ms} ms`, 'font-size="10" text-anchor="middle" fill="#555"'));
  }
  for (const q of [0, 0.5, 0.9, 0.99, 0.999]) {
    svg.push(line(left, y(q), right, y(q), '#eee'));
    svg.push(text(left - 6, y(q) + 4, `${Math.round(q * 1000) / 10}%`, 'font-size="10" text-anchor="end" fill="#555"'));
  }
  list.forEach((s, i) => {
    const total = s.h.counts.reduce((a, b) => a + b, 0);
    let acc = 0;
    const pts: string[] = [];
    s.h.counts.forEach((c, b) => {
      acc += c;
      pts.push(`${x(s.h.edgesMs[b]!).toFixed(1)},${y(acc / total).toFixed(1)}`);
    });
    svg.push(`<polyline fill="none" stroke="${color(s.name)}" stroke-width="2" points="${pts.join(' ')}"/>`);
    svg.push(`<rect x="${right + 20}" y="${top + i * 18}" width="12" height="12" fill="${color(s.name)}"/>`);
    svg.push(text(right + 38, top + i * 18 + 11, s.name, 'font-size="12"'));
  });
  return { svg, height: bottom - y0 + 30 };
}

export function chart(title: string, groups: BarGroup[], latency: { name: string; h: Histogram }[]): string {
  const b = bars(groups, 40);
  const c = cdf(latency, 40 + b.height);
  const h = 40 + b.height + c.height + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="13">`,
    `<rect width="${W}" height="${h}" fill="#fff"/>`,
    text(20, 24, title, 'font-size="15" font-weight="bold"'),
    ...b.svg,
    ...c.svg,
    '</svg>',
    '',
  ].join('\n');
}
