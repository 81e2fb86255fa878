/**
 * Reads what a model file promises and, at start-up, validates it before it may serve: the
 * contract is read from the file, a session is created and a warm-up batch must yield finite
 * probabilities. Any failure is a MODEL_LOAD_FAILED with a message that says what was wrong, and
 * nothing starts serving it.
 *
 * A model swapped in while the engine serves is only described here (describeOnnxModel): its
 * session and warm-up run in the candidate's own worker threads (src/pool/inference-pool.ts),
 * because onnxruntime's load and run are synchronous native calls that would stall the main
 * thread for as long as a large model takes to load.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isTradeflowError, tfError } from '../errors';
import { inspectOnnx, servingContract, type OnnxModelInfo, type ServingContract } from './onnx-inspect';
import { OnnxScorer } from './onnx-scorer';
import { firstNonFinite, warmupRows, type Scorer } from './scorer';

export interface ModelDescriptor {
  /** Served name (`ensemble`). */
  name: string;
  /** Content hash prefix: the same bytes always give the same version. */
  version: string;
  kind: 'onnx';
  /** The model bytes, in shared memory so every worker reads them without a copy. */
  bytes: SharedArrayBuffer;
  contract: ServingContract;
  source: string;
}

export interface LoadedModel extends ModelDescriptor {
  info: OnnxModelInfo;
  sha256: string;
  sizeBytes: number;
  loadedAt: string;
}

export interface LoadOptions {
  featuresHint?: number | undefined;
  intraOpNumThreads?: number;
}

export async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw tfError('MODEL_LOAD_FAILED', `cannot read model file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The model as the engine keeps it, without running it: inspected (an ONNX model, its contract,
 * no external data), hashed and copied into shared memory. Large files are hashed and copied a
 * slice at a time, yielding between slices, so that the main thread keeps serving meanwhile.
 */
export async function describeOnnxModel(name: string, bytes: Uint8Array, source: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const info = inspectOnnx(bytes);
  const contract = servingContract(info, opts.featuresHint);
  const sha256 = await sha256Sliced(bytes);
  return {
    name,
    version: sha256.slice(0, 12),
    kind: 'onnx',
    bytes: await sharedCopy(bytes),
    contract,
    source,
    info,
    sha256,
    sizeBytes: bytes.byteLength,
    loadedAt: new Date().toISOString(),
  };
}

/** Start-up: describes the model and validates it with a session and a warm-up in this thread. */
export async function loadOnnxModel(name: string, bytes: Uint8Array, source: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const model = await describeOnnxModel(name, bytes, source, opts);
  const scorer = await OnnxScorer.create(bytes, model.contract, { intraOpNumThreads: opts.intraOpNumThreads ?? 1 });
  try {
    await checkWarmup(scorer, model.contract.features, source);
  } finally {
    await scorer.release();
  }
  return model;
}

/** Work on one slice takes well under a millisecond (hashing, or first-touch copying). */
const SLICE_BYTES = 1 << 20;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function sha256Sliced(bytes: Uint8Array): Promise<string> {
  const hash = createHash('sha256');
  for (let at = 0; at < bytes.byteLength; at += SLICE_BYTES) {
    if (at > 0) await yieldToLoop();
    hash.update(bytes.subarray(at, at + SLICE_BYTES));
  }
  return hash.digest('hex');
}

/** Bytes already in a SharedArrayBuffer of their own (an upload is read into one) are kept as they are. */
async function sharedCopy(bytes: Uint8Array): Promise<SharedArrayBuffer> {
  const b = bytes.buffer;
  if (b instanceof SharedArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === b.byteLength) return b;
  const shared = new SharedArrayBuffer(bytes.byteLength);
  const view = new Uint8Array(shared);
  for (let at = 0; at < bytes.byteLength; at += SLICE_BYTES) {
    if (at > 0) await yieldToLoop();
    view.set(bytes.subarray(at, at + SLICE_BYTES), at);
  }
  return shared;
}

/** Runs the warm-up batch and refuses non-finite or out-of-range probabilities. */
export async function checkWarmup(scorer: Scorer, features: number, source: string): Promise<void> {
  const rows = 8;
  const input = warmupRows(features, rows);
  const probabilities = new Float32Array(rows * 2);
  const labels = new Int32Array(rows);
  try {
    await scorer.score(input, rows, probabilities, labels);
  } catch (err) {
    if (isTradeflowError(err)) throw err;
    throw tfError('MODEL_LOAD_FAILED', `model ${source} failed on its warm-up batch: ${(err as Error).message}`);
  }
  const bad = firstNonFinite(probabilities, rows);
  if (bad !== -1) {
    throw tfError(
      'MODEL_LOAD_FAILED',
      `model ${source} produced an invalid probability on warm-up row ${bad} (${probabilities[2 * bad]}, ${probabilities[2 * bad + 1]}): probabilities must be finite and within [0, 1]`,
    );
  }
}
