/**
 * The HTTP part: the uWS front end with every route group registered, listening. Started last,
 * so nothing is served before the parts behind the routes exist; stopped first at shutdown, after
 * the drain, so in-flight answers still go out.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { projectRoot } from '../paths';
import { publicConfig, type EngineConfig } from '../config';
import { adminCheck } from '../http/auth';
import { registerDriftRoutes } from '../http/drift';
import { createLearnHandler, type LearnRoute } from '../http/learn';
import { registerModelRoutes } from '../http/models';
import { registerMonitoringRoutes, runtimeInfo } from '../http/monitoring';
import { registerOipRoutes } from '../http/oip/routes';
import { RowQueue } from '../http/rows';
import { HttpServer, registerSpineRoutes, type Lifecycle } from '../http/server';
import { FrontEnds } from '../http/threads/front-ends';
import { registerTrainRoutes } from '../http/train';
import type { Logger } from '../telemetry/logger';
import type { LearningPart } from './learning';
import type { ModelsPart } from './models';
import type { ObservabilityPart } from './observability';
import type { Part } from './parts';
import type { ServingPart } from './serving';
import type { TrainingPart } from './training';

export interface HttpPart extends Part {
  readonly server: HttpServer;
  readonly port: number;
  /** The front-end threads (HTTP_THREADS ≥ 2), null when the main thread serves HTTP itself. */
  readonly frontEnds: FrontEnds | null;
}

export interface HttpInputs {
  config: EngineConfig;
  startedAt: number;
  models: ModelsPart;
  obs: ObservabilityPart;
  learning: LearningPart;
  serving: ServingPart;
  training: TrainingPart;
}

export async function startHttp(p: HttpInputs, logger: Logger): Promise<HttpPart> {
  const { config, serving } = p;
  const threaded = config.httpThreads > 1;
  const queue = new RowQueue({ models: p.models.models, batcher: serving.batcher, cache: serving.cache.enabled ? serving.cache : null, telemetry: p.obs.record ? p.obs.telemetry : null, stats: serving.stats });
  const server = new HttpServer({
    queue,
    stats: serving.stats,
    batcher: serving.batcher,
    models: p.models.models,
    lifecycle: lifecycleOf(p),
    options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs },
    observer: p.obs.responseObserver,
    // Forwarded requests come with their whole body, read by their thread: nothing is left to linger on.
    linger: { ms: threaded ? 0 : config.lingerMs, maxBytes: config.lingerMaxBytes },
    cache: serving.cache.enabled ? serving.cache : null,
    telemetry: p.obs.record ? p.obs.telemetry : null,
    store: p.learning.store,
    defaultRoute: p.learning.champion,
  });
  registerSpineRoutes(server, p.models.models, lifecycleOf(p), p.learning.champion);
  const learn = createLearnHandler({ models: p.models.models, batcher: serving.batcher, learning: p.learning.learning, store: p.learning.store, responder: server.responder, admin: adminCheck(config.adminToken), isDraining: () => serving.state.draining, options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs } });
  server.route('POST', '/learn', learn);
  const frontEnds = threaded ? frontEndsOf(p, server, queue, learn, logger) : null;
  registerRoutes(server, p, frontEnds);
  registerOip(server, p, queue);
  if (config.adminToken === null) {
    logger.warn('no ADMIN_TOKEN configured: mutating endpoints (/learn, /train, model load and rollback, drift update and reset) accept loopback clients only');
  }
  let port: number;
  try {
    port = frontEnds ? await frontEnds.start() : await server.listen(config.host, config.port);
  } catch (err) {
    server.close();
    throw err;
  }
  logger.info({ host: config.host, port, config: publicConfig(config) }, 'listening');
  return {
    name: 'http',
    server,
    port,
    frontEnds,
    drain: async () => frontEnds?.drain(),
    stop: async () => {
      if (frontEnds) await frontEnds.close();
      server.close();
    },
  };
}

function frontEndsOf(p: HttpInputs, server: HttpServer, queue: RowQueue, learn: LearnRoute, logger: Logger): FrontEnds {
  const { config, serving } = p;
  return new FrontEnds({
    threads: config.httpThreads,
    host: config.host,
    port: config.port,
    models: p.models.models,
    queue,
    batcher: serving.batcher,
    store: p.learning.store,
    defaultRoute: p.learning.champion,
    server,
    telemetry: p.obs.record ? p.obs.telemetry : null,
    recent: p.obs.recent,
    options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs, forwardMaxBytes: Math.max(config.maxBodyBytes, config.modelUploadMaxBytes) },
    linger: { ms: config.lingerMs, maxBytes: config.lingerMaxBytes },
    crashOnId: serving.testHooks.frontEndCrashOnId,
    adminToken: config.adminToken,
    learn,
    logger,
  });
}

function registerRoutes(server: HttpServer, p: HttpInputs, frontEnds: FrontEnds | null): void {
  const { config, models, learning: l, serving: s, training: t } = p;
  const admin = adminCheck(config.adminToken);
  registerDriftRoutes(server, l.drift, l.learning, admin);
  registerModelRoutes(server, { models: models.models, store: models.versions, swapper: t.changes, admin, maxUploadBytes: config.modelUploadMaxBytes, modelDir: config.modelDir });
  if (t.training) registerTrainRoutes(server, t.training, admin, t.trainingGate);
  registerMonitoringRoutes(server, {
    // The threads' metric series are all registered once each has answered a ping sent now.
    scrape: frontEnds ? () => frontEnds.sync().then(() => p.obs.telemetry.scrape()) : () => p.obs.telemetry.scrape(),
    health: s.health,
    cacheStats: () => s.cache.stats(),
    systemInfo: () => ({
      ...runtimeInfo(),
      engine_uptime_seconds: (performance.now() - p.startedAt) / 1000,
      listen: { host: config.host, port: frontEnds ? frontEnds.port : server.port },
      http_threads: frontEnds ? frontEnds.stats() : { configured: 1, listening: 1, restarts: 0, handed_off: [] },
      config: publicConfig(config),
      models: models.models.list.map((m) => models.models.describe(m)),
      workers: s.pool.stats(),
      batcher: s.batcher.stats(),
      learning: l.learning.stats(),
      ...(t.lease ? { training_lease: { holder: t.lease.holder, held: t.lease.held, ttl_ms: t.lease.ttlMs } } : {}),
      native: { uws: 'uWebSockets.js v20.30 (native)', onnxruntime: ortVersion() },
    }),
  });
}

function registerOip(server: HttpServer, p: HttpInputs, queue: RowQueue): void {
  const { config, models, serving: s } = p;
  const lifecycle = lifecycleOf(p);
  registerOipRoutes(server, {
    models: models.models,
    queue,
    stats: s.stats,
    isDraining: () => s.state.draining,
    notReadyReasons: () => lifecycle.notReadyReasons(),
    options: { maxBodyBytes: config.maxBodyBytes, maxRequestRows: config.maxRequestRows, requestTimeoutMs: config.requestTimeoutMs },
    batching: { maxBatchRows: config.maxBatchRows, maxQueueDelayUs: config.maxQueueDelayUs, workers: config.workers },
    serverVersion: packageVersion(),
    admin: adminCheck(config.adminToken),
    repository: { swapper: p.training.changes, maxUploadBytes: config.modelUploadMaxBytes },
  });
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function lifecycleOf(p: HttpInputs): Lifecycle {
  const { models, serving: s } = p;
  return {
    notReadyReasons() {
      const reasons: string[] = [];
      if (s.state.draining) reasons.push('draining');
      if (models.models.list.length === 0) reasons.push('no model loaded');
      if (!s.pool.isReady()) {
        const st = s.pool.stats();
        reasons.push(`workers warming up (${st.warm}/${st.size} warm)`);
      }
      return reasons;
    },
    isDraining: () => s.state.draining,
    readinessDetail() {
      const st = s.pool.stats();
      return {
        draining: s.state.draining,
        models: models.models.list.map((m) => ({ name: m.name, version: m.version })),
        workers: { size: st.size, warm: st.warm, restarts: st.restarts },
        queue: { rows: s.batcher.depth, in_flight_batches: s.batcher.busy },
      };
    },
  };
}

function ortVersion(): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}
