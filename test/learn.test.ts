/**
 * POST /learn through the real engine: every feedback shape, prequential quality, the online
 * model serving what it learned (bit-identical to the learner run alone), auth, cold start and a
 * graceful restart that keeps the state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Engine } from '../src/app';
import type { FeedbackLog } from '../src/learning/feedback-log';
import { SgdLearner, validateSgdOptions } from '../src/learning/sgd';
import { PredictionStore } from '../src/learning/prediction-store';
import { makeRows, postJson, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
let engine: Engine | null = null;
const dirs: string[] = [];

function stateDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'tradeflow-learn-'));
  dirs.push(d);
  return d;
}

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function learn(port: number, body: unknown, headers: Record<string, string> = {}) {
  return request(port, 'POST', '/learn', JSON.stringify(body), { 'content-type': 'application/json', ...headers });
}

function referenceLearner(e: Engine): SgdLearner {
  return new SgdLearner(validateSgdOptions({ ...e.learning.learner.options }));
}

async function sgdModel(port: number): Promise<{ version: string; updates: number; weights: number[]; bias: number }> {
  return (await request(port, 'GET', '/models/sgd')).json();
}

describe('POST /learn', () => {
  it('takes features+label, instances+labels and id+label, and the sgd model learns them in order', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir() });
    const e = engine;
    const rows = makeRows(8, F, 5);
    const row = (i: number) => Array.from(rows.subarray(i * F, (i + 1) * F));
    const ref = referenceLearner(e);

    const a = await learn(e.port, { features: row(0), label: 1 });
    expect(a.status).toBe(202);
    expect(a.json()).toMatchObject({ accepted: 1, durable: true, sgd_updates: 1 });
    ref.learn(rows, 0, 1);

    const b = await learn(e.port, { instances: [row(1), row(2), row(3)], labels: [0, 1, 0] });
    expect(b.status).toBe(202);
    expect(b.json().accepted).toBe(3);
    ref.learn(rows, 1, 0);
    ref.learn(rows, 2, 1);
    ref.learn(rows, 3, 0);

    const p = await postJson(e.port, { features: row(4), id: 'trade-42' });
    expect(p.status).toBe(200);
    const c = await learn(e.port, { id: 'trade-42', label: 1 });
    expect(c.status).toBe(202);
    ref.learn(rows, 4, 1);

    const multi = await postJson(e.port, { instances: [row(5), row(6)], id: 'basket-7' });
    expect(multi.status).toBe(200);
    expect((await learn(e.port, { id: 'basket-7', label: 1 })).status).toBe(400);
    expect((await learn(e.port, { id: 'basket-7', labels: [0, 1] })).status).toBe(202);
    ref.learn(rows, 5, 0);
    ref.learn(rows, 6, 1);

    // The served online model equals the learner fed the same examples, bit for bit.
    const m = await sgdModel(e.port);
    expect(m.updates).toBe(7);
    expect(m.version).toBe('u7');
    const w = new Float64Array(F);
    const bias = ref.effectiveWeights(w);
    expect(m.weights).toEqual(Array.from(w));
    expect(m.bias).toBe(bias);

    // And the workers score with those weights.
    const s = await postJson(e.port, { features: row(7), model: 'sgd' });
    expect(s.status).toBe(200);
    expect(s.json().version).toBe('u7');
    expect(s.json().probabilities[1]).toBeCloseTo(ref.predictProba(rows, 7), 6);
  });

  it('records each model\'s prediction against the label before the row updates sgd (prequential)', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), QUALITY_MIN_OUTCOMES: '5' });
    const e = engine;
    const rows = makeRows(6, F, 9);
    const ref = referenceLearner(e);
    const expectedSgd: number[] = [];
    const labels = [1, 0, 1, 1, 0, 1] as const;
    for (let i = 0; i < 6; i++) {
      const p = ref.learn(rows, i, labels[i]);
      expectedSgd.push(p > 0.5 ? 1 : 0);
    }
    expect((await learn(e.port, { instances: rowsToArrays(rows, F), labels })).status).toBe(202);
    const sgdWindow = e.quality.get('sgd')!.metrics()!;
    const correct = expectedSgd.filter((c, i) => c === labels[i]).length;
    expect(sgdWindow.outcomes).toBe(6);
    expect(sgdWindow.accuracy).toBeCloseTo(correct / 6, 12);
    expect(e.quality.get('ensemble')!.metrics()!.outcomes).toBe(6);
    const text = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(text).toMatch(/ml_model_accuracy\{model_name="sgd"\} /);
    expect(text).toMatch(/ml_model_accuracy\{model_name="ensemble"\} /);
    expect(text).toContain('ml_online_updates_total{model_type="sgd"} 6');
    expect(text).toContain('ml_online_buffer_size{model_type="ensemble"} 6');
    expect(text).toMatch(/ml_drift_score\{detector_type="ddm"\} /);
    expect(text).toContain('ml_drift_detected_total{detector_type="adwin",severity="drift"} 0');
  });

  it('refuses bad feedback with clear errors', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), PREDICTION_ID_CAPACITY: '1' });
    const e = engine;
    const row = Array.from(makeRows(1, F, 1));
    const expectError = async (body: unknown, status: number, code: string, msg?: RegExp) => {
      const r = await learn(e.port, body);
      expect(r.status).toBe(status);
      expect(r.json().error.code).toBe(code);
      if (msg) expect(r.json().error.message).toMatch(msg);
    };
    await expectError({ features: row }, 400, 'INVALID_BODY', /label/);
    await expectError({ features: row, label: 2 }, 400, 'INVALID_BODY');
    await expectError({ instances: [row, row] }, 400, 'INVALID_BODY', /labels/);
    await expectError({ instances: [row, row], labels: [1] }, 400, 'INVALID_BODY', /one label per row/);
    await expectError({ features: row.slice(1), label: 1 }, 400, 'FEATURE_COUNT_MISMATCH');
    await expectError({ id: 'never-seen', label: 1 }, 404, 'PREDICTION_ID_NOT_FOUND');
    await expectError({ label: 1 }, 400, 'INVALID_BODY');
    const r = await request(e.port, 'POST', '/learn', 'x', { 'content-type': 'text/csv' });
    expect(r.status).toBe(415);
    expect((await request(e.port, 'GET', '/learn')).status).toBe(405);

    // PREDICTION_ID_CAPACITY=1: a second id evicts the first. (Expiry by TTL is the store's,
    // driven by its clock below: the engine's store keeps the wall clock.)
    expect((await postJson(e.port, { features: row, id: 'first' })).status).toBe(200);
    expect((await postJson(e.port, { features: row, id: 'second' })).status).toBe(200);
    await expectError({ id: 'first', label: 1 }, 404, 'PREDICTION_ID_NOT_FOUND', /evicted/);
    expect(e.learning.learner.updates).toBe(0);
    // One feedback per id: the second names an id already used.
    expect((await learn(e.port, { id: 'second', label: 1 })).status).toBe(202);
    await expectError({ id: 'second', label: 0 }, 404, 'PREDICTION_ID_NOT_FOUND');
    expect(e.learning.learner.updates).toBe(1);
  });

  it('with ADMIN_TOKEN set, needs the bearer token', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), ADMIN_TOKEN: 's3cret-token' });
    const row = Array.from(makeRows(1, F, 1));
    const none = await learn(engine.port, { features: row, label: 1 });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect((await learn(engine.port, { features: row, label: 1 }, { authorization: 'Bearer wrong' })).status).toBe(403);
    expect((await learn(engine.port, { features: row, label: 1 }, { authorization: 'Bearer s3cret-token' })).status).toBe(202);
    const drift = await request(engine.port, 'POST', '/monitoring/drift/reset');
    expect(drift.status).toBe(401);
  });

  it('answers 503 FEEDBACK_LOG_UNAVAILABLE (Retry-After) when a write of the feedback log fails, serves predictions meanwhile, and learns again after the roll-over', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir() });
    const e = engine;
    const row = Array.from(makeRows(1, F, 1));
    expect((await learn(e.port, { features: row, label: 1 })).status).toBe(202);
    // The log's descriptor is swapped for a read-only one, so its next write fails as a dying disk's would.
    const log = (e.learning as unknown as { log: FeedbackLog }).log;
    const inner = log as unknown as { fd: number };
    const writable = inner.fd;
    inner.fd = openSync(path.join(log.dir, readdirSync(log.dir).filter((f) => f.endsWith('.log')).sort().at(-1)!), 'r');
    closeSync(writable);
    const r = await learn(e.port, { features: row, label: 0 });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(r.json().error).toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE', message: expect.stringMatching(/feedback log .* could not write .*not acknowledged/) });
    expect(e.learning.learner.updates).toBe(1);
    expect((await postJson(e.port, { features: row })).status).toBe(200);
    // The next record rolls the log over to a fresh segment (a new descriptor) and is learned.
    expect((await learn(e.port, { features: row, label: 0 })).status).toBe(202);
    const drift = await request(e.port, 'POST', '/monitoring/drift/update?prediction=1&actual=0');
    expect(drift.status).toBe(200);
    expect(e.learning.learner.updates).toBe(2);
    expect(e.learning.stats().log).toMatchObject({ state: 'ok', faults: 1, rollovers: 1 });
  });

  it('says durable: false in the 202 when FEEDBACK_FSYNC=false (the record is not fsynced), true by default', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), FEEDBACK_FSYNC: 'false' });
    const row = Array.from(makeRows(1, F, 4));
    const r = await learn(engine.port, { features: row, label: 1 });
    expect(r.status).toBe(202);
    expect(r.json()).toEqual({ accepted: 1, durable: false, sgd_updates: 1 });
    expect(engine.learning.stats().log).toMatchObject({ appended: 1, fsyncs: 0 });
    await engine.shutdown('next');
    engine = await startTestEngine({ STATE_DIR: stateDir() });
    const d = await learn(engine.port, { features: row, label: 1 });
    expect(d.json()).toEqual({ accepted: 1, durable: true, sgd_updates: 1 });
    expect(engine.learning.stats().log).toMatchObject({ appended: 1, fsyncs: 1 });
  });

  it('takes exactly one feedback per prediction id, even when two arrive at once', async () => {
    // Each group of feedback waits 200 ms before its fsync, so both calls are inside the engine
    // before the first is durable: the window in which both used to be learned.
    engine = await startTestEngine({ STATE_DIR: stateDir(), FEEDBACK_COMMIT_INTERVAL_MS: '200' });
    const e = engine;
    for (let k = 0; k < 5; k++) {
      const id = `twice-${k}`;
      expect((await postJson(e.port, { features: Array.from(makeRows(1, F, 20 + k)), id })).status).toBe(200);
      const before = e.learning.learner.updates;
      const answers = await Promise.all([learn(e.port, { id, label: 1 }), learn(e.port, { id, label: 0 })]);
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).toEqual([202, 404]);
      expect(answers.find((a) => a.status === 404)!.json().error.code).toBe('PREDICTION_ID_NOT_FOUND');
      expect(e.learning.learner.updates).toBe(before + 1);
    }
  });

  it('keeps a prediction id for a retry when its feedback could not be made durable', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), FEEDBACK_MAX_PENDING_BYTES: '1024', FEEDBACK_COMMIT_INTERVAL_MS: '300' });
    const e = engine;
    const rows = makeRows(2, F, 31);
    expect((await postJson(e.port, { instances: rowsToArrays(rows, F), id: 'retry-me' })).status).toBe(200);
    // A large feedback fills the log's pending bytes for 300 ms, so the one by id is refused.
    const big = makeRows(14, F, 32);
    const filler = learn(e.port, { instances: rowsToArrays(big, F), labels: Array.from({ length: 14 }, () => 1) });
    await waitFor(() => (e.learning.stats().log as { pendingBytes: number }).pendingBytes > 0, 'the large feedback waiting for its fsync');
    const refused = await learn(e.port, { id: 'retry-me', labels: [1, 0] });
    expect(refused.status).toBe(503);
    expect((await filler).status).toBe(202);
    const retried = await learn(e.port, { id: 'retry-me', labels: [1, 0] });
    expect(retried.status).toBe(202);
    expect((await learn(e.port, { id: 'retry-me', labels: [1, 0] })).status).toBe(404);
  });

  it('keeps the learned state across a graceful restart', async () => {
    const dir = stateDir();
    engine = await startTestEngine({ STATE_DIR: dir });
    const rows = makeRows(20, F, 3);
    const labels = Array.from({ length: 20 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
    expect((await learn(engine.port, { instances: rowsToArrays(rows, F), labels })).status).toBe(202);
    const before = await sgdModel(engine.port);
    const qualityBefore = engine.quality.get('sgd')!.snapshot();
    await engine.shutdown('restart');
    engine = await startTestEngine({ STATE_DIR: dir });
    const after = await sgdModel(engine.port);
    expect(after).toEqual(before);
    expect(engine.quality.get('sgd')!.snapshot()).toEqual(qualityBefore);
    expect(engine.learning.replay.size).toBe(20);
  });
});

describe('PredictionStore (the ids /learn can name), on an injected clock', () => {
  const stored = (rows = 1) => ({ model: 'ensemble', version: 'v1', features: new Float32Array(rows * F), rows, p1: new Float32Array(rows), classes: new Uint8Array(rows) });
  const clockAt = (start: number) => {
    const c = { t: start, now: () => c.t };
    return c;
  };

  it('answers an id until its TTL has passed, then "expired" once, then "unknown"', () => {
    for (const start of [0, 1_700_000_000_000]) {
      const clock = clockAt(start);
      const s = new PredictionStore(10, 1000, clock.now);
      s.put('a', stored());
      expect(s.get('never-seen')).toBe('unknown');
      clock.t = start + 1000; // exactly the TTL: still known
      expect(s.get('a')).toMatchObject({ model: 'ensemble', version: 'v1', rows: 1, at: start });
      clock.t = start + 1001;
      expect(s.get('a')).toBe('expired');
      expect(s.get('a')).toBe('unknown');
      expect(s.size).toBe(0);
    }
  });

  it('restarts the TTL of an id stored again; lookups do not', () => {
    const clock = clockAt(5000);
    const s = new PredictionStore(10, 1000, clock.now);
    s.put('a', stored());
    s.put('b', stored());
    clock.t = 5900;
    s.put('a', stored(2));
    expect(s.get('b')).not.toBe('expired');
    clock.t = 6500;
    expect(s.get('b')).toBe('expired');
    expect(s.get('a')).toMatchObject({ rows: 2, at: 5900 });
    clock.t = 6901;
    expect(s.get('a')).toBe('expired');
  });

  it('evicts the oldest stored first, whatever was looked up, and forgets deleted ids', () => {
    const clock = clockAt(1);
    const s = new PredictionStore(2, 1000, clock.now);
    s.put('a', stored());
    s.put('b', stored());
    expect(s.get('a')).not.toBe('unknown'); // a lookup does not make 'a' younger
    s.put('c', stored());
    expect(s.size).toBe(2);
    expect(s.get('a')).toBe('unknown');
    expect(s.get('b')).not.toBe('unknown');
    s.put('b', stored()); // storing again does
    s.put('d', stored());
    expect(s.get('c')).toBe('unknown');
    expect(s.get('b')).not.toBe('unknown');
    s.delete('b');
    expect(s.get('b')).toBe('unknown');
    expect(s.size).toBe(1);
  });

  it('keeps nothing with capacity 0', () => {
    const s = new PredictionStore(0, 1000, clockAt(1).now);
    s.put('a', stored());
    expect(s.get('a')).toBe('unknown');
    expect(s.size).toBe(0);
    s.delete('a');
  });
});

describe('cold start', () => {
  it('serves and learns the online model alone with MODEL_PATH=none', async () => {
    engine = await startTestEngine({ STATE_DIR: stateDir(), MODEL_PATH: 'none', FEATURES: '7' });
    const e = engine;
    expect(e.models.list.map((m) => m.name)).toEqual(['sgd', 'arf']);
    expect((await request(e.port, 'GET', '/monitoring/health/readiness')).status).toBe(200);
    const rows = makeRows(3, 7, 2);
    const p = await postJson(e.port, { features: Array.from(rows.subarray(0, 7)), id: 'a' });
    expect(p.status).toBe(200);
    expect(p.json()).toMatchObject({ model: 'sgd', version: 'u0', probabilities: [0.5, 0.5], class: 0 });
    expect((await learn(e.port, { id: 'a', label: 1 })).status).toBe(202);
    expect((await learn(e.port, { instances: rowsToArrays(rows.subarray(7), 7), labels: [1, 0] })).status).toBe(202);
    const after = await postJson(e.port, { features: Array.from(rows.subarray(0, 7)) });
    expect(after.json().version).toBe('u3');
    expect(after.json().probabilities[1]).not.toBe(0.5);
    // The forest learned the same three rows.
    const forest = await postJson(e.port, { features: Array.from(rows.subarray(0, 7)), model: 'arf' });
    expect(forest.json()).toMatchObject({ model: 'arf', version: 'u3' });
    expect((await postJson(e.port, { features: [1, 2, 3] })).status).toBe(400);
  });
});
