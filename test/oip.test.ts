/**
 * The Open Inference Protocol on a real engine (real uWS, real workers, real onnxruntime):
 * health, metadata, JSON and binary infer equal to /predict for the same rows, outputs
 * selection, id echo, the extensions, and every error in the protocol's shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { float32Text } from '../src/http/float32-text';
import { makeRows, PROB_TOLERANCE, postBinary, postJson, request, rowsToArrays, startTestEngine } from './helpers/engine';
import { decodeBinaryAnswer, encodeBinaryRequest, F, le, postBinaryInfer, postInfer } from './helpers/oip';

let engine: Engine;
let port: number;
let input: string;
const INFER = '/v2/models/ensemble/infer';

beforeAll(async () => {
  engine = await startTestEngine({ MAX_REQUEST_ROWS: '512', MAX_BODY_BYTES: '262144' });
  port = engine.port;
  input = (await request(port, 'GET', '/v2/models/ensemble')).json().inputs[0].name;
});

afterAll(async () => {
  await engine.shutdown('test end');
});

function inferBody(rows: Float32Array, extra: Record<string, unknown> = {}, nested = false): Record<string, unknown> {
  const n = rows.length / F;
  return { inputs: [{ name: input, datatype: 'FP32', shape: [n, F], data: nested ? rowsToArrays(rows, F) : Array.from(rows) }], ...extra };
}

async function predictRows(rows: Float32Array): Promise<{ probs: number[]; labels: number[] }> {
  const body = (await postJson(port, { instances: rowsToArrays(rows, F) })).json();
  return { probs: body.predictions.flatMap((p: any) => p.probabilities), labels: body.predictions.map((p: any) => p.class) };
}

function expectClose(got: ArrayLike<number>, want: number[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
}

describe('health and metadata', () => {
  it('answers live and ready with JSON bodies, and the server metadata with the extensions built', async () => {
    const live = await request(port, 'GET', '/v2/health/live');
    expect([live.status, live.json()]).toEqual([200, { live: true }]);
    const ready = await request(port, 'GET', '/v2/health/ready');
    expect([ready.status, ready.json()]).toEqual([200, { ready: true }]);
    const meta = (await request(port, 'GET', '/v2')).json();
    expect(meta.name).toBe('tradeflow');
    expect(meta.extensions).toEqual(['binary_tensor_data', 'statistics', 'model_repository', 'model_configuration']);
  });

  it('describes each model with -1 for the batch dimension, by name and by version', async () => {
    const version = engine.models.get('ensemble').version;
    for (const path of ['/v2/models/ensemble', `/v2/models/ensemble/versions/${version}`]) {
      const m = (await request(port, 'GET', path)).json();
      expect(m).toMatchObject({ name: 'ensemble', versions: [version], platform: 'onnxruntime_onnx' });
      expect(m.inputs).toEqual([{ name: input, datatype: 'FP32', shape: [-1, F], parameters: { accepted_datatypes: expect.stringContaining('FP64') } }]);
      expect(m.outputs).toEqual([{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }, { name: 'label', datatype: 'INT64', shape: [-1] }]);
    }
    const sgd = (await request(port, 'GET', '/v2/models/sgd')).json();
    expect(sgd.inputs[0]).toMatchObject({ name: 'features', shape: [-1, F] });
    const ready = await request(port, 'GET', `/v2/models/ensemble/versions/${version}/ready`);
    expect([ready.status, ready.json()]).toEqual([200, { name: 'ensemble', ready: true }]);
  });

  it('answers 404 in the protocol shape for an unknown model or version', async () => {
    const a = await request(port, 'GET', '/v2/models/nope');
    expect(a.status).toBe(404);
    expect(a.json()).toEqual({ error: expect.stringContaining('model "nope" is not served') });
    const b = await request(port, 'GET', '/v2/models/ensemble/versions/0000/ready');
    expect(b.status).toBe(404);
    expect(b.json().error).toMatch(/no version "0000"/);
  });
});

describe('JSON infer', () => {
  it('answers rows equal to /predict, flat or nested data, with the id echoed', async () => {
    const rows = makeRows(5, F, 3);
    const want = await predictRows(rows);
    for (const nested of [false, true]) {
      const res = await postInfer(port, INFER, inferBody(rows, { id: 'req-1' }, nested));
      expect(res.status).toBe(200);
      const body = res.json();
      expect(body.model_name).toBe('ensemble');
      expect(body.model_version).toBe(engine.models.get('ensemble').version);
      expect(body.id).toBe('req-1');
      expect(body.outputs.map((o: any) => [o.name, o.datatype, o.shape])).toEqual([['probabilities', 'FP32', [5, 2]], ['label', 'INT64', [5]]]);
      expectClose(body.outputs[0].data, want.probs);
      expect(body.outputs[1].data).toEqual(want.labels);
    }
  });

  it('returns only the outputs asked for, and no id when none was sent', async () => {
    const rows = makeRows(2, F, 4);
    const body = (await postInfer(port, INFER, inferBody(rows, { outputs: [{ name: 'label' }] }))).json();
    expect(body.id).toBeUndefined();
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]).toMatchObject({ name: 'label', datatype: 'INT64', shape: [2] });
  });

  it('converts FP64 and integer inputs', async () => {
    const ints = [...Array(F).keys()].map((i) => i - 8);
    const want = await predictRows(Float32Array.from(ints));
    for (const datatype of ['FP64', 'INT32', 'INT64']) {
      const body = (await postInfer(port, INFER, { inputs: [{ name: input, datatype, shape: [1, F], data: ints }] })).json();
      expectClose(body.outputs[0].data, want.probs);
    }
  });

  it('serves sgd by name and any u<n> version, naming the version that computed', async () => {
    const rows = makeRows(1, F, 9);
    const res = await postInfer(port, '/v2/models/sgd/versions/u0/infer', { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, F], data: Array.from(rows) }] });
    expect(res.status).toBe(200);
    expect(res.json().model_version).toMatch(/^u\d+$/);
  });

  it('counts the request under its route template in the metrics', async () => {
    await postInfer(port, INFER, inferBody(makeRows(1, F, 1)));
    const text = (await request(port, 'GET', '/monitoring/metrics')).body.toString();
    expect(text).toMatch(/endpoint="\/v2\/models\/\{name\}\/infer"/);
  });
});

describe('binary tensor data', () => {
  it('takes a binary input and answers binary outputs byte-exact to the JSON answer', async () => {
    const rows = makeRows(4, F, 5);
    const json = (await postInfer(port, INFER, inferBody(rows))).json();
    const req = encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [4, F] }], outputs: [{ name: 'probabilities', parameters: { binary_data: true } }, { name: 'label', parameters: { binary_data: true } }] }, le('FP32', Array.from(rows)));
    const res = await postBinaryInfer(port, INFER, req);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const { header, blobs } = decodeBinaryAnswer(res);
    expect(header.outputs.map((o: any) => o.parameters)).toEqual([{ binary_data_size: 32 }, { binary_data_size: 32 }]);
    expect(blobs.probabilities!.equals(le('FP32', json.outputs[0].data))).toBe(true);
    expect(blobs.label!.equals(le('INT64', json.outputs[1].data))).toBe(true);
  });

  it('prints FP32 data with the shortest digits that read back to the binary answer\'s float32s', async () => {
    const rows = makeRows(8, F, 11);
    const text = (await postInfer(port, INFER, inferBody(rows, { outputs: [{ name: 'probabilities' }] }))).body.toString();
    const data = /"data":\[([^\]]*)\]/.exec(text)![1]!.split(',');
    const req = encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [8, F] }], outputs: [{ name: 'probabilities', parameters: { binary_data: true } }] }, le('FP32', Array.from(rows)));
    const blob = decodeBinaryAnswer(await postBinaryInfer(port, INFER, req)).blobs.probabilities!;
    const floats = new Float32Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.length));
    expect(data).toEqual(Array.from(floats, (f) => float32Text(f)));
    for (const s of data) expect(s.split('e')[0]!.replace(/^-?0?\.?0*/, '').replace('.', '').length).toBeLessThanOrEqual(9);
  });

  it('answers binary for every output with binary_data_output, and JSON outputs for a binary input without it', async () => {
    const rows = makeRows(2, F, 6);
    const all = await postBinaryInfer(port, INFER, encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [2, F] }], parameters: { binary_data_output: true } }, le('FP32', Array.from(rows))));
    expect(Object.keys(decodeBinaryAnswer(all).blobs)).toEqual(['probabilities', 'label']);
    const none = await postBinaryInfer(port, INFER, encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP64', shape: [2, F] }] }, le('FP64', Array.from(rows))));
    expect(none.headers['content-type']).toBe('application/json');
    expectClose(none.json().outputs[0].data, (await predictRows(rows)).probs);
  });

  it('refuses binary data that does not add up', async () => {
    const rows = makeRows(2, F, 6);
    const req = encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [2, F] }] }, le('FP32', Array.from(rows)));
    const short = await postBinaryInfer(port, INFER, { body: req.body.subarray(0, req.body.length - 4), headerLength: req.headerLength });
    expect(short.status).toBe(400);
    expect(short.json().error).toMatch(/bytes after the .*-byte JSON header/);
    const wrongSize = await postBinaryInfer(port, INFER, encodeBinaryRequest({ inputs: [{ name: input, datatype: 'FP32', shape: [3, F] }] }, le('FP32', Array.from(rows))));
    expect(wrongSize.status).toBe(400);
    expect(wrongSize.json().error).toMatch(/binary_data_size is 128 but shape \[3, 16\] of FP32 needs 192 bytes/);
  });
});

describe('errors in the protocol shape', () => {
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['not JSON', '{"inputs":', 400, /not JSON/],
    ['no inputs', {}, 400, /exactly one tensor/],
    ['wrong input name', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, F], data: [] }] }, 400, /inputs\[0\]\.name "x" is not an input/],
    ['wrong datatype', { inputs: [{ name: '$IN', datatype: 'BYTES', shape: [1, F], data: [] }] }, 400, /datatype "BYTES" is not accepted/],
    ['wrong shape', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }, 400, /shape \[1,3\] is not \[N, 16\]/],
    ['too few values', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [2, F], data: [1, 2] }] }, 400, /holds 2 values but its shape \[2, 16\] needs 32/],
    ['a string value', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [1, F], data: ['a'] }] }, 400, /element 0 \(row 0, column 0\)/],
    ['not finite', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [1, F], data: [1e39] }] }, 400, /finite as float32/],
    ['not an integer', { inputs: [{ name: '$IN', datatype: 'INT32', shape: [1, F], data: [1.5] }] }, 400, /not a INT32 value/],
    ['unknown output', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [1, F], data: new Array(F).fill(0) }], outputs: [{ name: 'logits' }] }, 400, /outputs\[0\]\.name "logits" is not an output/],
    ['too many rows', { inputs: [{ name: '$IN', datatype: 'FP32', shape: [513, F], data: [] }] }, 413, /513 rows, the limit is 512/],
  ];
  for (const [what, body, status, message] of cases) {
    it(`${what}: ${status}`, async () => {
      const text = typeof body === 'string' ? body : JSON.stringify(body).replaceAll('$IN', input);
      const res = await postInfer(port, INFER, text);
      expect(res.status).toBe(status);
      expect(Object.keys(res.json())).toEqual(['error']);
      expect(res.json().error).toMatch(message);
    });
  }

  it('unknown model and version: 404; a bad deadline header: 400', async () => {
    const body = inferBody(makeRows(1, F, 1));
    expect((await postInfer(port, '/v2/models/nope/infer', body)).status).toBe(404);
    const v = await postInfer(port, '/v2/models/ensemble/versions/0/infer', body);
    expect([v.status, typeof v.json().error]).toEqual([404, 'string']);
    const t = await postInfer(port, INFER, body, { 'x-request-timeout-ms': 'soon' });
    expect(t.status).toBe(400);
    expect(t.json().error).toMatch(/X-Request-Timeout-Ms/);
  });
});

describe('extensions', () => {
  it('statistics: counts requests and batches of every route, in Triton shape', async () => {
    const before = (await request(port, 'GET', '/v2/models/ensemble/stats')).json().model_stats[0];
    await postInfer(port, INFER, inferBody(makeRows(3, F, 21)));
    await postBinary(port, makeRows(2, F, 22));
    const after = (await request(port, 'GET', '/v2/models/ensemble/stats')).json().model_stats[0];
    expect(after.name).toBe('ensemble');
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(2);
    expect(after.inference_count - before.inference_count).toBe(5);
    expect(after.execution_count - before.execution_count).toBe(2);
    expect(after.inference_stats.queue.count).toBe(after.inference_stats.compute_infer.count);
    expect(after.inference_stats.success.ns).toBeGreaterThan(before.inference_stats.success.ns);
    const all = (await request(port, 'GET', '/v2/models/stats')).json().model_stats;
    expect(all.map((m: any) => m.name)).toEqual(['ensemble', 'sgd', 'arf']);
  });

  it('model_configuration shows the batching settings', async () => {
    const c = (await request(port, 'GET', '/v2/models/ensemble/config')).json();
    expect(c.max_batch_size).toBe(engine.config.maxBatchRows);
    expect(c.dynamic_batching.max_queue_delay_microseconds).toBe(engine.config.maxQueueDelayUs);
    expect(c.input[0]).toMatchObject({ name: input, data_type: 'TYPE_FP32', dims: [F] });
  });

  it('model_repository: index, load without a file keeps the model, unload is refused', async () => {
    const index = (await request(port, 'POST', '/v2/repository/index', '{}')).json();
    expect(index.map((m: any) => [m.name, m.state])).toEqual([['ensemble', 'READY'], ['sgd', 'READY'], ['arf', 'READY']]);
    const load = await request(port, 'POST', '/v2/repository/models/ensemble/load', '');
    expect(load.status).toBe(200);
    const unload = await request(port, 'POST', '/v2/repository/models/ensemble/unload', '');
    expect(unload.status).toBe(400);
    expect(unload.json().error).toMatch(/cannot be unloaded/);
    const bad = await request(port, 'POST', '/v2/repository/models/ensemble/load', JSON.stringify({ parameters: { 'file:1/model.onnx': 'bm90IG9ubng=' } }));
    expect(bad.status).toBe(422);
    expect(typeof bad.json().error).toBe('string');
  });
});

describe('model_repository is admin-protected like model admin', () => {
  let guarded: Engine;
  beforeAll(async () => {
    guarded = await startTestEngine({ ADMIN_TOKEN: 'oip-secret' });
  });
  afterAll(async () => {
    await guarded.shutdown('test end');
  });

  it('refuses load and unload without the token (401, 403) in the protocol shape, and takes them with it', async () => {
    const none = await request(guarded.port, 'POST', '/v2/repository/models/ensemble/load', '{}');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(Object.keys(none.json())).toEqual(['error']);
    const wrong = await request(guarded.port, 'POST', '/v2/repository/models/ensemble/unload', '{}', { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(403);
    const ok = await request(guarded.port, 'POST', '/v2/repository/models/ensemble/load', '{}', { authorization: 'Bearer oip-secret' });
    expect(ok.status).toBe(200);
    // The index only reads: no token needed.
    expect((await request(guarded.port, 'POST', '/v2/repository/index', '')).status).toBe(200);
  });
});
