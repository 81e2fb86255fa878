/**
 * The serving part: the shared slab, the Piscina pool of inference workers, the prediction cache
 * and the micro-batcher that feeds the pool, with the engine's health rules over them.
 */
import { Batcher, type BatchObserver, type Executor } from '../batching/batcher';
import { performance } from 'node:perf_hooks';
import { PredictionCache } from '../cache/prediction-cache';
import type { EngineConfig } from '../config';
import { InferencePool } from '../pool/inference-pool';
import { createSlab, slabBytes, type SlabLayout, type SlabViews } from '../pool/slab';
import { testHooksFromEnv, type TestHooks } from '../pool/testing-hooks';
import { InferStats } from '../telemetry/infer-stats';
import { apiHealth, cacheHealth, modelHealth, overall, type ComponentHealth, type HealthReport } from '../telemetry/health';
import type { Logger } from '../telemetry/logger';
import type { ModelsPart } from './models';
import type { ObservabilityPart } from './observability';
import type { Part } from './parts';

export interface ServingPart extends Part {
  readonly slab: SlabViews;
  readonly pool: InferencePool;
  readonly cache: PredictionCache;
  readonly batcher: Batcher;
  readonly testHooks: TestHooks;
  /** Per-model request and batch statistics (the protocol's statistics extension). */
  readonly stats: InferStats;
  health(): HealthReport;
  /** Adds the `redis` component (REDIS_URL) to health and to ml_component_health. */
  addRedisHealth(source: () => ComponentHealth): void;
  /** Turned on at the start of shutdown: readiness 503, new work refused. */
  readonly state: { draining: boolean };
}

/** The shared slab stays under this; past it the queue holds fewer rows, and the log says so. */
const SLAB_MAX_BYTES = 512 * 1024 * 1024;

/**
 * Slots for the batches in flight (one per worker), for MAX_QUEUE_ROWS waiting rows in batches of
 * MAX_BATCH_ROWS, and one open batch per model. A slot holds MAX_REQUEST_ROWS rows so that any
 * single request fits one.
 */
function slabLayout(config: EngineConfig, features: number, models: number, logger: Logger): SlabLayout {
  const capacity = Math.max(config.maxBatchRows, config.maxRequestRows);
  const wanted = config.workers * config.batchesPerWorker + Math.ceil(config.maxQueueRows / config.maxBatchRows) + models + 1;
  const perSlot = slabBytes({ slots: 1, capacity, features });
  const minimum = config.workers * config.batchesPerWorker + models + 2;
  const slots = Math.max(minimum, Math.min(wanted, Math.floor(SLAB_MAX_BYTES / perSlot)));
  if (slots < wanted) {
    logger.warn({ slots, wanted, slabBytes: slots * perSlot }, 'the batch slab is capped: under heavy load the queue may refuse rows before MAX_QUEUE_ROWS (lower MAX_REQUEST_ROWS or raise MAX_BATCH_ROWS)');
  }
  return { slots, capacity, features };
}

export function startServing(config: EngineConfig, m: ModelsPart, obs: ObservabilityPart, logger: Logger): ServingPart {
  const { models } = m;
  const testHooks = testHooksFromEnv();
  const slab = createSlab(slabLayout(config, m.features, models.list.length, logger));
  const pool = new InferencePool({
    workers: config.workers,
    slab,
    models: models.workerModels(),
    ortThreads: config.ortThreads,
    batchesPerWorker: config.batchesPerWorker,
    hooks: testHooks.worker,
    candidateWarmGate: testHooks.validationGate,
    restartWindowMs: config.healthRestartWindowS * 1000,
    batchTimeoutMs: config.batchTimeoutMs,
    logger,
    versionOf: (model) => models.servingId(model),
    describeVersion: (id) => models.describeVersion(id),
  });
  const cache = new PredictionCache(config.cacheCapacity, config.cacheMaxRows);
  const stats = new InferStats(models.list.length);
  const batcher = new Batcher({
    slab,
    executor: timedExecutor(pool, stats),
    concurrency: config.workers * config.batchesPerWorker,
    models: models.list.length,
    maxBatchRows: config.maxBatchRows,
    maxQueueDelayUs: config.maxQueueDelayUs,
    maxQueueRows: config.maxQueueRows,
    observer: batchObserver(obs, m, slab),
  });
  const state = { draining: false };
  let redis: (() => ComponentHealth) | null = null;
  const health = (): HealthReport => {
    const h = healthOf(config, m, pool, cache, batcher, obs, state.draining);
    if (redis === null) return h;
    const components = { ...h.components, redis: redis() };
    return { status: overall(components), components };
  };
  observeServing(obs, batcher, pool, cache, health);
  return {
    name: 'serving',
    slab,
    pool,
    cache,
    batcher,
    testHooks,
    stats,
    health,
    addRedisHealth: (source) => {
      redis = source;
    },
    state,
    drain: () => batcher.drain(),
    stop: async () => {
      batcher.close();
      await pool.close();
    },
  };
}

/** Times each batch's run for the statistics, before its clients are completed. */
function timedExecutor(pool: Executor, stats: InferStats): Executor {
  return {
    run(task) {
      const t0 = performance.now();
      return pool.run(task).then((result) => {
        stats.executed(task.model, task.slot, task.rows, performance.now() - t0);
        return result;
      });
    },
  };
}

function batchObserver(obs: ObservabilityPart, m: ModelsPart, slab: SlabViews): BatchObserver {
  const modelMetrics = m.models.list.map((x) => obs.telemetry.model(x.name));
  const telemetry = obs.telemetry;
  const record = obs.record;
  return {
    onBatch(r) {
      if (record && r.ok) telemetry.recordBatch(modelMetrics[r.model]!, r.rows, r.queueWaitSeconds, slab.probabilities[r.slot]!, slab.labels[r.slot]!);
    },
  };
}

function healthOf(config: EngineConfig, m: ModelsPart, pool: InferencePool, cache: PredictionCache, batcher: Batcher, obs: ObservabilityPart, draining: boolean): HealthReport {
  const s = pool.stats();
  const cs = cache.stats();
  const components = {
    cache: cacheHealth({ enabled: cs.enabled, size: cs.size, capacity: cs.capacity, hits: cs.hits, misses: cs.misses, hitRatio: cs.hit_ratio }),
    api: apiHealth(obs.recent.stats()),
    model: modelHealth({
      modelsLoaded: m.models.list.length,
      workers: s.size,
      workersWarm: s.warm,
      workerRestartsRecent: s.restartsRecent,
      restartWindowSeconds: s.restartWindowSeconds,
      workersStuck: s.faults.stuck,
      queueRows: batcher.depth,
      queueLimit: config.maxQueueRows,
      draining,
    }),
  };
  return { status: overall(components), components };
}

function observeServing(obs: ObservabilityPart, batcher: Batcher, pool: InferencePool, cache: PredictionCache, health: () => HealthReport): void {
  obs.telemetry.setSources({
    queueDepth: () => batcher.depth,
    workerRestarts: () => pool.stats().faults.restarts,
    cacheHitRatio: () => (cache.enabled ? cache.hitRatio() : null),
    componentHealth: () => {
      const c = health().components;
      return { cache: c.cache.status, api: c.api.status, model: c.model.status, ...(c.redis ? { redis: c.redis.status } : {}) };
    },
  });
}
