/**
 * A one-hidden-layer perceptron (ReLU hidden units, sigmoid output) trained with mini-batch
 * Adam on standardised features. The hidden layer lets it use interactions the linear model
 * cannot, e.g. "momentum continues in trending regimes but reverts when volatility is low".
 * All parameters live in one flat Float64Array so Adam is a single loop over it.
 */
import { Rng, deriveSeed } from './rng';
import { logitLoss, sigmoid } from './logreg';

export interface MlpSettings {
  readonly hidden: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** L2 penalty on the weights (not the biases). */
  readonly l2: number;
  readonly seed: number;
}

export const DEFAULT_MLP_SETTINGS: MlpSettings = Object.freeze({
  hidden: 24,
  epochs: 12,
  batchSize: 256,
  learningRate: 0.002,
  l2: 1e-4,
  seed: 1,
});

export interface MlpModel {
  readonly features: number;
  readonly hidden: number;
  /** Row-major `[features, hidden]`: the layout of an ONNX MatMul weight. */
  readonly w1: Float64Array;
  readonly b1: Float64Array;
  /** `[hidden]`, i.e. a `[hidden, 1]` column. */
  readonly w2: Float64Array;
  readonly b2: number;
}

export interface MlpResult {
  readonly model: MlpModel;
  /** Penalised mean cross-entropy on the whole training set at init and after each epoch. */
  readonly lossHistory: number[];
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPS = 1e-8;

/** Offsets of each tensor inside the flat parameter vector. */
interface Layout {
  readonly w1: number;
  readonly b1: number;
  readonly w2: number;
  readonly b2: number;
  readonly size: number;
}

function layout(features: number, hidden: number): Layout {
  const w1 = 0;
  const b1 = w1 + features * hidden;
  const w2 = b1 + hidden;
  const b2 = w2 + hidden;
  return { w1, b1, w2, b2, size: b2 + 1 };
}

export function trainMlp(
  x: Float64Array,
  y: ArrayLike<number>,
  rows: number,
  features: number,
  settings: MlpSettings = DEFAULT_MLP_SETTINGS,
): MlpResult {
  if (rows < 1) throw new RangeError('cannot train on an empty set');
  const H = settings.hidden;
  const L = layout(features, H);
  const theta = new Float64Array(L.size);
  const initRng = new Rng(deriveSeed(settings.seed, 'mlp-init'));
  const shuffleRng = new Rng(deriveSeed(settings.seed, 'mlp-shuffle'));
  // He initialisation for the ReLU layer, Xavier-like for the output.
  for (let i = 0; i < features * H; i++) theta[L.w1 + i] = initRng.gaussian() * Math.sqrt(2 / features);
  for (let h = 0; h < H; h++) theta[L.w2 + h] = initRng.gaussian() * Math.sqrt(1 / H);

  const grad = new Float64Array(L.size);
  const m = new Float64Array(L.size);
  const v = new Float64Array(L.size);
  const act = new Float64Array(H);
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  const isWeight = (k: number): boolean => k < L.b1 || (k >= L.w2 && k < L.b2);
  const lossHistory = [trainingLoss(theta, L, x, y, rows, features, H, settings.l2)];
  let step = 0;

  for (let epoch = 0; epoch < settings.epochs; epoch++) {
    shuffleRng.shuffle(order);
    for (let start = 0; start < rows; start += settings.batchSize) {
      const end = Math.min(rows, start + settings.batchSize);
      grad.fill(0);
      for (let n = start; n < end; n++) {
        const i = order[n]!;
        const dz = sigmoid(forwardRow(theta, L, x, i * features, features, H, act)) - y[i]!;
        grad[L.b2]! += dz;
        for (let h = 0; h < H; h++) {
          const a = act[h]!;
          if (a <= 0) continue; // ReLU passes no gradient where it was off
          grad[L.w2 + h]! += dz * a;
          const dh = dz * theta[L.w2 + h]!;
          grad[L.b1 + h]! += dh;
          for (let j = 0; j < features; j++) grad[L.w1 + j * H + h]! += x[i * features + j]! * dh;
        }
      }
      const count = end - start;
      step++;
      const c1 = 1 - Math.pow(ADAM_BETA1, step);
      const c2 = 1 - Math.pow(ADAM_BETA2, step);
      for (let k = 0; k < L.size; k++) {
        let g = grad[k]! / count;
        if (isWeight(k)) g += settings.l2 * theta[k]!;
        m[k] = ADAM_BETA1 * m[k]! + (1 - ADAM_BETA1) * g;
        v[k] = ADAM_BETA2 * v[k]! + (1 - ADAM_BETA2) * g * g;
        theta[k]! -= (settings.learningRate * (m[k]! / c1)) / (Math.sqrt(v[k]! / c2) + ADAM_EPS);
      }
    }
    lossHistory.push(trainingLoss(theta, L, x, y, rows, features, H, settings.l2));
  }

  return {
    model: {
      features,
      hidden: H,
      w1: theta.slice(L.w1, L.b1),
      b1: theta.slice(L.b1, L.w2),
      w2: theta.slice(L.w2, L.b2),
      b2: theta[L.b2]!,
    },
    lossHistory,
  };
}

/** Output logit of one row; leaves the post-ReLU hidden activations in `act`. */
function forwardRow(
  theta: Float64Array,
  L: Layout,
  x: ArrayLike<number>,
  offset: number,
  features: number,
  H: number,
  act: Float64Array,
): number {
  let z = theta[L.b2]!;
  for (let h = 0; h < H; h++) {
    let a = theta[L.b1 + h]!;
    for (let j = 0; j < features; j++) a += x[offset + j]! * theta[L.w1 + j * H + h]!;
    a = a > 0 ? a : 0;
    act[h] = a;
    z += a * theta[L.w2 + h]!;
  }
  return z;
}

function trainingLoss(
  theta: Float64Array,
  L: Layout,
  x: Float64Array,
  y: ArrayLike<number>,
  rows: number,
  features: number,
  H: number,
  l2: number,
): number {
  const act = new Float64Array(H);
  let loss = 0;
  for (let i = 0; i < rows; i++) loss += logitLoss(forwardRow(theta, L, x, i * features, features, H, act), y[i]!);
  let penalty = 0;
  for (let k = L.w1; k < L.b1; k++) penalty += theta[k]! * theta[k]!;
  for (let k = L.w2; k < L.b2; k++) penalty += theta[k]! * theta[k]!;
  return loss / rows + 0.5 * l2 * penalty;
}

/** Probability of class 1 for each standardised row. */
export function mlpProba(model: MlpModel, x: ArrayLike<number>, rows: number): Float64Array {
  const { features, hidden: H, w1, b1, w2, b2 } = model;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let z = b2;
    for (let h = 0; h < H; h++) {
      let a = b1[h]!;
      for (let j = 0; j < features; j++) a += x[i * features + j]! * w1[j * H + h]!;
      if (a > 0) z += a * w2[h]!;
    }
    out[i] = sigmoid(z);
  }
  return out;
}
