/** Scores rows with an onnxruntime session, reading the model's contract rather than assuming it. */
import * as ort from 'onnxruntime-node';
import { tfError } from '../errors';
import type { ServingContract } from './onnx-inspect';
import { argmaxClass, type Scorer } from './scorer';

export interface OnnxScorerOptions {
  intraOpNumThreads: number;
}

export class OnnxScorer implements Scorer {
  private readonly fetches: string[];
  /**
   * Worker-owned copies of the rows (onnxruntime refuses tensors backed by a SharedArrayBuffer).
   * Two, used in turn: with two batches in flight per worker the second is copied while the
   * first waits for its run, which reads its input later, in a setImmediate.
   */
  private scratch: Float32Array[];
  private turn = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly contract: ServingContract,
  ) {
    this.fetches = [contract.probabilityOutput];
    this.scratch = [new Float32Array(256 * contract.features), new Float32Array(256 * contract.features)];
  }

  static async create(bytes: Uint8Array, contract: ServingContract, opts: OnnxScorerOptions): Promise<OnnxScorer> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.intraOpNumThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw tfError('MODEL_LOAD_FAILED', `onnxruntime could not load the model: ${(err as Error).message}`);
    }
    return new OnnxScorer(session, contract);
  }

  async score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): Promise<number> {
    const F = this.contract.features;
    const n = rows * F;
    const i = (this.turn ^= 1);
    if (this.scratch[i]!.length < n) this.scratch[i] = new Float32Array(Math.max(n, this.scratch[i]!.length * 2));
    const data = this.scratch[i]!.subarray(0, n);
    data.set(input.subarray(0, n));
    const tensor = new ort.Tensor('float32', data, [rows, F]);
    const out = await this.session.run({ [this.contract.inputName]: tensor }, this.fetches);
    const probs = out[this.contract.probabilityOutput]!.data as Float32Array;
    if (this.contract.probabilityWidth === 2) {
      for (let r = 0; r < rows; r++) {
        const p0 = probs[2 * r]!;
        const p1 = probs[2 * r + 1]!;
        probabilities[2 * r] = p0;
        probabilities[2 * r + 1] = p1;
        labels[r] = argmaxClass(p0, p1);
      }
    } else {
      for (let r = 0; r < rows; r++) {
        const p1 = probs[r]!;
        const p0 = Math.fround(1 - p1);
        probabilities[2 * r] = p0;
        probabilities[2 * r + 1] = p1;
        labels[r] = argmaxClass(p0, p1);
      }
    }
    return -1;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
