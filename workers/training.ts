/**
 * Training worker: a plain worker_threads worker (not part of the Piscina inference pool) that
 * runs one training run and exits. Started by src/training/training-worker.ts with the rows
 * transferred in workerData; it scores the serving model (onnxruntime) on the holdout, trains
 * the candidate (src/training/train-run.ts) and posts back one TrainingWorkerReply, the
 * candidate's ONNX bytes transferred rather than copied.
 *
 * One worker per run, never reused: a run happens every few hours at most, a fresh thread
 * costs tens of milliseconds against seconds of training, and exiting returns the training
 * arrays and the onnxruntime session's memory at once instead of keeping them in a thread that
 * waits for a run that may never come.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { isErrorCode, isTradeflowError, tfError, type ErrorCode } from '../src/errors';
import { inspectOnnx, servingContract } from '../src/models/onnx-inspect';
import { checkTrainingInput, trainRun, type TrainOutcome } from '../src/training/train-run';
import type { TrainingWorkerData, TrainingWorkerReply } from '../src/training/training-protocol';

/**
 * Test hook (environment only, never configuration): the run sleeps this long before training,
 * so a test can catch a run in flight (to abort it at shutdown) without depending on speed.
 */
function testHold(): void {
  const ms = Number(process.env['TRADEFLOW_TEST_HOLD_TRAINING_MS'] ?? '');
  if (Number.isFinite(ms) && ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function run(d: TrainingWorkerData): Promise<TrainOutcome> {
  testHold();
  const { trainRows, holdoutRows } = checkTrainingInput(d.x, d.y, d.rows, d.features, d.settings, d.featureNames);
  let servingP: Float32Array | null = null;
  if (d.servingModel) {
    const holdout = d.x.slice(trainRows * d.features, d.rows * d.features);
    servingP = await servingProbabilities(d.servingModel, holdout, holdoutRows, d.features);
  }
  // onnxruntime is asynchronous and trainRun is not, so the serving model is scored first
  // and the scorer handed to trainRun only returns those numbers, for exactly those rows.
  const serving = servingP
    ? (x: Float32Array, rows: number): Float32Array => {
        if (rows !== holdoutRows || x.length !== rows * d.features) {
          throw tfError('INTERNAL', `the serving model was scored on ${holdoutRows} holdout rows, trainRun asks for ${rows}`);
        }
        return servingP!;
      }
    : null;
  return trainRun(d.x, d.y, d.rows, d.features, d.settings, serving, d.featureNames);
}

/** p(class 1) per row, through the model's own contract (input name, probability output). */
async function servingProbabilities(bytes: Uint8Array, x: Float32Array, rows: number, features: number): Promise<Float32Array> {
  const fail = (why: string): never => {
    throw tfError('MODEL_LOAD_FAILED', `the serving model cannot be compared on the holdout: ${why}`);
  };
  let contract;
  try {
    const info = inspectOnnx(bytes);
    const f = info.inputs[0]?.dims?.[1];
    // Only a model that leaves F symbolic needs to be told it; otherwise its own F is checked below.
    contract = servingContract(info, typeof f === 'number' ? undefined : features);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (contract.features !== features) fail(`it takes ${contract.features} features, the training rows have ${features}`);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (err) {
    return fail(`onnxruntime could not load it: ${(err as Error).message}`);
  }
  try {
    // `x` is the worker's own (non-shared) copy: onnxruntime refuses SharedArrayBuffer tensors.
    const out = await session.run({ [contract.inputName]: new ort.Tensor('float32', x, [rows, features]) }, [contract.probabilityOutput]);
    const probs = out[contract.probabilityOutput]!.data as Float32Array;
    const width = contract.probabilityWidth;
    if (probs.length !== rows * width) fail(`its output ${contract.probabilityOutput} has ${probs.length} values for ${rows} rows`);
    const p1 = new Float32Array(rows);
    for (let i = 0; i < rows; i++) p1[i] = probs[i * width + width - 1]!;
    return p1;
  } catch (err) {
    if (isTradeflowError(err)) throw err;
    return fail(`onnxruntime failed to run it: ${(err as Error).message}`);
  } finally {
    await session.release();
  }
}

function reply(err: unknown): TrainingWorkerReply {
  const e = err instanceof Error ? err : new Error(String(err));
  const code: ErrorCode = isTradeflowError(e) && isErrorCode(e.code) ? e.code : 'INTERNAL';
  return { ok: false, code, message: e.message, stack: e.stack };
}

if (parentPort) {
  const port = parentPort;
  run(workerData as TrainingWorkerData).then(
    (outcome) => port.postMessage({ ok: true, outcome } satisfies TrainingWorkerReply, [outcome.candidate.buffer as ArrayBuffer]),
    (err: unknown) => port.postMessage(reply(err)),
  );
}
