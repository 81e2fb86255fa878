/**
 * Logistic regression trained by full-batch gradient descent on standardised features.
 * Full batch keeps it deterministic and simple; with z-scored inputs the problem is well
 * conditioned and a few hundred steps converge.
 */
import { Rng } from './rng';

export interface LogregSettings {
  readonly epochs: number;
  readonly learningRate: number;
  /** L2 penalty on the weights (not the bias). */
  readonly l2: number;
  readonly seed: number;
}

export const DEFAULT_LOGREG_SETTINGS: LogregSettings = Object.freeze({
  epochs: 300,
  learningRate: 0.5,
  l2: 1e-4,
  seed: 1,
});

export interface LogregModel {
  readonly weights: Float64Array;
  readonly bias: number;
}

export interface LogregResult {
  readonly model: LogregModel;
  /** Penalised mean cross-entropy on the training set before each step and after the last. */
  readonly lossHistory: number[];
}

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** Cross-entropy of a logit `z` against label `y`, without overflow for large |z|. */
export function logitLoss(z: number, y: number): number {
  return Math.max(z, 0) - y * z + Math.log1p(Math.exp(-Math.abs(z)));
}

/** `x` is standardised, row-major `[rows, features]`; `y` holds 0/1. */
export function trainLogreg(
  x: Float64Array,
  y: ArrayLike<number>,
  rows: number,
  features: number,
  settings: LogregSettings = DEFAULT_LOGREG_SETTINGS,
): LogregResult {
  if (rows < 1) throw new RangeError('cannot train on an empty set');
  const rng = new Rng(settings.seed);
  const w = new Float64Array(features);
  for (let j = 0; j < features; j++) w[j] = 0.01 * rng.gaussian();
  let b = 0;
  const grad = new Float64Array(features);
  const lossHistory: number[] = [];

  for (let epoch = 0; epoch <= settings.epochs; epoch++) {
    grad.fill(0);
    let gradB = 0;
    let loss = 0;
    for (let i = 0; i < rows; i++) {
      const o = i * features;
      let z = b;
      for (let j = 0; j < features; j++) z += w[j]! * x[o + j]!;
      const yi = y[i]!;
      loss += logitLoss(z, yi);
      const err = sigmoid(z) - yi;
      gradB += err;
      for (let j = 0; j < features; j++) grad[j]! += err * x[o + j]!;
    }
    let penalty = 0;
    for (let j = 0; j < features; j++) penalty += w[j]! * w[j]!;
    lossHistory.push(loss / rows + 0.5 * settings.l2 * penalty);
    // The last pass only measures the final loss.
    if (epoch === settings.epochs) break;
    for (let j = 0; j < features; j++) {
      w[j]! -= settings.learningRate * (grad[j]! / rows + settings.l2 * w[j]!);
    }
    b -= settings.learningRate * (gradB / rows);
  }
  return { model: { weights: w, bias: b }, lossHistory };
}

/** Probability of class 1 for each standardised row. */
export function logregProba(model: LogregModel, x: ArrayLike<number>, rows: number): Float64Array {
  const features = model.weights.length;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let z = model.bias;
    for (let j = 0; j < features; j++) z += model.weights[j]! * x[i * features + j]!;
    out[i] = sigmoid(z);
  }
  return out;
}
