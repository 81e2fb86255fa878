/**
 * The composition root: loads and validates the model, lays out the shared slab, starts the
 * worker pool, the batcher and the HTTP front end, and owns the engine's lifecycle (ready,
 * draining, closed). The CLI and the tests start the engine through here.
 */
import { performance } from 'node:perf_hooks';
import { Batcher, type BatchObserver } from './batching/batcher';
import { publicConfig, type EngineConfig } from './config';
import { TradeflowError } from './errors';
import { HttpServer, type Lifecycle } from './http/server';
import type { ResponseObserver } from './http/respond';
import { descriptorOf, loadOnnxModel, readModelFile } from './models/model-loader';
import { DEFAULT_MODEL, ModelRegistry } from './models/registry';
import { InferencePool } from './pool/inference-pool';
import { createSlab, type SlabViews } from './pool/slab';
import type { Logger } from './telemetry/logger';
import { testHooksFromEnv, type TestHooks } from './testing-hooks';

export interface EngineHooks {
  batchObserver?: BatchObserver;
  responseObserver?: ResponseObserver;
}

export interface Engine {
  readonly config: EngineConfig;
  readonly port: number;
  readonly models: ModelRegistry;
  readonly batcher: Batcher;
  readonly pool: InferencePool;
  readonly server: HttpServer;
  readonly slab: SlabViews;
  readonly startedAt: number;
  readonly testHooks: TestHooks;
  /** Resolves when every worker has built and warmed its models. */
  ready(): Promise<void>;
  /** Readiness turns 503 at once; queued and in-flight requests finish; then everything closes. */
  shutdown(reason: string): Promise<{ drained: boolean }>;
}

export async function startEngine(config: EngineConfig, logger: Logger, hooks: EngineHooks = {}): Promise<Engine> {
  const startedAt = performance.now();
  const testHooks = testHooksFromEnv();
  const models = new ModelRegistry();
  if (config.modelPath === null) {
    throw new TradeflowError('CONFIG_INVALID', 'MODEL_PATH=none (cold start on the online sgd model) is not available in this build yet; set MODEL_PATH to an ONNX model');
  }
  const bytes = await readModelFile(config.modelPath);
  const loaded = await loadOnnxModel(DEFAULT_MODEL, bytes, config.modelPath, {
    featuresHint: config.features ?? undefined,
    intraOpNumThreads: config.ortThreads,
  });
  models.add(loaded);
  logger.info({ model: models.describe(models.get(DEFAULT_MODEL)) }, 'model loaded and validated');

  const capacity = Math.max(config.maxBatchRows, config.maxRequestRows);
  const slab = createSlab({
    slots: config.workers + Math.ceil(config.maxQueueRows / capacity) + models.list.length + 1,
    capacity,
    features: models.features,
  });
  const pool = new InferencePool({
    workers: config.workers,
    slab,
    models: models.list.map((m) => descriptorOf(m.model)),
    ortThreads: config.ortThreads,
    hooks: testHooks.worker,
  });
  const batcher = new Batcher({
    slab,
    executor: pool,
    concurrency: config.workers,
    models: models.list.length,
    maxBatchRows: config.maxBatchRows,
    maxQueueDelayUs: config.maxQueueDelayUs,
    maxQueueRows: config.maxQueueRows,
    ...(hooks.batchObserver ? { observer: hooks.batchObserver } : {}),
  });

  let draining = false;
  const lifecycle: Lifecycle = {
    notReadyReasons() {
      const reasons: string[] = [];
      if (draining) reasons.push('draining');
      if (models.list.length === 0) reasons.push('no model loaded');
      if (!pool.isReady()) {
        const s = pool.stats();
        reasons.push(`workers warming up (${s.warm}/${s.size} warm)`);
      }
      return reasons;
    },
    isDraining: () => draining,
    readinessDetail() {
      const s = pool.stats();
      return {
        draining,
        models: models.list.map((m) => ({ name: m.name, version: m.version })),
        workers: { size: s.size, warm: s.warm, restarts: s.restarts },
        queue: { rows: batcher.depth, in_flight_batches: batcher.busy },
      };
    },
  };

  const server = new HttpServer({
    batcher,
    models,
    lifecycle,
    options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs },
    ...(hooks.responseObserver ? { observer: hooks.responseObserver } : {}),
  });
  const port = await server.listen(config.host, config.port);
  logger.info({ host: config.host, port, config: publicConfig(config) }, 'listening');

  let shutdownPromise: Promise<{ drained: boolean }> | null = null;
  const engine: Engine = {
    config,
    port,
    models,
    batcher,
    pool,
    server,
    slab,
    startedAt,
    testHooks,
    ready: () => pool.waitReady(60_000),
    shutdown(reason: string) {
      if (shutdownPromise) return shutdownPromise;
      draining = true;
      logger.info({ reason, queuedRows: batcher.depth, inFlight: batcher.busy }, 'draining');
      shutdownPromise = (async () => {
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          batcher.drain().then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), config.shutdownTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        server.close();
        batcher.close();
        await pool.close();
        logger.info({ drained }, drained ? 'drained; stopped' : 'shutdown timeout reached with work still in flight; stopped');
        return { drained };
      })();
      return shutdownPromise;
    },
  };
  pool.waitReady(120_000).then(
    () => logger.info({ workers: config.workers, ms: Math.round(performance.now() - startedAt) }, 'ready: every worker is warm'),
    (err: Error) => logger.error({ err: err.message }, 'workers failed to become ready'),
  );
  return engine;
}
