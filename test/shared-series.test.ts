/**
 * Metric series recorded by front-end threads in shared memory (src/telemetry/shared-series.ts):
 * the exporter adds every thread's cells to its own series of the same labels, and a block keeps
 * its counts after its writer is gone.
 */
import { describe, expect, it } from 'vitest';
import { ThreadApiMetrics, Telemetry } from '../src/telemetry/metrics';
import { createSeriesBlock, SeriesWriter, type SeriesRegistration } from '../src/telemetry/shared-series';

function sample(text: string, line: string): number {
  const l = text.split('\n').find((x) => x.startsWith(line + ' '));
  return l === undefined ? NaN : Number(l.slice(line.length + 1));
}

describe('shared metric series', () => {
  it('adds the threads\u2019 answers to the main thread\u2019s, each counted once', async () => {
    const t = new Telemetry();
    const blocks = [createSeriesBlock(), createSeriesBlock()];
    const threads = blocks.map((b) => new ThreadApiMetrics(new SeriesWriter(b, (r: SeriesRegistration) => t.adoptSeries(b, r))));
    t.recordResponse('/predict', 'POST', 200, 0.001);
    for (let i = 0; i < 5; i++) threads[0]!.recordResponse('/predict', 'POST', 200, 0.0002);
    for (let i = 0; i < 7; i++) threads[1]!.recordResponse('/predict', 'POST', 200, 0.02);
    threads[1]!.recordResponse('/predict', 'POST', 400, 0.0001);
    const text = await t.scrape();
    expect(sample(text, 'api_requests_total{endpoint="/predict",method="POST",status="200"}')).toBe(13);
    expect(sample(text, 'api_requests_total{endpoint="/predict",method="POST",status="400"}')).toBe(1);
    expect(sample(text, 'api_errors_total{endpoint="/predict",status="400"}')).toBe(1);
    expect(sample(text, 'api_request_duration_seconds_count{endpoint="/predict",method="POST"}')).toBe(14);
    expect(sample(text, 'api_request_duration_seconds_bucket{endpoint="/predict",method="POST",le="0.00025"}')).toBe(6);
    expect(sample(text, 'api_request_duration_seconds_bucket{endpoint="/predict",method="POST",le="+Inf"}')).toBe(14);
    expect(sample(text, 'api_request_duration_seconds_sum{endpoint="/predict",method="POST"}')).toBeCloseTo(0.001 + 5 * 0.0002 + 7 * 0.02 + 0.0001, 9);
    await t.close();
  });

  it('announces a label set once and stops taking new ones when its block is full', () => {
    const seen: SeriesRegistration[] = [];
    const w = new SeriesWriter(new SharedArrayBuffer(8 * 3), (r) => seen.push(r));
    const a = w.series('counter', 'api_requests_total', { endpoint: '/x' });
    expect(w.series('counter', 'api_requests_total', { endpoint: '/x' })).toBe(a);
    expect(w.series('counter', 'api_requests_total', { endpoint: '/y' })).not.toBeNull();
    expect(w.series('histogram', 'api_request_duration_seconds', { endpoint: '/y' }, [0.1, 1])).toBeNull();
    expect(seen.map((r) => r.offset)).toEqual([0, 1]);
  });
});
