/**
 * SERVE_POLICY=champion through a real engine: outcomes on which the ensemble is wrong and sgd
 * learns to be right make sgd the champion; requests naming no model then get sgd (JSON and binary
 * answers say so), requests naming a model still get it, the metrics show exactly one champion,
 * GET /models says why, and feedback by id on sgd's answer counts against sgd while the ensemble
 * is still scored on it, durably (the ensemble's scores are in the feedback log).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { decodeRecord, encodeRecord } from '../src/learning/feedback-record';
import { stopChild, type Child } from '../bench/lib/procs';
import { serveProcess } from './helpers/engine-process';
import { makeRows, postBinary, postJson, request, rowsToArrays, startTestEngine, waitFor } from './helpers/engine';

const F = 16;
let engine: Engine | null = null;
const children: Child[] = [];
const dirs: string[] = [];

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
  for (const c of children.splice(0)) await stopChild(c, 0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The engine as a process of its own, so it can be killed with SIGKILL (as test/durability.test.ts). */
function serve(stateDir: string, env: Record<string, string>): Promise<{ child: Child; port: number }> {
  return serveProcess(children, { WORKERS: '1', STATE_DIR: stateDir, ...env });
}

function championGauges(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^ml_model_champion\{model_name="([^"]+)"\} (\S+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

function counter(text: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

/** Correct outcomes in a model's window (accuracy × outcomes, exact: both are counts). */
function correct(e: Engine, model: string): number {
  const w = e.quality.get(model)!;
  return Math.round(w.accuracy * w.outcomes);
}

// These streams are built for two candidates, the ensemble and sgd; the forest (ARF_ENABLED, on by
// default) is a third, whose candidacy test/arf-engine.test.ts covers.
const TWO_CANDIDATES = { ARF_ENABLED: 'false' };

describe('SERVE_POLICY=champion', () => {
  it('routes requests naming no model to the champion, names it, and attributes feedback by id to it', async () => {
    engine = await startTestEngine({ ...TWO_CANDIDATES, SERVE_POLICY: 'champion', CHAMPION_MARGIN: '0.2', QUALITY_WINDOW: '1000', QUALITY_MIN_OUTCOMES: '50' });
    const e = engine;
    const rows = makeRows(600, F, 21);
    const answers = (await postJson(e.port, { instances: rowsToArrays(rows, F), model: 'ensemble' })).json().predictions.map((p: any) => p.class);
    // Rows the ensemble calls DOWN, labelled UP: the ensemble is wrong on each, sgd learns "UP".
    const picked: number[][] = [];
    for (let i = 0; i < answers.length; i++) if (answers[i] === 0) picked.push(Array.from(rows.subarray(i * F, (i + 1) * F)));
    expect(picked.length, 'enough rows the ensemble calls DOWN').toBeGreaterThan(120);
    const before = (await request(e.port, 'GET', '/models')).json().champion;
    expect(before).toMatchObject({ policy: 'champion', model: 'ensemble', switches: 0, margin: 0.2, window: 1000, min_outcomes: 50 });
    expect(before.reason).toMatch(/QUALITY_MIN_OUTCOMES/);
    const metrics0 = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(championGauges(metrics0)).toEqual({ ensemble: 1, sgd: 0 });
    expect(counter(metrics0, 'ml_champion_switches_total')).toBe(0);

    const train = picked.slice(0, picked.length - 20);
    const r = await request(e.port, 'POST', '/learn', JSON.stringify({ instances: train, labels: train.map(() => 1) }), { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    expect(e.quality.get('ensemble')!.accuracy).toBe(0);
    expect(e.quality.get('sgd')!.accuracy).toBeGreaterThan(0.8);

    const models = (await request(e.port, 'GET', '/models')).json();
    expect(models.champion).toMatchObject({ policy: 'champion', model: 'sgd', switches: 1 });
    expect(models.champion.reason).toMatch(/sgd led ensemble/);
    expect(models.champion.candidates.map((c: any) => [c.name, c.outcomes, c.qualified])).toEqual([
      ['ensemble', train.length, true],
      ['sgd', train.length, true],
    ]);
    const metrics1 = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(championGauges(metrics1)).toEqual({ ensemble: 0, sgd: 1 });
    expect(counter(metrics1, 'ml_champion_switches_total')).toBe(1);

    // The default route answers with sgd, JSON and binary; a named model is still that model.
    const row = picked.at(-1)!;
    const json = (await postJson(e.port, { features: row })).json();
    expect(json.model).toBe('sgd');
    expect(json.version).toBe(`u${e.learning.learner.updates}`);
    const bin = await postBinary(e.port, Float32Array.from(row));
    expect(bin.headers['x-model-name']).toBe('sgd');
    expect(bin.headers['x-model-version']).toBe(`u${e.learning.learner.updates}`);
    expect((await postJson(e.port, { features: row, model: 'ensemble' })).json().model).toBe('ensemble');
    expect((await postJson(e.port, { features: row }, { 'x-model': 'ensemble' })).json().model).toBe('ensemble');
    expect((await postBinary(e.port, Float32Array.from(row), { 'x-model': 'ensemble' })).headers['x-model-name']).toBe('ensemble');

    // Feedback by id on the champion's answer: sgd is scored with the answers it gave (right where
    // it said UP), the ensemble is scored on the same rows (DOWN, wrong), each exactly once.
    const ids = picked.slice(-20);
    const given: number[] = [];
    for (let k = 0; k < ids.length; k++) {
      const p = (await postJson(e.port, { features: ids[k], id: `order-${k}` })).json();
      expect(p.model).toBe('sgd');
      given.push(p.class);
    }
    const up = given.filter((c) => c === 1).length;
    expect(up, 'sgd has learned to say UP').toBeGreaterThan(10);
    const sgdBefore = { n: e.quality.get('sgd')!.outcomes, ok: correct(e, 'sgd') };
    const ensBefore = { n: e.quality.get('ensemble')!.outcomes, ok: correct(e, 'ensemble') };
    for (let k = 0; k < ids.length; k++) {
      const l = await request(e.port, 'POST', '/learn', JSON.stringify({ id: `order-${k}`, label: 1 }), { 'content-type': 'application/json' });
      expect(l.status).toBe(202);
    }
    expect(e.quality.get('sgd')!.outcomes).toBe(sgdBefore.n + ids.length);
    expect(correct(e, 'sgd')).toBe(sgdBefore.ok + up);
    expect(e.quality.get('ensemble')!.outcomes).toBe(ensBefore.n + ids.length);
    expect(correct(e, 'ensemble')).toBe(ensBefore.ok);
    const metrics2 = (await request(e.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(Object.values(championGauges(metrics2)).filter((v) => v === 1)).toHaveLength(1);
  });

  it('replays the ensemble\'s scores of feedback by id from the log after kill -9: the same windows and champion', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-champion-kill9-'));
    dirs.push(dir);
    // No checkpoint before the kill: the restarted state comes from the log alone.
    const env = { ...TWO_CANDIDATES, SERVE_POLICY: 'champion', CHAMPION_MARGIN: '0.2', QUALITY_MIN_OUTCOMES: '50', CHECKPOINT_INTERVAL_S: '0' };
    const first = await serve(dir, env);
    const rows = makeRows(600, F, 23);
    const answers = (await postJson(first.port, { instances: rowsToArrays(rows, F), model: 'ensemble' })).json().predictions.map((p: any) => p.class);
    const picked: number[][] = [];
    for (let i = 0; i < answers.length; i++) if (answers[i] === 0) picked.push(Array.from(rows.subarray(i * F, (i + 1) * F)));
    const train = picked.slice(0, -20);
    expect((await request(first.port, 'POST', '/learn', JSON.stringify({ instances: train, labels: train.map(() => 1) }), { 'content-type': 'application/json' })).status).toBe(202);
    for (let k = 0; k < 20; k++) {
      expect((await postJson(first.port, { features: picked[train.length + k], id: `o-${k}` })).json().model).toBe('sgd');
      expect((await request(first.port, 'POST', '/learn', JSON.stringify({ id: `o-${k}`, label: k % 2 }), { 'content-type': 'application/json' })).status).toBe(202);
    }
    const before = (await request(first.port, 'GET', '/models')).json().champion;
    expect(before.candidates.map((c: any) => c.outcomes)).toEqual([train.length + 20, train.length + 20]);
    first.child.proc.kill('SIGKILL');
    await first.child.exitPromise;
    const second = await serve(dir, env);
    const after = (await request(second.port, 'GET', '/models')).json().champion;
    expect(after.candidates).toEqual(before.candidates);
    expect(after.model).toBe('sgd');
    await stopChild(second.child, 15_000);
  });

  it('keeps the other models\' predictions in the feedback record, and reads records without them as before', () => {
    const features = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const served = { model: 'sgd', classes: Uint8Array.of(1, 0), p1: Float32Array.of(0.75, 0.25) };
    const other = { model: 'ensemble', classes: Uint8Array.of(0, 0), p1: Float32Array.of(0.125, 0.375) };
    const withOthers = decodeRecord(encodeRecord({ kind: 'feedback', rows: 2, features, labels: Uint8Array.of(1, 1), served, others: [other] }, 3), 3);
    expect(withOthers).toEqual({ kind: 'feedback', rows: 2, features, labels: Uint8Array.of(1, 1), served, others: [other] });
    const plain = encodeRecord({ kind: 'feedback', rows: 2, features, labels: Uint8Array.of(1, 1), served }, 3);
    expect(plain[1]).toBe(1);
    expect(decodeRecord(plain, 3)).toEqual({ kind: 'feedback', rows: 2, features, labels: Uint8Array.of(1, 1), served });
    const cut = encodeRecord({ kind: 'feedback', rows: 2, features, labels: Uint8Array.of(1, 1), served, others: [other] }, 3).subarray(0, -1);
    expect(() => decodeRecord(cut, 3)).toThrow(/malformed/);
  });

  it('SERVE_POLICY=fixed keeps the ensemble on the default route whatever the windows say', async () => {
    engine = await startTestEngine({ ...TWO_CANDIDATES, SERVE_POLICY: 'fixed', QUALITY_MIN_OUTCOMES: '20' });
    const e = engine;
    const rows = makeRows(300, F, 22);
    const answers = (await postJson(e.port, { instances: rowsToArrays(rows, F) })).json().predictions.map((p: any) => p.class);
    const r = await request(e.port, 'POST', '/learn', JSON.stringify({ instances: rowsToArrays(rows, F), labels: answers.map((c: number) => 1 - c) }), { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    expect(e.quality.get('ensemble')!.accuracy).toBe(0);
    expect((await postJson(e.port, { features: Array.from(rows.subarray(0, F)) })).json().model).toBe('ensemble');
    const models = (await request(e.port, 'GET', '/models')).json();
    expect(models.champion).toMatchObject({ policy: 'fixed', model: 'ensemble', switches: 0 });
    expect(championGauges((await request(e.port, 'GET', '/monitoring/metrics')).body.toString())).toEqual({ ensemble: 1, sgd: 0 });
  });
});
