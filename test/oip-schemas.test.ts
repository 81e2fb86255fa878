/**
 * Every answer shape of the Open Inference Protocol routes, from a real engine, checked with ajv
 * against the schemas written from the specification (test/schemas/oip.ts).
 */
import Ajv from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { makeRows, request, startTestEngine } from './helpers/engine';
import { decodeBinaryAnswer, encodeBinaryRequest, F, le, postBinaryInfer, postInfer } from './helpers/oip';
import { schemas } from './schemas/oip';

const ajv = new Ajv({ allErrors: true, strict: true });
let engine: Engine;
let port: number;
let input: string;

function valid(schema: keyof typeof schemas, value: unknown): void {
  const check = ajv.compile(schemas[schema]);
  const ok = check(value);
  expect(ok ? [] : check.errors, `${schema}: ${JSON.stringify(value).slice(0, 300)}`).toEqual([]);
}

beforeAll(async () => {
  engine = await startTestEngine({ MAX_REQUEST_ROWS: '64' });
  port = engine.port;
  input = (await request(port, 'GET', '/v2/models/ensemble')).json().inputs[0].name;
});

afterAll(async () => {
  await engine.shutdown('test end');
});

describe('answers match the schemas written from the specification', () => {
  it('health, server and model metadata, readiness', async () => {
    valid('live', (await request(port, 'GET', '/v2/health/live')).json());
    valid('ready', (await request(port, 'GET', '/v2/health/ready')).json());
    valid('serverMetadata', (await request(port, 'GET', '/v2')).json());
    for (const m of ['ensemble', 'sgd']) {
      const meta = (await request(port, 'GET', `/v2/models/${m}`)).json();
      valid('modelMetadata', meta);
      valid('modelMetadata', (await request(port, 'GET', `/v2/models/${m}/versions/${meta.versions[0]}`)).json());
      valid('modelReady', (await request(port, 'GET', `/v2/models/${m}/ready`)).json());
      valid('modelConfig', (await request(port, 'GET', `/v2/models/${m}/config`)).json());
    }
  });

  it('JSON and binary inference answers', async () => {
    const rows = makeRows(3, F, 2);
    const body = { id: 'a', inputs: [{ name: input, datatype: 'FP32', shape: [3, F], data: Array.from(rows) }] };
    valid('inferResponse', (await postInfer(port, '/v2/models/ensemble/infer', body)).json());
    valid('inferResponse', (await postInfer(port, '/v2/models/ensemble/infer', { ...body, outputs: [{ name: 'label' }] })).json());
    const bin = await postBinaryInfer(port, '/v2/models/ensemble/infer', encodeBinaryRequest({ ...body, outputs: [{ name: 'probabilities', parameters: { binary_data: true } }, { name: 'label' }] }, le('FP32', Array.from(rows))));
    valid('inferResponse', decodeBinaryAnswer(bin).header);
  });

  it('statistics and the repository index', async () => {
    valid('stats', (await request(port, 'GET', '/v2/models/stats')).json());
    valid('stats', (await request(port, 'GET', '/v2/models/ensemble/stats')).json());
    valid('repositoryIndex', (await request(port, 'POST', '/v2/repository/index', '')).json());
  });

  it('every error', async () => {
    const bad = [
      await request(port, 'GET', '/v2/models/nope'),
      await request(port, 'GET', '/v2/models/ensemble/versions/x/stats'),
      await postInfer(port, '/v2/models/ensemble/infer', '{'),
      await postInfer(port, '/v2/models/ensemble/infer', { inputs: [] }),
      await postInfer(port, '/v2/models/ensemble/infer', { inputs: [{ name: input, datatype: 'FP32', shape: [65, F], data: [] }] }),
      await request(port, 'POST', '/v2/repository/models/sgd/unload', ''),
    ];
    for (const r of bad) {
      expect(r.status).toBeGreaterThanOrEqual(400);
      valid('error', r.json());
    }
  });
});

describe('the schemas are not vacuous', () => {
  it('refuse answers the specification does not allow', () => {
    const out = { name: 'label', datatype: 'INT64', shape: [1] };
    const cases: Array<[keyof typeof schemas, unknown]> = [
      ['inferResponse', { outputs: [{ ...out, data: [1] }] }],
      ['inferResponse', { model_name: 'm', outputs: [out] }],
      ['inferResponse', { model_name: 'm', outputs: [{ ...out, data: [1], parameters: { binary_data_size: 8 } }] }],
      ['inferResponse', { model_name: 'm', modelVersion: '1', outputs: [{ ...out, data: [1] }] }],
      ['modelMetadata', { name: 'm', platform: 'p', inputs: [{ name: 'x', datatype: 'FP32' }], outputs: [] }],
      ['error', { error: { code: 'X', message: 'y' } }],
      ['serverMetadata', { name: 'n', version: 'v' }],
    ];
    for (const [schema, value] of cases) expect(ajv.validate(schemas[schema], value), JSON.stringify(value)).toBe(false);
  });
});
