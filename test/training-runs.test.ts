/**
 * Training runs through the real engine: POST /train → a run in a worker thread over the replay
 * buffer → promoted through the hot swap or refused; counters, duration and timestamp; one run
 * at a time; the schedule and the drift trigger.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { makeRows, postJson, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
let engine: Engine | null = null;

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
});

/** Rows with a learnable label: UP when a fixed linear score of the first features is positive. */
function labelled(n: number, seed: number): { rows: Float32Array; labels: number[] } {
  const rows = makeRows(n, F, seed);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) labels.push(rows[i * F]! - 0.5 * rows[i * F + 1]! + 0.25 * rows[i * F + 2]! > 0 ? 1 : 0);
  return { rows, labels };
}

async function feed(port: number, rows: Float32Array, labels: number[]): Promise<void> {
  for (let i = 0; i < labels.length; i += 200) {
    const r = await request(port, 'POST', '/learn', JSON.stringify({ instances: rowsToArrays(rows.subarray(i * F, Math.min(labels.length, i + 200) * F), F), labels: labels.slice(i, i + 200) }), { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
  }
}

async function finished(port: number, id: string): Promise<any> {
  let run: any = null;
  await waitFor(async () => {
    run = (await request(port, 'GET', `/train/${id}`)).json();
    return run.status !== 'running';
  }, `training run ${id} to finish`, 120_000);
  return run;
}

function metric(text: string, line: RegExp): number | null {
  const m = line.exec(text);
  return m ? Number(m[1]) : null;
}

describe('training runs', () => {
  it('trains on the buffer, promotes through the hot swap, counts, times and timestamps the run', async () => {
    engine = await startTestEngine({ TRAIN_MARGIN: '1' });
    const e = engine;
    const before = e.models.get('ensemble').version;
    const { rows, labels } = labelled(1200, 5);
    await feed(e.port, rows, labels);
    const r = await request(e.port, 'POST', '/train');
    expect(r.status).toBe(202);
    const { id } = r.json();
    expect(r.headers.location).toBe(`/train/${id}`);
    const run = await finished(e.port, id);
    expect(run).toMatchObject({ id, trigger: 'api', status: 'promoted', rows: 1200, train_rows: 960, holdout_rows: 240 });
    expect(run.candidate.metrics.accuracy).toBeGreaterThan(0.8);
    expect(run.serving.version).toBe(before);
    expect(typeof run.serving.metrics.accuracy).toBe('number');
    expect(e.models.get('ensemble').version).toBe(run.promoted_version);
    const p = await postJson(e.port, { features: Array.from(rows.subarray(0, F)), model: 'ensemble' });
    expect(p.json().version).toBe(run.promoted_version);
    const text = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metric(text, /ml_training_runs_total\{model_type="ensemble",status="success"\} (\S+)/)).toBe(1);
    expect(metric(text, /ml_training_runs_total\{model_type="ensemble",status="failure"\} (\S+)/)).toBe(0);
    expect(metric(text, /ml_training_duration_seconds_count\{model_type="ensemble"\} (\S+)/)).toBe(1);
    const ts = metric(text, /ml_last_training_timestamp\{model_type="ensemble"\} (\S+)/)!;
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(600);
    const versions = (await request(e.port, 'GET', '/models/ensemble')).json().versions;
    expect(versions.find((v: any) => v.serving).card.training_run).toBe(id);
  });

  it('refuses a candidate that is worse than the serving model by more than the margin', async () => {
    engine = await startTestEngine({ TRAIN_MARGIN: '0' });
    const e = engine;
    const before = e.models.get('ensemble').version;
    // The holdout (the most recent 20%: rows 480..599) is labelled with the serving model's own
    // answers, so the serving model is right on every holdout row. The training rows carry the
    // opposite labels: the candidate learns the inverse of the serving model and gets the
    // holdout wrong. Training is seeded, so the outcome is the same on every run.
    const rows = makeRows(600, F, 9);
    const answers: number[] = (await postJson(e.port, { instances: rowsToArrays(rows, F), model: 'ensemble' })).json().predictions.map((p: any) => p.class);
    const holdoutAnswers = answers.slice(480);
    expect(new Set(holdoutAnswers).size, 'the holdout has both classes').toBe(2);
    const labels = answers.map((c, i) => (i < 480 ? 1 - c : c));
    await feed(e.port, rows, labels);
    const run = await finished(e.port, (await request(e.port, 'POST', '/train')).json().id);
    expect(run).toMatchObject({ status: 'rejected', rows: 600, train_rows: 480, holdout_rows: 120 });
    expect(run.serving.version).toBe(before);
    expect(run.serving.metrics.accuracy).toBe(1);
    expect(run.candidate.metrics.accuracy).toBeLessThan(0.5);
    expect(run.reason).toMatch(/margin/);
    expect(e.models.get('ensemble').version).toBe(before);
    expect((await postJson(e.port, { features: Array.from(rows.subarray(0, F)), model: 'ensemble' })).json().version).toBe(before);
    // Forced, the same candidate is promoted whatever the comparison says.
    const forced = await finished(e.port, (await request(e.port, 'POST', '/train', JSON.stringify({ force: true }), { 'content-type': 'application/json' })).json().id);
    expect(forced.status).toBe('promoted');
    expect(e.models.get('ensemble').version).not.toBe(before);
  });

  it('runs one at a time (409), refuses too small a buffer, and validates the body', async () => {
    engine = await startTestEngine();
    const e = engine;
    const small = await finished(e.port, (await request(e.port, 'POST', '/train')).json().id);
    expect(small.status).toBe('failed');
    expect(small.reason).toMatch(/rows/);
    const { rows, labels } = labelled(800, 6);
    await feed(e.port, rows, labels);
    const [a, b] = await Promise.all([request(e.port, 'POST', '/train'), request(e.port, 'POST', '/train')]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([202, 409]);
    const conflict = a.status === 409 ? a : b;
    expect(conflict.json().error.code).toBe('TRAINING_IN_PROGRESS');
    await finished(e.port, (a.status === 202 ? a : b).json().id);
    expect((await request(e.port, 'POST', '/train', '{"force":"yes"}', { 'content-type': 'application/json' })).status).toBe(400);
    expect((await request(e.port, 'GET', '/train/not-a-run')).status).toBe(404);
    const list = (await request(e.port, 'GET', '/train')).json().runs;
    expect(list.length).toBe(2);
    const text = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metric(text, /ml_training_runs_total\{model_type="ensemble",status="failure"\} (\S+)/)).toBe(1);
  });

  it('trains on a schedule once the buffer holds enough rows', async () => {
    engine = await startTestEngine({ TRAIN_INTERVAL: '200ms', TRAIN_MIN_ROWS: '300', TRAIN_MARGIN: '1' });
    const e = engine;
    const { rows, labels } = labelled(400, 7);
    await feed(e.port, rows, labels);
    await waitFor(async () => (await request(e.port, 'GET', '/train')).json().runs.some((r: any) => r.trigger === 'schedule' && r.status !== 'running'), 'a scheduled run', 120_000);
    const run = (await request(e.port, 'GET', '/train')).json().runs.find((r: any) => r.trigger === 'schedule' && r.status !== 'running');
    expect(run.status).toBe('promoted');
    expect(run.rows).toBeGreaterThanOrEqual(300);
  });

  it('retrains on the rows seen since a drift of the chosen detector', async () => {
    engine = await startTestEngine({ TRAIN_ON_DRIFT: 'ddm', TRAIN_DRIFT_MIN_ROWS: '120', TRAIN_MIN_ROWS: '50', TRAIN_MARGIN: '1', DRIFT_DETECTORS: 'ddm' });
    const e = engine;
    const rows = makeRows(500, F, 11);
    const answers: number[] = (await postJson(e.port, { instances: rowsToArrays(rows, F), model: 'ensemble' })).json().predictions.map((p: any) => p.class);
    // The ensemble is right on the first 200 rows, then wrong: DDM signals drift.
    const labels = answers.map((c, i) => (i < 200 ? c : 1 - c));
    await feed(e.port, rows.subarray(0, 300 * F), labels.slice(0, 300));
    expect((await request(e.port, 'GET', '/monitoring/drift/status')).json().detectors.ddm.drifts).toBeGreaterThanOrEqual(1);
    await feed(e.port, rows.subarray(300 * F), labels.slice(300));
    await waitFor(async () => (await request(e.port, 'GET', '/train')).json().runs.some((r: any) => r.trigger === 'drift' && r.status !== 'running'), 'a drift-triggered run', 120_000);
    const run = (await request(e.port, 'GET', '/train')).json().runs.find((r: any) => r.trigger === 'drift');
    expect(run.status).toBe('promoted');
    expect(run.rows).toBeLessThan(500);
    expect(run.rows).toBeGreaterThanOrEqual(120);
  });

  it('on a stream whose concept changed, the candidate trained on the recent window wins the holdout', async () => {
    engine = await startTestEngine({ TRAIN_RECENT_ROWS: '400', TRAIN_MARGIN: '1' });
    const e = engine;
    // 2,000 rows: the first 1,200 labelled by one linear rule, the last 800 by its opposite.
    // The time-ordered holdout is rows 1,600..1,999 (new concept); the recent window is rows
    // 1,200..1,599 (new concept too); the whole training part is mostly the old concept.
    const { rows, labels } = labelled(2000, 12);
    const changed = labels.map((c, i) => (i < 1200 ? c : 1 - c));
    await feed(e.port, rows, changed);
    const run = await finished(e.port, (await request(e.port, 'POST', '/train')).json().id);
    expect(run).toMatchObject({ status: 'promoted', rows: 2000, train_rows: 1600, holdout_rows: 400 });
    expect(run.candidates.map((c: any) => [c.window, c.first_row, c.rows])).toEqual([
      ['recent', 1200, 400],
      ['all', 0, 1600],
    ]);
    const [recent, all] = run.candidates;
    expect(recent.metrics.accuracy).toBeGreaterThan(0.85);
    expect(all.metrics.accuracy).toBeLessThan(recent.metrics.accuracy - 0.2);
    expect(run.candidate.metrics).toEqual(recent.metrics);
    const card = (await request(e.port, 'GET', '/models/ensemble')).json().versions.find((v: any) => v.serving).card;
    expect(card.trainer.candidates.map((c: any) => c.window)).toEqual(['recent', 'all']);
    expect(card.trainer.training_window).toMatch(/most recent 400 training rows \(from row 1200\)/);
  });

  it('on a stream that did not change, the whole buffer stays the candidate (a recent window is only chosen when better)', async () => {
    engine = await startTestEngine({ TRAIN_RECENT_ROWS: '100', TRAIN_MARGIN: '1' });
    const e = engine;
    const { rows, labels } = labelled(1500, 13);
    await feed(e.port, rows, labels);
    const run = await finished(e.port, (await request(e.port, 'POST', '/train')).json().id);
    expect(run.candidates.map((c: any) => c.window)).toEqual(['all', 'recent']);
    expect(run.candidate.metrics).toEqual(run.candidates[0].metrics);
    expect(run.candidates[0].metrics.accuracy).toBeGreaterThanOrEqual(run.candidates[1].metrics.accuracy);
  });
});
