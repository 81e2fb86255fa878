import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { makeRows, postBinary, postJson, request, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
const CRASH = 555;
let engine: Engine | null = null;

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
  delete process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE;
});

describe('/monitoring endpoints', () => {
  it('GET /monitoring/health reports every component with the facts behind it', async () => {
    engine = await startTestEngine();
    const res = await request(engine.port, 'GET', '/monitoring/health');
    expect(res.status).toBe(200);
    const h = res.json();
    expect(h.status).toBe('healthy');
    expect(Object.keys(h.components).sort()).toEqual(['api', 'cache', 'model']);
    expect(h.components.model).toMatchObject({ status: 'healthy', models_loaded: 3, workers: 1, workers_warm: 1, draining: false });
    expect(h.components.api).toMatchObject({ status: 'healthy', window_seconds: 60 });
    expect(h.components.cache).toMatchObject({ status: 'healthy', enabled: true, capacity: 10000 });
    expect(typeof h.timestamp).toBe('string');
  });

  /** Starts an engine whose only worker exits on a row starting with CRASH, and kills it once. */
  async function engineWithKilledWorker(windowS: string): Promise<Engine> {
    process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE = String(CRASH);
    engine = await startTestEngine({ HEALTH_RESTART_WINDOW_S: windowS });
    const e = engine;
    const row = Array.from(makeRows(1, F, 4));
    row[0] = CRASH;
    const res = await postJson(e.port, { features: row });
    expect(res.status).toBe(500);
    expect(res.json().error.code).toBe('WORKER_FAILED');
    await waitFor(() => e.pool.stats().restarts === 1, 'the restart to be counted');
    return e;
  }

  it('shows a killed worker as degraded once its replacement is warm, while the restart is recent', async () => {
    // A window far longer than any warm-up: the restart is still recent when the replacement is
    // warm, however slow the machine, so "degraded" is there to be seen.
    const e = await engineWithKilledWorker('3600');
    // With its only worker gone the model is unhealthy (503) until the replacement is warm.
    await waitFor(() => e.pool.stats().warm === 1, 'the replacement worker to be warm');
    const degraded = await request(e.port, 'GET', '/monitoring/health');
    expect(degraded.status).toBe(200);
    expect(degraded.json().status).toBe('degraded');
    expect(degraded.json().components.model).toMatchObject({ status: 'degraded', workers: 1, workers_warm: 1, worker_restarts_recent: 1, restart_window_seconds: 3600 });
    expect(degraded.json().components.model.reasons.join(' ')).toMatch(/restart/);
    const metrics = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metrics).toContain('ml_component_health{component="model"} 0.5');
    // And the replacement serves.
    expect((await postJson(e.port, { features: Array.from(makeRows(1, F, 5)) })).status).toBe(200);
  });

  it('shows the model healthy again once the restart has aged out of the window', async () => {
    const e = await engineWithKilledWorker('1');
    await waitFor(async () => (await request(e.port, 'GET', '/monitoring/health')).json().status === 'healthy', 'health to recover');
    const back = (await request(e.port, 'GET', '/monitoring/health')).json().components.model;
    expect(back).toMatchObject({ status: 'healthy', workers_warm: 1, worker_restarts_recent: 0 });
    expect(e.pool.stats().restarts).toBe(1);
    const metrics = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metrics).toContain('ml_component_health{component="model"} 1');
  });

  it('GET /monitoring/cache/stats counts hits, misses and evictions', async () => {
    engine = await startTestEngine({ CACHE_CAPACITY: '2' });
    const rows = makeRows(3, F, 8);
    const row = (i: number) => Array.from(rows.subarray(i * F, (i + 1) * F));
    await postJson(engine.port, { features: row(0) });
    const hit = await postJson(engine.port, { features: row(0) });
    expect(hit.status).toBe(200);
    const first = await postJson(engine.port, { features: row(0) });
    expect(hit.json()).toEqual(first.json());
    await postJson(engine.port, { features: row(1) });
    await postJson(engine.port, { features: row(2) });
    const stats = (await request(engine.port, 'GET', '/monitoring/cache/stats')).json();
    expect(stats).toEqual({ enabled: true, size: 2, capacity: 2, hits: 2, misses: 3, hit_ratio: 0.4, evictions: 1, max_rows_per_request: 1 });
  });

  it('answers a cache hit with exactly what computing the row answers', async () => {
    engine = await startTestEngine();
    const e = engine;
    const rows = makeRows(1, F, 31);
    const row = Array.from(rows);
    const stats = async () => (await request(e.port, 'GET', '/monitoring/cache/stats')).json();
    const computedRows = () => e.batcher.stats().rowsComputed;

    // JSON: the first request is computed and cached, the second is a hit that computes nothing.
    const s0 = await stats();
    const c0 = computedRows();
    const first = await postJson(e.port, { features: row });
    expect(first.status).toBe(200);
    expect(await stats()).toMatchObject({ hits: s0.hits, misses: s0.misses + 1, size: s0.size + 1 });
    expect(computedRows()).toBe(c0 + 1);
    const second = await postJson(e.port, { features: row });
    expect(second.status).toBe(200);
    expect(await stats()).toMatchObject({ hits: s0.hits + 1, misses: s0.misses + 1 });
    expect(computedRows()).toBe(c0 + 1);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.body.toString()).toBe(first.body.toString());

    // Binary: the cache keeps rows, not bodies, so the same row sent as float32 hits too.
    const bin1 = await postBinary(e.port, rows);
    const bin2 = await postBinary(e.port, rows);
    expect([bin1.status, bin2.status]).toEqual([200, 200]);
    expect(await stats()).toMatchObject({ hits: s0.hits + 3, misses: s0.misses + 1 });
    expect(computedRows()).toBe(c0 + 1);
    expect(bin2.body.equals(bin1.body)).toBe(true);
    expect(bin2.body.readFloatLE(0)).toBe(Math.fround(second.json().probabilities[1]));

    // Bypassing the cache (two rows are over max_rows_per_request): the same row computed again.
    const before = await stats();
    const pair = await postJson(e.port, { instances: [row, row] });
    expect(pair.status).toBe(200);
    expect(computedRows()).toBe(c0 + 3);
    expect(await stats()).toMatchObject({ hits: before.hits, misses: before.misses });
    const { model, version, ...cachedRow } = second.json();
    expect({ model, version }).toEqual({ model: pair.json().model, version: pair.json().version });
    for (const p of pair.json().predictions) expect(p).toEqual(cachedRow);

    // And an engine without a cache computes the very same bytes.
    const off = await startTestEngine({ CACHE_CAPACITY: '0' });
    try {
      const computed = await postJson(off.port, { features: row });
      expect(computed.status).toBe(200);
      expect(off.batcher.stats().rowsComputed).toBe(1);
      expect(computed.body.toString()).toBe(second.body.toString());
      const computedBin = await postBinary(off.port, rows);
      expect(computedBin.headers['x-model-version']).toBe(bin2.headers['x-model-version']);
      expect(bin2.headers['x-model-version']).toBe(version);
      expect(computedBin.body.equals(bin2.body)).toBe(true);
    } finally {
      await off.shutdown('test end');
    }
  });

  it('CACHE_CAPACITY=0 disables the cache', async () => {
    engine = await startTestEngine({ CACHE_CAPACITY: '0' });
    const row = Array.from(makeRows(1, F, 8));
    await postJson(engine.port, { features: row });
    await postJson(engine.port, { features: row });
    const stats = (await request(engine.port, 'GET', '/monitoring/cache/stats')).json();
    expect(stats).toMatchObject({ enabled: false, size: 0, hits: 0, misses: 0, hit_ratio: null });
    expect(engine.batcher.stats().rowsComputed).toBe(2);
  });

  it('GET /monitoring/system/info describes the runtime, configuration, models and workers without secrets', async () => {
    engine = await startTestEngine({ ADMIN_TOKEN: 'very-secret-token' });
    const res = await request(engine.port, 'GET', '/monitoring/system/info');
    expect(res.status).toBe(200);
    const info = res.json();
    expect(info.runtime).toMatchObject({ name: 'node', version: process.version });
    expect(info.platform).toBe(process.platform);
    expect(info.arch).toBe(process.arch);
    expect(info.cpus.count).toBeGreaterThan(0);
    expect(info.memory.rss_bytes).toBeGreaterThan(0);
    expect(info.pid).toBe(process.pid);
    expect(info.config).toMatchObject({ PORT: 0, WORKERS: 1, ADMIN_TOKEN: '<set>' });
    expect(info.listen).toEqual({ host: '127.0.0.1', port: engine.port });
    expect(res.body.toString()).not.toContain('very-secret-token');
    expect(info.models[0]).toMatchObject({ name: 'ensemble', features: 16, input: 'input', outputs: ['label', 'probabilities'] });
    expect(info.workers).toMatchObject({ size: 1, warm: 1 });
    expect(info.native.onnxruntime).toMatch(/^1\.30\./);
  });
});
