/**
 * Atomic model swaps. Two phases: the candidate is validated by a fresh set of workers that build
 * and warm it (a failure there, or earlier — not ONNX, wrong feature count, external data,
 * non-finite warm-up output — leaves the old version serving and is a 422), then the main thread
 * flips the served version and the workers batches run on. Batches carry the version they were
 * dispatched with, so a request is computed entirely by one version and its answer names it. The
 * prediction cache drops the old version's entries at the flip. The workers that served the old
 * version finish their batches and stop; its sessions end with them.
 *
 * The main thread never creates an onnxruntime session for a candidate: a large model's load is a
 * synchronous native call of hundreds of milliseconds, during which no request would be answered
 * (issue 12, defect 7). Nor does a serving worker, whose batches would wait as long.
 */
import { tfError } from '../errors';
import type { PredictionCache } from '../cache/prediction-cache';
import { describeOnnxModel, type LoadedModel } from '../models/model-loader';
import type { ModelRegistry, ServedModel } from '../models/registry';
import type { ServingRecord, VersionStore } from '../models/version-store';
import type { InferencePool, StagedWorkers } from './inference-pool';

/** How long a candidate's workers may take to build and warm it: what the engine's start allows its own. */
const VALIDATION_TIMEOUT_MS = 120_000;

export interface SwapResult {
  name: string;
  version: string;
  previous: string;
  reason: ServingRecord['reason'];
}

export interface SwapOptions {
  reason: ServingRecord['reason'];
  card?: Record<string, unknown>;
  /**
   * The version a later rollback returns to, when not the one replaced now: a rollback announced
   * to the replicas carries the next step back, as a local rollback computes it.
   */
  previous?: string | null;
}

/**
 * How the HTTP routes and training runs change a model: this process's swapper, or, with several
 * replicas, the model history every replica swaps from (src/replication/model-history.ts).
 */
export interface ModelChanges {
  load(name: string, bytes: Uint8Array, source: string, opts: SwapOptions): Promise<SwapResult>;
  rollback(name: string): Promise<SwapResult>;
}

export class ModelSwapper implements ModelChanges {
  /** One swap at a time; later ones wait their turn. */
  private chain: Promise<unknown> = Promise.resolve();
  private swaps = 0;

  constructor(
    private readonly models: ModelRegistry,
    private readonly pool: InferencePool,
    private readonly cache: PredictionCache,
    private readonly store: VersionStore,
  ) {}

  get count(): number {
    return this.swaps;
  }

  /** Validates `bytes` as a new version of `name` and swaps it in; 422 when it is refused. */
  load(name: string, bytes: Uint8Array, source: string, opts: SwapOptions): Promise<SwapResult> {
    const run = this.chain.then(() => this.swap(name, bytes, source, opts, opts.previous));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Serves again the version the serving one replaced. */
  rollback(name: string): Promise<SwapResult> {
    const run = this.chain.then(async () => {
      this.onnxModel(name);
      const target = this.store.rollbackTarget(name);
      if (!target) throw tfError('NO_PREVIOUS_VERSION', `model ${name} has no earlier version to roll back to`);
      if (!this.store.has(name, target.version)) {
        throw tfError('NO_PREVIOUS_VERSION', `version ${target.version} of ${name} is no longer kept (MODEL_VERSIONS_KEEP)`);
      }
      return this.swap(name, await this.store.bytes(name, target.version), `rollback to ${target.version}`, { reason: 'rollback' }, target.previous);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private onnxModel(name: string) {
    const m = this.models.get(name);
    if (m.kind !== 'onnx') throw tfError('UNSUPPORTED_OPERATION', `model ${name} is learned online; it cannot be loaded or rolled back`);
    return m;
  }

  private async swap(name: string, bytes: Uint8Array, source: string, opts: SwapOptions, rollbackPrevious?: string | null): Promise<SwapResult> {
    const served = this.onnxModel(name);
    const before = served.onnx!;
    const keeps = `version ${before.version} keeps serving`;
    let loaded: LoadedModel;
    try {
      loaded = await describeOnnxModel(name, bytes, source, { featuresHint: served.features });
    } catch (err) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped; ${keeps}: ${(err as Error).message}`);
    }
    if (loaded.contract.features !== served.features) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped: the new model takes ${loaded.contract.features} features, the engine serves ${served.features}; ${keeps}`);
    }
    const id = this.models.register(loaded);
    const staged = await this.validate(served, id, keeps);
    try {
      await this.store.save(name, loaded.version, bytes, { ...(opts.card ?? {}), name, version: loaded.version, sha256: loaded.sha256, source, loaded_at: loaded.loadedAt, features: loaded.contract.features, input: loaded.contract.inputName, outputs: loaded.info.outputs.map((o) => o.name) });
    } catch (err) {
      await this.pool.discard(staged);
      this.models.forget(id);
      throw err;
    }
    // The flip: the registry and the pool change together, before any other batch is dispatched.
    const oldId = this.models.servingId(served.index);
    this.models.setServing(name, id);
    // The old version is forgotten once its workers have stopped, whatever recording the swap does.
    void this.pool
      .adopt(staged)
      .catch(() => undefined)
      .then(() => this.forget(oldId));
    this.cache.onVersion(served.index, loaded.version);
    this.swaps++;
    await this.store.setServing(name, {
      version: loaded.version,
      previous: rollbackPrevious !== undefined ? rollbackPrevious : before.version === loaded.version ? this.store.current(name)?.previous ?? null : before.version,
      at: new Date().toISOString(),
      reason: opts.reason,
      source,
    });
    return { name, version: loaded.version, previous: before.version, reason: opts.reason };
  }

  /** The candidate's own workers build and warm it (every served model, the candidate in place). */
  private async validate(served: ServedModel, id: number, keeps: string): Promise<StagedWorkers> {
    try {
      return await this.pool.stage(this.models.workerModels(new Map([[served.index, id]])), VALIDATION_TIMEOUT_MS);
    } catch (err) {
      this.models.forget(id);
      throw tfError('MODEL_REJECTED', `${served.name} was not swapped: ${(err as Error).message}; ${keeps}`);
    }
  }

  /** A version that no longer serves, once the workers that ran it have stopped. */
  private forget(id: number): void {
    if (this.models.idleVersions().includes(id)) this.models.forget(id);
  }
}
