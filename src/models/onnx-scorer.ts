/** Scores rows with an onnxruntime session, reading the model's contract rather than assuming it. */
import * as ort from 'onnxruntime-node';
import { TradeflowError } from '../errors';
import type { ServingContract } from './onnx-inspect';
import { argmaxClass, type Scorer } from './scorer';

export interface OnnxScorerOptions {
  intraOpNumThreads: number;
}

export class OnnxScorer implements Scorer {
  private readonly fetches: string[];
  /** Worker-owned copy of the rows: onnxruntime refuses tensors backed by a SharedArrayBuffer. */
  private scratch: Float32Array;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly contract: ServingContract,
  ) {
    this.fetches = [contract.probabilityOutput];
    this.scratch = new Float32Array(256 * contract.features);
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
      throw new TradeflowError('MODEL_LOAD_FAILED', `onnxruntime could not load the model: ${(err as Error).message}`);
    }
    return new OnnxScorer(session, contract);
  }

  async score(input: Float32Array, rows: number, probabilities: Float32Array, labels: Int32Array): Promise<number> {
    const F = this.contract.features;
    const n = rows * F;
    if (this.scratch.length < n) this.scratch = new Float32Array(Math.max(n, this.scratch.length * 2));
    const data = this.scratch.subarray(0, n);
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
