import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDefaultModel, type DefaultModelResult, type ModelCard } from '../scripts/make-default-model';
import { inspectOnnx, servingContract } from '../src/models/onnx-inspect';
import { FEATURE_NAMES } from '../src/training/features';
import { ensembleProba } from '../src/training/ensemble';

const MODELS = join(__dirname, '..', 'models');
const committed = (file: string): Buffer => readFileSync(join(MODELS, file));

describe('bundled default model', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tradeflow-default-model-'));
  let regenerated: DefaultModelResult;
  beforeAll(() => {
    regenerated = makeDefaultModel(tmp);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('regenerates byte-for-byte: model, card and README', () => {
    for (const file of ['ensemble.onnx', 'ensemble.card.json', 'README.md']) {
      const fresh = readFileSync(join(tmp, file));
      expect(fresh.equals(committed(file)), `${file} differs from models/${file}: run npm run model:default`).toBe(true);
    }
  });

  it('has a card that matches the file and beats the majority class', () => {
    const card = JSON.parse(committed('ensemble.card.json').toString('utf8')) as ModelCard;
    expect(card.sha256).toBe(createHash('sha256').update(committed('ensemble.onnx')).digest('hex'));
    expect(card.features.map((f) => f.name)).toEqual(FEATURE_NAMES);
    expect(card.classes.map((c) => c.label)).toEqual(['DOWN', 'UP']);
    const h = card.metrics.holdout;
    for (const m of [h.logreg, h.mlp, h.ensemble]) expect(m.accuracy).toBeGreaterThan(h.majority_baseline.accuracy + 0.03);
  });

  it('declares the serving contract and its provenance in the file', () => {
    const info = inspectOnnx(committed('ensemble.onnx'));
    expect(servingContract(info)).toEqual({
      features: 16,
      inputName: 'input',
      probabilityOutput: 'probabilities',
      probabilityWidth: 2,
      labelOutput: 'label',
      classLabels: ['DOWN', 'UP'],
    });
    expect(info.producerName).toBe('tradeflow');
    expect(info.metadata['model_name']).toBe('ensemble');
    expect(info.metadata['feature_names']).toBe(FEATURE_NAMES.join(','));
    expect(info.metadata['training_seed']).toBe('20240611');
    expect(JSON.parse(info.metadata['trainer']!)).toHaveProperty('mlp.hidden', 24);
    expect(JSON.parse(info.metadata['data']!)).toHaveProperty('periods', 80_000);
  });

  it('serves in onnxruntime what the TypeScript model computes on the holdout', async () => {
    const { model, holdout } = regenerated;
    const rows = 2000;
    const x = Float32Array.from(holdout.x.subarray(0, rows * holdout.features));
    const session = await ort.InferenceSession.create(committed('ensemble.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    try {
      const out = await session.run({ input: new ort.Tensor('float32', x, [rows, holdout.features]) });
      const probs = out['probabilities']!.data as Float32Array;
      const labels = out['label']!.data as BigInt64Array;
      const expected = ensembleProba(model, x, rows).ensemble;
      let worst = 0;
      for (let i = 0; i < rows; i++) {
        worst = Math.max(worst, Math.abs(probs[2 * i + 1]! - expected[i]!));
        expect(Number(labels[i])).toBe(probs[2 * i + 1]! > probs[2 * i]! ? 1 : 0);
      }
      expect(worst).toBeLessThan(1e-5);
    } finally {
      await session.release();
    }
  });
});
