/**
 * Atomic model swaps. Two phases: every worker builds and warms the new version (a failure there,
 * or earlier — not ONNX, wrong feature count, non-finite warm-up output — leaves the old version
 * serving and is a 422), then the main thread flips the served version. Batches carry the version
 * they were dispatched with, so a request is computed entirely by one version and its answer names
 * it. The prediction cache drops the old version's entries at the flip. A version's sessions are
 * released in the workers only once no batch on it is in flight.
 */
import { tfError } from '../errors';
import type { PredictionCache } from '../cache/prediction-cache';
import { loadOnnxModel, type LoadedModel } from '../models/model-loader';
import type { ModelRegistry } from '../models/registry';
import type { ServingRecord, VersionStore } from '../models/version-store';
import type { InferencePool } from './inference-pool';

export interface SwapResult {
  name: string;
  version: string;
  previous: string;
  reason: ServingRecord['reason'];
}

export interface SwapOptions {
  reason: ServingRecord['reason'];
  card?: Record<string, unknown>;
}

export class ModelSwapper {
  /** One swap at a time; later ones wait their turn. */
  private chain: Promise<unknown> = Promise.resolve();
  private swaps = 0;

  constructor(
    private readonly models: ModelRegistry,
    private readonly pool: InferencePool,
    private readonly cache: PredictionCache,
    private readonly store: VersionStore,
    private readonly ortThreads: number,
  ) {}

  get count(): number {
    return this.swaps;
  }

  /** Validates `bytes` as a new version of `name` and swaps it in; 422 when it is refused. */
  load(name: string, bytes: Uint8Array, source: string, opts: SwapOptions): Promise<SwapResult> {
    const run = this.chain.then(() => this.swap(name, bytes, source, opts));
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
      return this.swap(name, this.store.bytes(name, target.version), `rollback to ${target.version}`, { reason: 'rollback' }, target.previous);
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
    let loaded: LoadedModel;
    try {
      loaded = await loadOnnxModel(name, bytes, source, { featuresHint: served.features, intraOpNumThreads: this.ortThreads });
    } catch (err) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped; version ${before.version} keeps serving: ${(err as Error).message}`);
    }
    if (loaded.contract.features !== served.features) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped: the new model takes ${loaded.contract.features} features, the engine serves ${served.features}; version ${before.version} keeps serving`);
    }
    await this.store.save(name, loaded.version, bytes, { ...(opts.card ?? {}), name, version: loaded.version, sha256: loaded.sha256, source, loaded_at: loaded.loadedAt, features: loaded.contract.features, input: loaded.contract.inputName, outputs: loaded.info.outputs.map((o) => o.name) });
    const id = this.models.register(loaded);
    try {
      await this.pool.prepare(this.models.describeVersion(id)!);
    } catch (err) {
      this.models.forget(id);
      await this.pool.release(id);
      throw tfError('MODEL_REJECTED', `${name} was not swapped: a worker could not load it (${(err as Error).message}); version ${before.version} keeps serving`);
    }
    this.models.setServing(name, id);
    this.cache.onVersion(served.index, loaded.version);
    this.swaps++;
    await this.store.setServing(name, {
      version: loaded.version,
      previous: rollbackPrevious !== undefined ? rollbackPrevious : before.version === loaded.version ? this.store.current(name)?.previous ?? null : before.version,
      at: new Date().toISOString(),
      reason: opts.reason,
      source,
    });
    this.releaseIdle();
    return { name, version: loaded.version, previous: before.version, reason: opts.reason };
  }

  /** Drops worker sessions of versions that no longer serve, once no batch on them is in flight. */
  private releaseIdle(): void {
    for (const id of this.models.idleVersions()) {
      this.pool.whenVersionIdle(id).then(() => {
        if (this.models.idleVersions().includes(id)) {
          this.models.forget(id);
          void this.pool.release(id);
        }
      });
    }
  }
}
