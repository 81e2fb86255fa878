/**
 * What src/training/training-worker.ts and the training thread (workers/training.ts) exchange:
 * the rows and settings in workerData, and the one reply the thread posts before it exits.
 */
import type { ErrorCode } from '../errors';
import type { TrainOutcome, TrainSettings } from './train-run';

export interface TrainingWorkerData {
  /** Row-major, `features` values per row, oldest row first; at least rows * features values. */
  x: Float32Array;
  /** 0 (DOWN) or 1 (UP) per row. */
  y: Uint8Array;
  rows: number;
  features: number;
  settings: Partial<TrainSettings>;
  /** ONNX bytes of the model serving now, scored on the same holdout; null: nothing to compare. */
  servingModel: Uint8Array | null;
  featureNames?: string[];
}

export type TrainingWorkerReply =
  | { ok: true; outcome: TrainOutcome }
  | { ok: false; code: ErrorCode; message: string; stack?: string };
