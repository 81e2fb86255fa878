import { describe, expect, it } from 'vitest';
import { PredictionCache } from '../src/cache/prediction-cache';
import { QualityWindow } from '../src/learning/quality-window';
import { apiHealth, modelHealth } from '../src/telemetry/health';
import { Telemetry } from '../src/telemetry/metrics';
import { RecentWindow } from '../src/telemetry/recent-window';


describe('QualityWindow', () => {
  it('reports nothing until it holds the minimum number of outcomes', () => {
    const w = new QualityWindow(10, 4);
    w.add(1, 1);
    w.add(0, 0);
    w.add(1, 0);
    expect(w.metrics()).toBeNull();
    w.add(0, 1);
    expect(w.metrics()).toEqual({ outcomes: 4, accuracy: 0.5, precision: 0.5, recall: 0.5, f1: 0.5 });
  });

  it('slides: only the latest `capacity` outcomes count', () => {
    const w = new QualityWindow(3, 1);
    for (let i = 0; i < 10; i++) w.add(0, 1); // all wrong
    w.add(1, 1);
    w.add(1, 1);
    w.add(0, 0);
    expect(w.metrics()).toEqual({ outcomes: 3, accuracy: 1, precision: 1, recall: 1, f1: 1 });
  });

  it('gives precision and recall 0 when class UP never appears', () => {
    const w = new QualityWindow(5, 1);
    w.add(0, 0);
    expect(w.metrics()).toMatchObject({ accuracy: 1, precision: 0, recall: 0, f1: 0 });
  });
});

describe('quality gauges', () => {
  it('are absent until a model has enough outcomes, then exported per model', async () => {
    const w = new QualityWindow(100, 3);
    // Sources not given read as empty (the engine's parts register theirs as they start).
    const t = new Telemetry({
      quality: () => {
        const q = w.metrics();
        return q ? [{ model: 'ensemble', ...q }] : [];
      },
    });
    expect(await t.scrape()).not.toMatch(/ml_model_accuracy/);
    w.add(1, 1);
    w.add(1, 0);
    w.add(0, 0);
    const text = await t.scrape();
    expect(text).toContain('ml_model_accuracy{model_name="ensemble"} 0.6666666666666666');
    expect(text).toContain('ml_model_precision{model_name="ensemble"} 0.5');
    expect(text).toContain('ml_model_recall{model_name="ensemble"} 1');
    expect(text).toMatch(/ml_model_f1_score\{model_name="ensemble"\} 0\.666/);
    await t.close();
  });
});

describe('PredictionCache', () => {
  it('keys rows by their exact float32 bytes, model and version', () => {
    const c = new PredictionCache(10, 1);
    const rows = new Float32Array([1, 2, 3, 1, 2, 3.0000002]);
    const k0 = c.key(0, 'v1', rows, 0, 3);
    const k1 = c.key(0, 'v1', rows, 1, 3);
    expect(k0).not.toBe(k1);
    expect(c.key(1, 'v1', rows, 0, 3)).not.toBe(k0);
    expect(c.key(0, 'v2', rows, 0, 3)).not.toBe(k0);
    expect(c.key(0, 'v1', new Float32Array([1, 2, 3]), 0, 3)).toBe(k0);
  });

  it('drops a model\'s entries when its version changes, and keeps other models\'', () => {
    const c = new PredictionCache(10, 1);
    const rows = new Float32Array([1, 2, 3]);
    c.onVersion(0, 'v1');
    c.onVersion(1, 'w1');
    c.set(c.key(0, 'v1', rows, 0, 3), 0.4, 0.6, 1);
    c.set(c.key(1, 'w1', rows, 0, 3), 0.7, 0.3, 0);
    c.onVersion(0, 'v1');
    expect(c.stats().size).toBe(2);
    c.onVersion(0, 'v2');
    expect(c.stats().size).toBe(1);
    expect(c.get(c.key(0, 'v1', rows, 0, 3))).toBeUndefined();
    expect(c.get(c.key(1, 'w1', rows, 0, 3))).toEqual({ p0: 0.7, p1: 0.3, cls: 1 - 1 });
  });

  it('counts evictions when full', () => {
    const c = new PredictionCache(2, 1);
    for (let i = 0; i < 5; i++) c.set(`k${i}`, 0.5, 0.5, 0);
    expect(c.stats()).toMatchObject({ size: 2, evictions: 3 });
  });
});

describe('RecentWindow', () => {
  it('keeps the last 60 s of answers and forgets older ones', () => {
    let now = 1_000_000;
    const w = new RecentWindow(() => now);
    for (let i = 0; i < 19; i++) w.record(200, 0.0004);
    w.record(503, 2);
    expect(w.stats()).toMatchObject({ requests: 20, serverErrors: 1, errorRatio: 0.05, p95Seconds: 0.0005 });
    now += 61_000;
    expect(w.stats()).toMatchObject({ requests: 0, serverErrors: 0, p95Seconds: null });
  });
});

describe('health rules', () => {
  it('api: degraded at 5% server errors, unhealthy at 50%, degraded when p95 is over 1 s', () => {
    const base = { windowSeconds: 60, requests: 100, serverErrors: 0, errorRatio: 0, p95Seconds: 0.001 };
    expect(apiHealth(base).status).toBe('healthy');
    expect(apiHealth({ ...base, serverErrors: 5, errorRatio: 0.05 }).status).toBe('degraded');
    expect(apiHealth({ ...base, serverErrors: 50, errorRatio: 0.5 }).status).toBe('unhealthy');
    expect(apiHealth({ ...base, p95Seconds: 2.5 }).status).toBe('degraded');
    expect(apiHealth({ ...base, requests: 3, serverErrors: 3, errorRatio: 1 }).status).toBe('healthy');
  });

  it('model: unhealthy with no warm worker, degraded while restarting, with a stuck worker thread or when the queue is nearly full', () => {
    const base = { modelsLoaded: 1, workers: 2, workersWarm: 2, workerRestartsRecent: 0, restartWindowSeconds: 60, workersStuck: 0, queueRows: 0, queueLimit: 100, draining: false };
    expect(modelHealth(base).status).toBe('healthy');
    expect(modelHealth({ ...base, workersWarm: 0 }).status).toBe('unhealthy');
    expect(modelHealth({ ...base, modelsLoaded: 0 }).status).toBe('unhealthy');
    expect(modelHealth({ ...base, workersWarm: 1 }).status).toBe('degraded');
    expect(modelHealth({ ...base, workerRestartsRecent: 1 }).status).toBe('degraded');
    expect(modelHealth({ ...base, workersStuck: 1 }).status).toBe('degraded');
    expect(modelHealth({ ...base, queueRows: 80 }).status).toBe('degraded');
  });
});
