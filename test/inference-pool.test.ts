/** A worker that dies fails only its own batch; the pool replaces it and serving goes on. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { makeRows, postJson, request, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
const CRASH = 777;
let engine: Engine | null = null;

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
  delete process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE;
});

describe('inference pool', () => {
  it('fails only the crashed batch with 500 WORKER_FAILED, replaces the worker and serves again', async () => {
    process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE = String(CRASH);
    engine = await startTestEngine();
    const e = engine;
    const threadsBefore = e.pool.stats().threadIds;
    const row = Array.from(makeRows(1, F, 1));
    expect((await postJson(e.port, { features: row })).status).toBe(200);

    const crashRow = [...row];
    crashRow[0] = CRASH;
    const crashed = await postJson(e.port, { features: crashRow });
    expect(crashed.status).toBe(500);
    expect(crashed.json().error.code).toBe('WORKER_FAILED');
    expect(crashed.json().error.message).toMatch(/worker/);

    // The very next request succeeds: it waits for the replacement worker if it must.
    const next = await postJson(e.port, { features: row });
    expect(next.status).toBe(200);
    await waitFor(() => e.pool.isReady(), 'the replacement worker to be warm');
    const stats = e.pool.stats();
    expect(stats.restarts).toBe(1);
    expect(stats.threadIds).not.toEqual(threadsBefore);
    const ready = await request(e.port, 'GET', '/monitoring/health/readiness');
    expect(ready.status).toBe(200);
    expect(ready.json().workers.restarts).toBe(1);
  });

  it('runs several workers, each warmed before readiness', async () => {
    engine = await startTestEngine({ WORKERS: '2' });
    expect(engine.pool.stats()).toMatchObject({ size: 2, warm: 2 });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => postJson(engine!.port, { features: Array.from(makeRows(1, F, i + 1)) })));
    for (const r of replies) expect(r.status).toBe(200);
  });
});
