/**
 * The main thread's side of the front-end threads (HTTP_THREADS ≥ 2): starts them on one port,
 * takes their descriptors into the one row queue (so the one batcher and Piscina pool), posts
 * results back, runs their forwarded requests through the main HttpServer, adopts their metric
 * series, and replaces a thread that dies. Its protocol is ./protocol.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as uWS from 'uWebSockets.js';
import type { Batcher } from '../../batching/batcher';
import { tfError } from '../../errors';
import type { PredictionIds } from '../../learning/prediction-store';
import type { ModelRegistry } from '../../models/registry';
import { projectRoot } from '../../paths';
import type { Logger } from '../../telemetry/logger';
import type { Telemetry } from '../../telemetry/metrics';
import { createSeriesBlock } from '../../telemetry/shared-series';
import type { Exchange } from '../respond';
import type { RowSink } from '../rows';
import type { LearnRoute } from '../learn';
import type { HttpServer } from '../server';
import { forwardedRequest, forwardedResponse } from './forwarded';
import { DEFAULT_ROUTE_WORD, DESC_FIELDS, segmentWords, type FrontEndData, type ToMain, type ToThread } from './protocol';
import { RemoteAnswer, type ThreadOutbox } from './remote-answer';

export interface FrontEndsOptions {
  threads: number;
  host: string;
  port: number;
  models: ModelRegistry;
  queue: RowSink;
  batcher: Pick<Batcher, 'clientGone'>;
  store: PredictionIds | null;
  /**
   * The model a request naming none goes to (SERVE_POLICY): its index is kept in the shared
   * control words, which every thread reads per request; absent: the registry's default.
   */
  defaultRoute: { readonly current: string; onSwitch(listener: (from: string, to: string) => void): void } | null;
  /** Runs the forwarded requests: the main thread's router, every route group registered. */
  server: HttpServer;
  telemetry: Telemetry | null;
  recent: { record(status: number, seconds: number): void };
  options: FrontEndData['options'];
  linger: FrontEndData['linger'];
  crashOnId: string | null;
  adminToken: string | null;
  /** Takes /learn feedback the threads decoded. */
  learn: LearnRoute;
  logger: Logger;
}

/** A request segment as the main thread reads it (./protocol.ts): its rows, then its results in the same words. */
interface SegmentViews {
  inputs: Float32Array;
  probs: Float32Array;
  labels: Int32Array;
}

function segmentViews(buffer: SharedArrayBuffer, base: number, cap: number, features: number): SegmentViews {
  return { inputs: new Float32Array(buffer, base, cap * features), probs: new Float32Array(buffer, base, 2 * cap), labels: new Int32Array(buffer, base + 8 * cap, cap) };
}

export function frontEndFile(): string {
  const file = path.join(projectRoot(), 'dist', 'src', 'http', 'threads', 'entry.js');
  if (!fs.existsSync(file)) throw new Error(`front-end thread not built: ${file} is missing (run npm run build)`);
  return file;
}

/** Checks the port is free (an exclusive listen, closed at once) and learns it when 0 was asked. */
function probePort(host: string, port: number): number {
  const app = uWS.App();
  let got = -1;
  const exclusive = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;
  (app.listen as unknown as (h: string, p: number, o: number, cb: (s: uWS.us_listen_socket | false) => void) => void).call(app, host, port, exclusive, (s) => {
    if (!s) return;
    got = uWS.us_socket_local_port(s as unknown as uWS.us_socket);
    uWS.us_listen_socket_close(s);
  });
  (app as unknown as { close(): void }).close();
  if (got < 0) throw tfError('LISTEN_FAILED', `cannot listen on ${host}:${port} (address in use or not permitted)`);
  return got;
}

/** Pause before replacing a thread that ended without ever listening. */
const RESPAWN_PAUSE_MS = 1000;

export class FrontEnds {
  /** [0]: 1 once draining; [DEFAULT_ROUTE_WORD]: the default route's model index + 1 (0: the registry's default). */
  private readonly control = new SharedArrayBuffer(8);
  private readonly links: (ThreadLink | null)[] = [];
  private closing = false;
  port = 0;
  restarts = 0;

  constructor(private readonly o: FrontEndsOptions) {
    const route = o.defaultRoute;
    if (route) {
      const words = new Int32Array(this.control);
      const publish = (): void => {
        const i = o.models.list.findIndex((m) => m.name === route.current);
        Atomics.store(words, DEFAULT_ROUTE_WORD, i + 1);
      };
      publish();
      route.onSwitch(publish);
    }
  }

  /** Starts every thread; resolves with the port once all of them listen on it. */
  async start(): Promise<number> {
    this.port = probePort(this.o.host, this.o.port);
    try {
      await Promise.all(Array.from({ length: this.o.threads }, (_, i) => this.spawn(i)));
    } catch (err) {
      await this.close();
      throw err;
    }
    return this.port;
  }

  private spawn(index: number): Promise<void> {
    const link = new ThreadLink(this.o, index, this.port, this.control, () => this.exited(link));
    this.links[index] = link;
    return link.listening;
  }

  private exited(link: ThreadLink): void {
    if (this.links[link.index] === link) this.links[link.index] = null;
    if (this.closing) return;
    this.restarts++;
    this.o.logger.error({ thread: link.index }, 'a front-end thread ended; starting another');
    // A replacement that could not even listen is retried after a pause, not in a tight loop.
    const respawn = (): void => {
      if (this.closing) return;
      this.spawn(link.index).catch((err: Error) => this.o.logger.error({ thread: link.index, err: err.message }, 'a front-end thread could not be replaced'));
    };
    if (link.everListened) respawn();
    else setTimeout(respawn, RESPAWN_PAUSE_MS).unref();
  }

  /** New predictions are refused (503) from now on, in every thread. */
  drain(): void {
    Atomics.store(new Int32Array(this.control), 0, 1);
  }

  /** Resolves once every live thread has handled the messages it sent before (its metric series are registered). */
  async sync(): Promise<void> {
    await Promise.all(this.links.map((l) => l?.ping()));
  }

  /** Requests each thread handed off since it started (a replaced thread counts from 0). */
  handedOff(): number[] {
    return this.links.map((l) => l?.handedOff ?? 0);
  }

  /** Threads that listen now (a replacement counts once it listens). */
  get live(): number {
    return this.links.filter((l) => l !== null && l.isListening).length;
  }

  stats(): { configured: number; listening: number; restarts: number; handed_off: number[] } {
    return { configured: this.o.threads, listening: this.live, restarts: this.restarts, handed_off: this.handedOff() };
  }

  /** Threads close their listen socket and every connection, then end. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.links.map((l) => l?.close()));
  }
}

/** One front-end thread and what the main thread holds for it. */
class ThreadLink implements ThreadOutbox {
  readonly listening: Promise<void>;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly chunks = new Map<number, SegmentViews[] & { buffer: SharedArrayBuffer; cap: number }>();
  private readonly answers = new Map<number, RemoteAnswer>();
  private readonly forwards = new Map<number, { abort(): void }>();
  private readonly metrics: SharedArrayBuffer | null;
  private out: Extract<ToThread, { t: 'done' }> = { t: 'done', ok: [], v: [], l: [], err: [], rel: [] };
  private versions = new Map<string, number>();
  private flushQueued = false;
  private pings = new Map<number, () => void>();
  private nextPing = 1;
  private ended = false;
  handedOff = 0;
  isListening = false;
  everListened = false;
  private readonly exitedPromise: Promise<void>;

  constructor(
    private readonly o: FrontEndsOptions,
    readonly index: number,
    listenPort: number,
    control: SharedArrayBuffer,
    onExit: () => void,
  ) {
    this.metrics = o.telemetry ? createSeriesBlock() : null;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: FrontEndData = {
      host: o.host,
      port: listenPort,
      index,
      features: o.models.features,
      models: o.models.list.map((m) => ({ index: m.index, name: m.name, kind: m.kind, features: m.features, classLabels: [...m.classLabels] as [string, string] })),
      options: o.options,
      linger: o.linger,
      control,
      metrics: this.metrics,
      crashOnId: o.crashOnId,
      adminToken: o.adminToken,
      port2,
    };
    this.worker = new Worker(frontEndFile(), { workerData: data, transferList: [port2], name: `tradeflow-http-${index}` });
    let listened: () => void = () => {};
    let failed: (e: Error) => void = () => {};
    this.listening = new Promise<void>((resolve, reject) => {
      listened = resolve;
      failed = reject;
    });
    this.port.on('message', (m: ToMain) => {
      if (m.t === 'listening') {
        this.isListening = true;
        this.everListened = true;
        listened();
      }
      else if (m.t === 'listen-failed') failed(tfError('LISTEN_FAILED', `front-end thread ${index}: ${m.message}`));
      else this.onMessage(m);
    });
    this.worker.on('error', (err) => o.logger.error({ thread: index, err: err.message }, 'front-end thread error'));
    this.exitedPromise = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.ended = true;
        this.isListening = false;
        failed(tfError('LISTEN_FAILED', `front-end thread ${index} ended before it listened`));
        this.dropAll();
        this.port.close();
        resolve();
        onExit();
      }),
    );
  }

  private onMessage(m: ToMain): void {
    switch (m.t) {
      case 'submit':
        this.submit(m);
        break;
      case 'gone':
        for (const id of m.ids) this.gone(id);
        break;
      case 'chunk':
        this.chunks.set(m.chunk, Object.assign([] as SegmentViews[], { buffer: m.buffer, cap: m.cap }));
        break;
      case 'forget':
        this.chunks.delete(m.chunk);
        break;
      case 'series':
        if (this.metrics && this.o.telemetry) this.o.telemetry.adoptSeries(this.metrics, m);
        break;
      case 'recent':
        for (let i = 0; i < m.s.length; i += 2) this.o.recent.record(m.s[i]!, m.s[i + 1]!);
        break;
      case 'fwd':
        this.forward(m);
        break;
      case 'learn':
        this.learn(m);
        break;
      case 'fwd-gone':
        this.forwards.get(m.id)?.abort();
        this.forwards.delete(m.id);
        break;
      case 'pong':
        this.pings.get(m.n)?.();
        this.pings.delete(m.n);
        break;
      case 'crashed':
        this.o.logger.error({ thread: this.index, err: m.message }, 'front-end thread failed');
        break;
    }
  }

  /** Every descriptor into the row queue, in the order the thread sent them. */
  private submit(m: Extract<ToMain, { t: 'submit' }>): void {
    const { d, ids } = m;
    this.handedOff += ids.length;
    const origin = performance.timeOrigin;
    for (let i = 0, k = 0; i < d.length; i += DESC_FIELDS, k++) {
      const id = d[i]!;
      const rows = d[i + 3]!;
      const v = this.slotViews(d[i + 1]!, d[i + 2]!);
      const model = this.o.models.list[d[i + 4]!]!;
      const a = new RemoteAnswer(this, id, model, ids[k] ?? undefined, d[i + 6]! - origin, v.probs, v.labels, this.o.store);
      try {
        a.call = this.o.queue.submit(a, v.inputs, rows, d[i + 5]! - origin);
        if (!a.x.answered) this.answers.set(id, a);
      } catch (err) {
        a.fail(err);
      }
    }
  }

  /** A pooled slot's views, made once: typed arrays over shared memory cost more to make than the copy they serve. */
  private slotViews(chunk: number, slot: number): SegmentViews {
    const views = this.chunks.get(chunk)!;
    let v = views[slot];
    if (v === undefined) {
      const F = this.o.models.features;
      v = segmentViews(views.buffer, slot * segmentWords(views.cap, F) * 4, views.cap, F);
      views[slot] = v;
    }
    return v;
  }

  private gone(id: number): void {
    const a = this.answers.get(id);
    if (a === undefined) return;
    this.answers.delete(id);
    if (a.call) this.o.batcher.clientGone(a.call);
    a.x.answered = true;
    this.out.rel.push(id);
    this.queueFlush();
  }

  ok(id: number, version: string, labels: readonly [string, string]): void {
    this.answers.delete(id);
    let v = this.versions.get(version);
    if (v === undefined) {
      v = this.out.v.length;
      this.out.v.push(version);
      this.out.l.push(labels[0], labels[1]);
      this.versions.set(version, v);
    }
    this.out.ok.push(id, v);
    this.queueFlush();
  }

  err(id: number, code: string, message: string): void {
    this.answers.delete(id);
    this.out.err.push(id, code, message);
    this.queueFlush();
  }

  /** The answers of one task (a batch's completions) go in one message. */
  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const out = this.out;
    this.out = { t: 'done', ok: [], v: [], l: [], err: [], rel: [] };
    this.versions = new Map();
    if (!this.ended) this.port.postMessage(out);
  };

  private forward(m: Extract<ToMain, { t: 'fwd' }>): void {
    const f = forwardedResponse(m, (answer) => {
      this.forwards.delete(m.id);
      if (!this.ended) this.port.postMessage(answer);
    });
    this.forwards.set(m.id, f);
    this.o.server.handle(f.res, forwardedRequest(m));
  }

  /** Feedback the thread decoded, applied here and answered like a forwarded request. */
  private learn(m: Extract<ToMain, { t: 'learn' }>): void {
    const f = forwardedResponse({ t: 'fwd', id: m.id, method: 'POST', url: '/learn', query: '', headers: [], remote: m.remote, body: null }, (answer) => {
      this.forwards.delete(m.id);
      if (!this.ended) this.port.postMessage(answer);
    });
    this.forwards.set(m.id, f);
    const x: Exchange = { res: f.res, endpoint: '/learn', method: 'POST', startedAt: performance.now(), aborted: false, answered: false, onAbort: null, unread: null };
    f.res.onAborted(() => {
      x.aborted = true;
      if (x.onAbort) x.onAbort();
    });
    this.o.learn.take(x, m.input);
  }

  ping(): Promise<void> {
    if (this.ended) return Promise.resolve();
    const n = this.nextPing++;
    return new Promise<void>((resolve) => {
      this.pings.set(n, resolve);
      this.port.postMessage({ t: 'ping', n } satisfies ToThread);
    });
  }

  /** The thread is gone: what it was waiting for is dropped (its clients' connections went with it). */
  private dropAll(): void {
    for (const a of this.answers.values()) {
      a.x.answered = true;
      if (a.call) this.o.batcher.clientGone(a.call);
    }
    this.answers.clear();
    for (const f of this.forwards.values()) f.abort();
    this.forwards.clear();
    for (const resolve of this.pings.values()) resolve();
    this.pings.clear();
  }

  async close(): Promise<void> {
    if (!this.ended) this.port.postMessage({ t: 'close' } satisfies ToThread);
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await this.exitedPromise;
    clearTimeout(timer);
  }
}
