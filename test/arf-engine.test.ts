/**
 * The forest in a real engine: served as `arf` from the workers, learned from /learn in log
 * order, scored on every outcome (its quality gauges), and durable: after `kill -9` the
 * checkpoint plus the log replay give the forest of an uninterrupted run given the same rows (the
 * same answers to the last bit, the same shape and adaptations), and so does a graceful restart.
 * A checkpoint written before the forest existed (schema 1) still loads, the forest starting empty.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AdaptiveRandomForest, type ArfOptions } from '../src/learning/arf/forest';
import { decodeCheckpoint, encodeCheckpoint } from '../src/learning/checkpoint';
import { stopChild, type Child } from '../bench/lib/procs';
import { serveProcess } from './helpers/engine-process';
import { makeRows, request, rowsToArrays, waitFor } from './helpers/engine';

const F = 16;
const ROWS_PER_REQUEST = 8;
const PROBE = 12;
const children: Child[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) await stopChild(c, 0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function serve(stateDir: string, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  return serveProcess(children, { WORKERS: '1', STATE_DIR: stateDir, CHECKPOINT_INTERVAL_S: '1', ...env });
}

/** A learnable concept with a flip half-way, so trees split and some get replaced. */
function labelsFor(rows: Float32Array, n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    const up = rows[i * F]! + rows[i * F + 1]! > 0;
    return (i < n / 2 ? up : !up) ? 1 : 0;
  });
}

async function arfAnswers(port: number, probe: Float32Array): Promise<{ version: string; p: number[][] }> {
  const r = await request(port, 'POST', '/predict', JSON.stringify({ instances: rowsToArrays(probe, F), model: 'arf' }), { 'content-type': 'application/json' });
  expect(r.status).toBe(200);
  const j = r.json();
  // Answers print the shortest digits that read back to the float32: fround recovers its exact value.
  return { version: j.version, p: j.predictions.map((x: { probabilities: number[] }) => x.probabilities.map((v) => Math.fround(v))) };
}

function reference(options: ArfOptions, rows: Float32Array, labels: number[], n: number, probe: Float32Array): { forest: AdaptiveRandomForest; p: number[][] } {
  const forest = new AdaptiveRandomForest(options);
  for (let i = 0; i < n; i++) forest.learn(rows, i * F, labels[i] as 0 | 1);
  const p: number[][] = [];
  for (let r = 0; r < PROBE; r++) {
    const p1 = Math.fround(forest.predict(probe, r * F));
    p.push([Math.fround(1 - p1), p1]);
  }
  return { forest, p };
}

describe('arf in the engine', () => {
  it('after kill -9 and after a graceful restart: the forest of an uninterrupted run, to the last bit', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-arf-kill9-'));
    dirs.push(dir);
    const total = 400;
    const rows = makeRows(total * ROWS_PER_REQUEST, F, 91);
    const labels = labelsFor(rows, 300 * ROWS_PER_REQUEST);
    const probe = makeRows(PROBE, F, 5);
    const body = (k: number) =>
      JSON.stringify({
        instances: rowsToArrays(rows.subarray(k * ROWS_PER_REQUEST * F, (k + 1) * ROWS_PER_REQUEST * F), F),
        labels: labels.slice(k * ROWS_PER_REQUEST, (k + 1) * ROWS_PER_REQUEST),
      });

    const first = await serve(dir);
    const listed = (await request(first.port, 'GET', '/models')).json();
    expect(JSON.stringify(listed)).toContain('"arf"');
    const cold = await arfAnswers(first.port, probe);
    expect(cold.version).toBe('u0');
    for (const p of cold.p) expect(p).toEqual([0.5, 0.5]);
    const options = (await request(first.port, 'GET', '/models/arf')).json().options as ArfOptions;
    let acked = 0;
    let stop = false;
    const sender = (async () => {
      for (let k = 0; k < 290 && !stop; k++) {
        const r = await request(first.port, 'POST', '/learn', body(k), { 'content-type': 'application/json' }).catch(() => null);
        if (!r) return;
        expect(r.status).toBe(202);
        acked++;
      }
    })();
    await waitFor(() => acked >= 200, '200 acknowledged requests', 90_000);
    // The kill lands after a checkpoint with the forest in it, so the restart is checkpoint + replay.
    const written = async () => ((await request(first.port, 'GET', '/monitoring/system/info')).json().learning.checkpoints.last_seq as number) > 0;
    await waitFor(written, 'a checkpoint with the forest in it', 30_000, 50);
    first.child.proc.kill('SIGKILL');
    stop = true;
    await sender;
    await first.child.exitPromise;

    const second = await serve(dir);
    const recovery = (await request(second.port, 'GET', '/monitoring/system/info')).json().learning.recovery;
    expect(recovery.checkpointSeq).toBeGreaterThan(0);
    const m = (await request(second.port, 'GET', '/models/arf')).json();
    const applied = m.rows_learned / ROWS_PER_REQUEST;
    expect(Number.isInteger(applied)).toBe(true);
    expect(applied).toBeGreaterThanOrEqual(acked);
    expect(applied).toBeLessThanOrEqual(acked + 1);
    const ref = reference(options, rows, labels, applied * ROWS_PER_REQUEST, probe);
    expect(m).toMatchObject({ nodes: ref.forest.shape().nodes, warnings: ref.forest.warnings, trees_replaced: ref.forest.replaced });
    expect(ref.forest.shape().nodes).toBeGreaterThan(options.trees); // the trees did split
    const after = await arfAnswers(second.port, probe);
    expect(after.version).toBe('u' + applied * ROWS_PER_REQUEST);
    expect(after.p).toEqual(ref.p);
    // Scored on every outcome: its quality gauges are exported.
    const metrics = (await request(second.port, 'GET', '/monitoring/metrics')).body.toString();
    expect(metrics).toMatch(/ml_model_accuracy\{[^}]*model_name="arf"[^}]*\} [0-9.]+/);

    await stopChild(second.child, 15_000);
    const third = await serve(dir);
    expect(await arfAnswers(third.port, probe)).toEqual(after);
    await stopChild(third.child, 15_000);
  }, 180_000);

  it('starts from a checkpoint of schema 1 (no forest): sgd as it was, the forest empty', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-arf-schema1-'));
    dirs.push(dir);
    const rows = makeRows(16, F, 3);
    const first = await serve(dir);
    const r = await request(first.port, 'POST', '/learn', JSON.stringify({ instances: rowsToArrays(rows, F), labels: labelsFor(rows, 16) }), { 'content-type': 'application/json' });
    expect(r.status).toBe(202);
    await stopChild(first.child, 15_000);
    // Rewrite the checkpoint as an engine before the forest wrote it.
    const file = path.join(dir, 'learning.checkpoint');
    const cp = decodeCheckpoint<Record<string, unknown>>(readFileSync(file), file);
    expect(cp.schema).toBe(2);
    delete cp.arf;
    cp.schema = 1;
    writeFileSync(file, encodeCheckpoint(cp));
    const second = await serve(dir);
    expect((await request(second.port, 'GET', '/models/sgd')).json().updates).toBe(16);
    expect((await request(second.port, 'GET', '/models/arf')).json().rows_learned).toBe(0);
    // The Open Inference Protocol serves it too, named as what it is.
    const meta = (await request(second.port, 'GET', '/v2/models/arf')).json();
    expect(meta).toMatchObject({ name: 'arf', platform: 'tradeflow_arf', versions: ['u0'] });
    const infer = await request(second.port, 'POST', '/v2/models/arf/infer', JSON.stringify({ inputs: [{ name: meta.inputs[0].name, shape: [1, F], datatype: 'FP32', data: Array.from(rows.subarray(0, F)) }] }), { 'content-type': 'application/json' });
    expect(infer.status).toBe(200);
    expect(infer.json()).toMatchObject({ model_name: 'arf', model_version: 'u0' });
    await stopChild(second.child, 15_000);
  }, 120_000);
});
