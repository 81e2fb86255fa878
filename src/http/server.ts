/**
 * The uWebSockets.js front end: one catch-all route feeding our router, so 404/405 answers and
 * the `endpoint` label are ours to define. Health endpoints answer from in-memory state and never
 * wait behind the prediction queue.
 */
import * as uWS from 'uWebSockets.js';
import { performance } from 'node:perf_hooks';
import { RETRY_AFTER_HEADERS, tfError } from '../errors';
import type { ModelRegistry } from '../models/registry';
import type { ModelCatalog } from './rows';
import type { LingerOptions } from './linger';
import { createPredictHandler, type DefaultRoute, type PredictDeps } from './predict';
import { Responder, type Exchange, type ResponseObserver } from './respond';
import { Router, type Handler } from './router';

export interface Lifecycle {
  /** Why the engine is not ready (empty when it is). */
  notReadyReasons(): string[];
  isDraining(): boolean;
  readinessDetail(): Record<string, unknown>;
}

export interface HttpServerDeps extends Omit<PredictDeps, 'responder' | 'isDraining'> {
  models: ModelCatalog;
  lifecycle: Pick<Lifecycle, 'isDraining'>;
  observer?: ResponseObserver;
  /** Bounds of the lingering close behind early refusals (LINGER_MS, LINGER_MAX_BYTES). */
  linger?: LingerOptions;
  /**
   * Takes every request no route of this server matches (a front-end thread forwards them to the
   * main thread, whose router answers, 404 and 405 included); without one they are answered here.
   */
  fallback?: (res: uWS.HttpResponse, req: uWS.HttpRequest) => void;
}

/** The endpoint label for anything the router does not know: bounded cardinality. */
export const UNKNOWN_ENDPOINT = 'other';

export class HttpServer {
  readonly router = new Router();
  readonly responder: Responder;
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | null = null;
  port = 0;

  constructor(private readonly deps: HttpServerDeps) {
    this.responder = new Responder(deps.observer ?? null, deps.linger);
    this.app = uWS.App();
    // The npm build of uWS.js silently falls back to a slow pure-JS server when its native
    // binary does not load; refuse to run on that instead of serving at a fraction of the speed.
    if (typeof (this.app as unknown as { close?: unknown }).close !== 'function') {
      throw new Error('uWebSockets.js native binary did not load (pure-JS fallback detected); refusing to start');
    }
    const { lifecycle } = deps;
    this.router.on('POST', '/predict', createPredictHandler({ ...deps, responder: this.responder, isDraining: () => lifecycle.isDraining() }));
    this.app.any('/*', (res, req) => this.handle(res, req));
  }

  /** Adds a route (later layers: telemetry, learning, training). */
  route(method: string, template: string, handler: Handler): this {
    this.router.on(method, template, handler);
    return this;
  }

  /** Routes one request (uWS's, or one a front-end thread forwarded: ./threads/forwarded.ts). */
  handle(res: uWS.HttpResponse, req: uWS.HttpRequest): void {
    const path = req.getUrl();
    const { route, params } = this.router.match(path);
    if (route === null && this.deps.fallback) {
      this.deps.fallback(res, req);
      return;
    }
    const method = req.getMethod().toUpperCase();
    const x: Exchange = { res, endpoint: route ? route.template : UNKNOWN_ENDPOINT, method, startedAt: performance.now(), aborted: false, answered: false, onAbort: null, unread: null };
    // Registered before any handler runs: uWS aborts the process if a handler returns without
    // answering or registering one, and a client may go away while its request waits.
    res.onAborted(() => {
      x.aborted = true;
      if (x.onAbort) x.onAbort();
    });
    try {
      if (route === null) {
        this.responder.error(x, tfError('NOT_FOUND', { method, path }), hasBody(req));
        return;
      }
      const handler = route.methods.get(method);
      if (handler === undefined) {
        this.responder.error(x, tfError('METHOD_NOT_ALLOWED', { method, route: route.template, allow: Router.allow(route) }), hasBody(req));
        return;
      }
      // Only POST routes read a body; any other request's body is read and dropped before its answer.
      if (method !== 'POST' && hasBody(req)) this.responder.readsNoBody(x);
      handler(x, req, params);
    } catch (err) {
      this.responder.error(x, err, hasBody(req));
    }
  }

  /**
   * Exclusive unless `shared`: by default uWS sets SO_REUSEPORT, and a second engine on the same
   * port would silently share its traffic instead of failing to start. Front-end threads share
   * the port on purpose (the engine first checks it is free: ./threads/front-ends.ts).
   */
  listen(host: string, port: number, shared = false): Promise<number> {
    return new Promise((resolve, reject) => {
      const listen = this.app.listen as unknown as (h: string, p: number, o: number, cb: (s: uWS.us_listen_socket | false) => void) => void;
      listen.call(this.app, host, port, shared ? 0 : EXCLUSIVE_PORT, (socket) => {
        if (!socket) {
          reject(tfError('LISTEN_FAILED', `cannot listen on ${host}:${port} (address in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        this.port = uWS.us_socket_local_port(socket as unknown as uWS.us_socket);
        resolve(this.port);
      });
    });
  }

  /** Stops accepting connections, then closes every open one. */
  close(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    (this.app as unknown as { close(): void }).close();
  }
}

/** The routes of the serving spine that answer from the main thread's state: models and health probes. */
export function registerSpineRoutes(server: HttpServer, models: ModelRegistry, lifecycle: Lifecycle, defaultRoute: DefaultRoute | null = null): void {
  const r = server.responder;
  server
    .route('GET', '/models', (x) => {
      r.json(x, 200, { models: models.list.map((m) => models.describe(m)), ...(defaultRoute ? { champion: defaultRoute.status() } : {}) });
    })
    .route('GET', '/monitoring/health/liveness', (x) => r.json(x, 200, { status: 'alive' }))
    .route('GET', '/monitoring/health/readiness', (x) => {
      const reasons = lifecycle.notReadyReasons();
      const body = { status: reasons.length === 0 ? 'ready' : 'not_ready', reasons, ...lifecycle.readinessDetail() };
      r.json(x, reasons.length === 0 ? 200 : 503, body, reasons.length === 0 ? undefined : RETRY_AFTER_HEADERS);
    });
}

export function hasBody(req: uWS.HttpRequest): boolean {
  const cl = req.getHeader('content-length');
  return (cl !== '' && cl !== '0') || req.getHeader('transfer-encoding') !== '';
}

const EXCLUSIVE_PORT: number = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;
