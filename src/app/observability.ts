/**
 * The observability part: the metrics (OTel meters exported as Prometheus text) and the window
 * of recent answers behind the API health rule. Started first, so every later part can record
 * into it and register the gauges it owns as it starts: no part needs one that starts after it.
 */
import { performance } from 'node:perf_hooks';
import type { EngineConfig } from '../config';
import type { ResponseObserver } from '../http/respond';
import { Telemetry } from '../telemetry/metrics';
import { RecentWindow } from '../telemetry/recent-window';
import type { Part } from './parts';

export interface ObservabilityPart extends Part {
  readonly telemetry: Telemetry;
  readonly recent: RecentWindow;
  /** False only when METRICS_ENABLED=false (for measuring what metrics cost). */
  readonly record: boolean;
  readonly responseObserver: ResponseObserver;
}

export function startObservability(config: EngineConfig, startedAt: number): ObservabilityPart {
  const telemetry = new Telemetry({ uptimeSeconds: () => (performance.now() - startedAt) / 1000 });
  const recent = new RecentWindow();
  const record = config.metricsEnabled;
  return {
    name: 'observability',
    telemetry,
    recent,
    record,
    responseObserver: {
      onResponse(endpoint, method, status, seconds) {
        // Probes and scrapes are not API traffic: a readiness 503 while warming is no error ratio.
        if (!endpoint.startsWith('/monitoring/')) recent.record(status, seconds);
        if (record) telemetry.recordResponse(endpoint, method, status, seconds);
      },
    },
    stop: () => telemetry.close(),
  };
}
