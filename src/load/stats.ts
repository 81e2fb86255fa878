/** The client-side figures of one measured window, as the report and --json give them. */
import type { RunOutcome } from './driver';
import { LATE_MS } from './recorder';

export interface LatencySummary {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface ClientStats {
  mode: 'open' | 'closed';
  connections: number;
  /** Requests per second asked (open loop); null for the closed loop. */
  askedRate: number | null;
  /** Answers per second over the window (from its start to its last answer, at least its duration). */
  achievedRate: number;
  durationS: number;
  warmupS: number;
  sent: number;
  answered: number;
  /** Requests without an answer (timeouts, closed connections, never sent). */
  failed: number;
  /** Answers with status >= 400 plus `failed`. */
  errors: number;
  byStatus: Record<string, number>;
  errorCodes: Record<string, number>;
  failures: Record<string, number>;
  /** Milliseconds, of every answer (any status), from its scheduled time (open loop) or its send (closed loop). */
  latencyMs: LatencySummary;
  schedule: {
    /** Requests the tool issued more than `lateThresholdMs` after their time: it fell behind its own schedule. */
    late: number;
    lateThresholdMs: number;
    maxLateMs: number;
    /** Requests that waited for a free connection (the target was slower than rate × connections allows). */
    waitedForConnection: number;
    maxWaitMs: number;
  };
  reconnects: number;
  warmup: { sent: number; answered: number };
}

export function clientStats(o: RunOutcome): ClientStats {
  const m = o.measured;
  const pct = (p: number): number => m.percentileMs(p);
  const elapsedMs = Math.max(o.spec.durationMs, m.lastAt - m.t0);
  return {
    mode: o.spec.mode,
    connections: o.spec.connections,
    askedRate: o.spec.mode === 'open' ? o.spec.rate : null,
    achievedRate: elapsedMs > 0 ? (m.answered * 1000) / elapsedMs : 0,
    durationS: o.spec.durationMs / 1000,
    warmupS: o.spec.warmupMs / 1000,
    sent: m.sent,
    answered: m.answered,
    failed: m.failed,
    errors: m.errors,
    byStatus: Object.fromEntries([...m.byStatus].sort((a, b) => a[0] - b[0]).map(([s, n]) => [String(s), n])),
    errorCodes: Object.fromEntries(m.errorCodes),
    failures: Object.fromEntries(m.failures),
    latencyMs: {
      p50: pct(50),
      p90: pct(90),
      p95: pct(95),
      p99: pct(99),
      p999: pct(99.9),
      max: m.answered ? m.latencyUs.maxValue / 1000 : NaN,
      mean: m.answered ? m.latencyUs.mean / 1000 : NaN,
    },
    schedule: { late: m.late, lateThresholdMs: LATE_MS, maxLateMs: m.maxLateMs, waitedForConnection: m.waited, maxWaitMs: m.maxWaitMs },
    reconnects: o.reconnects,
    warmup: { sent: o.warmup.sent, answered: o.warmup.answered },
  };
}
