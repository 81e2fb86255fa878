/**
 * Acknowledged feedback survives `kill -9` of the engine process: after a restart on the same
 * state directory every acknowledged example is in the state, and the online model's weights
 * equal those of an uninterrupted learner given the same examples in the same order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SgdLearner, validateSgdOptions, type SgdOptions } from '../src/learning/sgd';
import { stopChild, type Child } from '../bench/lib/procs';
import { serveProcess } from './helpers/engine-process';
import { makeRows, request, rowsToArrays, waitFor } from './helpers/engine';

const F = 16;
const ROWS_PER_REQUEST = 8;
const children: Child[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) await stopChild(c, 0);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function serve(stateDir: string, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  return serveProcess(children, { STATE_DIR: stateDir, CHECKPOINT_INTERVAL_S: '1', ...env });
}

describe('durability', () => {
  it('keeps every acknowledged example across kill -9, with the weights of an uninterrupted run', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-kill9-'));
    dirs.push(dir);
    const total = 400;
    const rows = makeRows(total * ROWS_PER_REQUEST, F, 77);
    const labels = Array.from({ length: total * ROWS_PER_REQUEST }, (_, i) => ((i * 2654435761) >>> 0) % 5 < 2 ? 1 : 0);
    const body = (k: number) =>
      JSON.stringify({
        instances: rowsToArrays(rows.subarray(k * ROWS_PER_REQUEST * F, (k + 1) * ROWS_PER_REQUEST * F), F),
        labels: labels.slice(k * ROWS_PER_REQUEST, (k + 1) * ROWS_PER_REQUEST),
      });

    const first = await serve(dir);
    const options = (await request(first.port, 'GET', '/models/sgd')).json().options as SgdOptions;
    // One sender, so the log order is the send order; kill -9 once enough are acknowledged,
    // whatever is in flight at that moment (checkpoints run every second meanwhile).
    let acked = 0;
    let stop = false;
    const sender = (async () => {
      for (let k = 0; k < total && !stop; k++) {
        const r = await request(first.port, 'POST', '/learn', body(k), { 'content-type': 'application/json' }).catch(() => null);
        if (!r) return;
        expect(r.status).toBe(202);
        acked++;
      }
    })();
    await waitFor(() => acked >= 150, '150 acknowledged requests', 60_000);
    first.child.proc.kill('SIGKILL');
    stop = true;
    await sender;
    await first.child.exitPromise;

    const second = await serve(dir);
    const m = (await request(second.port, 'GET', '/models/sgd')).json();
    const applied = m.updates / ROWS_PER_REQUEST;
    // Every acknowledged request is there; at most the one in flight at the kill may be too.
    expect(Number.isInteger(applied)).toBe(true);
    expect(applied).toBeGreaterThanOrEqual(acked);
    expect(applied).toBeLessThanOrEqual(acked + 1);

    const ref = new SgdLearner(validateSgdOptions(options));
    for (let i = 0; i < applied * ROWS_PER_REQUEST; i++) ref.learn(rows, i, labels[i] as 0 | 1);
    const w = new Float64Array(F);
    const bias = ref.effectiveWeights(w);
    expect(m.weights).toEqual(Array.from(w));
    expect(m.bias).toBe(bias);

    // The restarted engine goes on learning from there.
    const more = await request(second.port, 'POST', '/learn', body(applied), { 'content-type': 'application/json' });
    expect(more.status).toBe(202);
    await stopChild(second.child, 15_000);
  });
});
