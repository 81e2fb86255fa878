/**
 * A protocol client in Python (Debian's python3-requests and python3-numpy) that speaks the Open
 * Inference Protocol as tritonclient's HTTP client does, JSON and binary (test/fixtures/
 * oip_client.py), against a real engine: its answers equal /predict's for the same rows.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { makeRows, PROB_TOLERANCE, postJson, rowsToArrays, startTestEngine } from './helpers/engine';
import { REPO_ROOT, requirePython } from './helpers/requirements';

const F = 16;
const python = requirePython(['requests', 'numpy'], ['python3-requests', 'python3-numpy']);
let engine: Engine;

beforeAll(async () => {
  engine = await startTestEngine();
});

afterAll(async () => {
  await engine.shutdown('test end');
});

describe('a tritonclient-like Python client', () => {
  it.skipIf(python.skip)('checks health and metadata, infers JSON and binary equal to /predict, and reads errors', async () => {
    const rows = makeRows(6, F, 31);
    const arrays = rowsToArrays(rows, F);
    const want = (await postJson(engine.port, { instances: arrays })).json().predictions;
    // Asynchronous: the engine answers from this process's event loop.
    const run = await runClient(python.get(), engine.port, JSON.stringify({ rows: arrays }));
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout);
    expect([out.live, out.ready, out.model_ready]).toEqual([true, true, true]);
    expect(out.server.extensions).toContain('binary_tensor_data');
    expect(out.metadata.inputs[0].shape).toEqual([-1, F]);
    expect(out.config_max_batch_size).toBe(engine.config.maxBatchRows);
    for (const [key, r] of Object.entries<any>(out.results)) {
      expect(r.id).toBe('client-' + key);
      expect(r.model_name).toBe('ensemble');
      expect(r.label).toEqual(want.map((p: any) => p.class));
      r.probabilities.forEach((pair: number[], i: number) => {
        expect(Math.abs(pair[0]! - want[i].probabilities[0])).toBeLessThanOrEqual(PROB_TOLERANCE);
        expect(Math.abs(pair[1]! - want[i].probabilities[1])).toBeLessThanOrEqual(PROB_TOLERANCE);
      });
    }
    expect(out.label_only).toEqual({ outputs: ['label'], label: want.map((p: any) => p.class), probabilities: null });
    expect(out.errors.unknown_model).toEqual({ status: 404, message: expect.stringContaining('model "nope" is not served') });
    expect(out.errors.bad_shape).toEqual({ status: 400, message: expect.stringContaining('shape [6,3] is not [N, 16]') });
    expect(out.errors.bad_name.status).toBe(400);
    expect(out.stats).toBeGreaterThanOrEqual(6);
  });
});

function runClient(python: string, port: number, input: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [path.join(REPO_ROOT, 'test/fixtures/oip_client.py'), String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}
