/** Binary classification quality on a labelled set, class 1 (UP) being the positive class. */

export interface BinaryMetrics {
  readonly accuracy: number;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly rows: number;
}

/** Predictions are `p1 > threshold` (0.5: the class with the higher probability). */
export function binaryMetrics(y: ArrayLike<number>, p1: ArrayLike<number>, threshold = 0.5): BinaryMetrics {
  if (y.length !== p1.length) throw new RangeError(`${y.length} labels but ${p1.length} predictions`);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let correct = 0;
  for (let i = 0; i < y.length; i++) {
    const pred = p1[i]! > threshold ? 1 : 0;
    const truth = y[i]!;
    if (pred === truth) correct++;
    if (pred === 1 && truth === 1) tp++;
    else if (pred === 1) fp++;
    else if (truth === 1) fn++;
  }
  // Conventions for empty denominators follow sklearn's zero_division=0.
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { accuracy: y.length > 0 ? correct / y.length : 0, precision, recall, f1, rows: y.length };
}

/** The accuracy of always answering the more frequent class of `y`: what a model must beat. */
export function majorityBaseline(y: ArrayLike<number>): { readonly label: 0 | 1; readonly accuracy: number } {
  let ones = 0;
  for (let i = 0; i < y.length; i++) ones += y[i]!;
  const label = ones * 2 > y.length ? 1 : 0;
  const hits = label === 1 ? ones : y.length - ones;
  return { label, accuracy: y.length > 0 ? hits / y.length : 0 };
}

/** Mean binary cross-entropy of probabilities `p1` against labels `y`. */
export function logLoss(y: ArrayLike<number>, p1: ArrayLike<number>): number {
  const eps = 1e-12;
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    const p = Math.min(1 - eps, Math.max(eps, p1[i]!));
    s -= y[i]! === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return y.length > 0 ? s / y.length : 0;
}
