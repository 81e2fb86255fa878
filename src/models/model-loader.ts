/**
 * Loads and validates an ONNX model before it may serve: the contract is read from the file,
 * a session is created and a warm-up batch must yield finite probabilities. Any failure is a
 * MODEL_LOAD_FAILED with a message that says what was wrong, and nothing starts serving it.
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

export async function loadOnnxModel(name: string, bytes: Uint8Array, source: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const info = inspectOnnx(bytes);
  const contract = servingContract(info, opts.featuresHint);
  const scorer = await OnnxScorer.create(bytes, contract, { intraOpNumThreads: opts.intraOpNumThreads ?? 1 });
  try {
    await checkWarmup(scorer, contract.features, source);
  } finally {
    await scorer.release();
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const shared = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(shared).set(bytes);
  return {
    name,
    version: sha256.slice(0, 12),
    kind: 'onnx',
    bytes: shared,
    contract,
    source,
    info,
    sha256,
    sizeBytes: bytes.byteLength,
    loadedAt: new Date().toISOString(),
  };
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
