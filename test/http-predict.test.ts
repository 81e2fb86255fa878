import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import type { Engine } from '../src/app';
import {
  DEFAULT_MODEL_PATH,
  PROB_TOLERANCE,
  makeRows,
  postBinary,
  postJson,
  referenceProbabilities,
  request,
  rowsToArrays,
  startTestEngine,
} from './helpers/engine';

const F = 16;
let engine: Engine;
let port: number;

beforeAll(async () => {
  engine = await startTestEngine({ MAX_REQUEST_ROWS: '512', MAX_BODY_BYTES: '65536' });
  port = engine.port;
});

afterAll(async () => {
  await engine.shutdown('test end');
});

function expectRow(pred: any, p0: number, p1: number, classes = ['DOWN', 'UP']): void {
  expect(pred.probabilities[0]).toBeCloseTo(p0, 6);
  expect(pred.probabilities[1]).toBeCloseTo(p1, 6);
  const cls = p1 > p0 ? 1 : 0;
  expect(pred.class).toBe(cls);
  expect(pred.label).toBe(classes[cls]);
  expect(pred.confidence).toBe(pred.probabilities[cls]);
}

describe('POST /predict answers', () => {
  it('answers a single row ("features") with the model, version, id and the row prediction', async () => {
    const rows = makeRows(1, F, 7);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, rows, F);
    const res = await postJson(port, { features: Array.from(rows), id: 'order-17' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const body = res.json();
    expect(body.model).toBe('ensemble');
    expect(body.version).toBe(engine.models.get('ensemble').version);
    expect(body.version).toMatch(/^[0-9a-f]{12}$/);
    expect(body.id).toBe('order-17');
    expectRow(body, ref[0]!, ref[1]!);
  });

  it('answers many rows ("instances") in order, equal to onnxruntime run directly', async () => {
    const rows = makeRows(50, F, 11);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, rows, F);
    const res = await postJson(port, { instances: rowsToArrays(rows, F), model: 'ensemble' });
    expect(res.status).toBe(200);
    const body = res.json();
    expect(body.predictions).toHaveLength(50);
    body.predictions.forEach((p: any, i: number) => expectRow(p, ref[2 * i]!, ref[2 * i + 1]!));
  });

  it('answers raw float32 rows with float32 p(UP) per row and the version in headers', async () => {
    const rows = makeRows(33, F, 13);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, rows, F);
    const res = await postBinary(port, rows);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['x-model-name']).toBe('ensemble');
    expect(res.headers['x-model-version']).toBe(engine.models.get('ensemble').version);
    expect(res.body.length).toBe(33 * 4);
    const p1 = new Float32Array(res.body.buffer.slice(res.body.byteOffset, res.body.byteOffset + res.body.length));
    for (let i = 0; i < 33; i++) expect(Math.abs(p1[i]! - ref[2 * i + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
  });

  it('accepts a JSON body without a Content-Type and with charset parameters', async () => {
    const rows = Array.from(makeRows(1, F, 3));
    const plain = await request(port, 'POST', '/predict', JSON.stringify({ features: rows }));
    expect(plain.status).toBe(200);
    const charset = await postJson(port, { features: rows }, { 'content-type': 'application/json; charset=utf-8' });
    expect(charset.status).toBe(200);
  });

  it('reads a body that arrives in several chunks', async () => {
    const rows = makeRows(200, F, 5);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, rows, F);
    const text = JSON.stringify({ instances: rowsToArrays(rows, F) });
    const res = await new Promise<any>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      let data = '';
      sock.on('data', (d) => (data += d.toString()));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
      sock.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n`);
      const third = Math.floor(text.length / 3);
      sock.write(text.slice(0, third));
      setImmediate(() => {
        sock.write(text.slice(third, 2 * third));
        setImmediate(() => sock.write(text.slice(2 * third)));
      });
    });
    expect(res).toMatch(/^HTTP\/1\.1 200/);
    const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4));
    body.predictions.forEach((p: any, i: number) => expectRow(p, ref[2 * i]!, ref[2 * i + 1]!));
  });

  it('answers 1,000 concurrent requests, each with its own rows, never mixing them up', async () => {
    const n = 1000;
    const all = makeRows(n * 3, F, 99);
    const ref = await referenceProbabilities(DEFAULT_MODEL_PATH, all, F);
    const batchesBefore = engine.batcher.stats().batches;
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        // Mix the three request shapes: one row, three rows, and binary one row.
        if (i % 3 === 0) return postJson(port, { features: Array.from(all.subarray(3 * i * F, (3 * i + 1) * F)), id: `r${i}` });
        if (i % 3 === 1) return postJson(port, { instances: rowsToArrays(all.subarray(3 * i * F, (3 * i + 3) * F), F), id: `r${i}` });
        return postBinary(port, all.subarray(3 * i * F, (3 * i + 1) * F));
      }),
    );
    replies.forEach((res, i) => {
      expect(res.status).toBe(200);
      const r0 = 3 * i;
      if (i % 3 === 2) {
        const p1 = res.body.readFloatLE(0);
        expect(Math.abs(p1 - ref[2 * r0 + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
        return;
      }
      const body = res.json();
      expect(body.id).toBe(`r${i}`);
      if (i % 3 === 0) expectRow(body, ref[2 * r0]!, ref[2 * r0 + 1]!);
      else body.predictions.forEach((p: any, k: number) => expectRow(p, ref[2 * (r0 + k)]!, ref[2 * (r0 + k) + 1]!));
    });
    // Concurrency must have produced batching, not one batch per request.
    expect(engine.batcher.stats().batches - batchesBefore).toBeLessThan(n);
  });

  it('lists the served models with their contract read from the file', async () => {
    const res = await request(port, 'GET', '/models');
    expect(res.status).toBe(200);
    const [m] = res.json().models;
    expect(m).toMatchObject({ name: 'ensemble', features: 16, input: 'input', outputs: ['label', 'probabilities'], classes: ['DOWN', 'UP'], kind: 'onnx' });
    expect(m.version).toBe(engine.models.get('ensemble').version);
    const one = await request(port, 'GET', '/models/ensemble');
    expect(one.json().name).toBe('ensemble');
    const missing = await request(port, 'GET', '/models/nope');
    expect(missing.status).toBe(400);
    expect(missing.json().error.code).toBe('UNKNOWN_MODEL');
  });
});

describe('POST /predict refuses bad input with a clear error', () => {
  const row = Array.from(makeRows(1, F, 1));

  async function expectError(res: Promise<any>, status: number, code: string, message?: RegExp): Promise<any> {
    const r = await res;
    expect(r.status).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    const body = r.json();
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe('string');
    if (message) expect(body.error.message).toMatch(message);
    return r;
  }

  it('400 on malformed JSON', async () => {
    await expectError(request(port, 'POST', '/predict', '{"features":[1,2', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
  });

  it('400 when neither "features" nor "instances" is given', async () => {
    await expectError(postJson(port, { id: 'x' }), 400, 'INVALID_BODY', /features.*instances/);
  });

  it('400 on a wrong feature count, naming the row', async () => {
    await expectError(postJson(port, { features: [1, 2, 3] }), 400, 'FEATURE_COUNT_MISMATCH', /features has 3 values, expected 16/);
    await expectError(postJson(port, { instances: [row, row.slice(1)] }), 400, 'FEATURE_COUNT_MISMATCH', /instances\[1\] has 15 values/);
  });

  it('400 on a non-numeric value, naming row and column', async () => {
    const bad = [...row];
    (bad as unknown[])[5] = 'abc';
    await expectError(postJson(port, { instances: [row, row, bad] }), 400, 'INVALID_FEATURE_VALUE', /instances\[2\]\[5\]/);
  });

  it('400 on a value that is not finite as float32, naming row and column', async () => {
    const body = JSON.stringify({ instances: [row] }).replace(/\[\[([^,]+),/, '[[1e39,');
    await expectError(request(port, 'POST', '/predict', body, { 'content-type': 'application/json' }), 400, 'NON_FINITE_FEATURE', /instances\[0\]\[0\]/);
  });

  it('400 on a binary body that is not whole rows, and on NaN in binary rows', async () => {
    await expectError(postBinary(port, new Float32Array(F + 1)), 400, 'INVALID_BINARY_BODY', /64 bytes per row/);
    const rows = makeRows(2, F, 4);
    rows[F + 3] = NaN;
    await expectError(postBinary(port, rows), 400, 'NON_FINITE_FEATURE', /row 1, column 3/);
  });

  it('400 on an unknown model', async () => {
    await expectError(postJson(port, { features: row, model: 'gpt' }), 400, 'UNKNOWN_MODEL', /"gpt"/);
  });

  it('400 on a malformed deadline header', async () => {
    await expectError(postJson(port, { features: row }, { 'x-request-timeout-ms': 'soon' }), 400, 'INVALID_HEADER');
  });

  it('413 when Content-Length is over the limit, and when a chunked body grows over it', async () => {
    const big = JSON.stringify({ instances: Array.from({ length: 400 }, () => row) });
    expect(Buffer.byteLength(big)).toBeGreaterThan(65536);
    await expectError(request(port, 'POST', '/predict', big, { 'content-type': 'application/json' }), 413, 'BODY_TOO_LARGE', /65536/);
    const chunked = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      let data = '';
      sock.on('data', (d) => (data += d.toString()));
      sock.on('close', () => resolve(data));
      sock.on('error', () => resolve(data));
      sock.write('POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      const piece = 'a'.repeat(16000);
      for (let i = 0; i < 6; i++) sock.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      setTimeout(() => {
        if (!data) reject(new Error('no answer to an oversized chunked body'));
      }, 10_000);
    });
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    expect(chunked).toContain('BODY_TOO_LARGE');
  });

  it('413 when a request carries more rows than allowed', async () => {
    await expectError(postBinary(port, makeRows(513, F, 2)), 413, 'TOO_MANY_ROWS', /512/);
    const rows = Array.from({ length: 513 }, () => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    await expectError(postJson(port, { instances: rows }), 413, 'TOO_MANY_ROWS');
  });

  it('415 on an unsupported Content-Type', async () => {
    await expectError(request(port, 'POST', '/predict', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE', /application\/json/);
  });

  it('404 on unknown paths and 405 with Allow on a wrong method', async () => {
    await expectError(request(port, 'GET', '/nope'), 404, 'NOT_FOUND');
    const r = await expectError(request(port, 'GET', '/predict'), 405, 'METHOD_NOT_ALLOWED');
    expect(r.headers.allow).toBe('POST');
    const r2 = await expectError(request(port, 'DELETE', '/monitoring/health/liveness'), 405, 'METHOD_NOT_ALLOWED');
    expect(r2.headers.allow).toBe('GET');
  });

  it('keeps serving after every error above', async () => {
    const res = await postJson(port, { features: row });
    expect(res.status).toBe(200);
  });
});
