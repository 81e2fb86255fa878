/**
 * Scores rows with the adaptive random forest the main thread learns, read from shared memory:
 * every row of a batch is scored by one version of the forest, which is returned with the results.
 */
import type { Scorer } from '../../models/scorer';
import { SharedForest } from './shared-forest';

export class ArfScorer implements Scorer {
  private readonly shared: SharedForest;

  constructor(buffer: SharedArrayBuffer) {
    this.shared = SharedForest.attach(buffer);
  }

  async score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): Promise<number> {
    return this.shared.score(input, rows, probabilities, labels);
  }

  async release(): Promise<void> {}
}
