/**
 * --plot FILE.svg: two charts a person can read a stall from without reading numbers.
 *
 *  1. Latency by percentile, the x axis in "nines" (log10 of 1/(1 − p): 90 %, 99 %, 99.9 %, ...)
 *     as HdrHistogram's plotter draws it, one line per run (per step of a sweep).
 *  2. Latency over time: per time slice (by when each request was due), the max, p99 and p50 of
 *     the answers, so a stall shows as a wall where it happened.
 *
 * Plain SVG text, no dependency.
 */
import type * as hdr from 'hdr-histogram-js';

export interface PlotSeries {
  label: string;
  histogram: hdr.Histogram;
  /** Start of each answered request (ms from this series' start) and its latency (ms). */
  times: Float32Array;
  latencies: Float32Array;
  /** Where this series starts on the shared time axis (ms): steps of a sweep follow each other. */
  offsetMs: number;
  durationMs: number;
}

const W = 960;
const PANEL_H = 330;
const M = { left: 70, right: 190, top: 40, bottom: 45 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** About five round tick values from 0 to at least `max`. */
export function niceTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(10)));
  return ticks;
}

function polyline(points: Array<[number, number]>, color: string, width: number, opacity = 1): string {
  if (points.length === 0) return '';
  const d = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  return `<polyline fill="none" stroke="${color}" stroke-width="${width}" stroke-opacity="${opacity}" points="${d}"/>`;
}

function frame(b: Box, title: string, xLabel: string, yTicks: number[], yMax: number): string[] {
  const out = [`<text x="${b.x}" y="${b.y - 14}" font-size="15" font-weight="bold">${esc(title)}</text>`];
  out.push(`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" fill="none" stroke="#444"/>`);
  for (const t of yTicks) {
    const y = b.y + b.h - (t / yMax) * b.h;
    out.push(`<line x1="${b.x}" x2="${b.x + b.w}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${b.x - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end">${t}</text>`);
  }
  out.push(`<text x="${b.x + b.w / 2}" y="${b.y + b.h + 36}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(${b.x - 52},${b.y + b.h / 2}) rotate(-90)" font-size="12" text-anchor="middle">latency (ms)</text>`);
  return out;
}

function legend(b: Box, entries: Array<[string, string]>): string[] {
  return entries.flatMap(([label, color], i) => {
    const y = b.y + 14 + i * 18;
    return [`<line x1="${b.x + b.w + 12}" x2="${b.x + b.w + 32}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" stroke-width="2.5"/>`, `<text x="${b.x + b.w + 38}" y="${y}" font-size="11">${esc(label)}</text>`];
  });
}

/** The percentile chart: each series from 0 % to the highest percentile its count resolves. */
function percentilePanel(b: Box, series: PlotSeries[]): string[] {
  const maxNines = Math.max(1, Math.min(6, Math.ceil(Math.log10(Math.max(10, ...series.map((s) => s.histogram.totalCount))))));
  const yMax = niceTicks(Math.max(...series.map((s) => s.histogram.maxValue / 1000)) * 1.05).at(-1)!;
  const out = frame(b, 'Latency by percentile', 'percentile (log scale of the nines)', niceTicks(yMax), yMax);
  for (let n = 0; n <= maxNines; n++) {
    const x = b.x + (n / maxNines) * b.w;
    const label = n === 0 ? '0%' : `${(100 - 100 / 10 ** n).toFixed(Math.max(0, n - 2))}%`;
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${b.y}" y2="${b.y + b.h}" stroke="#eee"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${b.y + b.h + 16}" font-size="11" text-anchor="middle">${label}</text>`);
  }
  series.forEach((s, i) => {
    const top = Math.log10(Math.max(1, s.histogram.totalCount));
    const pts: Array<[number, number]> = [];
    for (let x = 0; x <= top + 1e-9 && s.histogram.totalCount > 0; x += 0.02) {
      const v = s.histogram.getValueAtPercentile(100 * (1 - 10 ** -x)) / 1000;
      pts.push([b.x + (Math.min(x, maxNines) / maxNines) * b.w, b.y + b.h - (v / yMax) * b.h]);
    }
    if (s.histogram.totalCount > 0) pts.push([b.x + (Math.min(top, maxNines) / maxNines) * b.w, b.y + b.h - (s.histogram.maxValue / 1000 / yMax) * b.h]);
    out.push(polyline(pts, COLORS[i % COLORS.length]!, 2));
  });
  return [...out, ...legend(b, series.map((s, i) => [s.label, COLORS[i % COLORS.length]!]))];
}

interface Slices {
  t: number[];
  p50: number[];
  p99: number[];
  max: number[];
}

/** Per slice of `sliceMs` on the shared axis: p50, p99 and max of the answers that started in it. */
function slices(series: PlotSeries[], spanMs: number, sliceMs: number): Slices {
  const n = Math.max(1, Math.ceil(spanMs / sliceMs));
  const bins: number[][] = Array.from({ length: n }, () => []);
  for (const s of series) {
    for (let i = 0; i < s.times.length; i++) bins[Math.min(n - 1, Math.max(0, Math.floor((s.offsetMs + s.times[i]!) / sliceMs)))]!.push(s.latencies[i]!);
  }
  const out: Slices = { t: [], p50: [], p99: [], max: [] };
  bins.forEach((v, i) => {
    if (v.length === 0) return;
    v.sort((a, b) => a - b);
    out.t.push((i + 0.5) * sliceMs);
    out.p50.push(v[Math.floor(0.5 * (v.length - 1))]!);
    out.p99.push(v[Math.floor(0.99 * (v.length - 1))]!);
    out.max.push(v[v.length - 1]!);
  });
  return out;
}

function timePanel(b: Box, series: PlotSeries[]): string[] {
  const spanMs = Math.max(1, ...series.map((s) => s.offsetMs + s.durationMs));
  const sl = slices(series, spanMs, Math.max(1, spanMs / 400));
  const yMax = niceTicks(Math.max(0.001, ...sl.max) * 1.05).at(-1)!;
  const out = frame(b, 'Latency over time (by when each request was due)', 'time since the start (s)', niceTicks(yMax), yMax);
  for (const t of niceTicks(spanMs / 1000)) {
    if (t * 1000 > spanMs) continue;
    const x = b.x + ((t * 1000) / spanMs) * b.w;
    out.push(`<text x="${x.toFixed(1)}" y="${b.y + b.h + 16}" font-size="11" text-anchor="middle">${t}</text>`);
  }
  for (const s of series.slice(1)) {
    const x = b.x + (s.offsetMs / spanMs) * b.w;
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${b.y}" y2="${b.y + b.h}" stroke="#999" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${(x + 3).toFixed(1)}" y="${b.y + 12}" font-size="10">${esc(s.label)}</text>`);
  }
  const line = (ys: number[], color: string, width: number, opacity: number): string =>
    polyline(ys.map((v, i): [number, number] => [b.x + (sl.t[i]! / spanMs) * b.w, b.y + b.h - (v / yMax) * b.h]), color, width, opacity);
  out.push(line(sl.max, '#d62728', 1.2, 0.8), line(sl.p99, '#ff7f0e', 1.5, 1), line(sl.p50, '#1f77b4', 2, 1));
  return [...out, ...legend(b, [['max', '#d62728'], ['p99', '#ff7f0e'], ['p50', '#1f77b4']])];
}

export function plotSvg(title: string, series: PlotSeries[]): string {
  const plotW = W - M.left - M.right;
  const top: Box = { x: M.left, y: M.top + 24, w: plotW, h: PANEL_H - M.top - M.bottom };
  const bottom: Box = { x: M.left, y: PANEL_H + M.top + 24, w: plotW, h: PANEL_H - M.top - M.bottom };
  const height = 2 * PANEL_H + 40;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">`,
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${M.left}" y="24" font-size="13">${esc(title)}</text>`,
    ...percentilePanel(top, series),
    ...timePanel(bottom, series),
    '</svg>',
    '',
  ].join('\n');
}
