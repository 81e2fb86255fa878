/** Small statistics helpers for the bench scripts. */

export function median(values: readonly number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Nearest-rank percentile of an unsorted sample (sorted in place). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** A growable sample of latencies in microseconds. */
export class LatencySample {
  private data = new Float64Array(1 << 16);
  length = 0;

  add(us: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = us;
  }

  sorted(): Float64Array {
    return this.data.subarray(0, this.length).sort();
  }
}

export function fmtCount(n: number): string {
  if (Number.isNaN(n)) return 'n/a';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  return n.toFixed(0);
}

export function fmtMs(us: number): string {
  if (Number.isNaN(us)) return 'n/a';
  return (us / 1000).toFixed(us < 10_000 ? 2 : 1);
}

export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? r.toFixed(2) + '×' : 'n/a';
}

/** Latency percentiles and error counts: of one run, or over the rounds of a variant. */
interface LatencyAndErrors {
  p50Us: number;
  p95Us: number;
  p99Us: number;
  non2xx: number;
  socketErrors: number;
  responses: number;
}

/** The figures of one load-generator run that every HTTP benchmark reports. */
export interface RunFigures extends LatencyAndErrors {
  /** 2xx answers per second. */
  okPerS: number;
}

/** Over the rounds of one variant: medians of throughput and latency, errors summed. */
export interface RunsSummary extends LatencyAndErrors {
  /** Median of the rounds' okPerS. */
  reqPerS: number;
  /** okPerS of each round, in order. */
  perRound: number[];
}

export function summarizeRuns(runs: readonly RunFigures[]): RunsSummary {
  return {
    reqPerS: median(runs.map((r) => r.okPerS)),
    p50Us: median(runs.map((r) => r.p50Us)),
    p95Us: median(runs.map((r) => r.p95Us)),
    p99Us: median(runs.map((r) => r.p99Us)),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
    socketErrors: runs.reduce((s, r) => s + r.socketErrors, 0),
    responses: runs.reduce((s, r) => s + r.responses, 0),
    perRound: runs.map((r) => r.okPerS),
  };
}
