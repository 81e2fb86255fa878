/**
 * Runs a training run (src/training/train-run.ts) in its own worker thread
 * (dist/workers/training.js), so that seconds of training never stall the event loop that
 * serves `/predict`. One worker per run; it exits when it has answered (see workers/training.ts
 * for why it is not reused).
 *
 * Memory: the rows cross to the worker by transfer, not by structured-clone copy. With
 * `transferInput: true` the caller hands over x and y themselves (they are detached
 * afterwards: pass a copy such as ReplayBuffer.toArrays() gives); otherwise exactly the rows
 * used are copied once and that copy is transferred. The candidate's bytes come back by transfer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { reviveError, tfError, TradeflowError } from '../errors';
import { projectRoot } from '../paths';
import type { TrainingWorkerData, TrainingWorkerReply } from './training-protocol';
import { withCreatedAt } from './model-card';
import type { TrainOutcome } from './train-run';

export interface TrainingInput extends TrainingWorkerData {
  /** Written into the card's `created_at` (it is never part of the ONNX bytes). */
  createdAt?: string;
}

export interface TrainingWorkerOptions {
  /** Hand x and y over to the worker (detaching them here) instead of copying the rows once. */
  transferInput?: boolean;
  /** Aborting terminates the worker and rejects (TradeflowError INTERNAL, naming a non-abort reason such as a timeout). */
  signal?: AbortSignal;
  /** Caps for the worker's heap, e.g. so a huge buffer fails the run instead of the process. */
  resourceLimits?: ResourceLimits;
}

/** The compiled worker: under dist/ whether we run from dist/ or from sources (tests). */
export function trainingWorkerFile(): string {
  const file = path.join(projectRoot(), 'dist', 'workers', 'training.js');
  if (!fs.existsSync(file)) throw tfError('INTERNAL', `training worker not built: ${file} is missing (run npm run build)`);
  return file;
}

export function runTrainingInWorker(input: TrainingInput, options: TrainingWorkerOptions = {}): Promise<TrainOutcome> {
  return new Promise<TrainOutcome>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    let worker: Worker;
    try {
      const { data, transferList } = workerInput(input, options.transferInput === true);
      worker = new Worker(trainingWorkerFile(), { workerData: data, transferList, resourceLimits: options.resourceLimits });
    } catch (err) {
      reject(err instanceof TradeflowError ? err : tfError('INTERNAL', `cannot start the training worker: ${(err as Error).message}`));
      return;
    }
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
      // After an answer the worker is exiting anyway; after a crash or an abort this ends it.
      void worker.terminate();
    };
    const onAbort = (): void => settle(() => reject(abortError(signal!)));
    signal?.addEventListener('abort', onAbort, { once: true });

    worker.once('message', (reply: TrainingWorkerReply) =>
      settle(() => {
        if (reply.ok) {
          const outcome = reply.outcome;
          resolve(input.createdAt === undefined ? outcome : { ...outcome, card: withCreatedAt(outcome.card, input.createdAt) });
        } else {
          reject(reviveError(reply.code, reply.message));
        }
      }),
    );
    worker.once('messageerror', (err: Error) =>
      settle(() => reject(tfError('WORKER_FAILED', `the training worker's answer could not be read: ${err.message}`))),
    );
    worker.once('error', (err: Error) =>
      settle(() => reject(tfError('WORKER_FAILED', `the training worker crashed: ${err.message}`))),
    );
    worker.once('exit', (code: number) =>
      settle(() => reject(tfError('WORKER_FAILED', `the training worker exited (code ${code}) without an answer`))),
    );
  });
}

function abortError(signal: AbortSignal): TradeflowError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return tfError('INTERNAL', `the training run was aborted${why}`);
}

function workerInput(input: TrainingInput, transfer: boolean): { data: TrainingWorkerData; transferList: ArrayBuffer[] } {
  const { rows, features } = input;
  // Shapes are the worker's to check (it answers with a clear message); only what slicing
  // needs is guarded here.
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(features) || features < 1) {
    throw tfError('TRAINING_DATA_INVALID', `bad training input shape: ${rows} rows of ${features} features`);
  }
  const x = owned(input.x, rows * features, transfer, null);
  const y = owned(input.y, rows, transfer, x.buffer);
  const serving = input.servingModel ? new Uint8Array(input.servingModel) : null;
  const transferList = [x.buffer, y.buffer, ...(serving ? [serving.buffer] : [])] as ArrayBuffer[];
  const data: TrainingWorkerData = {
    x,
    y,
    rows,
    features,
    settings: { ...input.settings },
    servingModel: serving,
    featureNames: input.featureNames ? [...input.featureNames] : undefined,
  };
  return { data, transferList };
}

/**
 * `a` itself when it may be transferred as it is (the caller allowed it, it is the whole of a
 * plain ArrayBuffer not already in the list), else a copy of its first `length` values.
 */
function owned<T extends Float32Array | Uint8Array>(a: T, length: number, transfer: boolean, taken: ArrayBufferLike | null): T {
  const whole =
    transfer &&
    a.buffer instanceof ArrayBuffer &&
    a.buffer !== taken &&
    a.byteOffset === 0 &&
    a.byteLength === a.buffer.byteLength &&
    a.length === length;
  return whole ? a : (a.slice(0, Math.min(length, a.length)) as T);
}
