/**
 * HTTP_THREADS=2: two front-end threads, each a uWS app on the engine's one port, feeding the one
 * batcher and pool. Real threads, real uWS, real onnxruntime; connections are spread by the kernel
 * (SO_REUSEPORT), so many connections reach both threads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import type { Engine } from '../src/app';
import { DEFAULT_MODEL_PATH, makeRows, postBinary, postJson, PROB_TOLERANCE, referenceProbabilities, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('HTTP_THREADS=2', () => {
  let engine: Engine;
  let F: number;

  beforeAll(async () => {
    engine = await startTestEngine({ HTTP_THREADS: '2', WORKERS: '1', CACHE_CAPACITY: '0' });
    F = engine.models.features;
  }, 60_000);

  afterAll(async () => {
    await engine?.shutdown('test');
  });

  it('serves every route from the threads: /predict JSON and binary, forwarded control and monitoring routes', async () => {
    expect(engine.frontEnds?.live).toBe(2);
    const rows = makeRows(3, F, 7);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, rows, F);
    const j = await postJson(engine.port, { instances: rowsToArrays(rows, F) });
    expect(j.status).toBe(200);
    const preds = j.json().predictions;
    for (let r = 0; r < 3; r++) expect(Math.abs(preds[r].probabilities[1] - ref[2 * r + 1]!)).toBeLessThan(PROB_TOLERANCE);
    const b = await postBinary(engine.port, rows);
    expect(b.status).toBe(200);
    expect(b.headers['x-rows']).toBe('3');
    const p1 = new Float32Array(b.body.buffer.slice(b.body.byteOffset, b.body.byteOffset + b.body.byteLength));
    for (let r = 0; r < 3; r++) expect(Math.abs(p1[r]! - ref[2 * r + 1]!)).toBeLessThan(PROB_TOLERANCE);
    expect((await request(engine.port, 'GET', '/models')).json().models.length).toBeGreaterThan(0);
    expect((await request(engine.port, 'GET', '/monitoring/health/readiness')).status).toBe(200);
    expect((await request(engine.port, 'GET', '/nope')).json().error.code).toBe('NOT_FOUND');
    const bad = await postJson(engine.port, { features: [1, 2] });
    expect(bad.status).toBe(400);
    expect(bad.json().error.code).toBe('FEATURE_COUNT_MISMATCH');
    const unknown = await postJson(engine.port, { features: Array.from(rows.subarray(0, F)), model: 'nope' });
    expect(unknown.json().error.code).toBe('UNKNOWN_MODEL');
  });

  it('answers 1,000 concurrent requests across threads, each with its own rows', async () => {
    const n = 1000;
    const all = makeRows(n, F, 11);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, all, F);
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => (i % 2 === 0
        ? postJson(engine.port, { features: Array.from(all.subarray(i * F, (i + 1) * F)), id: `req-${i}` })
        : postBinary(engine.port, all.subarray(i * F, (i + 1) * F)))),
    );
    for (let i = 0; i < n; i++) {
      const r = replies[i]!;
      expect(r.status).toBe(200);
      let p1: number;
      if (i % 2 === 0) {
        const body = r.json();
        expect(body.id).toBe(`req-${i}`);
        p1 = body.probabilities[1];
      } else {
        p1 = new Float32Array(r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + 4))[0]!;
      }
      expect(Math.abs(p1 - ref[2 * i + 1]!)).toBeLessThan(PROB_TOLERANCE);
    }
    // The kernel spread the connections: both threads took requests.
    for (const n of engine.frontEnds!.handedOff()) expect(n).toBeGreaterThan(0);
  }, 60_000);

  it('answers large requests (segments of their own, reused by size) with their own rows', async () => {
    const rows = 200;
    for (let round = 0; round < 2; round++) {
      const bodies = Array.from({ length: 20 }, (_, i) => makeRows(rows, F, 100 + 20 * round + i));
      const replies = await Promise.all(bodies.map((b) => postBinary(engine.port, b)));
      for (let i = 0; i < bodies.length; i++) {
        const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, bodies[i]!, F);
        const r = replies[i]!;
        expect(r.status).toBe(200);
        const p1 = new Float32Array(r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.byteLength));
        expect(p1.length).toBe(rows);
        for (let k = 0; k < rows; k += 37) expect(Math.abs(p1[k]! - ref[2 * k + 1]!)).toBeLessThan(PROB_TOLERANCE);
      }
    }
  }, 60_000);

  it("counts every thread's requests once in the metrics", async () => {
    const before = await request(engine.port, 'GET', '/monitoring/metrics');
    const reqs0 = metricValue(before.body.toString(), 'api_requests_total', { endpoint: '/predict', status: '200' });
    const preds0 = metricValue(before.body.toString(), 'ml_predictions_total', { model_name: 'ensemble' });
    const count0 = metricValue(before.body.toString(), 'api_request_duration_seconds_count', { endpoint: '/predict' });
    const lat0 = metricValue(before.body.toString(), 'ml_prediction_latency_seconds_count', { model_name: 'ensemble' });
    const n = 300;
    const rows = makeRows(n, F, 5);
    await Promise.all(Array.from({ length: n }, (_, i) => postBinary(engine.port, rows.subarray(i * F, (i + 1) * F))));
    const after = (await request(engine.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metricValue(after, 'api_requests_total', { endpoint: '/predict', status: '200' }) - reqs0).toBe(n);
    expect(metricValue(after, 'api_request_duration_seconds_count', { endpoint: '/predict' }) - count0).toBe(n);
    expect(metricValue(after, 'ml_predictions_total', { model_name: 'ensemble' }) - preds0).toBe(n);
    expect(metricValue(after, 'ml_prediction_latency_seconds_count', { model_name: 'ensemble' }) - lat0).toBe(n);
  }, 60_000);
});

describe('HTTP_THREADS=2 shutdown', () => {
  it('drains in-flight requests, then closes every thread', async () => {
    const engine = await startTestEngine({ HTTP_THREADS: '2', WORKERS: '1' });
    const F = engine.models.features;
    const rows = makeRows(50, F, 3);
    const inflight = Array.from({ length: 50 }, (_, i) => postBinary(engine.port, rows.subarray(i * F, (i + 1) * F)));
    await waitFor(() => engine.batcher.stats().batches > 0 || engine.batcher.depth > 0, 'requests to reach the batcher', 10_000);
    const done = engine.shutdown('test');
    const replies = await Promise.all(inflight.map((p) => p.catch(() => null)));
    expect((await done).drained).toBe(true);
    for (const r of replies) if (r !== null) expect([200, 503]).toContain(r.status);
    expect(engine.frontEnds?.live).toBe(0);
  }, 60_000);
});

describe('HTTP_THREADS=2, a front-end thread that fails', () => {
  const HOLD = 4242;
  let engine: Engine | null = null;

  afterAll(async () => {
    await engine?.shutdown('test');
    delete process.env.TRADEFLOW_TEST_FRONTEND_CRASH_ON_ID;
    delete process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE;
    delete process.env.TRADEFLOW_TEST_HOLD_MS;
  });

  it('answers its in-flight requests 500, closes its sockets, and is replaced on the same port', async () => {
    // The batch holding the first request stays in its worker until released, so the failing
    // request and its neighbours are in flight (in the main thread's batcher) when the thread fails.
    process.env.TRADEFLOW_TEST_FRONTEND_CRASH_ON_ID = 'fail-this-thread';
    process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
    process.env.TRADEFLOW_TEST_HOLD_MS = '600000';
    const e = (engine = await startTestEngine({ HTTP_THREADS: '2', WORKERS: '1', BATCHES_PER_WORKER: '1', CACHE_CAPACITY: '0' }));
    const F = e.models.features;
    const held = makeRows(1, F, 1);
    held[0] = HOLD;
    const first = postBinary(e.port, held);
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in its worker');
    const failing = postJson(e.port, { features: Array.from(makeRows(1, F, 2)), id: 'fail-this-thread' });
    const r = await failing;
    expect(r.status).toBe(500);
    expect(r.json().error.code).toBe('INTERNAL');
    expect(r.json().error.message).toMatch(/front-end thread/);
    await waitFor(() => e.frontEnds!.restarts === 1 && e.frontEnds!.live === 2, 'the thread to be replaced');
    e.testHooks.release();
    const held1 = await first.catch(() => null);
    // The held request answers 200 unless its connection was on the thread that failed.
    if (held1 !== null) expect([200, 500]).toContain(held1.status);
    const rows = makeRows(40, F, 9);
    const after = await Promise.all(Array.from({ length: 40 }, (_, i) => postBinary(e.port, rows.subarray(i * F, (i + 1) * F))));
    for (const a of after) expect(a.status).toBe(200);
    expect(e.frontEnds!.handedOff().every((n) => n > 0)).toBe(true);
    const info = (await request(e.port, 'GET', '/monitoring/system/info')).json();
    expect(info.http_threads).toMatchObject({ configured: 2, listening: 2, restarts: 1 });
  }, 60_000);
});

describe.each(['1', '2'])('HTTP_THREADS=%s: deadlines, the queue limit and client aborts', (threads) => {
  const HOLD = 5151;
  let engine: Engine | null = null;

  afterAll(async () => {
    engine?.testHooks.release();
    await engine?.shutdown('test');
  });

  it('answers 504 past the deadline, 503 with Retry-After over the queue limit, and drops the rows of a client that left', async () => {
    process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
    process.env.TRADEFLOW_TEST_HOLD_MS = '600000';
    try {
      engine = await startTestEngine({ HTTP_THREADS: threads, WORKERS: '1', BATCHES_PER_WORKER: '1', CACHE_CAPACITY: '0', MAX_QUEUE_ROWS: '5' });
    } finally {
      delete process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE;
      delete process.env.TRADEFLOW_TEST_HOLD_MS;
    }
    const e = engine;
    const F = e.models.features;
    const held = makeRows(1, F, 1);
    held[0] = HOLD;
    const first = postBinary(e.port, held);
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in its worker');
    const late = await postBinary(e.port, makeRows(1, F, 2), { 'x-request-timeout-ms': '30' });
    expect(late.status).toBe(504);
    expect(late.json().error.code).toBe('DEADLINE_EXCEEDED');
    const waiting = postBinary(e.port, makeRows(3, F, 3));
    // The expired row keeps its place until its batch is dispatched (then it is dropped): 1 + 3 wait.
    await waitFor(() => e.batcher.depth === 4, 'four rows to wait');
    const full = await postBinary(e.port, makeRows(2, F, 4));
    expect(full.status).toBe(503);
    expect(full.json().error.code).toBe('QUEUE_FULL');
    expect(full.headers['retry-after']).toBe('1');
    const aborted0 = e.batcher.stats().requestsAborted;
    const sock = net.connect(e.port, '127.0.0.1');
    const body = Buffer.from(makeRows(1, F, 5).buffer);
    sock.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body);
    await waitFor(() => e.batcher.depth === 5, 'the fifth row to wait');
    sock.destroy();
    await waitFor(() => e.batcher.stats().requestsAborted === aborted0 + 1, 'the client that left to be counted');
    const dropped0 = e.batcher.stats().requestsDropped;
    e.testHooks.release();
    expect((await first).status).toBe(200);
    const w = await waiting;
    expect(w.status).toBe(200);
    expect(w.headers['x-rows']).toBe('3');
    await waitFor(() => e.batcher.stats().requestsDropped > dropped0, 'the rows of the client that left to be dropped');
  }, 60_000);
});
