/**
 * Starts a real engine in this process (real uWS, real worker threads, real onnxruntime) on a
 * port from the OS, and small HTTP helpers for talking to it.
 */
import * as http from 'node:http';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startEngine, type Engine } from '../../src/app';
import { DEFAULT_MODEL_PATH, loadConfig } from '../../src/config';
import { createLogger } from '../../src/telemetry/logger';

/**
 * Engines run with HTTP_THREADS from TRADEFLOW_TEST_HTTP_THREADS when it is set (see
 * test/http-threads-2/, which runs serving suites again with two front-end threads), unless a
 * test names its own. Each engine gets a fresh state directory unless the test names one (to test a restart); the
 * directory is removed when the engine shuts down.
 */
export async function startTestEngine(env: Record<string, string> = {}): Promise<Engine> {
  const ownDir = env.STATE_DIR === undefined ? mkdtempSync(path.join(tmpdir(), 'tradeflow-test-')) : null;
  const threads = process.env.TRADEFLOW_TEST_HTTP_THREADS ? { HTTP_THREADS: process.env.TRADEFLOW_TEST_HTTP_THREADS } : {};
  const config = loadConfig([], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', WORKERS: '1', ...threads, ...(ownDir ? { STATE_DIR: ownDir } : {}), ...env });
  const engine = await startEngine(config, createLogger('silent'));
  // A suite meant to run on front-end threads must not pass by running without them.
  if (config.httpThreads > 1 && engine.frontEnds?.live !== config.httpThreads) throw new Error(`expected ${config.httpThreads} HTTP front-end threads listening`);
  await engine.ready();
  if (ownDir) {
    const shutdown = engine.shutdown.bind(engine);
    (engine as { shutdown: Engine['shutdown'] }).shutdown = async (reason: string) => {
      const r = await shutdown(reason);
      rmSync(ownDir, { recursive: true, force: true });
      return r;
    };
  }
  return engine;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): any;
}

export function request(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export function postJson(port: number, value: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, 'POST', '/predict', JSON.stringify(value), { 'content-type': 'application/json', ...headers });
}

export function postBinary(port: number, rows: Float32Array, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, 'POST', '/predict', Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength), { 'content-type': 'application/octet-stream', ...headers });
}

/** Tests wait on conditions with the benches' process helpers (bench/lib/procs.ts). */
export { waitFor } from '../../bench/lib/procs';

/** Seeded rows of plausible feature values. */
export function makeRows(rows: number, features: number, seed = 1): Float32Array {
  const out = new Float32Array(rows * features);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 0x100000000) * 4 - 2;
  }
  return out;
}

export function rowsToArrays(rows: Float32Array, features: number): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < rows.length / features; r++) out.push(Array.from(rows.subarray(r * features, (r + 1) * features)));
  return out;
}

/** The reference: the same model run directly through onnxruntime, one call for all rows. */
export async function referenceProbabilities(modelPath: string, rows: Float32Array, features: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(readFileSync(modelPath), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const n = rows.length / features;
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', Float32Array.from(rows), [n, features]) });
    const probName = session.outputNames.find((o) => out[o]!.type === 'float32')!;
    const data = out[probName]!.data as Float32Array;
    const dims = out[probName]!.dims;
    if (dims[1] === 2) return Float32Array.from(data);
    const two = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      two[2 * i + 1] = data[i]!;
      two[2 * i] = Math.fround(1 - data[i]!);
    }
    return two;
  } finally {
    await session.release();
  }
}

export { DEFAULT_MODEL_PATH };

/** Batching can change the last bit of a float32 (about 1 ulp): compare with a tolerance. */
export const PROB_TOLERANCE = 1e-6;
