/**
 * Feature standardisation (z-scores). Mean and standard deviation come from the training
 * split only, so the holdout is scored exactly as live traffic would be; the same two
 * vectors are baked into the ONNX graph (Sub, Div).
 */

export interface Standardizer {
  readonly mean: Float64Array;
  /** Never 0: a constant column gets 1 so that it standardises to 0 instead of NaN. */
  readonly std: Float64Array;
}

export function fitStandardizer(x: Float64Array, rows: number, features: number): Standardizer {
  if (rows < 1) throw new RangeError('cannot standardise an empty training set');
  const mean = new Float64Array(features);
  const std = new Float64Array(features);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < features; j++) mean[j]! += x[i * features + j]!;
  }
  for (let j = 0; j < features; j++) mean[j]! /= rows;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < features; j++) {
      const d = x[i * features + j]! - mean[j]!;
      std[j]! += d * d;
    }
  }
  for (let j = 0; j < features; j++) {
    const s = Math.sqrt(std[j]! / rows);
    std[j] = s > 1e-12 ? s : 1;
  }
  return { mean, std };
}

/** A standardised copy of `x` (row-major, `features` columns). */
export function standardize(s: Standardizer, x: ArrayLike<number>, rows: number): Float64Array {
  const features = s.mean.length;
  const out = new Float64Array(rows * features);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < features; j++) {
      const k = i * features + j;
      out[k] = (x[k]! - s.mean[j]!) / s.std[j]!;
    }
  }
  return out;
}
