/**
 * One front-end thread (HTTP_THREADS ≥ 2): its own uWS app on the shared port, serving /predict
 * (JSON and binary) here from decode to the written answer, decoding /learn bodies
 * (./learn-front.ts), and forwarding every other route to the main thread. Started by
 * ./entry.ts; the main thread's side is ./front-ends.ts.
 *
 * A uWS app must close its listen socket and every open socket before its thread ends, or the
 * whole process aborts (`uv_loop_close() while having open handles`): both a requested close and
 * a failure of this thread go through `shutDown`, which closes them first.
 */
import type { MessagePort } from 'node:worker_threads';
import { ThreadApiMetrics } from '../../telemetry/metrics';
import { SeriesWriter } from '../../telemetry/shared-series';
import type { ResponseObserver } from '../respond';
import { HttpServer } from '../server';
import { Forwarder } from './forwarded';
import { frontEndFailed, Handoff } from './handoff';
import { frontLearnHandler } from './learn-front';
import { DEFAULT_ROUTE_WORD, type FrontEndData, type ToMain, type ToThread } from './protocol';
import type { ModelCatalog } from '../rows';
import type { DefaultRoute } from '../predict';
import { threadModels } from './thread-models';

/** Answers written here, sent to the main thread's API health window this often. */
const RECENT_FLUSH_MS = 250;

export function runFrontEnd(data: FrontEndData, exit: (code: number) => void): void {
  const port = data.port2;
  const post = (m: ToMain): void => port.postMessage(m);
  const control = new Int32Array(data.control);
  const handoff = new Handoff(port, data.features, data.crashOnId);
  const forwarder = new Forwarder(port, data.options.forwardMaxBytes);
  const observer = observe(data, post);
  const isDraining = (): boolean => Atomics.load(control, 0) === 1;
  const models = threadModels(data.models, data.features);
  const server = new HttpServer({
    queue: handoff,
    batcher: handoff,
    models,
    defaultRoute: defaultRouteOf(control, models),
    lifecycle: { isDraining },
    options: data.options,
    observer: observer.observer,
    linger: data.linger,
    cache: null,
    telemetry: null,
    store: null,
    fallback: forwarder.forward,
  });
  server.route('POST', '/learn', frontLearnHandler(data, server.responder, forwarder, isDraining));
  let closed = false;
  const shutDown = (code: number): void => {
    if (closed) return;
    closed = true;
    observer.stop();
    server.close();
    port.close();
    // Closing sockets is asynchronous inside uWS: let the loop run once before the thread ends.
    setImmediate(() => exit(code));
  };
  port.on('message', (m: ToThread) => {
    if (m.t === 'done') handoff.onDone(m);
    else if (m.t === 'fwd-res') forwarder.onAnswer(m);
    else if (m.t === 'ping') post({ t: 'pong', n: m.n });
    else if (m.t === 'close') shutDown(0);
  });
  process.on('uncaughtException', (err) => {
    // In-flight requests get a clear 500 before the sockets close; the main thread starts another thread.
    handoff.failAll(frontEndFailed());
    forwarder.failAll();
    post({ t: 'crashed', message: (err as Error)?.stack ?? String(err) });
    shutDown(1);
  });
  server.listen(data.host, data.port, true).then(
    (p) => post({ t: 'listening', port: p }),
    (err: Error) => {
      post({ t: 'listen-failed', message: err.message });
      shutDown(1);
    },
  );
}

/** The thread's own record of its answers: metrics in shared memory, and the health window's samples. */
function observe(data: FrontEndData, post: (m: ToMain) => void): { observer: ResponseObserver; stop(): void } {
  const metrics = data.metrics ? new ThreadApiMetrics(new SeriesWriter(data.metrics, (r) => post({ t: 'series', ...r }))) : null;
  let recent: number[] = [];
  const timer = setInterval(() => {
    if (recent.length === 0) return;
    post({ t: 'recent', s: recent });
    recent = [];
  }, RECENT_FLUSH_MS);
  return {
    observer: {
      onResponse(endpoint, method, status, seconds) {
        recent.push(status, seconds);
        if (metrics) metrics.recordResponse(endpoint, method, status, seconds);
      },
    },
    stop() {
      clearInterval(timer);
      if (recent.length > 0) post({ t: 'recent', s: recent });
      recent = [];
    },
  };
}

/** The champion as the main thread last published it (one shared word, read per request). */
function defaultRouteOf(control: Int32Array, models: ModelCatalog): DefaultRoute {
  return {
    get current(): string {
      const i = Atomics.load(control, DEFAULT_ROUTE_WORD);
      return i > 0 ? models.list[i - 1]!.name : models.defaultModel.name;
    },
    // GET /models is forwarded to the main thread, which says who is champion and why.
    status: () => ({}),
  };
}
