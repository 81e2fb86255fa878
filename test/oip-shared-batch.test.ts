/**
 * Same engine underneath: a row from /predict and a row from the protocol's infer wait in the
 * same batch behind a batch held in the worker (src/pool/testing-hooks.ts), are computed
 * together, and the statistics extension counts that one batch of two rows.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Reply } from './helpers/engine';
import type { Engine } from '../src/app';
import { makeRows, postJson, request, startTestEngine, waitFor } from './helpers/engine';
import { F, postInfer } from './helpers/oip';

const HOLD = 4242.5;
let engine: Engine;

beforeAll(async () => {
  process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
  // One batch in flight per worker, and a partial batch that keeps taking rows while it is busy.
  engine = await startTestEngine({ MAX_QUEUE_ROWS: '8', BATCHES_PER_WORKER: '1', CACHE_CAPACITY: '0', MAX_QUEUE_DELAY_US: '10000000', TRADEFLOW_TEST_HOLD_MS: '600000' });
});

afterAll(async () => {
  engine.testHooks.release();
  await engine.shutdown('test end');
  delete process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE;
});

it('puts a /predict row and a /v2 infer row in one batch', async () => {
  const e = engine;
  const input = (await request(e.port, 'GET', '/v2/models/ensemble')).json().inputs[0].name;
  const held = Array.from(makeRows(1, F, 1));
  held[0] = HOLD;
  const first = postJson(e.port, { features: held });
  await waitFor(() => e.batcher.busy === 1, 'the held batch in flight');
  const predict = postJson(e.port, { features: Array.from(makeRows(1, F, 2)) });
  const infer = postInfer(e.port, '/v2/models/ensemble/infer', { inputs: [{ name: input, datatype: 'FP32', shape: [1, F], data: Array.from(makeRows(1, F, 3)) }] });
  await waitFor(() => e.batcher.depth === 2, 'both rows queued');
  const before = e.batcher.stats();
  e.testHooks.release();
  for (const r of await Promise.all([first, predict, infer])) expect(r.status).toBe(200);
  expect(e.batcher.stats().batches - before.batches).toBe(1);
  const stats = (await request(e.port, 'GET', '/v2/models/ensemble/stats')).json().model_stats[0];
  expect(stats.batch_stats.find((b: any) => b.batch_size === 2)?.compute_infer.count).toBe(1);
});

it('answers 504 past the deadline and 503 with Retry-After when the queue is full, in the protocol shape', async () => {
  const e = engine;
  const input = (await request(e.port, 'GET', '/v2/models/ensemble')).json().inputs[0].name;
  const body = (rows: number): Record<string, unknown> => ({ inputs: [{ name: input, datatype: 'FP32', shape: [rows, F], data: Array.from(makeRows(rows, F, 5)) }] });
  const held = Array.from(makeRows(1, F, 1));
  held[0] = HOLD;
  e.testHooks.arm();
  const first = postJson(e.port, { features: held });
  await waitFor(() => e.batcher.busy === 1, 'the held batch in flight');
  const late: Reply = await postInfer(e.port, '/v2/models/ensemble/infer', body(1), { 'x-request-timeout-ms': '50' });
  expect(late.status).toBe(504);
  expect(late.json()).toEqual({ error: 'the request waited in the queue past its deadline and was not computed' });
  const full = await postInfer(e.port, '/v2/models/ensemble/infer', body(9));
  expect(full.status).toBe(503);
  expect(full.headers['retry-after']).toBe('1');
  expect(full.json().error).toMatch(/prediction queue is full/);
  e.testHooks.release();
  expect((await first).status).toBe(200);
});
