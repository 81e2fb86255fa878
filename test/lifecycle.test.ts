/**
 * The engine as an operator runs it: the built `tradeflow serve` in its own process, started,
 * refused, and stopped with SIGTERM while it still has work.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeRows, postJson, request, waitFor } from './helpers/engine';

const CLI = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
const F = 16;
const HOLD = 31337;
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Served {
  child: ChildProcess;
  port: number;
  logs: () => string;
  exited: Promise<number | null>;
}

function serve(args: string[], env: Record<string, string> = {}): Served {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-life-'));
  dirs.push(stateDir);
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', STATE_DIR: stateDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.stderr!.on('data', (d) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const served: Served = { child, port: 0, logs: () => out, exited };
  return served;
}

async function listening(s: Served): Promise<void> {
  await waitFor(() => /"msg":"listening"/.test(s.logs()) || s.child.exitCode !== null, 'the engine to listen', 30_000);
  const m = /"port":(\d+)/.exec(s.logs().split('\n').find((l) => l.includes('"msg":"listening"')) ?? '');
  if (!m) throw new Error('engine did not start: ' + s.logs());
  s.port = Number(m[1]);
}

describe('tradeflow serve', () => {
  it('turns ready, then on SIGTERM turns unready at once, finishes in-flight and queued work and exits 0', async () => {
    // One batch in flight per worker, so the second request waits in the queue behind the held
    // one. The held batch stays in its worker until the test sends SIGUSR2 (the release hook);
    // the hold's own time limit is far beyond the test's timeout, so only the release ends it.
    const s = serve([], { TRADEFLOW_TEST_HOLD_ON_FEATURE: String(HOLD), TRADEFLOW_TEST_HOLD_MS: '600000', BATCHES_PER_WORKER: '1' });
    await listening(s);
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).status === 200, 'readiness');

    const heldRow = Array.from(makeRows(1, F, 2));
    heldRow[0] = HOLD;
    let answered = 0;
    const held = postJson(s.port, { features: heldRow }).finally(() => answered++);
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).json().queue.in_flight_batches === 1, 'the held batch in flight');
    const queued = postJson(s.port, { instances: [Array.from(makeRows(1, F, 3)), Array.from(makeRows(1, F, 4))] }).finally(() => answered++);
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).json().queue.rows === 2, 'two rows queued');

    s.child.kill('SIGTERM');
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).status === 503, 'readiness 503 after SIGTERM');
    const ready = await request(s.port, 'GET', '/monitoring/health/readiness');
    expect(ready.json().reasons).toContain('draining');
    const refused = await postJson(s.port, { features: Array.from(makeRows(1, F, 5)) });
    expect(refused.status).toBe(503);
    expect(refused.json().error.code).toBe('DRAINING');
    expect(refused.headers['retry-after']).toBe('1');

    // Draining with work still to do: the batch is still held, the rows still queued, nothing answered.
    const draining = (await request(s.port, 'GET', '/monitoring/health/readiness')).json();
    expect(draining.queue).toMatchObject({ in_flight_batches: 1, rows: 2 });
    expect(answered).toBe(0);
    expect(s.child.exitCode).toBeNull();

    // Released, the in-flight and the queued requests still get their answers, then it exits.
    s.child.kill('SIGUSR2');
    expect((await held).status).toBe(200);
    const q = await queued;
    expect(q.status).toBe(200);
    expect(q.json().predictions).toHaveLength(2);
    expect(await s.exited).toBe(0);
    expect(s.logs()).toMatch(/"drained":true/);
  });

  it('bounds the whole shutdown by SHUTDOWN_TIMEOUT_MS: aborts a training run, gives up on a stuck batch, exits 3', async () => {
    // The batch and the training run are both held far beyond the test's timeout, so only a
    // bounded shutdown lets the process exit at all.
    const s = serve([], {
      TRADEFLOW_TEST_HOLD_ON_FEATURE: String(HOLD),
      TRADEFLOW_TEST_HOLD_MS: '600000',
      TRADEFLOW_TEST_HOLD_TRAINING_MS: '600000',
      SHUTDOWN_TIMEOUT_MS: '1500',
      TRAIN_MIN_ROWS: '10',
    });
    await listening(s);
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).status === 200, 'readiness');
    const rows = makeRows(40, F, 9);
    const instances = Array.from({ length: 40 }, (_, i) => Array.from(rows.subarray(i * F, (i + 1) * F)));
    const learn = await request(s.port, 'POST', '/learn', JSON.stringify({ instances, labels: instances.map((_, i) => i % 2) }), { 'content-type': 'application/json' });
    expect(learn.status).toBe(202);
    const train = await request(s.port, 'POST', '/train', '{}', { 'content-type': 'application/json' });
    expect(train.status).toBe(202);
    const heldRow = Array.from(makeRows(1, F, 2));
    heldRow[0] = HOLD;
    void postJson(s.port, { features: heldRow }).catch(() => undefined);
    await waitFor(async () => (await request(s.port, 'GET', '/monitoring/health/readiness')).json().queue.in_flight_batches === 1, 'the held batch in flight');
    expect((await request(s.port, 'GET', '/train')).json().runs[0].status).toBe('running');

    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(3);
    expect(s.logs()).toMatch(/training run failed.*the engine is shutting down|the engine is shutting down.*training run failed/);
    expect(s.logs()).toMatch(/"drained":false/);
  });

  it('refuses to start on a file that is not a model, with a clear message and exit 1', async () => {
    const s = serve(['--model-path', path.join(__dirname, '..', 'package.json')]);
    expect(await s.exited).toBe(1);
    expect(s.logs()).toMatch(/MODEL_LOAD_FAILED/);
  });

  it('refuses to start on a missing model file', async () => {
    const s = serve([], { MODEL_PATH: '/nonexistent/model.onnx' });
    expect(await s.exited).toBe(1);
    expect(s.logs()).toMatch(/cannot read model file \/nonexistent\/model\.onnx/);
  });

  it('refuses invalid configuration with exit 2 and names the setting', async () => {
    const s = serve([], { MAX_BATCH_ROWS: 'lots' });
    expect(await s.exited).toBe(2);
    expect(s.logs()).toMatch(/MAX_BATCH_ROWS.*whole number.*"lots"/);
    const t = serve(['--workers', '0']);
    expect(await t.exited).toBe(2);
    expect(t.logs()).toMatch(/--workers.*between 1 and 256/);
  });

  it('prints help for the command and for serve', async () => {
    const s = spawn(process.execPath, [CLI, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    s.stdout.on('data', (d) => (out += d));
    const code = await new Promise((r) => s.on('exit', r));
    expect(code).toBe(0);
    for (const name of ['PORT', 'HOST', 'MODEL_PATH', 'WORKERS', 'MAX_BATCH_ROWS', 'MAX_QUEUE_DELAY_US', 'MAX_QUEUE_ROWS', 'REQUEST_TIMEOUT_MS', 'MAX_BODY_BYTES', 'STATE_DIR']) {
      expect(out).toContain(name);
    }
  });
});
