/**
 * What src/training/training-worker.ts and the training thread (workers/training.ts) exchange:
 * the rows and settings in workerData, and the one reply the thread posts before it exits.
 */
import type { ErrorCode } from '../errors';
import type { TrainOutcome, TrainSettings } from './train-run';

export interface TrainingWorkerData {
  x: Float32Array;
  y: Uint8Array;
  rows: number;
  features: number;
  settings: Partial<TrainSettings>;
  servingModel: Uint8Array | null;
  featureNames?: string[];
}

export type TrainingWorkerReply =
  | { ok: true; outcome: TrainOutcome }
  | { ok: false; code: ErrorCode; message: string; stack?: string };
