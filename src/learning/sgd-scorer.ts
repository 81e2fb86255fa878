/**
 * Scores rows with the online logistic regression, reading its weights from the shared buffer
 * the single writer (the main thread) publishes into. One consistent read per batch: every row
 * of a batch is scored by the same weights version, which is returned with the results.
 */
import { argmaxClass, type Scorer } from '../models/scorer';
import { SharedWeights } from './shared-weights';

export class SgdScorer implements Scorer {
  private readonly shared: SharedWeights;
  private readonly w: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.shared = SharedWeights.attach(buffer);
    this.w = new Float64Array(this.shared.features);
  }

  async score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): Promise<number> {
    const { bias, version } = this.shared.read(this.w);
    const w = this.w;
    const F = w.length;
    for (let r = 0; r < rows; r++) {
      let z = bias;
      const base = r * F;
      for (let c = 0; c < F; c++) z += w[c]! * input[base + c]!;
      const p1 = Math.fround(1 / (1 + Math.exp(-z)));
      const p0 = Math.fround(1 - p1);
      probabilities[2 * r] = p0;
      probabilities[2 * r + 1] = p1;
      labels[r] = argmaxClass(p0, p1);
    }
    return version;
  }

  async release(): Promise<void> {}
}
