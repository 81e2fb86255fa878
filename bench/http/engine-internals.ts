/**
 * What the engine's own metrics say about one run: batches, rows per batch, queue wait and cache
 * hits, as differences between two scrapes of its /monitoring/metrics.
 */
import { parsePrometheusText, sumSamples } from '../../src/telemetry/prometheus-text';
import { request } from '../lib/request';

export interface EngineInternals {
  batches: number;
  rowsPerBatch: number;
  queueWaitMeanUs: number;
  cacheHits: number;
  cacheMisses: number;
}

/** The engine's cumulative counters at one moment. */
export interface EngineCounters {
  batches: number;
  batchRows: number;
  waits: number;
  waitSeconds: number;
  cacheHits: number;
  cacheMisses: number;
}

/** null when the engine does not answer or exports no batch histogram (metrics off). */
export async function scrapeCounters(port: number): Promise<EngineCounters | null> {
  try {
    const a = await request(port, 'GET', '/monitoring/metrics', undefined, {}, 2000);
    if (a.status !== 200) return null;
    const { samples } = parsePrometheusText(a.body.toString('utf8'));
    if (!samples.some((s) => s.name === 'ml_batch_size_count')) return null;
    return {
      batches: sumSamples(samples, 'ml_batch_size_count'),
      batchRows: sumSamples(samples, 'ml_batch_size_sum'),
      waits: sumSamples(samples, 'ml_queue_wait_seconds_count'),
      waitSeconds: sumSamples(samples, 'ml_queue_wait_seconds_sum'),
      cacheHits: sumSamples(samples, 'ml_cache_requests_total', { result: 'hit' }),
      cacheMisses: sumSamples(samples, 'ml_cache_requests_total', { result: 'miss' }),
    };
  } catch {
    return null;
  }
}

export function internalsBetween(before: EngineCounters | null, after: EngineCounters | null): EngineInternals | null {
  if (!before || !after) return null;
  const batches = after.batches - before.batches;
  const waits = after.waits - before.waits;
  return {
    batches,
    rowsPerBatch: batches > 0 ? (after.batchRows - before.batchRows) / batches : NaN,
    queueWaitMeanUs: waits > 0 ? ((after.waitSeconds - before.waitSeconds) / waits) * 1e6 : NaN,
    cacheHits: after.cacheHits - before.cacheHits,
    cacheMisses: after.cacheMisses - before.cacheMisses,
  };
}
