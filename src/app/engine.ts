/**
 * The composition root: starts the engine's parts in dependency order (observability, models,
 * learning, serving, training, HTTP) and owns the engine's lifecycle (ready, draining, closed).
 * A start that fails part-way releases every part that had started, in reverse order, before
 * the error reaches the caller. The CLI and the tests start the engine through here.
 */
import { performance } from 'node:perf_hooks';
import type { Batcher } from '../batching/batcher';
import type { PredictionCache } from '../cache/prediction-cache';
import type { EngineConfig } from '../config';
import type { DriftMonitor } from '../drift/monitor';
import type { HttpServer } from '../http/server';
import type { FrontEnds } from '../http/threads/front-ends';
import type { OnlineLearning } from '../learning/online';
import type { QualityWindow } from '../learning/quality-window';
import type { ModelRegistry } from '../models/registry';
import type { VersionStore } from '../models/version-store';
import type { InferencePool } from '../pool/inference-pool';
import type { ModelSwapper } from '../pool/model-swap';
import type { SlabViews } from '../pool/slab';
import type { TestHooks } from '../pool/testing-hooks';
import type { TrainingRuns } from '../retraining/training-runs';
import type { HealthReport } from '../telemetry/health';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/metrics';
import { startHttp } from './http';
import { startLearning } from './learning';
import { startModels } from './models';
import { startObservability } from './observability';
import { PartStack } from './parts';
import { startServing } from './serving';
import { startTraining } from './training';

export interface Engine {
  readonly config: EngineConfig;
  readonly port: number;
  readonly models: ModelRegistry;
  readonly batcher: Batcher;
  readonly pool: InferencePool;
  readonly server: HttpServer;
  /** The HTTP front-end threads (HTTP_THREADS ≥ 2); null when the main thread serves HTTP. */
  readonly frontEnds: FrontEnds | null;
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

export async function startEngine(config: EngineConfig, logger: Logger): Promise<Engine> {
  const startedAt = performance.now();
  const stack = new PartStack(logger);
  try {
    const obs = startObservability(config, startedAt);
    stack.add(obs);
    const models = await startModels(config, logger);
    const learning = await startLearning(config, models, obs, logger);
    stack.add(learning);
    const serving = startServing(config, models, obs, logger);
    stack.add(serving);
    const replication = learning.replication;
    if (replication) serving.addRedisHealth(() => replication.health());
    const training = startTraining(config, models, learning, serving, obs, logger);
    stack.add(training);
    // Every part has registered its stream entry kinds by now: the reader may apply entries.
    replication?.start();
    const http = await startHttp({ config, startedAt, models, obs, learning, serving, training }, logger);
    stack.add(http);
    serving.pool.waitReady(120_000).then(
      () => logger.info({ workers: config.workers, ms: Math.round(performance.now() - startedAt) }, 'ready: every worker is warm'),
      (err: Error) => logger.error({ err: (err as Error).message }, 'workers failed to become ready'),
    );
    const shutdown = shutdownOnce(stack, serving.state, serving.batcher, config.shutdownTimeoutMs, logger);
    return {
      config,
      port: http.port,
      models: models.models,
      batcher: serving.batcher,
      pool: serving.pool,
      server: http.server,
      frontEnds: http.frontEnds,
      slab: serving.slab,
      telemetry: obs.telemetry,
      cache: serving.cache,
      quality: learning.quality,
      learning: learning.learning,
      drift: learning.drift,
      swapper: training.swapper,
      training: training.training,
      versions: models.versions,
      health: serving.health,
      startedAt,
      testHooks: serving.testHooks,
      ready: () => serving.pool.waitReady(60_000),
      shutdown,
    };
  } catch (err) {
    await stack.stopAll(false, config.shutdownTimeoutMs);
    throw err;
  }
}

/**
 * The whole shutdown stays within SHUTDOWN_TIMEOUT_MS: a training run is aborted, queued and
 * in-flight predictions get what is left of the bound, the feedback log is flushed, and the final
 * checkpoint is skipped if it would not fit (the log holds everything it would have).
 */
function shutdownOnce(
  stack: PartStack,
  state: { draining: boolean },
  batcher: Batcher,
  timeoutMs: number,
  logger: Logger,
): (reason: string) => Promise<{ drained: boolean }> {
  let done: Promise<{ drained: boolean }> | null = null;
  return (reason) => {
    if (done) return done;
    state.draining = true;
    logger.info({ reason, queuedRows: batcher.depth, inFlight: batcher.busy, timeoutMs }, 'draining');
    done = stack.stopAll(true, timeoutMs).then((drained) => {
      logger.info({ drained }, drained ? 'drained; stopped' : 'shutdown bound reached with work still in flight; stopped');
      return { drained };
    });
    return done;
  };
}
