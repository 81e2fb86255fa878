/**
 * A scorer turns rows of features into class probabilities. ONNX models implement it today; the
 * online SGD model (weights in a SharedArrayBuffer) implements the same interface, so a worker
 * serves either without knowing which it holds.
 */
export interface Scorer {
  /**
   * Scores `rows` rows of `input` (row-major, F per row). Writes p(class 0), p(class 1) per row
   * into `probabilities` and the predicted class (argmax, ties to class 0) into `labels`.
   * Resolves with the version of the weights used when they change while serving (the online
   * model's update count), or -1 for a fixed model.
   */
  score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): Promise<number>;
  release(): Promise<void>;
}

/** Predicted class from the two probabilities: argmax, ties to class 0 (as sklearn's label). */
export function argmaxClass(p0: number, p1: number): number {
  return p1 > p0 ? 1 : 0;
}

/**
 * A deterministic warm-up batch: zeros, ones, minus ones and spread values. Run on every model
 * before it serves, so a model that yields non-finite probabilities is refused up front.
 */
export function warmupRows(features: number, rows = 8): Float32Array {
  const out = new Float32Array(rows * features);
  let seed = 0x9e3779b9;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < features; c++) {
      let v: number;
      if (r === 0) v = 0;
      else if (r === 1) v = 1;
      else if (r === 2) v = -1;
      else {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        v = (seed / 0x100000000) * 6 - 3;
      }
      out[r * features + c] = v;
    }
  }
  return out;
}

/** Index of the first non-finite probability, or -1. */
export function firstNonFinite(probabilities: Float32Array, rows: number): number {
  for (let i = 0; i < rows * 2; i++) {
    const v = probabilities[i]!;
    if (!(v >= 0 && v <= 1)) return i >> 1;
  }
  return -1;
}
