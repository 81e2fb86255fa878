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
import { registerMonitoringRoutes, runtimeInfo } from './http/monitoring';
import { PredictionCache } from './cache/prediction-cache';
import { QualityWindow } from './learning/quality-window';
import { Telemetry, type QualityReading } from './telemetry/metrics';
import { apiHealth, cacheHealth, modelHealth, overall, type HealthReport } from './telemetry/health';
import { RecentWindow } from './telemetry/recent-window';
import { loadOnnxModel, readModelFile, type LoadedModel } from './models/model-loader';
import { VersionStore } from './models/version-store';
import { ModelSwapper } from './pool/model-swap';
import { registerModelRoutes } from './http/models';
import { registerTrainRoutes } from './http/train';
import { TrainingRuns } from './retraining/training-runs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { DEFAULT_MODEL, ModelRegistry, ONLINE_MODEL } from './models/registry';
import { DriftMonitor } from './drift/monitor';
import { OnlineLearning } from './learning/online';
import { PredictionStore } from './learning/prediction-store';
import { validateSgdOptions } from './learning/sgd';
import { adminCheck } from './http/auth';
import { createLearnHandler } from './http/learn';
import { registerDriftRoutes } from './http/drift';
import { InferencePool } from './pool/inference-pool';
import { createSlab, slabBytes, type SlabLayout, type SlabViews } from './pool/slab';
import type { Logger } from './telemetry/logger';
import { testHooksFromEnv, type TestHooks } from './pool/testing-hooks';

export interface Engine {
  readonly config: EngineConfig;
  readonly port: number;
  readonly models: ModelRegistry;
  readonly batcher: Batcher;
  readonly pool: InferencePool;
  readonly server: HttpServer;
  readonly slab: SlabViews;
  readonly telemetry: Telemetry;
  readonly cache: PredictionCache;
  /** Per model name: the sliding window of labelled outcomes behind the quality gauges. */
  readonly quality: Map<string, QualityWindow>;
  readonly learning: OnlineLearning;
  readonly swapper: ModelSwapper;
  readonly training: TrainingRuns | null;
  readonly versions: VersionStore;
  readonly drift: DriftMonitor;
  health(): HealthReport;
  readonly startedAt: number;
  readonly testHooks: TestHooks;
  /** Resolves when every worker has built and warmed its models. */
  ready(): Promise<void>;
  /** Readiness turns 503 at once; queued and in-flight requests finish; then everything closes. */
  shutdown(reason: string): Promise<{ drained: boolean }>;
}

/**
 * The ensemble to serve at start. The version that served before a restart (from the state
 * directory) keeps serving, unless the MODEL_PATH file changed since it was last deployed: a new
 * file there is a new deployment and takes over (as a new version; the old one stays a rollback
 * target).
 */
async function loadServingModel(config: EngineConfig, store: VersionStore, logger: Logger): Promise<LoadedModel> {
  const opts = { featuresHint: config.features ?? undefined, intraOpNumThreads: config.ortThreads };
  const saved = store.servingVersion(DEFAULT_MODEL);
  const configured = store.configured(DEFAULT_MODEL);
  let bytes: Uint8Array | null = null;
  try {
    bytes = await readModelFile(config.modelPath!);
  } catch (err) {
    if (!saved) throw err;
    logger.warn({ err: (err as Error).message }, 'MODEL_PATH cannot be read; serving the version from the state directory');
  }
  const sha = bytes ? createHash('sha256').update(bytes).digest('hex') : null;
  if (saved && (sha === null || (configured !== null && configured.sha256 === sha))) {
    try {
      const m = await loadOnnxModel(DEFAULT_MODEL, saved.bytes, saved.file, opts);
      logger.info({ version: m.version, file: saved.file }, 'serving the version that served before the restart');
      return m;
    } catch (err) {
      if (!bytes) throw err;
      logger.error({ err: (err as Error).message, file: saved.file }, 'the version that served before the restart does not load; serving MODEL_PATH');
    }
  }
  const m = await loadOnnxModel(DEFAULT_MODEL, bytes!, config.modelPath!, opts);
  await store.save(DEFAULT_MODEL, m.version, bytes!, { name: DEFAULT_MODEL, version: m.version, sha256: m.sha256, source: config.modelPath, loaded_at: m.loadedAt });
  await store.setServing(
    DEFAULT_MODEL,
    {
      version: m.version,
      previous: saved && saved.version !== m.version ? saved.version : store.current(DEFAULT_MODEL)?.previous ?? null,
      at: new Date().toISOString(),
      reason: saved ? 'configured' : 'initial',
      source: config.modelPath!,
    },
    { path: config.modelPath!, sha256: sha! },
  );
  if (saved && saved.version !== m.version) logger.info({ version: m.version, replaced: saved.version }, 'MODEL_PATH holds a new model file: it replaces the version that served before');
  return m;
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

function ortVersion(): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}

export async function startEngine(config: EngineConfig, logger: Logger): Promise<Engine> {
  const startedAt = performance.now();
  const testHooks = testHooksFromEnv();
  const models = new ModelRegistry();
  const versionStore = new VersionStore(path.join(config.stateDir, 'models'), config.modelVersionsKeep);
  if (config.modelPath !== null) {
    const loaded = await loadServingModel(config, versionStore, logger);
    models.add(loaded);
    logger.info({ model: models.describe(models.get(DEFAULT_MODEL)) }, 'model loaded and validated');
  } else {
    logger.info({ features: config.features }, 'cold start: no ONNX model; serving the online sgd model alone');
  }
  const features = models.list.length > 0 ? models.features : config.features!;
  const primaryModel = models.list.length > 0 ? DEFAULT_MODEL : ONLINE_MODEL;

  // The drift monitor and the online learner come before the workers: the workers read the
  // learner's weights from its shared buffer.
  let telemetryRef: Telemetry | null = null;
  let trainingRef: TrainingRuns | null = null;
  const drift = new DriftMonitor({
    detectors: config.driftDetectors.split(',').map((d) => d.trim()).filter((d) => d !== ''),
    realInput: config.driftRealInput,
  });
  if (config.trainOnDrift !== 'off' && !drift.types.includes(config.trainOnDrift as never)) {
    throw new TradeflowError('CONFIG_INVALID', `TRAIN_ON_DRIFT names "${config.trainOnDrift}", which is not among DRIFT_DETECTORS (${drift.types.join(', ')})`);
  }
  const quality = new Map<string, QualityWindow>();
  for (const name of [...models.list.map((m) => m.name), ONLINE_MODEL]) quality.set(name, new QualityWindow(config.qualityWindow, config.qualityMinOutcomes));
  const updateAttrs = { model_type: ONLINE_MODEL };
  const learning = await OnlineLearning.open({
    stateDir: config.stateDir,
    sgd: validateSgdOptions({
      features,
      learningRate: config.sgdLearningRate,
      alpha: config.sgdAlpha,
      eta0: config.sgdEta0,
      powerT: config.sgdPowerT,
      standardize: config.sgdStandardize,
    }),
    primaryModel,
    quality,
    drift,
    replayCapacity: config.replayBufferRows,
    commitIntervalMs: config.feedbackCommitIntervalMs,
    durable: config.feedbackFsync,
    maxPendingBytes: config.feedbackMaxPendingBytes,
    checkpointIntervalMs: config.checkpointIntervalS * 1000,
    onDriftEvent: (e) => {
      telemetryRef?.driftDetected.add(1, { detector_type: e.detector, severity: e.severity });
      trainingRef?.onDrift(e);
    },
    onApplied: (rows) => {
      telemetryRef?.onlineUpdates.add(rows, updateAttrs);
      trainingRef?.onExamples(rows);
    },
    onCheckpointError: (err) => logger.error({ err: err.message }, 'checkpoint failed'),
  });
  logger.info({ stateDir: config.stateDir, ...learning.recovery, sgd: learning.learner.options }, 'learning state recovered');
  models.addOnline({
    features,
    weights: learning.weights.buffer,
    version: () => 'u' + learning.learner.updates,
    describe: () => {
      const w = new Float64Array(features);
      const bias = learning.learner.effectiveWeights(w);
      return { options: learning.learner.options, updates: learning.learner.updates, weights: Array.from(w), bias, state_dir: config.stateDir };
    },
  });
  if (config.adminToken === null) {
    logger.warn('no ADMIN_TOKEN configured: mutating endpoints (/learn, /train, model load and rollback, drift update and reset) accept loopback clients only');
  }
  const store = new PredictionStore(config.predictionIdCapacity, config.predictionIdTtlS * 1000);

  const slab = createSlab(slabLayout(config, features, models.list.length, logger));
  const pool = new InferencePool({
    workers: config.workers,
    slab,
    models: models.workerModels(),
    ortThreads: config.ortThreads,
    batchesPerWorker: config.batchesPerWorker,
    hooks: testHooks.worker,
    restartWindowMs: config.healthRestartWindowS * 1000,
    versionOf: (model) => models.servingId(model),
    describeVersion: (id) => models.describeVersion(id),
  });
  const cache = new PredictionCache(config.cacheCapacity, config.cacheMaxRows);
  const recent = new RecentWindow();
  let draining = false;
  const health = (): HealthReport => {
    const s = pool.stats();
    const cs = cache.stats();
    const components = {
      cache: cacheHealth({ enabled: cs.enabled, size: cs.size, capacity: cs.capacity, hits: cs.hits, misses: cs.misses, hitRatio: cs.hit_ratio }),
      api: apiHealth(recent.stats()),
      model: modelHealth({
        modelsLoaded: models.list.length,
        workers: s.size,
        workersWarm: s.warm,
        workerRestartsRecent: s.restartsRecent,
        restartWindowSeconds: s.restartWindowSeconds,
        queueRows: batcher.depth,
        queueLimit: config.maxQueueRows,
        draining,
      }),
    };
    return { status: overall(components), components };
  };
  const telemetry = new Telemetry({
    uptimeSeconds: () => (performance.now() - startedAt) / 1000,
    queueDepth: () => batcher.depth,
    cacheHitRatio: () => (cache.enabled ? cache.hitRatio() : null),
    componentHealth: () => {
      const c = health().components;
      return { cache: c.cache.status, api: c.api.status, model: c.model.status };
    },
    quality: () => {
      const out: QualityReading[] = [];
      for (const [model, w] of quality) {
        const q = w.metrics();
        if (q) out.push({ model, accuracy: q.accuracy, precision: q.precision, recall: q.recall, f1: q.f1 });
      }
      return out;
    },
    driftScores: () => Object.entries(drift.scores()).map(([detector, score]) => ({ detector, score })),
    onlineBufferSize: () => [{ modelType: DEFAULT_MODEL, size: learning.replay.size }],
    lastTrainingTimestamp: () => (trainingRef?.lastSuccess ? [{ modelType: DEFAULT_MODEL, seconds: trainingRef.lastSuccess }] : []),
  });
  telemetryRef = telemetry;
  telemetry.onlineUpdates.add(0, updateAttrs);
  for (const t of drift.types) for (const severity of ['warning', 'drift']) telemetry.driftDetected.add(0, { detector_type: t, severity });
  const modelMetrics = models.list.map((m) => telemetry.model(m.name));
  const record = config.metricsEnabled;
  const batchObserver: BatchObserver = {
    onBatch(r) {
      if (record && r.ok) telemetry.recordBatch(modelMetrics[r.model]!, r.rows, r.queueWaitSeconds, slab.probabilities[r.slot]!, slab.labels[r.slot]!);
    },
  };
  const responseObserver: ResponseObserver = {
    onResponse(endpoint, method, status, seconds) {
      // Probes and scrapes are not API traffic: a readiness 503 while warming is no error ratio.
      if (!endpoint.startsWith('/monitoring/')) recent.record(status, seconds);
      if (record) telemetry.recordResponse(endpoint, method, status, seconds);
    },
  };

  const batcher = new Batcher({
    slab,
    executor: pool,
    concurrency: config.workers * config.batchesPerWorker,
    models: models.list.length,
    maxBatchRows: config.maxBatchRows,
    maxQueueDelayUs: config.maxQueueDelayUs,
    maxQueueRows: config.maxQueueRows,
    observer: batchObserver,
  });
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
    observer: responseObserver,
    cache: cache.enabled ? cache : null,
    telemetry: record ? telemetry : null,
    store,
  });
  const admin = adminCheck(config.adminToken);
  server.route(
    'POST',
    '/learn',
    createLearnHandler({
      models,
      batcher,
      learning,
      store,
      responder: server.responder,
      admin,
      isDraining: () => draining,
      options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs },
    }),
  );
  registerDriftRoutes(server, drift, learning, admin);
  const swapper = new ModelSwapper(models, pool, cache, versionStore, config.ortThreads);
  registerModelRoutes(server, { models, store: versionStore, swapper, admin, maxUploadBytes: config.modelUploadMaxBytes });
  let training: TrainingRuns | null = null;
  if (models.has(DEFAULT_MODEL)) {
    const featureNames = models.get(DEFAULT_MODEL).onnx!.info.metadata['feature_names']?.split(',');
    telemetry.trainable(DEFAULT_MODEL);
    training = new TrainingRuns({
      models,
      swapper,
      replay: learning.replay,
      logger,
      metrics: { runFinished: (status, seconds) => telemetry.recordTraining(DEFAULT_MODEL, status, seconds) },
      settings: { minRows: config.trainMinRows, margin: config.trainMargin, holdoutFraction: config.trainHoldout },
      ...(featureNames && featureNames.length === features ? { featureNames } : {}),
      intervalMs: config.trainIntervalMs,
      driftDetector: config.trainOnDrift === 'off' ? null : config.trainOnDrift,
      driftMinRows: config.trainDriftMinRows,
      historySize: 100,
    });
    trainingRef = training;
    registerTrainRoutes(server, training, admin);
  }
  registerMonitoringRoutes(server, {
    scrape: () => telemetry.scrape(),
    health,
    cacheStats: () => cache.stats(),
    systemInfo: () => ({
      ...runtimeInfo(),
      engine_uptime_seconds: (performance.now() - startedAt) / 1000,
      listen: { host: config.host, port: server.port },
      config: publicConfig(config),
      models: models.list.map((m) => models.describe(m)),
      workers: pool.stats(),
      batcher: batcher.stats(),
      learning: learning.stats(),
      native: { uws: 'uWebSockets.js v20.30 (native)', onnxruntime: ortVersion() },
    }),
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
    telemetry,
    cache,
    quality,
    learning,
    drift,
    swapper,
    training,
    versions: versionStore,
    health,
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
        training?.close();
        await training?.idle();
        await learning.close().catch((err: Error) => logger.error({ err: err.message }, 'final checkpoint failed'));
        server.close();
        batcher.close();
        await pool.close();
        await telemetry.close();
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
