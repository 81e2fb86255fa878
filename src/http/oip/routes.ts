/**
 * The Open Inference Protocol (KServe V2 REST) on the engine's port, with Triton's extensions
 * that are built here, and only those are advertised: binary tensor data, statistics,
 * model_repository, model_configuration. Route templates are the `endpoint` label of metrics.
 */
import type { ModelRegistry } from '../../models/registry';
import type { InferStats } from '../../telemetry/infer-stats';
import type { AdminCheck } from '../auth';
import { RETRY_AFTER_HEADERS } from '../../errors';
import type { HttpServer } from '../server';
import type { RowQueue } from '../rows';
import { oipHandler } from './errors';
import { InferHandler } from './infer';
import { findModel, modelConfig, modelMetadata, type BatchingSettings } from './models';
import { registerRepositoryRoutes, type RepositoryDeps } from './repository';
import { statsOf } from './stats';

export const OIP_EXTENSIONS = ['binary_tensor_data', 'statistics', 'model_repository', 'model_configuration'];

export interface OipDeps {
  models: ModelRegistry;
  queue: RowQueue;
  stats: InferStats;
  isDraining(): boolean;
  /** Why the engine is not ready (empty when it is). */
  notReadyReasons(): string[];
  options: { maxBodyBytes: number; maxRequestRows: number; requestTimeoutMs: number };
  batching: BatchingSettings;
  serverVersion: string;
  admin: AdminCheck;
  repository: Omit<RepositoryDeps, 'models' | 'admin'>;
}

export function registerOipRoutes(server: HttpServer, deps: OipDeps): void {
  const r = server.responder;
  const { models } = deps;
  const on = (method: string, template: string, h: Parameters<typeof oipHandler>[1]): void => {
    server.route(method, template, oipHandler(r, h));
  };
  on('GET', '/v2/health/live', (x) => r.json(x, 200, { live: true }));
  on('GET', '/v2/health/ready', (x) => {
    const ready = deps.notReadyReasons().length === 0;
    r.json(x, ready ? 200 : 503, { ready }, ready ? undefined : RETRY_AFTER_HEADERS);
  });
  on('GET', '/v2', (x) => r.json(x, 200, { name: 'tradeflow', version: deps.serverVersion, extensions: OIP_EXTENSIONS }));
  const infer = new InferHandler({ models, queue: deps.queue, responder: r, isDraining: deps.isDraining, options: deps.options });
  for (const base of ['/v2/models/{name}', '/v2/models/{name}/versions/{version}']) {
    on('GET', base, (x, _req, p) => r.json(x, 200, modelMetadata(findModel(models, p))));
    on('GET', base + '/ready', (x, _req, p) => {
      const m = findModel(models, p);
      const ready = deps.notReadyReasons().length === 0;
      r.json(x, ready ? 200 : 503, { name: m.name, ready }, ready ? undefined : RETRY_AFTER_HEADERS);
    });
    on('POST', base + '/infer', (x, req, p) => infer.accept(x, req, p));
    on('GET', base + '/stats', (x, _req, p) => r.json(x, 200, { model_stats: [statsOf(findModel(models, p), deps.stats)] }));
    on('GET', base + '/config', (x, _req, p) => r.json(x, 200, modelConfig(findModel(models, p), deps.batching)));
  }
  on('GET', '/v2/models/stats', (x) => r.json(x, 200, { model_stats: models.list.map((m) => statsOf(m, deps.stats)) }));
  registerRepositoryRoutes(server, { ...deps.repository, models, admin: deps.admin });
}
