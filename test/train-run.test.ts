import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { inspectOnnx, servingContract } from '../src/models/onnx-inspect';
import { Rng } from '../src/training/rng';
import { ensembleProba, trainEnsemble } from '../src/training/ensemble';
import { fitStandardizer } from '../src/training/standardize';
import { dataSha256 } from '../src/training/model-card';
import {
  DEFAULT_TRAIN_SETTINGS,
  decide,
  holdoutSplit,
  resolveTrainSettings,
  trainRun,
  trainabilityProblem,
  type HoldoutMetrics,
  type TrainOutcome,
} from '../src/training/train-run';
import { runTrainingInWorker } from '../src/training/training-worker';

const F = 6;
const ROWS = 2000;
const NAMES = ['ret', 'vol', 'trend', 'volume', 'noise_a', 'noise_b'];
// Parameters are float32 in the file and ORT computes in float32.
const TOLERANCE = 1e-5;
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/**
 * Rows with a learnable label (a linear part and an interaction only the MLP sees) on very
 * different scales and offsets, so standardization matters; float32 like served rows.
 */
function dataset(rows: number, seed: number): { x: Float32Array; y: Uint8Array } {
  const r = new Rng(seed);
  const x = new Float32Array(rows * F);
  const y = new Uint8Array(rows);
  const scale = [0.01, 3, 100, 1e4, 1, 0.5];
  const offset = [0, 10, -50, 2e5, 0, 3];
  for (let i = 0; i < rows; i++) {
    const z = Array.from({ length: F }, () => r.gaussian());
    for (let j = 0; j < F; j++) x[i * F + j] = offset[j]! + scale[j]! * z[j]!;
    const logit = 1.5 * z[0]! - z[2]! + 1.2 * z[1]! * z[3]! + 0.3;
    y[i] = r.next() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
  }
  return { x, y };
}

async function ortProbabilities(bytes: Uint8Array, x: Float32Array, rows: number): Promise<{ p: Float32Array; label: BigInt64Array }> {
  const session = await ort.InferenceSession.create(bytes, SESSION);
  try {
    const features = x.length / rows;
    const out = await session.run({ input: new ort.Tensor('float32', x.slice(), [rows, features]) });
    expect(out['probabilities']!.dims).toEqual([rows, 2]);
    expect(out['label']!.dims).toEqual([rows]);
    return { p: out['probabilities']!.data as Float32Array, label: out['label']!.data as BigInt64Array };
  } finally {
    await session.release();
  }
}

/** The serving scorer a test controls: fixed class-1 probabilities for the holdout rows. */
function fixedScorer(p: ArrayLike<number>): (x: Float32Array, rows: number) => Float32Array {
  return (_x, rows) => {
    expect(rows).toBe(p.length);
    return Float32Array.from(p);
  };
}

const { x, y } = dataset(ROWS, 11);
const { trainRows, holdoutRows } = holdoutSplit(ROWS, 0.2);
const yHold = y.subarray(trainRows);
const base: TrainOutcome = trainRun(x, y, ROWS, F, {}, null, NAMES);

describe('trainRun: the candidate', () => {
  it('trains on the first 80 % and holds out the last 20 %', () => {
    expect(trainRows).toBe(1600);
    expect(base.trainRows).toBe(1600);
    expect(base.holdoutRows).toBe(400);
    expect(base.candidateMetrics.rows).toBe(400);
    expect(base.card.data.sha256).toBe(dataSha256(x, y, F, 0, 1600));
    expect(base.card.data.holdout_sha256).toBe(dataSha256(x, y, F, 1600, ROWS));
  });

  it('learns the data: holdout accuracy well above the majority class', () => {
    const ones = yHold.reduce((s, v) => s + v, 0);
    const majority = Math.max(ones, holdoutRows - ones) / holdoutRows;
    expect(base.candidateMetrics.accuracy).toBeGreaterThan(majority + 0.1);
    expect(base.card.metrics.holdout.majority_baseline.accuracy).toBeCloseTo(majority, 12);
    for (const k of ['precision', 'recall', 'f1'] as const) expect(base.candidateMetrics[k]).toBeGreaterThan(0.5);
  });

  it('loads in onnxruntime and agrees with the TypeScript forward pass within 1e-5', async () => {
    const hx = x.subarray(trainRows * F);
    const { p, label } = await ortProbabilities(base.candidate, hx, holdoutRows);
    const ts = ensembleProba(base.model, hx, holdoutRows).ensemble;
    let maxDiff = 0;
    for (let i = 0; i < holdoutRows; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(p[2 * i + 1]! - ts[i]!), Math.abs(p[2 * i]! - (1 - ts[i]!)));
      expect(Number(label[i])).toBe(p[2 * i + 1]! > p[2 * i]! ? 1 : 0);
    }
    expect(maxDiff).toBeLessThan(TOLERANCE);
  });

  it('is the ensemble trained on the older rows only, standardized by them only', () => {
    const train64 = Float64Array.from(x.subarray(0, trainRows * F));
    const st = fitStandardizer(train64, trainRows, F);
    for (let j = 0; j < F; j++) {
      expect(base.model.standardizer.mean[j]).toBe(Math.fround(st.mean[j]!));
      expect(base.model.standardizer.std[j]).toBe(Math.fround(st.std[j]!));
    }
    const s = resolveTrainSettings({});
    const c = base.card.trainer as { logreg: { seed: number }; mlp: { seed: number } };
    const direct = trainEnsemble(train64, y.subarray(0, trainRows), trainRows, F, {
      logreg: { epochs: s.logregEpochs, learningRate: s.logregLearningRate, l2: s.logregL2, seed: c.logreg.seed },
      mlp: { hidden: s.mlpHidden, epochs: s.mlpEpochs, batchSize: s.mlpBatchSize, learningRate: s.mlpLearningRate, l2: s.mlpL2, seed: c.mlp.seed },
    }).model;
    expect(Array.from(base.model.logreg.weights)).toEqual(Array.from(direct.logreg.weights, (v) => Math.fround(v)));
    expect(Array.from(base.model.mlp.w1)).toEqual(Array.from(direct.mlp.w1, (v) => Math.fround(v)));
  });

  it('follows the SPEC §2 convention, with the metadata', () => {
    const info = inspectOnnx(base.candidate);
    const contract = servingContract(info);
    expect(contract).toEqual({
      features: F,
      inputName: 'input',
      probabilityOutput: 'probabilities',
      probabilityWidth: 2,
      labelOutput: 'label',
      classLabels: ['DOWN', 'UP'],
    });
    expect(info.metadata['model_name']).toBe('ensemble');
    expect(info.metadata['class_labels']).toBe('DOWN,UP');
    expect(info.metadata['feature_names']).toBe(NAMES.join(','));
    expect(info.metadata['data_sha256']).toBe(base.card.data.sha256);
    expect(info.metadata['created_at']).toBeUndefined();
    expect(info.producerName).toBe('tradeflow');
  });

  it('leaves feature_names out when none are given', async () => {
    const unnamed = trainRun(x, y, ROWS, F, {}, null);
    const info = inspectOnnx(unnamed.candidate);
    expect(info.metadata['feature_names']).toBeUndefined();
    expect(info.metadata['class_labels']).toBe('DOWN,UP');
    expect(unnamed.card.features).toEqual({ count: F, names: null });
    // Same parameters as the named run: only the metadata differs.
    expect(Array.from(unnamed.model.mlp.w2)).toEqual(Array.from(base.model.mlp.w2));
    const { p } = await ortProbabilities(unnamed.candidate, x.subarray(0, 10 * F), 10);
    expect(p.length).toBe(20);
  });
});

describe('trainRun: the time-ordered holdout', () => {
  it('scores the serving model on exactly the last rows', () => {
    let seen: Float32Array | null = null;
    const out = trainRun(x, y, ROWS, F, {}, (hx, rows) => {
      seen = hx.slice();
      return new Float32Array(rows).fill(0.25);
    });
    expect(seen).not.toBeNull();
    expect(Array.from(seen!)).toEqual(Array.from(x.subarray(trainRows * F, ROWS * F)));
    // p = 0.25 says DOWN for every row: its accuracy is the DOWN share of the holdout.
    expect(out.servingMetrics!.accuracy).toBeCloseTo(1 - yHold.reduce((s, v) => s + v, 0) / holdoutRows, 12);
    expect(out.servingMetrics!.rows).toBe(holdoutRows);
  });

  it('never trains on the holdout: changing it leaves the model bytes unchanged', () => {
    const x2 = x.slice();
    const y2 = y.slice();
    for (let i = trainRows; i < ROWS; i++) {
      y2[i] = 1 - y2[i]!;
      x2[i * F] = 1234;
    }
    const changedHoldout = trainRun(x2, y2, ROWS, F, {}, null, NAMES);
    expect(Buffer.from(changedHoldout.candidate).equals(Buffer.from(base.candidate))).toBe(true);
    expect(changedHoldout.candidateMetrics).not.toEqual(base.candidateMetrics);

    const x3 = x.slice();
    x3[(trainRows - 1) * F] = x3[(trainRows - 1) * F]! + 0.5;
    const changedTraining = trainRun(x3, y, ROWS, F, {}, null, NAMES);
    expect(Buffer.from(changedTraining.candidate).equals(Buffer.from(base.candidate))).toBe(false);
  });

  it('honours holdoutFraction', () => {
    const out = trainRun(x, y, ROWS, F, { holdoutFraction: 0.35 }, null);
    expect(out.trainRows).toBe(1300);
    expect(out.holdoutRows).toBe(700);
  });
});

describe('trainRun: promotion', () => {
  // Class-1 probabilities that get exactly `correct` of the holdout rows right.
  const scorerWithAccuracy = (correct: number): ((x: Float32Array, rows: number) => Float32Array) => {
    const p = Array.from(yHold, (label, i) => (i < correct ? (label === 1 ? 0.9 : 0.1) : label === 1 ? 0.1 : 0.9));
    return fixedScorer(p);
  };
  const candidateCorrect = Math.round(base.candidateMetrics.accuracy * holdoutRows);

  it('promotes without a serving model', () => {
    expect(base.promote).toBe(true);
    expect(base.servingMetrics).toBeNull();
    expect(base.reason).toMatch(/no serving model/);
    expect(base.card.promotion).toEqual({ promote: true, reason: base.reason, forced: false, margin: 0.01 });
  });

  it('refuses a candidate worse than the serving model by more than the margin, and says why', () => {
    const out = trainRun(x, y, ROWS, F, {}, fixedScorer(Array.from(yHold, (v) => (v ? 0.8 : 0.2))), NAMES);
    expect(out.servingMetrics!.accuracy).toBe(1);
    expect(out.promote).toBe(false);
    expect(out.reason).toMatch(/^refused: holdout accuracy 0\.\d{4} is below the serving model's 1\.0000 by 0\.\d{4}, more than the margin 0\.0100$/);
    expect(out.card.promotion.promote).toBe(false);
    expect(out.card.metrics.holdout.serving).toEqual(out.servingMetrics);
    // The refused candidate is still a complete, identical model: only the decision differs.
    expect(Buffer.from(out.candidate).equals(Buffer.from(base.candidate))).toBe(true);
  });

  it('promotes a candidate worse by less than the margin, and refuses it with margin 0', () => {
    const slightlyBetter = scorerWithAccuracy(candidateCorrect + 2); // +0.005
    const within = trainRun(x, y, ROWS, F, { margin: 0.01 }, slightlyBetter);
    expect(within.servingMetrics!.accuracy - within.candidateMetrics.accuracy).toBeCloseTo(0.005, 12);
    expect(within.promote).toBe(true);
    expect(within.reason).toMatch(/not worse by more than the margin 0\.0100/);
    const strict = trainRun(x, y, ROWS, F, { margin: 0 }, slightlyBetter);
    expect(strict.promote).toBe(false);
    expect(strict.reason).toMatch(/^refused: .* by 0\.0050, more than the margin 0\.0000$/);
  });

  it('promotes a candidate at least as good as the serving model', () => {
    const out = trainRun(x, y, ROWS, F, { margin: 0 }, scorerWithAccuracy(candidateCorrect - 40));
    expect(out.promote).toBe(true);
    expect(out.candidateMetrics.accuracy).toBeGreaterThan(out.servingMetrics!.accuracy);
  });

  it('force promotes a refused candidate, still scoring both', () => {
    const out = trainRun(x, y, ROWS, F, { force: true }, fixedScorer(Array.from(yHold, (v) => (v ? 0.8 : 0.2))));
    expect(out.promote).toBe(true);
    expect(out.servingMetrics!.accuracy).toBe(1);
    expect(out.reason).toMatch(/^forced: /);
    expect(out.card.promotion.forced).toBe(true);
  });

  it('decide: the boundary is inclusive', () => {
    const m = (accuracy: number): HoldoutMetrics => ({ rows: 100, accuracy, precision: 0, recall: 0, f1: 0 });
    expect(decide(m(0.75), m(0.75), 0, false).promote).toBe(true);
    expect(decide(m(0.5), m(0.75), 0.25, false).promote).toBe(true);
    expect(decide(m(0.49), m(0.75), 0.25, false).promote).toBe(false);
  });

  it('refuses a serving scorer that gives the wrong number of or non-finite probabilities', () => {
    expect(() => trainRun(x, y, ROWS, F, {}, () => new Float32Array(3))).toThrow(/gave 3 probabilities for 400 rows/);
    expect(() => trainRun(x, y, ROWS, F, {}, (_x, rows) => new Float32Array(rows).fill(NaN))).toThrow(/holdout row 0 is NaN/);
  });
});

describe('trainRun: refusals', () => {
  const expectError = (fn: () => unknown, code: string, message: RegExp): void => {
    let caught: unknown;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TradeflowError);
    expect((caught as TradeflowError).code).toBe(code);
    expect((caught as TradeflowError).message).toMatch(message);
  };

  it('too few rows: a clear error, and trainabilityProblem says the same beforehand', () => {
    expectError(() => trainRun(x, y, 150, F, {}, null), 'TRAINING_DATA_INVALID', /too few labelled rows to train: 150, at least 200 are needed/);
    expect(trainabilityProblem(y, 150)).toMatch(/150, at least 200/);
    expect(trainabilityProblem(y, 150, { minRows: 100 })).toBeNull();
    expect(trainabilityProblem(y, ROWS)).toBeNull();
    expect(DEFAULT_TRAIN_SETTINGS.minRows).toBe(200);
  });

  it('training rows of one class only', () => {
    const ones = new Uint8Array(ROWS).fill(1);
    expectError(() => trainRun(x, ones, ROWS, F, {}, null), 'TRAINING_DATA_INVALID', /all 1600 training rows have the same label \(UP\)/);
  });

  it('bad settings, shapes and values', () => {
    expectError(() => trainRun(x, y, ROWS, F, { holdoutFraction: 1 }, null), 'CONFIG_INVALID', /holdoutFraction must be in \(0, 1\), got 1/);
    expectError(() => trainRun(x, y, ROWS, F, { mlpHidden: 2.5 }, null), 'CONFIG_INVALID', /mlpHidden must be a whole number/);
    expectError(() => trainRun(x, y, ROWS, F, { epochs: 3 } as never, null), 'CONFIG_INVALID', /unknown training setting "epochs"/);
    expectError(() => trainRun(x, y, ROWS, F, { margin: -0.1 }, null), 'CONFIG_INVALID', /margin must be in \[0, 1\]/);
    expectError(() => trainRun(x, y, ROWS + 1, F, {}, null), 'TRAINING_DATA_INVALID', /x holds 12000/);
    expectError(() => trainRun(x, y, ROWS, F, {}, null, ['a', 'b']), 'TRAINING_DATA_INVALID', /2 feature names for 6 features/);
    const bad = x.slice();
    bad[7 * F + 2] = NaN;
    expectError(() => trainRun(bad, y, ROWS, F, {}, null), 'TRAINING_DATA_INVALID', /row 7, feature 2 is NaN/);
    const y3 = y.slice();
    y3[5] = 2;
    expectError(() => trainRun(x, y3, ROWS, F, {}, null), 'TRAINING_DATA_INVALID', /label of row 5 is 2/);
  });
});

describe('trainRun: determinism', () => {
  it('the same rows and settings give byte-identical ONNX and an identical card', () => {
    const again = trainRun(x.slice(), y.slice(), ROWS, F, {}, null, NAMES);
    expect(Buffer.from(again.candidate).equals(Buffer.from(base.candidate))).toBe(true);
    expect(again.card).toEqual(base.card);
    expect(base.card.created_at).toBeNull();
    expect(base.card.onnx.bytes).toBe(base.candidate.length);
  });

  it('another seed gives another model', () => {
    const other = trainRun(x, y, ROWS, F, { seed: 7 }, null, NAMES);
    expect(Buffer.from(other.candidate).equals(Buffer.from(base.candidate))).toBe(false);
    expect(other.card.seed).toBe(7);
  });

  it('force and margin decide, they do not shape the model', () => {
    const forced = trainRun(x, y, ROWS, F, { force: true, margin: 0.2 }, null, NAMES);
    expect(Buffer.from(forced.candidate).equals(Buffer.from(base.candidate))).toBe(true);
  });
});

describe('runTrainingInWorker', () => {
  // The serving model: an earlier candidate, trained on the oldest 1,000 rows only.
  const serving = trainRun(x, y, 1000, F, { seed: 3 }, null, NAMES).candidate;

  it('gives the same outcome as the in-thread call', async () => {
    const { p } = await ortProbabilities(serving, x.subarray(trainRows * F), holdoutRows);
    const servingP1 = Float32Array.from({ length: holdoutRows }, (_, i) => p[2 * i + 1]!);
    const local = trainRun(x, y, ROWS, F, { margin: 0.02 }, fixedScorer(servingP1), NAMES);
    const remote = await runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: { margin: 0.02 }, servingModel: serving, featureNames: NAMES });
    expect(Buffer.from(remote.candidate).equals(Buffer.from(local.candidate))).toBe(true);
    expect(remote.card).toEqual(local.card);
    expect(remote.candidateMetrics).toEqual(local.candidateMetrics);
    expect(remote.servingMetrics).toEqual(local.servingMetrics);
    expect(remote.promote).toBe(local.promote);
    expect(remote.reason).toBe(local.reason);
    expect(remote.trainRows).toBe(trainRows);
    // The caller's arrays were copied, not taken.
    expect(x.length).toBe(ROWS * F);
  });

  it('stamps created_at when given, and can take over the caller\'s arrays', async () => {
    const xs = x.slice();
    const ys = y.slice();
    const out = await runTrainingInWorker(
      { x: xs, y: ys, rows: ROWS, features: F, settings: {}, servingModel: null, featureNames: NAMES, createdAt: '2024-06-11T00:00:00.000Z' },
      { transferInput: true },
    );
    expect(xs.length).toBe(0); // detached: transferred, not copied
    expect(ys.length).toBe(0);
    expect(out.card.created_at).toBe('2024-06-11T00:00:00.000Z');
    expect({ ...out.card, created_at: null }).toEqual(base.card);
    expect(Buffer.from(out.candidate).equals(Buffer.from(base.candidate))).toBe(true);
  });

  it('trains on a subarray view of a larger buffer', async () => {
    const big = new Float32Array((ROWS + 50) * F);
    big.set(x, 50 * F);
    const out = await runTrainingInWorker(
      { x: big.subarray(50 * F), y: y.slice(), rows: ROWS, features: F, settings: {}, servingModel: null, featureNames: NAMES },
      { transferInput: true }, // x is not a whole buffer: copied instead
    );
    expect(big.length).toBe((ROWS + 50) * F);
    expect(Buffer.from(out.candidate).equals(Buffer.from(base.candidate))).toBe(true);
  });

  const rejection = async (p: Promise<unknown>): Promise<TradeflowError> => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TradeflowError);
    return err as TradeflowError;
  };

  it('rejects with the worker\'s error: too few rows', async () => {
    const err = await rejection(runTrainingInWorker({ x, y, rows: 120, features: F, settings: {}, servingModel: null }));
    expect(err.code).toBe('TRAINING_DATA_INVALID');
    expect(err.message).toMatch(/too few labelled rows to train: 120/);
  });

  it('rejects a serving model that is not ONNX or takes other features', async () => {
    const garbage = await rejection(
      runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: {}, servingModel: new TextEncoder().encode('not a model at all') }),
    );
    expect(garbage.code).toBe('MODEL_LOAD_FAILED');
    expect(garbage.message).toMatch(/^the serving model cannot be compared on the holdout: not an ONNX model/);

    const { x: x4, y: y4 } = dataset(300, 5);
    const fourFeatures = trainRun(
      Float32Array.from({ length: 300 * 4 }, (_, k) => x4[Math.floor(k / 4) * F + (k % 4)]!),
      y4,
      300,
      4,
      {},
      null,
    ).candidate;
    const wrongF = await rejection(runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: {}, servingModel: fourFeatures }));
    expect(wrongF.code).toBe('MODEL_LOAD_FAILED');
    expect(wrongF.message).toMatch(/it takes 4 features, the training rows have 6/);
  });

  it('rejects when the worker crashes', async () => {
    const err = await rejection(
      runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: {}, servingModel: null }, { resourceLimits: { maxOldGenerationSizeMb: 1 } }),
    );
    expect(err.code).toBe('WORKER_FAILED');
    expect(err.message).toMatch(/^the training worker crashed: .*memory/);
  });

  it('rejects when aborted, and before starting when already aborted', async () => {
    const ac = new AbortController();
    const run = runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: {}, servingModel: null }, { signal: ac.signal });
    ac.abort();
    const err = await rejection(run);
    expect(err.message).toMatch(/aborted/);
    const early = await rejection(runTrainingInWorker({ x, y, rows: ROWS, features: F, settings: {}, servingModel: null }, { signal: ac.signal }));
    expect(early.message).toMatch(/aborted/);
  });
});
