/**
 * Overload: ten times the rate the engine sustains, for 30 s. Every answer is 200, 503 with
 * Retry-After (queue full) or 504 (deadline), memory stays bounded, and the engine serves normally
 * again as soon as the load drops.
 *
 * The model is a deliberately heavy MLP, so the engine's capacity (a few hundred 64-row requests a
 * second here) is far below what the load generator in this process can offer: the overload is
 * the engine's, not the client's. The sustainable rate is measured first, in the same run.
 */
import autocannon from 'autocannon';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, stopEngine, type EngineProc } from '../../bench/lib/engine-proc';
import { FEATURE_NAMES } from '../../src/training/features';
import { writeEnsembleOnnx } from '../../src/training/onnx-writer';
import { makeRows, postJson, request, waitFor } from '../helpers/engine';

const F = 16;
const ROWS = 64;
const OVERLOAD_S = 30;
/** Bound on the engine's resident memory under overload (its slab alone is about 60 MiB here). */
const RSS_BOUND_BYTES = 1024 * 1024 * 1024;

function heavyModel(hidden: number): Uint8Array {
  let s = 11;
  const rnd = (scale: number): number => (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1) * scale;
  return writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: { mean: new Float64Array(F), std: new Float64Array(F).fill(1) },
    mlp: {
      features: F,
      hidden,
      w1: Float64Array.from({ length: F * hidden }, () => rnd(0.5)),
      b1: Float64Array.from({ length: hidden }, () => rnd(0.1)),
      w2: Float64Array.from({ length: hidden }, () => rnd(1 / Math.sqrt(hidden))),
      b2: 0,
    },
  });
}

function bodies(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const rows = makeRows(ROWS, F, i + 1);
    const instances: number[][] = [];
    for (let r = 0; r < ROWS; r++) instances.push(Array.from(rows.subarray(r * F, (r + 1) * F), (v) => Math.round(v * 1e6) / 1e6));
    out.push(JSON.stringify({ instances }));
  }
  return out;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function load(port: number, opts: { connections: number; duration: number; overallRate?: number }, reqs: string[]): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${port}/predict`,
    connections: opts.connections,
    duration: opts.duration,
    ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
    timeout: 20,
    requests: reqs.map((body) => ({ method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' }, body })),
  });
}

const statusCounts = (r: autocannon.Result): Record<string, number> =>
  Object.fromEntries(Object.entries(r.statusCodeStats as Record<string, { count: number }>).map(([k, v]) => [k, v.count]));

describe('overload', () => {
  let engine: EngineProc | null = null;
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-overload-'));
  afterAll(async () => {
    if (engine) await stopEngine(engine);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers only 200, 503 with Retry-After or 504 at 10x the sustainable rate, stays bounded and recovers', async () => {
    const model = path.join(dir, 'heavy.onnx');
    writeFileSync(model, heavyModel(65536));
    engine = await startEngine('overload', { MODEL_PATH: model, MAX_QUEUE_ROWS: '2048', REQUEST_TIMEOUT_MS: '2000', CACHE_CAPACITY: '0' }, dir);
    const reqs = bodies(64);

    const base = await load(engine.port, { connections: 4, duration: 3 }, reqs);
    const sustainable = base.requests.average;
    expect(base.non2xx).toBe(0);
    expect(sustainable).toBeGreaterThan(0);

    let peakRss = 0;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssOf(engine!.child.proc.pid!));
    }, 250);
    const probes: Array<Promise<{ status: number; retryAfter: string | undefined }>> = [];
    const prober = setInterval(() => {
      probes.push(postJson(engine!.port, JSON.parse(reqs[probes.length % reqs.length]!)).then((r) => ({ status: r.status, retryAfter: r.headers['retry-after'] as string | undefined })));
    }, 500);
    const over = await load(engine.port, { connections: 256, duration: OVERLOAD_S, overallRate: Math.ceil(10 * sustainable) }, reqs);
    clearInterval(prober);
    clearInterval(sampler);
    const stoppedAt = Date.now();

    const counts = statusCounts(over);
    const offered = over.requests.total / OVERLOAD_S;
    console.log(
      `overload: sustainable ${sustainable.toFixed(0)} req/s of ${ROWS} rows; offered ${offered.toFixed(0)} req/s for ${OVERLOAD_S} s; ` +
        `answers ${JSON.stringify(counts)}, socket errors ${over.errors}, timeouts ${over.timeouts}; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`,
    );
    // The load really was an overload: far more offered than sustained, and the queue refused some.
    expect(offered).toBeGreaterThan(8 * sustainable);
    expect(counts['503'] ?? 0).toBeGreaterThan(0);
    for (const code of Object.keys(counts)) expect(['200', '503', '504'], `status ${code}`).toContain(code);
    expect(over.errors).toBe(0);
    expect(over.timeouts).toBe(0);
    const answered = await Promise.all(probes);
    for (const p of answered) {
      expect([200, 503, 504]).toContain(p.status);
      if (p.status === 503) expect(p.retryAfter).toBe('1');
    }
    expect(peakRss).toBeGreaterThan(0);
    expect(peakRss).toBeLessThan(RSS_BOUND_BYTES);

    // Recovery: the queue empties and a request is served, then a short closed-loop run is all 200.
    await waitFor(async () => (await request(engine!.port, 'GET', '/monitoring/health/readiness')).json().queue.rows === 0, 'the queue to empty', 10_000);
    await waitFor(async () => (await postJson(engine!.port, JSON.parse(reqs[0]!))).status === 200, 'a request to be served after the overload', 10_000);
    const recoveredMs = Date.now() - stoppedAt;
    const after = await load(engine.port, { connections: 4, duration: 2 }, reqs);
    console.log(`overload: served again ${recoveredMs} ms after the load stopped; then ${after.requests.average.toFixed(0)} req/s (before: ${sustainable.toFixed(0)})`);
    expect(after.non2xx).toBe(0);
    expect(after.requests.total).toBeGreaterThan(0);
    expect((await request(engine.port, 'GET', '/monitoring/health/liveness')).status).toBe(200);
  });
});
