/**
 * The last minute of API answers in one-second buckets: request count, 5xx count and a latency
 * histogram per bucket. Health reads the recent error ratio and p95 from it; Prometheus counters
 * cannot answer "recently" by themselves.
 */
import { LATENCY_BUCKETS } from './metrics';

const SECONDS = 60;

export interface RecentApiStats {
  windowSeconds: number;
  requests: number;
  serverErrors: number;
  errorRatio: number;
  /** Upper bound of the bucket holding the 95th percentile; null with no requests. */
  p95Seconds: number | null;
}

export class RecentWindow {
  private readonly second = new Float64Array(SECONDS).fill(-1);
  private readonly requests = new Float64Array(SECONDS);
  private readonly errors = new Float64Array(SECONDS);
  private readonly latency: Float64Array[] = Array.from({ length: SECONDS }, () => new Float64Array(LATENCY_BUCKETS.length + 1));

  constructor(private readonly now: () => number = () => Date.now()) {}

  private slot(): number {
    const s = Math.floor(this.now() / 1000);
    const i = s % SECONDS;
    if (this.second[i] !== s) {
      this.second[i] = s;
      this.requests[i] = 0;
      this.errors[i] = 0;
      this.latency[i]!.fill(0);
    }
    return i;
  }

  record(status: number, seconds: number): void {
    const i = this.slot();
    this.requests[i]!++;
    if (status >= 500) this.errors[i]!++;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]!) b++;
    this.latency[i]![b]!++;
  }

  stats(): RecentApiStats {
    const nowS = Math.floor(this.now() / 1000);
    let requests = 0;
    let serverErrors = 0;
    const merged = new Float64Array(LATENCY_BUCKETS.length + 1);
    for (let i = 0; i < SECONDS; i++) {
      if (this.second[i]! < 0 || nowS - this.second[i]! >= SECONDS) continue;
      requests += this.requests[i]!;
      serverErrors += this.errors[i]!;
      const l = this.latency[i]!;
      for (let b = 0; b < merged.length; b++) merged[b]! += l[b]!;
    }
    let p95: number | null = null;
    if (requests > 0) {
      const target = Math.ceil(requests * 0.95);
      let acc = 0;
      for (let b = 0; b < merged.length; b++) {
        acc += merged[b]!;
        if (acc >= target) {
          p95 = b < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[b]! : Infinity;
          break;
        }
      }
    }
    return { windowSeconds: SECONDS, requests, serverErrors, errorRatio: requests > 0 ? serverErrors / requests : 0, p95Seconds: p95 };
  }
}
