/**
 * The Prometheus scrape after real traffic: every SPEC §4 metric the engine can produce so far,
 * with its type and labels, and values equal to the traffic sent; checked by a real promtool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { Engine } from '../src/app';
import { makeRows, postBinary, postJson, request, rowsToArrays, startTestEngine } from './helpers/engine';
import { requireTool } from './helpers/requirements';
import { findSample, parsePrometheusText, type Exposition, type Sample } from '../src/telemetry/prometheus-text';

const promtool = requireTool('promtool');

const F = 16;
let engine: Engine;
let port: number;

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return findSample(samples, name, labels)?.value;
}

async function scrape(): Promise<Exposition & { text: string }> {
  const res = await request(port, 'GET', '/monitoring/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = res.body.toString('utf8');
  return { text, ...parsePrometheusText(text) };
}

beforeAll(async () => {
  engine = await startTestEngine({ CACHE_CAPACITY: '100' });
  port = engine.port;
});

afterAll(async () => {
  await engine.shutdown('test end');
});

describe('GET /monitoring/metrics', () => {
  it('exports every metric with its SPEC name, type and labels, and counts equal to the traffic', async () => {
    const rows = makeRows(40, F, 17);
    // 10 single-row JSON requests (distinct rows), 5 of 4 rows, 3 binary of 2 rows, 2 repeats (cache hits), 4 errors.
    for (let i = 0; i < 10; i++) expect((await postJson(port, { features: Array.from(rows.subarray(i * F, (i + 1) * F)) })).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await postJson(port, { instances: rowsToArrays(rows.subarray((10 + 4 * i) * F, (14 + 4 * i) * F), F) })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await postBinary(port, rows.subarray((30 + 2 * i) * F, (32 + 2 * i) * F))).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await postJson(port, { features: Array.from(rows.subarray(0, F)) })).status).toBe(200);
    expect((await postJson(port, { features: [1, 2] })).status).toBe(400);
    expect((await request(port, 'GET', '/predict')).status).toBe(405);
    expect((await request(port, 'GET', '/no/such/path')).status).toBe(404);
    expect((await request(port, 'POST', '/predict', 'x', { 'content-type': 'text/plain' })).status).toBe(415);

    const { types, samples, text } = await scrape();
    const expected: Record<string, string> = {
      ml_predictions_total: 'counter',
      ml_prediction_latency_seconds: 'histogram',
      ml_prediction_confidence: 'histogram',
      ml_batch_size: 'histogram',
      ml_queue_wait_seconds: 'histogram',
      ml_queue_depth: 'gauge',
      api_requests_total: 'counter',
      api_request_duration_seconds: 'histogram',
      api_errors_total: 'counter',
      ml_cache_requests_total: 'counter',
      ml_cache_hit_ratio: 'gauge',
      ml_component_health: 'gauge',
      ml_uptime_seconds: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) expect(types.get(name), name).toBe(type);
    expect(text).not.toMatch(/otel_scope_|target_info/);

    // Rows predicted: 10 + 20 + 6 computed, + 2 answered from the cache = 38.
    const up = value(samples, 'ml_predictions_total', { model_name: 'ensemble', predicted_class: '1' }) ?? 0;
    const down = value(samples, 'ml_predictions_total', { model_name: 'ensemble', predicted_class: '0' }) ?? 0;
    expect(up + down).toBe(38);
    expect(value(samples, 'ml_prediction_confidence_count', { model_name: 'ensemble' })).toBe(38);
    // One latency per answered prediction request: 10 + 5 + 3 + 2.
    expect(value(samples, 'ml_prediction_latency_seconds_count', { model_name: 'ensemble' })).toBe(20);
    // Batches ran over the 36 computed rows.
    expect(value(samples, 'ml_batch_size_sum', { model_name: 'ensemble' })).toBe(36);
    expect(value(samples, 'ml_queue_wait_seconds_count', {})).toBe(value(samples, 'ml_batch_size_count', { model_name: 'ensemble' }));

    expect(value(samples, 'api_requests_total', { endpoint: '/predict', method: 'POST', status: '200' })).toBe(20);
    expect(value(samples, 'api_requests_total', { endpoint: '/predict', method: 'POST', status: '400' })).toBe(1);
    expect(value(samples, 'api_requests_total', { endpoint: '/predict', method: 'POST', status: '415' })).toBe(1);
    expect(value(samples, 'api_requests_total', { endpoint: '/predict', method: 'GET', status: '405' })).toBe(1);
    expect(value(samples, 'api_requests_total', { endpoint: 'other', method: 'GET', status: '404' })).toBe(1);
    expect(value(samples, 'api_errors_total', { endpoint: '/predict', status: '400' })).toBe(1);
    expect(value(samples, 'api_errors_total', { endpoint: 'other', status: '404' })).toBe(1);
    expect(value(samples, 'api_request_duration_seconds_count', { endpoint: '/predict', method: 'POST' })).toBe(22);

    // Single-row requests go through the cache: 12 lookups, 2 hits.
    expect(value(samples, 'ml_cache_requests_total', { result: 'hit' })).toBe(2);
    expect(value(samples, 'ml_cache_requests_total', { result: 'miss' })).toBe(10);
    expect(value(samples, 'ml_cache_hit_ratio', {})).toBeCloseTo(2 / 12, 10);
    for (const c of ['cache', 'api', 'model']) expect(value(samples, 'ml_component_health', { component: c })).toBe(1);
    expect(value(samples, 'ml_uptime_seconds', {})).toBeGreaterThan(0);
    expect(value(samples, 'ml_queue_depth', {})).toBe(0);

    // Histogram buckets resolve sub-millisecond latency.
    const les = samples.filter((s) => s.name === 'api_request_duration_seconds_bucket').map((s) => s.labels.le);
    expect(les).toContain('0.00005');
    expect(les).toContain('10');
  });

  it.skipIf(promtool.skip)('passes promtool check metrics on a real scrape', async () => {
    const bin = promtool.get();
    await postJson(port, { features: Array.from(makeRows(1, F, 99)) });
    const { text } = await scrape();
    const check = spawnSync(bin, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stderr + check.stdout).toBe('');
    expect(check.status).toBe(0);
  });

  it('adds no series for unknown paths beyond endpoint="other"', async () => {
    const before = (await scrape()).samples.filter((s) => s.name === 'api_requests_total').length;
    const methods = ['GET', 'POST', 'DELETE'];
    for (let i = 0; i < 1000; i++) {
      const path = `/x${Math.floor(Math.random() * 1e9).toString(36)}/${i}`;
      expect((await request(port, methods[i % 3]!, path)).status).toBe(404);
    }
    const after = (await scrape()).samples;
    const series = after.filter((s) => s.name === 'api_requests_total');
    // At most the new (other, POST, 404) and (other, DELETE, 404) series; never one per path.
    expect(series.length - before).toBeLessThanOrEqual(2);
    const endpoints = new Set(after.filter((s) => 'endpoint' in s.labels).map((s) => s.labels.endpoint));
    for (const e of endpoints) expect(['other', '/predict', '/monitoring/metrics', '/monitoring/health', '/monitoring/health/readiness', '/monitoring/health/liveness', '/models']).toContain(e);
    expect(value(after, 'api_requests_total', { endpoint: 'other', method: 'GET', status: '404' })).toBeGreaterThanOrEqual(334);
  });
});
