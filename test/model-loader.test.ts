/**
 * Models made by another tool (Debian's python3-onnx) load and serve with their own input and
 * output names and feature counts; unusable ones are refused before anything serves them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startEngine } from '../src/app';
import { loadConfig } from '../src/config';
import { loadOnnxModel } from '../src/models/model-loader';
import { createLogger } from '../src/telemetry/logger';
import { FIXTURE_MODELS, makeFixtureModels } from './fixtures/fixtures';
import { PROB_TOLERANCE, makeRows, postBinary, postJson, referenceProbabilities, rowsToArrays, startTestEngine } from './helpers/engine';

let dir: string;
let available = false;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-fixtures-'));
  available = makeFixtureModels(dir); // false (tests skip) only outside CI
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servable = [
  { file: FIXTURE_MODELS.linearClassifier, features: 4, input: 'float_input' },
  { file: FIXTURE_MODELS.softmaxMlp, features: 5, input: 'x' },
  { file: FIXTURE_MODELS.sigmoidSingle, features: 3, input: 'features' },
  { file: FIXTURE_MODELS.symbolicFeatures, features: 6, input: 'x', env: { FEATURES: '6' } },
];

describe('serving models built by python3-onnx', () => {
  for (const m of servable) {
    it(`serves ${m.file} (F=${m.features}) with answers equal to onnxruntime`, async (ctx) => {
      if (!available) ctx.skip();
      const modelPath = path.join(dir, m.file);
      const engine = await startTestEngine({ MODEL_PATH: modelPath, ...(m.env ?? {}) });
      try {
        const [served] = engine.models.list;
        expect(served!.features).toBe(m.features);
        expect(served!.onnx!.contract.inputName).toBe(m.input);
        const rows = makeRows(20, m.features, 21);
        const ref = await referenceProbabilities(modelPath, rows, m.features);
        const json = await postJson(engine.port, { instances: rowsToArrays(rows, m.features) });
        expect(json.status).toBe(200);
        json.json().predictions.forEach((p: any, i: number) => {
          expect(Math.abs(p.probabilities[0] - ref[2 * i]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
          expect(Math.abs(p.probabilities[1] - ref[2 * i + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
          expect(p.class).toBe(ref[2 * i + 1]! > ref[2 * i]! ? 1 : 0);
        });
        const bin = await postBinary(engine.port, rows);
        expect(bin.status).toBe(200);
        for (let i = 0; i < 20; i++) expect(Math.abs(bin.body.readFloatLE(4 * i) - ref[2 * i + 1]!)).toBeLessThanOrEqual(PROB_TOLERANCE);
      } finally {
        await engine.shutdown('test end');
      }
    });
  }

  const refused = [
    { file: FIXTURE_MODELS.rank3Input, why: /rank/i },
    { file: FIXTURE_MODELS.twoInputs, why: /input/i },
    { file: FIXTURE_MODELS.nanOutput, why: /warm-up/ },
    { file: FIXTURE_MODELS.zipmap, why: /ZipMap/ },
    { file: FIXTURE_MODELS.symbolicFeatures, why: /FEATURES/ },
  ];
  for (const m of refused) {
    it(`refuses ${m.file} with a clear message before serving`, async (ctx) => {
      if (!available) ctx.skip();
      const config = loadConfig([], { PORT: '0', HOST: '127.0.0.1', MODEL_PATH: path.join(dir, m.file), STATE_DIR: path.join(dir, 'state-' + m.file) });
      const err = await startEngine(config, createLogger('silent')).then(
        () => null,
        (e: any) => e,
      );
      expect(err).not.toBeNull();
      expect(err.code).toBe('MODEL_LOAD_FAILED');
      expect(err.message).toMatch(m.why);
    });
  }

  it('names the model version by content: the same bytes give the same version', async (ctx) => {
    if (!available) ctx.skip();
    const bytes = readFileSync(path.join(dir, FIXTURE_MODELS.softmaxMlp));
    const a = await loadOnnxModel('ensemble', bytes, 'a');
    const b = await loadOnnxModel('ensemble', Buffer.from(bytes), 'b');
    expect(a.version).toBe(b.version);
    expect(a.version).toMatch(/^[0-9a-f]{12}$/);
  });
});
