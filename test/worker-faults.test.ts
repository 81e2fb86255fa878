/**
 * Worker faults (issue 12, defects 5 and 6) with real workers, onnxruntime and uWS. With the
 * default BATCHES_PER_WORKER=2 a worker holds a running batch and a waiting one: when it dies
 * only the running one fails, the waiting one is dispatched again; a batch that runs past
 * BATCH_TIMEOUT_MS gets its worker terminated and replaced.
 *
 * Timing comes from the test hooks, never from sleeps: a batch whose first feature is the hook
 * value is held (before it starts) until release(), so the second batch is surely waiting in the
 * same worker when the first one then crashes or hangs.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { DEFAULT_MODEL_PATH, PROB_TOLERANCE, makeRows, postJson, referenceProbabilities, request, rowsToArrays, startTestEngine, waitFor, type Reply } from './helpers/engine';

const F = 16;
const FAULT = 9191;
const HOOK_VARS = ['TRADEFLOW_TEST_CRASH_ON_FEATURE', 'TRADEFLOW_TEST_HOLD_ON_FEATURE', 'TRADEFLOW_TEST_HOLD_MS', 'TRADEFLOW_TEST_HANG_ON_FEATURE', 'TRADEFLOW_TEST_HANG_FIFO'];
let engine: Engine | null = null;
let fifoDir: string | null = null;

/**
 * Lets a thread blocked reading the FIFO go; false when nobody reads it (never blocks). Opening
 * the write end is what releases a reader blocked in open(); it may then be gone before the byte
 * is written (EPIPE), which is as good.
 */
function openFifo(fifo: string): boolean {
  let fd: number;
  try {
    fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    writeSync(fd, 'x');
  } catch {
    /* the reader already went */
  }
  closeSync(fd);
  return true;
}

afterEach(async () => {
  if (fifoDir) openFifo(path.join(fifoDir, 'hang'));
  if (engine) {
    engine.testHooks.release();
    await engine.shutdown('test end');
  }
  engine = null;
  if (fifoDir) rmSync(fifoDir, { recursive: true, force: true });
  fifoDir = null;
  for (const v of HOOK_VARS) delete process.env[v];
});

function hooks(vars: Record<string, string>): void {
  for (const [k, v] of Object.entries(vars)) process.env[k] = v;
}

/** Fails the test instead of waiting for ever on an answer that never comes (the defect). */
function answered(p: Promise<Reply>, what: string, ms = 30_000): Promise<Reply> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer to ${what} after ${ms} ms`)), ms).unref())]);
}

function expectRows(reply: Reply, ref: Float32Array): void {
  expect(reply.status).toBe(200);
  const preds = reply.json().predictions;
  expect(preds).toHaveLength(ref.length / 2);
  preds.forEach((p: any, i: number) => {
    expect(Math.abs(p.probabilities[0] - ref[2 * i]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
    expect(Math.abs(p.probabilities[1] - ref[2 * i + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
  });
}

/**
 * Puts a faulty batch (first feature FAULT, held before it starts) and then a good one into the
 * only worker, releases the faulty one, and returns both answers' promises and the good rows'
 * reference probabilities.
 */
async function faultyThenWaiting(e: Engine, secondFaulty = false): Promise<{ faulty: Promise<Reply>; waiting: Promise<Reply>; ref: Float32Array }> {
  const faultyRows = makeRows(2, F, 7);
  faultyRows[0] = FAULT;
  const faulty = postJson(e.port, { instances: rowsToArrays(faultyRows, F) });
  await waitFor(() => e.batcher.busy === 1, 'the faulty batch held in the worker');
  const waitingRows = makeRows(3, F, 8);
  if (secondFaulty) waitingRows[0] = FAULT;
  const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, waitingRows, F);
  const waiting = postJson(e.port, { instances: rowsToArrays(waitingRows, F) });
  await waitFor(() => e.batcher.busy === 2, 'the second batch waiting in the same worker');
  e.testHooks.release();
  return { faulty: answered(faulty, 'the faulty batch'), waiting: answered(waiting, 'the waiting batch'), ref };
}

async function metricsText(e: Engine): Promise<string> {
  return (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
}

describe('worker faults', () => {
  it('a worker that dies fails only the batch it was running: the batch waiting in it is dispatched again and answered', async () => {
    hooks({ TRADEFLOW_TEST_CRASH_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_MS: '600000' });
    engine = await startTestEngine({ WORKERS: '1', BATCHES_PER_WORKER: '2' });
    const e = engine;
    const { faulty, waiting, ref } = await faultyThenWaiting(e);
    const crashed = await faulty;
    expect(crashed.status).toBe(500);
    expect(crashed.json().error.code).toBe('WORKER_FAILED');
    expect(crashed.json().error.message).toMatch(/worker/);
    expectRows(await waiting, ref);
    await waitFor(() => e.pool.stats().restarts === 1, 'the restart to be counted');
    expect(e.pool.stats().faults).toEqual({ redispatched: 1, timeouts: 0, stuck: 0, restarts: { crash: 1, timeout: 0 } });
    const metrics = await metricsText(e);
    expect(metrics).toMatch(/^ml_worker_restarts_total\{reason="crash"\} 1$/m);
    expect(metrics).toMatch(/^ml_worker_restarts_total\{reason="timeout"\} 0$/m);
  });

  it('a batch that kills every worker it runs in fails once it has run, instead of going round for ever', async () => {
    hooks({ TRADEFLOW_TEST_CRASH_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_MS: '600000' });
    engine = await startTestEngine({ WORKERS: '1', BATCHES_PER_WORKER: '2' });
    const e = engine;
    // Both batches crash their worker: the second waits in the first's worker, is dispatched
    // again to the replacement, runs there and kills it too.
    const { faulty, waiting } = await faultyThenWaiting(e, true);
    for (const r of [await faulty, await waiting]) {
      expect(r.status).toBe(500);
      expect(r.json().error.code).toBe('WORKER_FAILED');
    }
    await waitFor(() => e.pool.stats().restarts === 2, 'both restarts to be counted');
    expect(e.pool.stats().faults).toMatchObject({ redispatched: 1, restarts: { crash: 2, timeout: 0 } });
    await waitFor(() => e.pool.isReady(), 'the second replacement to be warm');
    expect((await postJson(e.port, { features: Array.from(makeRows(1, F, 9)) })).status).toBe(200);
    expect(e.pool.stats().restarts).toBe(2);
  });

  it('a batch that hangs past BATCH_TIMEOUT_MS fails with 500 BATCH_TIMEOUT; its worker is terminated and replaced; the batch waiting behind it is answered', async () => {
    hooks({ TRADEFLOW_TEST_HANG_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_MS: '600000' });
    // Far above a batch of this model; the hang never ends by itself, so any bound would do.
    engine = await startTestEngine({ WORKERS: '1', BATCHES_PER_WORKER: '2', BATCH_TIMEOUT_MS: '1000', HEALTH_RESTART_WINDOW_S: '3600' });
    const e = engine;
    const threadsBefore = e.pool.stats().threadIds;
    const { faulty, waiting, ref } = await faultyThenWaiting(e);
    const timedOut = await faulty;
    expect(timedOut.status).toBe(500);
    expect(timedOut.json().error.code).toBe('BATCH_TIMEOUT');
    expect(timedOut.json().error.message).toMatch(/1000 ms/);
    // The waiting batch sat in the hung worker as long as the hung one ran, and longer than the
    // timeout: it is timed from its own start, so it is run again rather than failed.
    expectRows(await waiting, ref);
    await waitFor(() => e.pool.stats().restarts === 1, 'the restart to be counted');
    // terminate() interrupted the Atomics.wait: the thread exited, it was not abandoned.
    expect(e.pool.stats().faults).toEqual({ redispatched: 1, timeouts: 1, stuck: 0, restarts: { crash: 0, timeout: 1 } });
    await waitFor(() => e.pool.isReady(), 'the replacement worker to be warm');
    expect(e.pool.stats().threadIds).not.toEqual(threadsBefore);
    const health = (await request(e.port, 'GET', '/monitoring/health')).json();
    expect(health.components.model).toMatchObject({ status: 'degraded', worker_restarts_recent: 1 });
    expect(health.components.model.reasons.join(' ')).toMatch(/restart/);
    const metrics = await metricsText(e);
    expect(metrics).toMatch(/^ml_worker_restarts_total\{reason="timeout"\} 1$/m);
    expect(metrics).toMatch(/^ml_worker_restarts_total\{reason="crash"\} 0$/m);
    expect((await request(e.port, 'GET', '/monitoring/health/readiness')).status).toBe(200);
    expect((await postJson(e.port, { features: Array.from(makeRows(1, F, 10)) })).status).toBe(200);
  });

  it('a worker stuck in a native call that terminate() cannot interrupt is abandoned one BATCH_TIMEOUT_MS later and replaced', async () => {
    fifoDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-fifo-'));
    const fifo = path.join(fifoDir, 'hang');
    execFileSync('mkfifo', [fifo]);
    hooks({ TRADEFLOW_TEST_HANG_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HANG_FIFO: fifo, TRADEFLOW_TEST_HOLD_ON_FEATURE: String(FAULT), TRADEFLOW_TEST_HOLD_MS: '600000' });
    engine = await startTestEngine({ WORKERS: '1', BATCHES_PER_WORKER: '2', BATCH_TIMEOUT_MS: '1000', HEALTH_RESTART_WINDOW_S: '1' });
    const e = engine;
    const { faulty, waiting, ref } = await faultyThenWaiting(e);
    const timedOut = await faulty;
    expect(timedOut.status).toBe(500);
    expect(timedOut.json().error.code).toBe('BATCH_TIMEOUT');
    expectRows(await waiting, ref);
    expect(e.pool.stats().faults).toMatchObject({ redispatched: 1, timeouts: 1, stuck: 1 });
    await waitFor(() => e.pool.isReady(), 'the replacement worker to be warm');
    expect(e.pool.stats().faults.restarts).toEqual({ crash: 0, timeout: 1 });
    expect((await postJson(e.port, { features: Array.from(makeRows(1, F, 11)) })).status).toBe(200);
    // The restart ages out of its window; the stuck thread does not, since it is still there.
    await waitFor(() => e.pool.stats().restartsRecent === 0, 'the restart to age out of its window');
    const model = (await request(e.port, 'GET', '/monitoring/health')).json().components.model;
    expect(model).toMatchObject({ status: 'degraded', workers_stuck: 1, worker_restarts_recent: 0 });
    expect(model.reasons.join(' ')).toMatch(/stuck/);
    // The abandoned thread is still blocked in its read: let it go, so this process can exit.
    expect(openFifo(fifo)).toBe(true);
  });
});
