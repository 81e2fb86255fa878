/** A worker that dies fails only its own batch (never one running in another worker); the pool replaces it and serving goes on. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { DEFAULT_MODEL_PATH, PROB_TOLERANCE, makeRows, postJson, referenceProbabilities, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
const CRASH = 777;
const HOLD = 4343;
let engine: Engine | null = null;

afterEach(async () => {
  if (engine) {
    engine.testHooks.release();
    await engine.shutdown('test end');
  }
  engine = null;
  delete process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE;
  delete process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE;
  delete process.env.TRADEFLOW_TEST_HOLD_MS;
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

  it('a worker crashing fails its own batch only: a batch held in the other worker meanwhile still succeeds', async () => {
    // Two workers, one batch each: the held batch occupies one worker, so the crashing batch
    // can only run in the other. The hold lasts until release() (its time limit is far beyond
    // the test's timeout).
    process.env.TRADEFLOW_TEST_CRASH_ON_FEATURE = String(CRASH);
    process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
    process.env.TRADEFLOW_TEST_HOLD_MS = '600000';
    engine = await startTestEngine({ WORKERS: '2', BATCHES_PER_WORKER: '1' });
    const e = engine;
    expect(e.pool.stats()).toMatchObject({ size: 2, warm: 2 });

    const heldRows = makeRows(3, F, 41);
    heldRows[0] = HOLD; // the batch's first value is what the hold hook looks at
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, heldRows, F);
    let heldAnswered = false;
    const held = postJson(e.port, { instances: rowsToArrays(heldRows, F) }).finally(() => (heldAnswered = true));
    await waitFor(() => e.batcher.busy === 1, 'the held batch in flight in one worker');

    const crashRows = makeRows(2, F, 42);
    crashRows[0] = CRASH;
    const crashed = await postJson(e.port, { instances: rowsToArrays(crashRows, F) });
    expect(crashed.status).toBe(500);
    expect(crashed.json().error.code).toBe('WORKER_FAILED');
    await waitFor(() => e.pool.stats().restarts === 1, 'the crashed worker to be counted');
    // The other worker's batch is untouched by the crash: still held, not failed.
    expect(heldAnswered).toBe(false);
    expect(e.batcher.busy).toBe(1);

    e.testHooks.release();
    const h = await held;
    expect(h.status).toBe(200);
    const preds = h.json().predictions;
    expect(preds).toHaveLength(3);
    preds.forEach((p: any, i: number) => {
      expect(Math.abs(p.probabilities[0] - ref[2 * i]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
      expect(Math.abs(p.probabilities[1] - ref[2 * i + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
    });

    // And the engine serves again, on both workers once the replacement is warm.
    await waitFor(() => e.pool.isReady(), 'the replacement worker to be warm');
    expect(e.pool.stats()).toMatchObject({ size: 2, warm: 2, restarts: 1 });
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => postJson(e.port, { features: Array.from(makeRows(1, F, 100 + i)) })));
    for (const r of replies) expect(r.status).toBe(200);
    expect((await request(e.port, 'GET', '/monitoring/health/readiness')).status).toBe(200);
  });

  it('runs several workers, each warmed before readiness', async () => {
    engine = await startTestEngine({ WORKERS: '2' });
    expect(engine.pool.stats()).toMatchObject({ size: 2, warm: 2 });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => postJson(engine!.port, { features: Array.from(makeRows(1, F, i + 1)) })));
    for (const r of replies) expect(r.status).toBe(200);
  });
});
