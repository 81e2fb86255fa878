import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { writeEnsembleOnnx, type EnsembleOnnxInput } from '../src/training/onnx-writer';
import { inspectOnnx } from '../src/models/onnx-inspect';
import { Rng } from '../src/training/rng';
import { ensembleProba, type EnsembleModel } from '../src/training/ensemble';
import { standardize } from '../src/training/standardize';
import { logregProba } from '../src/training/logreg';
import { mlpProba } from '../src/training/mlp';
import { FIXTURE_TOOL } from './fixtures/fixtures';

const F = 16;
const H = 12;
const NAMES = Array.from({ length: F }, (_, j) => `f${j}`);
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
// Parameters are stored as float32 and ORT computes in float32: agreement within ~1e-5.
const TOLERANCE = 1e-5;

/** Random but plausible parameters: what a trainer could have produced. */
function randomModel(seed: number): EnsembleModel {
  const r = new Rng(seed);
  const vec = (n: number, scale: number, offset = 0): Float64Array => Float64Array.from({ length: n }, () => offset + scale * r.gaussian());
  return {
    standardizer: { mean: vec(F, 0.01), std: Float64Array.from({ length: F }, () => 0.001 + r.next()) },
    logreg: { weights: vec(F, 0.3), bias: 0.1 * r.gaussian() },
    mlp: { features: F, hidden: H, w1: vec(F * H, 0.4), b1: vec(H, 0.1), w2: vec(H, 0.5), b2: 0.05 },
  };
}

/** Rows on the scale the standardizer expects, already rounded to float32. */
function randomRows(model: EnsembleModel, rows: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const x = new Float32Array(rows * F);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < F; j++) x[i * F + j] = model.standardizer.mean[j]! + 2 * model.standardizer.std[j]! * r.gaussian();
  }
  return x;
}

function input(model: EnsembleModel, extra: Partial<EnsembleOnnxInput> = {}): EnsembleOnnxInput {
  return { featureNames: NAMES, standardizer: model.standardizer, logreg: model.logreg, mlp: model.mlp, ...extra };
}

async function run(bytes: Uint8Array, x: Float32Array, rows: number): Promise<{ label: BigInt64Array; probabilities: Float32Array }> {
  const session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  try {
    expect(session.inputNames).toEqual(['input']);
    expect(session.outputNames).toEqual(['label', 'probabilities']);
    const out = await session.run({ input: new ort.Tensor('float32', x, [rows, F]) });
    expect(out['probabilities']!.dims).toEqual([rows, 2]);
    expect(out['label']!.dims).toEqual([rows]);
    return { label: out['label']!.data as BigInt64Array, probabilities: out['probabilities']!.data as Float32Array };
  } finally {
    await session.release();
  }
}

function expectClose(actual: Float32Array, expected1: Float64Array): void {
  let worst = 0;
  for (let i = 0; i < expected1.length; i++) {
    worst = Math.max(worst, Math.abs(actual[2 * i + 1]! - expected1[i]!), Math.abs(actual[2 * i]! - (1 - expected1[i]!)));
  }
  expect(worst).toBeLessThan(TOLERANCE);
}

describe('writeEnsembleOnnx', () => {
  const model = randomModel(1);
  const rows = 257;
  const x = randomRows(model, rows, 2);
  const tmp = mkdtempSync(join(tmpdir(), 'tradeflow-writer-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('runs in onnxruntime and matches the TypeScript forward pass', async () => {
    const { label, probabilities } = await run(writeEnsembleOnnx(input(model)), x, rows);
    const expected = ensembleProba(model, x, rows).ensemble;
    expectClose(probabilities, expected);
    for (let i = 0; i < rows; i++) {
      const p0 = probabilities[2 * i]!;
      const p1 = probabilities[2 * i + 1]!;
      expect(Number(label[i])).toBe(p1 > p0 ? 1 : 0); // ArgMax picks the first of equals
      expect(p0 + p1).toBeCloseTo(1, 6);
    }
    // Both classes occur, so the label check above is not vacuous.
    const ups = Array.from(label).filter((l) => l === 1n).length;
    expect(ups).toBeGreaterThan(0);
    expect(ups).toBeLessThan(rows);
  });

  it('writes a single branch when only one model is given', async () => {
    const z = standardize(model.standardizer, x, rows);
    const lrOnly = await run(writeEnsembleOnnx(input(model, { mlp: undefined })), x, rows);
    expectClose(lrOnly.probabilities, logregProba(model.logreg, z, rows));
    const mlpOnly = await run(writeEnsembleOnnx(input(model, { logreg: undefined })), x, rows);
    expectClose(mlpOnly.probabilities, mlpProba(model.mlp, z, rows));
  });

  it('is byte-for-byte reproducible and records its metadata in a fixed order', () => {
    const meta = { training_seed: '7', data: '{"periods":100}', a_first: 'x' };
    const a = writeEnsembleOnnx(input(model, { metadata: meta }));
    const b = writeEnsembleOnnx(input(randomModel(1), { metadata: { a_first: 'x', data: '{"periods":100}', training_seed: '7' } }));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(writeEnsembleOnnx(input(randomModel(2), { metadata: meta }))))).toBe(false);

    const info = inspectOnnx(a);
    expect(info.irVersion).toBe(8);
    expect(info.producerName).toBe('tradeflow');
    expect(info.opsets).toEqual([{ domain: '', version: 17 }]);
    expect(info.inputs).toEqual([{ name: 'input', kind: 'tensor', elemType: 'float', dims: ['N', F] }]);
    expect(info.outputs).toEqual([
      { name: 'label', kind: 'tensor', elemType: 'int64', dims: ['N'] },
      { name: 'probabilities', kind: 'tensor', elemType: 'float', dims: ['N', 2] },
    ]);
    expect(Object.entries(info.metadata)).toEqual([
      ['model_name', 'ensemble'],
      ['class_labels', 'DOWN,UP'],
      ['feature_names', NAMES.join(',')],
      ['a_first', 'x'],
      ['data', '{"periods":100}'],
      ['training_seed', '7'],
    ]);
  });

  it('passes the onnx package checker (an independent implementation)', (ctx) => {
    const python = FIXTURE_TOOL.get(ctx);
    const file = join(tmp, 'ensemble.onnx');
    writeFileSync(file, writeEnsembleOnnx(input(model)));
    const check = spawnSync(
      python,
      ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file],
      { encoding: 'utf8' },
    );
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('refuses inconsistent parameters with INTERNAL', () => {
    const bad: [string, EnsembleOnnxInput][] = [
      ['no branch', input(model, { logreg: undefined, mlp: undefined })],
      ['short weights', input(model, { logreg: { weights: new Float64Array(F - 1), bias: 0 } })],
      ['NaN weight', input(model, { logreg: { weights: new Float64Array(F).fill(NaN), bias: 0 } })],
      ['zero std', input(model, { standardizer: { mean: model.standardizer.mean, std: new Float64Array(F) } })],
      ['MLP width', input(model, { mlp: { ...model.mlp, features: F + 1 } })],
      ['reserved metadata', input(model, { metadata: { class_labels: 'A,B' } })],
      ['comma in a feature name', input(model, { featureNames: ['a,b', ...NAMES.slice(1)] })],
    ];
    for (const [why, params] of bad) {
      let error: unknown;
      try {
        writeEnsembleOnnx(params);
      } catch (err) {
        error = err;
      }
      expect(error, why).toBeInstanceOf(TradeflowError);
      expect((error as TradeflowError).code, why).toBe('INTERNAL');
    }
  });
});
