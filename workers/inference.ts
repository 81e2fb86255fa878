/**
 * Inference worker (Piscina). Owns one scorer per served model, built once at start-up from the
 * descriptors in workerData, warmed up before the worker reports ready. A task is only
 * `{ slot, rows, model }`: rows are read from and results written to the shared slab.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { checkWarmup } from '../src/models/model-loader';
import type { WorkerModel } from '../src/models/registry';
import { SgdScorer } from '../src/learning/sgd-scorer';
import { OnnxScorer } from '../src/models/onnx-scorer';
import type { Scorer } from '../src/models/scorer';
import { viewSlab, type SlabLayout } from '../src/pool/slab';

export interface InferenceWorkerData {
  slab: SharedArrayBuffer;
  layout: SlabLayout;
  models: WorkerModel[];
  ortThreads: number;
  /** Test hooks (from TRADEFLOW_TEST_* variables only); see src/testing-hooks.ts. */
  hooks: WorkerTestHooks;
}

export interface WorkerTestHooks {
  /** The worker exits when a batch's first feature equals this value. */
  crashOnFeature: number | null;
  /** The worker holds a batch whose first feature equals this value until released or timed out. */
  holdOnFeature: number | null;
  holdMs: number;
  /** Int32 gate: 0 holds, anything else releases. */
  gate: SharedArrayBuffer | null;
}

export interface TaskResult {
  /** Microseconds inside the scorer. */
  us: number;
  /** Weights version used (online model), or -1. */
  version: number;
}

export interface InferenceTask {
  slot: number;
  rows: number;
  /** Index into workerData.models. */
  model: number;
}

/** Sent on parentPort once every scorer is warm; the pool counts these for readiness. */
export interface WarmMessage {
  type: 'warm';
  threadId: number;
}

async function init(): Promise<(task: InferenceTask) => Promise<TaskResult>> {
  const data = workerData as InferenceWorkerData;
  const slab = viewSlab(data.slab, data.layout);
  const scorers: Scorer[] = [];
  for (const m of data.models) {
    if (m.kind === 'sgd') {
      const scorer = new SgdScorer(m.weights);
      await checkWarmup(scorer, m.features, 'sgd');
      scorers.push(scorer);
      continue;
    }
    // onnxruntime accepts only a plain ArrayBuffer: copy the shared model bytes once.
    const bytes = new Uint8Array(m.bytes.byteLength);
    bytes.set(new Uint8Array(m.bytes));
    const scorer = await OnnxScorer.create(bytes, m.contract, { intraOpNumThreads: data.ortThreads });
    await checkWarmup(scorer, m.contract.features, m.source);
    scorers.push(scorer);
  }
  const { crashOnFeature: crashOn, holdOnFeature: holdOn, holdMs } = data.hooks;
  const gate = data.hooks.gate ? new Int32Array(data.hooks.gate) : null;
  const warm: WarmMessage = { type: 'warm', threadId };
  parentPort!.postMessage(warm);

  return async function infer(task: InferenceTask): Promise<TaskResult> {
    const started = process.hrtime.bigint();
    const input = slab.inputs[task.slot]!;
    if (crashOn !== null && input[0] === crashOn) process.exit(3);
    if (holdOn !== null && gate !== null && input[0] === holdOn) Atomics.wait(gate, 0, 0, holdMs);
    const scorer = scorers[task.model];
    if (scorer === undefined) throw new Error(`no model with index ${task.model} in this worker`);
    const version = await scorer.score(input, task.rows, slab.probabilities[task.slot]!, slab.labels[task.slot]!);
    return { us: Number(process.hrtime.bigint() - started) / 1000, version };
  };
}

module.exports = init();
