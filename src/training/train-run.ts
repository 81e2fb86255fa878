/**
 * One training run of the served ensemble: split the labelled rows in time order, train on
 * the older part, score the candidate and the serving model on the same most recent rows, and
 * decide whether the candidate may replace the serving model. Pure and synchronous, because it
 * runs inside a worker thread (workers/training.ts) and in the CLI (`tradeflow train`) alike;
 * everything it produces is a function of the rows and the settings, so the same input gives
 * byte-identical ONNX.
 */
import { onnx } from 'onnx-proto';
import { tfError } from '../errors';
import { DEFAULT_CLASS_LABELS, writeEnsembleOnnx } from './onnx-writer';
import { ensembleProba, trainEnsemble, type EnsembleModel, type EnsembleSettings } from './ensemble';
import { DEFAULT_LOGREG_SETTINGS } from './logreg';
import { binaryMetrics, majorityBaseline } from './metrics';
import { DEFAULT_MLP_SETTINGS } from './mlp';
import { deriveSeed } from './rng';
import { buildModelCard, dataSha256, type ModelCard } from './model-card';

export interface TrainSettings {
  /** Share of the rows held out, taken from the END (the most recent rows). In (0, 1). */
  holdoutFraction: number;
  /** Every random stream of the trainers derives from it (uint32). */
  seed: number;
  /** Fewer labelled rows than this: the run is refused (see `trainabilityProblem`). */
  minRows: number;
  /** Promote unless candidate accuracy < serving accuracy - margin. In [0, 1]. */
  margin: number;
  /** Promote whatever the comparison says (both models are still scored). */
  force: boolean;
  /**
   * Also train a candidate on only the most recent this many training rows (0: none). The one of
   * the two with the better holdout accuracy is the run's candidate: after a change of concept the
   * rows before it teach the old one.
   */
  recentRows: number;
  logregEpochs: number;
  logregLearningRate: number;
  logregL2: number;
  mlpHidden: number;
  mlpEpochs: number;
  mlpBatchSize: number;
  mlpLearningRate: number;
  mlpL2: number;
}

/**
 * The trainer settings are the bundled model's (scripts/make-default-model.ts), seed
 * included. They train a 50,000-row buffer (40,000 training rows, F=16) in about 3 s on one
 * core of the 2-core dev machine (bench/RESULTS.md, "Training runs"), so no smaller preset
 * is needed.
 */
export const DEFAULT_TRAIN_SETTINGS: Readonly<TrainSettings> = Object.freeze({
  holdoutFraction: 0.2,
  seed: 20_240_611,
  minRows: 200,
  margin: 0.01,
  force: false,
  recentRows: 5000,
  logregEpochs: DEFAULT_LOGREG_SETTINGS.epochs,
  logregLearningRate: DEFAULT_LOGREG_SETTINGS.learningRate,
  logregL2: DEFAULT_LOGREG_SETTINGS.l2,
  mlpHidden: DEFAULT_MLP_SETTINGS.hidden,
  mlpEpochs: DEFAULT_MLP_SETTINGS.epochs,
  mlpBatchSize: DEFAULT_MLP_SETTINGS.batchSize,
  mlpLearningRate: DEFAULT_MLP_SETTINGS.learningRate,
  mlpL2: DEFAULT_MLP_SETTINGS.l2,
});

export interface HoldoutMetrics {
  rows: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

/** One candidate a run trained: on the whole training part, or on its most recent rows. */
export interface CandidateRecord {
  window: 'all' | 'recent';
  /** Training rows [firstRow, firstRow + rows) of the buffer. */
  firstRow: number;
  rows: number;
  metrics: HoldoutMetrics;
}

export interface TrainOutcome {
  /** ONNX in the SPEC §2 convention: `input` [N,F] → `label` int64 [N], `probabilities` float32 [N,2]. */
  candidate: Uint8Array;
  card: ModelCard;
  candidateMetrics: HoldoutMetrics;
  servingMetrics: HoldoutMetrics | null;
  promote: boolean;
  reason: string;
  /** Where the holdout starts: the rows before it are the training part. */
  trainRows: number;
  holdoutRows: number;
  /** Every candidate trained, the chosen one (`candidateMetrics`) first. */
  candidates: CandidateRecord[];
  /** The candidate's parameters (float32-exact: the numbers stored in `candidate`). */
  model: EnsembleModel;
}

/** p(class 1) of the serving model for `rows` rows of `x` (row-major, F per row). */
export type ServingScorer = (x: Float32Array, rows: number) => Float32Array;

export const MODEL_NAME = 'ensemble';

const INTEGER_KEYS = new Set<keyof TrainSettings>(['seed', 'minRows', 'recentRows', 'logregEpochs', 'mlpHidden', 'mlpEpochs', 'mlpBatchSize']);

function invalid(message: string): never {
  throw tfError('CONFIG_INVALID', message);
}

/** The rows, not the settings, are what is wrong: the run fails, no setting needs fixing. */
function untrainable(message: string): never {
  throw tfError('TRAINING_DATA_INVALID', message);
}

/**
 * Defaults filled in and every value checked; unknown keys are refused so that a typo in a
 * `POST /train` body or a flag does not silently train with the default.
 */
export function resolveTrainSettings(partial: Partial<TrainSettings> = {}): TrainSettings {
  const s: TrainSettings = { ...DEFAULT_TRAIN_SETTINGS };
  for (const [key, value] of Object.entries(partial)) {
    if (!(key in DEFAULT_TRAIN_SETTINGS)) {
      invalid(`unknown training setting "${key}" (known: ${Object.keys(DEFAULT_TRAIN_SETTINGS).join(', ')})`);
    }
    if (value === undefined) continue;
    const k = key as keyof TrainSettings;
    if (k === 'force') {
      if (typeof value !== 'boolean') invalid(`training setting force must be true or false, got ${JSON.stringify(value)}`);
      s.force = value;
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) invalid(`training setting ${k} must be a finite number, got ${JSON.stringify(value)}`);
    if (INTEGER_KEYS.has(k) && !Number.isInteger(value)) invalid(`training setting ${k} must be a whole number, got ${value}`);
    (s as unknown as Record<string, number>)[k] = value;
  }
  const range = (k: keyof TrainSettings, ok: boolean, what: string): void => {
    if (!ok) invalid(`training setting ${k} must be ${what}, got ${s[k]}`);
  };
  range('holdoutFraction', s.holdoutFraction > 0 && s.holdoutFraction < 1, 'in (0, 1)');
  range('seed', s.seed >= 0 && s.seed <= 0xffffffff, 'in [0, 4294967295]');
  range('minRows', s.minRows >= 2, '≥ 2');
  range('margin', s.margin >= 0 && s.margin <= 1, 'in [0, 1]');
  range('recentRows', s.recentRows >= 0, '≥ 0');
  range('logregEpochs', s.logregEpochs >= 1, '≥ 1');
  range('logregLearningRate', s.logregLearningRate > 0, '> 0');
  range('logregL2', s.logregL2 >= 0, '≥ 0');
  range('mlpHidden', s.mlpHidden >= 1 && s.mlpHidden <= 1024, 'in [1, 1024]');
  range('mlpEpochs', s.mlpEpochs >= 1, '≥ 1');
  range('mlpBatchSize', s.mlpBatchSize >= 1, '≥ 1');
  range('mlpLearningRate', s.mlpLearningRate > 0, '> 0');
  range('mlpL2', s.mlpL2 >= 0, '≥ 0');
  return s;
}

/** Rows [0, trainRows) train; rows [trainRows, rows) are the holdout. */
export function holdoutSplit(rows: number, holdoutFraction: number): { trainRows: number; holdoutRows: number } {
  const trainRows = Math.round(rows * (1 - holdoutFraction));
  return { trainRows, holdoutRows: rows - trainRows };
}

/**
 * Why these rows cannot be trained on, or null when they can. Callers with a trigger (the
 * schedule, drift) ask this first to skip a run with a logged reason instead of failing one.
 */
export function trainabilityProblem(y: ArrayLike<number>, rows: number, settings: Partial<TrainSettings> = {}): string | null {
  const s = resolveTrainSettings(settings);
  if (rows < s.minRows) return `too few labelled rows to train: ${rows}, at least ${s.minRows} are needed`;
  const { trainRows, holdoutRows } = holdoutSplit(rows, s.holdoutFraction);
  if (trainRows < 1 || holdoutRows < 1) {
    return `a holdout fraction of ${s.holdoutFraction} leaves ${trainRows} training and ${holdoutRows} holdout rows out of ${rows}`;
  }
  let ones = 0;
  for (let i = 0; i < trainRows; i++) ones += y[i]! === 1 ? 1 : 0;
  if (ones === 0 || ones === trainRows) {
    const only = DEFAULT_CLASS_LABELS[ones === 0 ? 0 : 1];
    return `all ${trainRows} training rows have the same label (${only}): there is nothing to learn`;
  }
  return null;
}

export function trainRun(
  x: Float32Array,
  y: Uint8Array,
  rows: number,
  features: number,
  settings: Partial<TrainSettings>,
  serving: ServingScorer | null,
  featureNames?: string[],
): TrainOutcome {
  const { settings: s, trainRows, holdoutRows } = checkTrainingInput(x, y, rows, features, settings, featureNames);
  const F = features;
  const xHold = x.subarray(trainRows * F, rows * F);
  const yHold = y.subarray(trainRows, rows);

  // The serving model first: if it cannot score these rows there is no point in training.
  const servingP = serving ? checkServing(serving(xHold, holdoutRows), holdoutRows) : null;

  const ensembleSettings = trainerSettings(s);
  const chosen = trainCandidates(x, y, trainRows, rows, F, s, ensembleSettings);
  const { model, training, candidates } = chosen;
  const candidateMetrics = candidates[0]!.metrics;
  const servingMetrics = servingP ? holdoutMetrics(yHold, servingP) : null;
  const { promote, reason } = decide(candidateMetrics, servingMetrics, s.margin, s.force);

  const trainer = trainerRecord(s, ensembleSettings, candidates);
  const from = candidates[0]!.firstRow;
  const trainSha = dataSha256(x, y, F, from, trainRows);
  const yTrain = y.subarray(from, trainRows);
  const candidate = writeCandidate(model, F, featureNames, {
    producer: 'tradeflow src/training/train-run.ts',
    training_seed: String(s.seed),
    data_sha256: trainSha,
    train_rows: String(trainRows - from),
    trainer: JSON.stringify(trainer.model),
  });

  const baseline = majorityBaseline(yHold);
  const card = buildModelCard({
    name: MODEL_NAME,
    onnx: candidate,
    features: F,
    featureNames: featureNames ?? null,
    dataSha256: trainSha,
    holdoutSha256: dataSha256(x, y, F, trainRows, rows),
    trainRows,
    holdoutRows,
    trainPositiveRate: positiveRate(yTrain),
    holdoutPositiveRate: positiveRate(yHold),
    candidate: candidateMetrics,
    serving: servingMetrics,
    majorityBaseline: baseline,
    trainingLoss: {
      logreg: { first: training.logregLoss[0]!, last: training.logregLoss.at(-1)! },
      mlp: { first: training.mlpLoss[0]!, last: training.mlpLoss.at(-1)! },
    },
    promotion: { promote, reason, forced: s.force, margin: s.margin },
    trainer: trainer.card,
    seed: s.seed,
  });

  return { candidate, card, candidateMetrics, servingMetrics, promote, reason, trainRows, holdoutRows, candidates, model };
}

/**
 * The ensemble trained on the whole training part and, when `recentRows` leaves rows out, on its
 * most recent `recentRows` only; each scored on the same holdout. The recent one is chosen only
 * when strictly better there (a tie goes to the one that saw more data). Listed chosen first.
 */
function trainCandidates(
  x: Float32Array,
  y: Uint8Array,
  trainRows: number,
  rows: number,
  F: number,
  s: TrainSettings,
  e: EnsembleSettings,
): { model: EnsembleModel; training: ReturnType<typeof trainEnsemble>; candidates: CandidateRecord[] } {
  const xHold = x.subarray(trainRows * F, rows * F);
  const yHold = y.subarray(trainRows, rows);
  const fit = (from: number) => {
    // Widening float32 → float64 is exact, so training sees exactly the numbers served later.
    const training = trainEnsemble(Float64Array.from(x.subarray(from * F, trainRows * F)), y.subarray(from, trainRows), trainRows - from, F, e);
    const model = toFloat32Parameters(training.model);
    return { training, model, metrics: holdoutMetrics(yHold, ensembleProba(model, xHold, rows - trainRows).ensemble) };
  };
  const all = fit(0);
  const allRecord: CandidateRecord = { window: 'all', firstRow: 0, rows: trainRows, metrics: all.metrics };
  const from = trainRows - s.recentRows;
  if (s.recentRows === 0 || from <= 0 || oneLabel(y, from, trainRows)) return { model: all.model, training: all.training, candidates: [allRecord] };
  const recent = fit(from);
  const recentRecord: CandidateRecord = { window: 'recent', firstRow: from, rows: s.recentRows, metrics: recent.metrics };
  if (recent.metrics.accuracy > all.metrics.accuracy) return { model: recent.model, training: recent.training, candidates: [recentRecord, allRecord] };
  return { model: all.model, training: all.training, candidates: [allRecord, recentRecord] };
}

/** A window with one label only teaches nothing (and the trainer refuses it). */
function oneLabel(y: Uint8Array, from: number, to: number): boolean {
  let ones = 0;
  for (let i = from; i < to; i++) ones += y[i]!;
  return ones === 0 || ones === to - from;
}

/**
 * Everything `trainRun` refuses, checked up front: the settings, the shapes, the values and
 * `trainabilityProblem`. Throws CONFIG_INVALID for the settings and TRAINING_DATA_INVALID for the
 * rows; answers the resolved settings and the split. The worker calls it before it spends time
 * loading the serving model.
 */
export function checkTrainingInput(
  x: Float32Array,
  y: Uint8Array,
  rows: number,
  features: number,
  settings: Partial<TrainSettings>,
  featureNames?: string[],
): { settings: TrainSettings; trainRows: number; holdoutRows: number } {
  const s = resolveTrainSettings(settings);
  checkInput(x, y, rows, features, featureNames);
  const problem = trainabilityProblem(y, rows, s);
  if (problem !== null) untrainable(problem);
  return { settings: s, ...holdoutSplit(rows, s.holdoutFraction) };
}

/**
 * The promotion rule. Accuracy alone decides, because it is what the dashboard and the
 * margin are expressed in; precision, recall and F1 are recorded for people to read.
 */
export function decide(
  candidate: HoldoutMetrics,
  serving: HoldoutMetrics | null,
  margin: number,
  force: boolean,
): { promote: boolean; reason: string } {
  const c = candidate.accuracy.toFixed(4);
  if (force) {
    return {
      promote: true,
      reason: serving
        ? `forced: promoted without regard to the comparison (holdout accuracy ${c} vs serving ${serving.accuracy.toFixed(4)})`
        : `forced: promoted (holdout accuracy ${c}; no serving model to compare)`,
    };
  }
  if (!serving) return { promote: true, reason: `no serving model to compare against; holdout accuracy ${c}` };
  const sv = serving.accuracy.toFixed(4);
  const m = margin.toFixed(4);
  if (candidate.accuracy >= serving.accuracy - margin) {
    return { promote: true, reason: `holdout accuracy ${c} vs serving ${sv}: not worse by more than the margin ${m}` };
  }
  return {
    promote: false,
    reason:
      `refused: holdout accuracy ${c} is below the serving model's ${sv} by ` +
      `${(serving.accuracy - candidate.accuracy).toFixed(4)}, more than the margin ${m}`,
  };
}

function checkInput(x: Float32Array, y: Uint8Array, rows: number, features: number, featureNames?: string[]): void {
  if (!Number.isInteger(features) || features < 1) untrainable(`the number of features must be a positive whole number, got ${features}`);
  if (!Number.isInteger(rows) || rows < 0) untrainable(`the number of rows must be a whole number ≥ 0, got ${rows}`);
  if (x.length < rows * features) untrainable(`${rows} rows of ${features} features need ${rows * features} values, x holds ${x.length}`);
  if (y.length < rows) untrainable(`${rows} rows need ${rows} labels, y holds ${y.length}`);
  if (featureNames !== undefined) {
    if (featureNames.length !== features) untrainable(`${featureNames.length} feature names for ${features} features`);
    for (const name of featureNames) {
      if (name.length === 0 || name.includes(',')) untrainable(`feature name ${JSON.stringify(name)} is empty or contains a comma`);
    }
  }
  for (let i = 0; i < rows; i++) {
    if (y[i]! > 1) untrainable(`label of row ${i} is ${y[i]}; labels are 0 (${DEFAULT_CLASS_LABELS[0]}) or 1 (${DEFAULT_CLASS_LABELS[1]})`);
  }
  const n = rows * features;
  for (let k = 0; k < n; k++) {
    if (!Number.isFinite(x[k]!)) untrainable(`row ${Math.floor(k / features)}, feature ${k % features} is ${x[k]}`);
  }
}

function checkServing(p: Float32Array, rows: number): Float32Array {
  const fail = (why: string): never => {
    throw tfError('MODEL_LOAD_FAILED', `the serving model cannot be compared on the holdout: ${why}`);
  };
  if (p.length !== rows) fail(`it gave ${p.length} probabilities for ${rows} rows`);
  for (let i = 0; i < rows; i++) {
    if (!Number.isFinite(p[i]!)) fail(`its probability for holdout row ${i} is ${p[i]}`);
  }
  return p;
}

function holdoutMetrics(y: Uint8Array, p1: ArrayLike<number>): HoldoutMetrics {
  const m = binaryMetrics(y, p1);
  return { rows: m.rows, accuracy: m.accuracy, precision: m.precision, recall: m.recall, f1: m.f1 };
}

function positiveRate(y: Uint8Array): number {
  let ones = 0;
  for (let i = 0; i < y.length; i++) ones += y[i]!;
  return y.length > 0 ? ones / y.length : 0;
}

function trainerSettings(s: TrainSettings): EnsembleSettings {
  // Independent streams per member, as for the bundled model: changing the MLP's size does
  // not change the logistic regression's initial weights.
  return {
    logreg: { epochs: s.logregEpochs, learningRate: s.logregLearningRate, l2: s.logregL2, seed: deriveSeed(s.seed, 'logreg') },
    mlp: {
      hidden: s.mlpHidden,
      epochs: s.mlpEpochs,
      batchSize: s.mlpBatchSize,
      learningRate: s.mlpLearningRate,
      l2: s.mlpL2,
      seed: deriveSeed(s.seed, 'mlp'),
    },
  };
}

/**
 * `model`: what shapes the parameters (goes into the ONNX metadata); `card`: that plus the
 * run's decision settings, which must stay out of the ONNX bytes (a forced run on the same rows
 * gives the same file).
 */
function trainerRecord(s: TrainSettings, e: EnsembleSettings, candidates: CandidateRecord[]): { model: Record<string, unknown>; card: Record<string, unknown> } {
  const chosen = candidates[0]!;
  const model = {
    holdout_fraction: s.holdoutFraction,
    // Only a recent-window candidate says so: a whole-buffer candidate's file is as it always was.
    ...(chosen.window === 'recent' ? { training_window: `the most recent ${chosen.rows} training rows (from row ${chosen.firstRow})` } : {}),
    standardization: 'z-score, mean and population std of the training rows',
    logreg: { method: 'full-batch gradient descent, cross-entropy + L2', epochs: e.logreg.epochs, learning_rate: e.logreg.learningRate, l2: e.logreg.l2, seed: e.logreg.seed },
    mlp: {
      method: `${e.mlp.hidden} ReLU units, sigmoid output, mini-batch Adam, cross-entropy + L2`,
      hidden: e.mlp.hidden,
      epochs: e.mlp.epochs,
      batch_size: e.mlp.batchSize,
      learning_rate: e.mlp.learningRate,
      l2: e.mlp.l2,
      seed: e.mlp.seed,
    },
    ensemble: 'mean of the two class-1 probabilities',
  };
  const compared = candidates.map((c) => ({ window: c.window, first_row: c.firstRow, rows: c.rows, holdout_accuracy: c.metrics.accuracy }));
  return { model, card: { ...model, min_rows: s.minRows, margin: s.margin, force: s.force, recent_rows: s.recentRows, candidates: compared } };
}

/**
 * The ONNX file stores float32; rounding the trained parameters here means the TypeScript
 * model, the holdout metrics and the file all describe the same numbers.
 */
function toFloat32Parameters(m: EnsembleModel): EnsembleModel {
  const f = (a: Float64Array): Float64Array => a.map((v) => Math.fround(v));
  return {
    standardizer: { mean: f(m.standardizer.mean), std: f(m.standardizer.std) },
    logreg: { weights: f(m.logreg.weights), bias: Math.fround(m.logreg.bias) },
    mlp: { ...m.mlp, w1: f(m.mlp.w1), b1: f(m.mlp.b1), w2: f(m.mlp.w2), b2: Math.fround(m.mlp.b2) },
  };
}

function writeCandidate(model: EnsembleModel, F: number, featureNames: string[] | undefined, metadata: Record<string, string>): Uint8Array {
  const bytes = writeEnsembleOnnx({
    featureNames: featureNames ?? Array.from({ length: F }, (_, j) => `f${j}`),
    standardizer: model.standardizer,
    logreg: model.logreg,
    mlp: model.mlp,
    modelName: MODEL_NAME,
    metadata,
  });
  // The writer always names the columns; placeholder names would pass for real ones in
  // `GET /models`, so without real names the entry is taken out again.
  return featureNames ? bytes : withoutMetadata(bytes, 'feature_names');
}

function withoutMetadata(bytes: Uint8Array, key: string): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  model.metadataProps = model.metadataProps.filter((e) => e.key !== key);
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}
