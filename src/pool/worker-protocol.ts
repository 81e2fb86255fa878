/**
 * What the main thread and an inference worker (workers/inference.ts) say to each other: the
 * worker's start-up data, its tasks and results, and the control channel over which model
 * versions are prepared for a swap. Both sides import these types from here, so the engine never
 * imports a worker's entry file.
 */
import type { MessagePort } from 'node:worker_threads';
import type { WorkerModel } from '../models/registry';
import type { SlabLayout } from './slab';

export interface InferenceWorkerData {
  slab: SharedArrayBuffer;
  layout: SlabLayout;
  models: WorkerModel[];
  ortThreads: number;
  /** Test hooks (from TRADEFLOW_TEST_* variables only); see src/pool/testing-hooks.ts. */
  hooks: WorkerTestHooks;
}

export interface WorkerTestHooks {
  /** The worker exits when a batch's first feature equals this value. */
  crashOnFeature: number | null;
  /**
   * The worker holds a batch whose first feature equals this value until released or timed out,
   * before starting it (a held batch is waiting, not running, for the BATCH_TIMEOUT_MS watchdog).
   */
  holdOnFeature: number | null;
  holdMs: number;
  /**
   * A batch whose first feature equals this value hangs once started: the worker blocks in
   * Atomics.wait with no time limit, which only worker.terminate() ends (the watchdog's job).
   */
  hangOnFeature: number | null;
  /**
   * With a hang: block in a native call instead (a read of this FIFO, which has no writer), which
   * terminate() cannot interrupt; writing to the FIFO lets the thread go.
   */
  hangFifo: string | null;
  /** Int32 gate: 0 holds, anything else releases. */
  gate: SharedArrayBuffer | null;
  /**
   * Int32 gate the worker waits on (up to holdMs) once its models are built and warm, before it
   * reports warm, while it reads 0. Only a swap's candidate workers get one: it holds the
   * candidate in validation for as long as a test needs.
   */
  warmGate: SharedArrayBuffer | null;
}

export interface TaskResult {
  /** Weights version used (online model), or -1. */
  version: number;
}

export interface InferenceTask {
  slot: number;
  rows: number;
  /** Index of the served model (ensemble, sgd). */
  model: number;
  /** For an ONNX model: the id of the version to run (see the control protocol below). */
  version: number;
}

/**
 * Sent on parentPort once every scorer is warm; the pool counts these for readiness. It carries
 * the worker's end of a control channel: Piscina owns parentPort and the task port, so model
 * versions are prepared and released over this one.
 */
export interface WarmMessage {
  type: 'warm';
  threadId: number;
  control: MessagePort;
}

/** main → worker */
export type ControlRequest =
  | { cmd: 'prepare'; req: number; id: number; model: OnnxWorkerModel }
  | { cmd: 'release'; req: number; id: number };
/** worker → main: answers, and asks for a version it was told to run but does not have. */
export type ControlReply =
  | { cmd: 'done'; req: number; ok: true }
  | { cmd: 'done'; req: number; ok: false; error: string }
  | { cmd: 'fetch'; req: number; id: number };
/** main → worker, answering a fetch */
export interface FetchReply {
  cmd: 'fetched';
  req: number;
  model: OnnxWorkerModel | null;
}

export type OnnxWorkerModel = Extract<WorkerModel, { kind: 'onnx' }> & { id: number };
