/**
 * Queueing behaviour of the micro-batcher through the real engine. A test hook holds the worker
 * on a chosen batch until the test releases it, so "while the worker is busy" is a state the test
 * controls rather than a race against the machine's speed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import type { Engine } from '../src/app';
import { makeRows, postBinary, postJson, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
const HOLD = 4242;
let engine: Engine | null = null;

afterEach(async () => {
  if (engine) {
    engine.testHooks.release();
    await engine.shutdown('test end');
  }
  engine = null;
  delete process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE;
});

/**
 * One batch in flight per worker: "the worker is busy" then means "the next rows wait in the
 * batcher", which is what these tests look at (with the default two, one more batch would wait
 * inside the held worker instead).
 */
async function startHeld(env: Record<string, string> = {}): Promise<Engine> {
  process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
  engine = await startTestEngine({ BATCHES_PER_WORKER: '1', ...env });
  return engine;
}

function heldRow(): number[] {
  const row = Array.from(makeRows(1, F, 3));
  row[0] = HOLD;
  return row;
}

describe('micro-batcher', () => {
  it('gathers rows that arrive while the worker is busy into one batch', async () => {
    const e = await startHeld();
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const before = e.batcher.stats();
    const n = 40;
    const rows = makeRows(n, F, 8);
    const replies = Array.from({ length: n }, (_, i) => postJson(e.port, { features: Array.from(rows.subarray(i * F, (i + 1) * F)) }));
    await waitFor(() => e.batcher.depth === n, 'all rows queued');
    e.testHooks.release();
    expect((await held).status).toBe(200);
    for (const r of await Promise.all(replies)) expect(r.status).toBe(200);
    const after = e.batcher.stats();
    // The 40 rows that waited behind the held batch went out together (within MAX_QUEUE_DELAY_US
    // sealing they may form a few batches, but never one per request).
    expect(after.batches - before.batches).toBeLessThan(n / 4);
    expect(after.rowsComputed - before.rowsComputed).toBe(n);
  });

  it('answers 503 with Retry-After at once when the queue is full', async () => {
    const e = await startHeld({ MAX_QUEUE_ROWS: '8' });
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const waiting = postBinary(e.port, makeRows(6, F, 1));
    await waitFor(() => e.batcher.depth === 6, 'six rows queued');
    const full = await postBinary(e.port, makeRows(3, F, 2));
    expect(full.status).toBe(503);
    expect(full.headers['retry-after']).toBe('1');
    expect(JSON.parse(full.body.toString()).error.code).toBe('QUEUE_FULL');
    // Two more rows still fit.
    const fits = postBinary(e.port, makeRows(2, F, 3));
    await waitFor(() => e.batcher.depth === 8, 'eight rows queued');
    e.testHooks.release();
    expect((await held).status).toBe(200);
    expect((await waiting).status).toBe(200);
    expect((await fits).status).toBe(200);
    // A request larger than the whole queue can never fit.
    const tooBig = await postBinary(e.port, makeRows(9, F, 4));
    expect(tooBig.status).toBe(503);
  });

  it('takes rows up to MAX_QUEUE_ROWS exactly, in batches that grow while the worker is busy', async () => {
    // Default batch and queue settings: 256-row batches, 16,384 waiting rows.
    const e = await startHeld();
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const rows = makeRows(64, F, 12);
    const waiting = Array.from({ length: 256 }, () => postBinary(e.port, rows));
    await waitFor(() => e.batcher.depth === 16384, 'the queue to hold 16,384 rows', 60_000);
    const over = await postBinary(e.port, rows);
    expect(over.status).toBe(503);
    expect(JSON.parse(over.body.toString()).error.code).toBe('QUEUE_FULL');
    e.testHooks.release();
    expect((await held).status).toBe(200);
    for (const r of await Promise.all(waiting)) expect(r.status).toBe(200);
  });

  it('answers 504 to a request whose deadline passes in the queue, and does not compute it', async () => {
    const e = await startHeld();
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const rowsBefore = e.batcher.stats().rowsComputed;
    const late = await postJson(e.port, { instances: rowsToArrays(makeRows(5, F, 6), F) }, { 'x-request-timeout-ms': '20' });
    expect(late.status).toBe(504);
    expect(late.json().error.code).toBe('DEADLINE_EXCEEDED');
    e.testHooks.release();
    expect((await held).status).toBe(200);
    await waitFor(() => e.batcher.busy === 0 && e.batcher.depth === 0, 'the queue to empty');
    // The held row was dispatched before the snapshot; the expired request's rows never were.
    expect(e.batcher.stats().rowsComputed - rowsBefore).toBe(0);
    expect(e.batcher.stats().requestsExpired).toBe(1);
  });

  it('does not compute a request whose client disconnected before dispatch', async () => {
    const e = await startHeld();
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const rowsBefore = e.batcher.stats().rowsComputed;
    const body = JSON.stringify({ instances: rowsToArrays(makeRows(7, F, 9), F) });
    const sock = net.connect(e.port, '127.0.0.1');
    await new Promise<void>((resolve) => sock.on('connect', () => resolve()));
    sock.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitFor(() => e.batcher.depth === 7, 'the seven rows to be queued');
    sock.destroy();
    await waitFor(() => e.batcher.stats().requestsAborted === 1, 'the engine to notice the disconnect');
    const alsoQueued = postJson(e.port, { features: Array.from(makeRows(1, F, 10)) });
    await waitFor(() => e.batcher.depth === 8, 'another row queued');
    e.testHooks.release();
    expect((await held).status).toBe(200);
    expect((await alsoQueued).status).toBe(200);
    await waitFor(() => e.batcher.busy === 0 && e.batcher.depth === 0, 'the queue to empty');
    // Only the live row was computed after the snapshot; the aborted request's 7 rows were not.
    expect(e.batcher.stats().rowsComputed - rowsBefore).toBe(1);
    expect(e.batcher.stats().requestsDropped).toBe(1);
  });

  it('with two batches per worker (the default), sends the next batch to the busy worker and queues the rest', async () => {
    process.env.TRADEFLOW_TEST_HOLD_ON_FEATURE = String(HOLD);
    engine = await startTestEngine();
    const e = engine;
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const second = postJson(e.port, { features: Array.from(makeRows(1, F, 21)) });
    await waitFor(() => e.batcher.busy === 2, 'a second batch waiting inside the worker');
    const third = postBinary(e.port, makeRows(3, F, 22));
    await waitFor(() => e.batcher.depth === 3, 'the third request queued in the batcher');
    e.testHooks.release();
    for (const r of await Promise.all([held, second, third])) expect(r.status).toBe(200);
  });

  it('keeps answering health checks while predictions wait', async () => {
    const e = await startHeld();
    const held = postJson(e.port, { features: heldRow() });
    await waitFor(() => e.batcher.busy === 1, 'the held batch to be in flight');
    const live = await request(e.port, 'GET', '/monitoring/health/liveness');
    const ready = await request(e.port, 'GET', '/monitoring/health/readiness');
    expect(live.status).toBe(200);
    expect(ready.status).toBe(200);
    expect(ready.json().queue.in_flight_batches).toBe(1);
    e.testHooks.release();
    expect((await held).status).toBe(200);
  });
});
