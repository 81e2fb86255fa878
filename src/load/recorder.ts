/**
 * What one measured window of a load run saw: every answer's latency in an HdrHistogram
 * (microseconds, 3 significant digits, up to an hour), answers by status and error code,
 * requests that got no answer by reason, how far the tool itself was from its schedule, and,
 * for --plot, each answer's time and latency.
 */
import * as hdr from 'hdr-histogram-js';
import type { ParsedResponse } from './http-response';

/** A request issued later than this after its scheduled time counts as the tool falling behind. */
export const LATE_MS = 1;
const MAX_SAMPLES = 4_000_000;

export class Recorder {
  readonly latencyUs: hdr.Histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  readonly byStatus = new Map<number, number>();
  /** "503 QUEUE_FULL" → count, from the engine's error bodies. */
  readonly errorCodes = new Map<string, number>();
  /** Requests without an answer, by reason ("timeout", "connection closed by the server", ...). */
  readonly failures = new Map<string, number>();
  sent = 0;
  answered = 0;
  failed = 0;
  /** Issued more than LATE_MS after their scheduled time (open loop): the tool's own lag. */
  late = 0;
  maxLateMs = 0;
  /** Waited for a free connection after being issued (open loop). */
  waited = 0;
  maxWaitMs = 0;
  /** performance.now() of the last answer or failure. */
  lastAt = 0;
  /** For the plot: per answer, its start (ms since `t0`) and its latency (ms). */
  private times: Float32Array | null;
  private latencies: Float32Array | null;
  private samples = 0;
  samplesDropped = 0;

  constructor(
    /** performance.now() the window starts at. */
    readonly t0: number,
    keepSamples: boolean,
  ) {
    this.times = keepSamples ? new Float32Array(1 << 16) : null;
    this.latencies = keepSamples ? new Float32Array(1 << 16) : null;
  }

  /** An answer to a request counted from `start` (its scheduled time, or its send when that was earlier). */
  answer(r: ParsedResponse, start: number, at: number): void {
    const ms = at - start;
    this.answered++;
    this.lastAt = at;
    this.latencyUs.recordValue(Math.max(1, Math.round(ms * 1000)));
    this.byStatus.set(r.status, (this.byStatus.get(r.status) ?? 0) + 1);
    if (r.status >= 400) {
      const key = `${r.status} ${errorCode(r.body)}`.trim();
      this.errorCodes.set(key, (this.errorCodes.get(key) ?? 0) + 1);
    }
    if (this.times) this.keep(start - this.t0, ms);
  }

  failure(reason: string, at: number): void {
    this.failed++;
    this.lastAt = at;
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  /** How the open loop issued a request: `lateMs` after its time, then `waitMs` for a connection. */
  issued(lateMs: number, waitMs: number): void {
    this.sent++;
    if (lateMs > LATE_MS) {
      this.late++;
      if (lateMs > this.maxLateMs) this.maxLateMs = lateMs;
    }
    if (waitMs > 0) {
      this.waited++;
      if (waitMs > this.maxWaitMs) this.maxWaitMs = waitMs;
    }
  }

  /** Answers with a status of 400 or more, plus requests without an answer. */
  get errors(): number {
    let n = this.failed;
    for (const [status, count] of this.byStatus) if (status >= 400) n += count;
    return n;
  }

  /** Milliseconds at percentile `p` (0..100) of the answers so far; NaN before the first. */
  percentileMs(p: number): number {
    return this.answered === 0 ? NaN : this.latencyUs.getValueAtPercentile(p) / 1000;
  }

  /** The plot's samples: start times (ms since t0) and latencies (ms). */
  series(): { times: Float32Array; latencies: Float32Array } {
    return { times: this.times?.subarray(0, this.samples) ?? new Float32Array(0), latencies: this.latencies?.subarray(0, this.samples) ?? new Float32Array(0) };
  }

  private keep(t: number, ms: number): void {
    if (this.samples === MAX_SAMPLES) {
      this.samplesDropped++;
      return;
    }
    if (this.samples === this.times!.length) {
      const grow = (a: Float32Array): Float32Array => {
        const b = new Float32Array(Math.min(MAX_SAMPLES, a.length * 2));
        b.set(a);
        return b;
      };
      this.times = grow(this.times!);
      this.latencies = grow(this.latencies!);
    }
    this.times![this.samples] = t;
    this.latencies![this.samples] = ms;
    this.samples++;
  }
}

/** The engine's stable error code from its JSON error body, '' for another body. */
export function errorCode(body: string): string {
  const m = /"code"\s*:\s*"([A-Z][A-Z0-9_]*)"/.exec(body);
  return m ? m[1]! : '';
}
