/**
 * GET /monitoring/metrics, /monitoring/health, /monitoring/cache/stats and
 * /monitoring/system/info. All answer from in-memory state; none waits behind the prediction
 * queue. (Liveness and readiness are part of the server itself.)
 */
import * as os from 'node:os';
import type { CacheStats } from '../cache/prediction-cache';
import type { HealthReport } from '../telemetry/health';
import { PROMETHEUS_CONTENT_TYPE } from '../telemetry/metrics';
import type { HttpServer } from './server';

export interface MonitoringSources {
  scrape(): Promise<string>;
  health(): HealthReport;
  cacheStats(): CacheStats;
  systemInfo(): Record<string, unknown>;
}

export function registerMonitoringRoutes(server: HttpServer, src: MonitoringSources): void {
  const r = server.responder;
  server
    .route('GET', '/monitoring/metrics', (x) => {
      src.scrape().then(
        (text) => r.corked(x, () => r.send(x, 200, PROMETHEUS_CONTENT_TYPE, text)),
        (err) => r.corked(x, () => r.error(x, err)),
      );
    })
    .route('GET', '/monitoring/health', (x) => {
      const h = src.health();
      r.json(x, h.status === 'unhealthy' ? 503 : 200, { ...h, timestamp: new Date().toISOString() });
    })
    .route('GET', '/monitoring/cache/stats', (x) => r.json(x, 200, src.cacheStats()))
    .route('GET', '/monitoring/system/info', (x) => r.json(x, 200, src.systemInfo()));
}

/** Runtime facts for /monitoring/system/info. */
export function runtimeInfo(): Record<string, unknown> {
  const mem = process.memoryUsage();
  const cpus = os.cpus();
  return {
    runtime: { name: 'node', version: process.version, v8: process.versions.v8, uv: process.versions.uv, modules: process.versions.modules },
    platform: process.platform,
    arch: process.arch,
    hostname: os.hostname(),
    pid: process.pid,
    cpus: { count: cpus.length, model: cpus[0]?.model ?? null },
    memory: {
      total_bytes: os.totalmem(),
      free_bytes: os.freemem(),
      rss_bytes: mem.rss,
      heap_used_bytes: mem.heapUsed,
      heap_total_bytes: mem.heapTotal,
      external_bytes: mem.external,
      array_buffers_bytes: mem.arrayBuffers,
    },
    load_average: os.loadavg(),
    process_uptime_seconds: process.uptime(),
  };
}
