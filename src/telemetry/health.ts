/**
 * Health rules: each component's status from the facts behind it. The rules are written down in
 * the README; the facts travel with the answer so an operator sees why.
 */
import type { ComponentName, HealthStatus } from './metrics';
import type { RecentApiStats } from './recent-window';

export interface ModelFacts {
  modelsLoaded: number;
  workers: number;
  workersWarm: number;
  workerRestartsRecent: number;
  restartWindowSeconds: number;
  /** Threads abandoned inside a native call terminate() could not stop: they hold memory until the process restarts. */
  workersStuck: number;
  queueRows: number;
  queueLimit: number;
  draining: boolean;
}

export interface CacheFacts {
  enabled: boolean;
  size: number;
  capacity: number;
  hits: number;
  misses: number;
  hitRatio: number | null;
}

export interface ComponentHealth {
  status: HealthStatus;
  reasons: string[];
  [fact: string]: unknown;
}

export interface HealthReport {
  status: HealthStatus;
  /** `redis` only with REDIS_URL. */
  components: Record<Exclude<ComponentName, 'redis'>, ComponentHealth> & Partial<Record<'redis', ComponentHealth>>;
}

/** With REDIS_URL: the connections to Redis and the feedback stream reader. */
export interface RedisFacts {
  connections: Array<{ role: string; connected: boolean; down_since_ms: number | null; reconnects: number; last_error: string | null }>;
  /** Stream entries not applied here yet; null before the first read. */
  lagRecords: number | null;
  /** Why the reader stopped (a gap in the stream), or null. */
  stopped: string | null;
  position: string;
}

/** Thresholds; the README's health table lists the same numbers. */
export const HEALTH_RULES = {
  queueFillDegraded: 0.8,
  errorRatioDegraded: 0.05,
  errorRatioUnhealthy: 0.5,
  minRequestsForRatio: 20,
  p95DegradedSeconds: 1,
  feedbackLagDegradedRecords: 10_000,
} as const;

export function modelHealth(f: ModelFacts): ComponentHealth {
  const reasons: string[] = [];
  let status: HealthStatus = 'healthy';
  const worse = (s: HealthStatus, why: string): void => {
    reasons.push(why);
    if (s === 'unhealthy' || status === 'healthy') status = s;
  };
  if (f.modelsLoaded === 0) worse('unhealthy', 'no model loaded');
  if (f.workersWarm === 0) worse('unhealthy', 'no inference worker is warm');
  else if (f.workersWarm < f.workers) worse('degraded', `${f.workersWarm} of ${f.workers} workers warm`);
  if (f.workerRestartsRecent > 0) worse('degraded', `${f.workerRestartsRecent} worker restart(s) in the last ${f.restartWindowSeconds} s`);
  // Not aged out like a restart: the thread stays until the process ends, so it stays visible.
  if (f.workersStuck > 0) worse('degraded', `${f.workersStuck} worker thread(s) stuck in a native call and abandoned; restart the process to reclaim them`);
  const fill = f.queueLimit > 0 ? f.queueRows / f.queueLimit : 0;
  if (fill >= HEALTH_RULES.queueFillDegraded) worse('degraded', `prediction queue ${Math.round(fill * 100)}% full`);
  if (f.draining) worse('degraded', 'draining for shutdown');
  return { status, reasons, models_loaded: f.modelsLoaded, workers: f.workers, workers_warm: f.workersWarm, worker_restarts_recent: f.workerRestartsRecent, restart_window_seconds: f.restartWindowSeconds, workers_stuck: f.workersStuck, queue_rows: f.queueRows, queue_limit: f.queueLimit, queue_fill: fill, draining: f.draining };
}

export function apiHealth(s: RecentApiStats): ComponentHealth {
  const reasons: string[] = [];
  let status: HealthStatus = 'healthy';
  if (s.requests >= HEALTH_RULES.minRequestsForRatio) {
    if (s.errorRatio >= HEALTH_RULES.errorRatioUnhealthy) {
      status = 'unhealthy';
      reasons.push(`${Math.round(s.errorRatio * 100)}% of answers in the last ${s.windowSeconds} s were 5xx`);
    } else if (s.errorRatio >= HEALTH_RULES.errorRatioDegraded) {
      status = 'degraded';
      reasons.push(`${(s.errorRatio * 100).toFixed(1)}% of answers in the last ${s.windowSeconds} s were 5xx`);
    }
  }
  if (s.p95Seconds !== null && s.p95Seconds > HEALTH_RULES.p95DegradedSeconds) {
    if (status === 'healthy') status = 'degraded';
    reasons.push(`p95 latency over the last ${s.windowSeconds} s is above ${HEALTH_RULES.p95DegradedSeconds} s`);
  }
  return { status, reasons, window_seconds: s.windowSeconds, requests: s.requests, server_errors: s.serverErrors, error_ratio: s.errorRatio, p95_seconds: s.p95Seconds };
}

/** A cache only makes answers faster; it is reported, not a reason to take the engine out. */
export function cacheHealth(f: CacheFacts): ComponentHealth {
  return { status: 'healthy', reasons: f.enabled ? [] : ['cache disabled (CACHE_CAPACITY=0)'], enabled: f.enabled, size: f.size, capacity: f.capacity, hits: f.hits, misses: f.misses, hit_ratio: f.hitRatio };
}

/**
 * Redis down only stops learning: predictions keep serving, so the engine is degraded, not
 * unhealthy; /learn answers 503 until Redis is back and the reader catches up. A reader that
 * stopped (a gap in the stream) needs a restart: unhealthy.
 */
export function redisHealth(f: RedisFacts): ComponentHealth {
  const reasons: string[] = [];
  let status: HealthStatus = 'healthy';
  const down = f.connections.filter((c) => !c.connected);
  if (down.length > 0) {
    status = 'degraded';
    const since = Math.min(...down.map((c) => c.down_since_ms ?? Date.now()));
    reasons.push(`Redis unreachable for ${Math.round((Date.now() - since) / 1000)} s (${down[0]!.last_error ?? 'connecting'}): /learn answers 503 FEEDBACK_STREAM_UNAVAILABLE, predictions keep serving`);
  }
  if (f.lagRecords !== null && f.lagRecords >= HEALTH_RULES.feedbackLagDegradedRecords) {
    if (status === 'healthy') status = 'degraded';
    reasons.push(`${f.lagRecords} feedback stream entries behind`);
  }
  if (f.stopped !== null) {
    status = 'unhealthy';
    reasons.push(f.stopped);
  }
  return { status, reasons, connected: down.length === 0, lag_records: f.lagRecords, position: f.position, connections: f.connections };
}

export function overall(components: Record<string, ComponentHealth>): HealthStatus {
  const all = Object.values(components).map((c) => c.status);
  if (all.includes('unhealthy')) return 'unhealthy';
  if (all.includes('degraded')) return 'degraded';
  return 'healthy';
}
