import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Engine } from '../src/app';
import { request, startTestEngine } from './helpers/engine';

let engine: Engine | null = null;
const dirs: string[] = [];

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const update = (port: number, q: string) => request(port, 'POST', `/monitoring/drift/update?${q}`);

describe('drift endpoints', () => {
  it('feeds outcomes, reports every detector, counts drifts, and resets', async () => {
    engine = await startTestEngine({ DRIFT_DETECTORS: 'ddm,page_hinkley' });
    const e = engine;
    const status0 = (await request(e.port, 'GET', '/monitoring/drift/status')).json();
    expect(Object.keys(status0.detectors)).toEqual(['ddm', 'page_hinkley']);
    expect(status0.detectors.ddm).toMatchObject({ state: 'stable', samples: 0, warnings: 0, drifts: 0, params: { warm_start: 30, warning_threshold: 2, drift_threshold: 3 } });

    // 100 right answers, then wrong ones until DDM signals drift.
    for (let i = 0; i < 100; i++) expect((await update(e.port, 'prediction=1&actual=1&proba=0.9')).status).toBe(200);
    let last: any = null;
    for (let i = 0; i < 200 && (last === null || last.detectors.ddm.state !== 'drift'); i++) last = (await update(e.port, 'prediction=1&actual=0')).json();
    expect(last.detectors.ddm.state).toBe('drift');
    const status = (await request(e.port, 'GET', '/monitoring/drift/status')).json();
    expect(status.detectors.ddm.drifts).toBe(1);
    expect(typeof status.detectors.ddm.lastDriftAt).toBe('string');
    const metrics = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metrics).toContain('ml_drift_detected_total{detector_type="ddm",severity="drift"} 1');
    expect(metrics).toMatch(/ml_drift_score\{detector_type="page_hinkley"\} [0-9.e-]+/);

    const reset = await request(e.port, 'POST', '/monitoring/drift/reset');
    expect(reset.status).toBe(200);
    expect(reset.json().status.detectors.ddm).toMatchObject({ state: 'stable', samples: 0, drifts: 0 });
  });

  it('validates the query with 400 and a reason', async () => {
    engine = await startTestEngine();
    for (const [q, why] of [
      ['actual=1', /prediction/],
      ['prediction=1', /actual/],
      ['prediction=2&actual=0', /prediction.*0 or 1/],
      ['prediction=1&actual=1&proba=1.5', /proba/],
      ['prediction=1&actual=1&proba=abc', /proba/],
    ] as const) {
      const r = await update(engine.port, q);
      expect(r.status, q).toBe(400);
      expect(r.json().error.code).toBe('INVALID_QUERY');
      expect(r.json().error.message).toMatch(why);
    }
    expect((await request(engine.port, 'GET', '/monitoring/drift/update')).status).toBe(405);
  });

  it('keeps detector state across a restart (outcomes are logged like feedback)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-drift-'));
    dirs.push(dir);
    engine = await startTestEngine({ STATE_DIR: dir, CHECKPOINT_INTERVAL_S: '0' });
    for (let i = 0; i < 40; i++) await update(engine.port, `prediction=1&actual=${i % 4 === 0 ? 0 : 1}`);
    const before = (await request(engine.port, 'GET', '/monitoring/drift/status')).json();
    await engine.shutdown('restart');
    engine = await startTestEngine({ STATE_DIR: dir });
    const after = (await request(engine.port, 'GET', '/monitoring/drift/status')).json();
    expect(after.outcomes).toBe(40);
    for (const d of Object.keys(before.detectors)) {
      expect(after.detectors[d].samples).toBe(before.detectors[d].samples);
      expect(after.detectors[d].statistic).toBe(before.detectors[d].statistic);
    }
  });
});
