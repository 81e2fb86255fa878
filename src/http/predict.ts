/**
 * POST /predict: JSON (`features` / `instances`) or raw little-endian float32 rows in, class
 * probabilities out. Rows are decoded from the request bytes into one reusable staging buffer and
 * handed to the batcher, which copies them into its shared slab; the answer is written when the
 * batch comes back.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Batcher, BatchClient } from '../batching/batcher';
import { tfError } from '../errors';
import type { ServedModel } from '../models/registry';
import type { PredictionCache } from '../cache/prediction-cache';
import type { PredictionIds, StoredPrediction } from '../learning/prediction-store';
import type { InferStats } from '../telemetry/infer-stats';
import type { Telemetry } from '../telemetry/metrics';
import { checkDeclaredLength, mediaTypeOf, parseContentLength, readBody } from './body';
import { AnswerText } from './answer-text';
import { decodeJsonBody } from './json-body';
import { BINARY_TYPE, JSON_TYPE, type Exchange, type Responder } from './respond';
import { parseTimeoutHeader, RowQueue, type ModelCatalog, type RowAnswer, type RowSink } from './rows';

export { parseTimeoutHeader } from './rows';

export interface PredictOptions {
  maxBodyBytes: number;
  maxRequestRows: number;
  requestTimeoutMs: number;
}

export interface PredictDeps {
  /** Told when a client goes away while its rows wait. */
  batcher: Pick<Batcher, 'clientGone'>;
  models: ModelCatalog;
  responder: Responder;
  isDraining(): boolean;
  options: PredictOptions;
  cache: PredictionCache | null;
  telemetry: Telemetry | null;
  /** Where predictions made with an id are kept for feedback: local, or Redis shared by the replicas. */
  store: PredictionIds | null;
  /** Triton-shaped statistics (GET /v2/models/{name}/stats), fed by every route that computes rows. */
  stats?: InferStats | null;
  /** Where the rows go: the row queue shared with other routes, or a front-end thread's hand-off to it. */
  queue: RowSink;
  /**
   * The model a request naming none goes to (SERVE_POLICY, src/learning/champion.ts), read once
   * per request; absent: the registry's default.
   */
  defaultRoute?: DefaultRoute | null;
}

/** The default route as the front end sees it (src/learning/champion.ts's ChampionSelector). */
export interface DefaultRoute {
  readonly current: string;
  /** Who is champion and why, for GET /models. */
  status(): object;
}

type Format = 'features' | 'instances' | 'binary';

type MediaKind = 'json' | 'binary';

function mediaType(header: string): MediaKind | null {
  const t = mediaTypeOf(header);
  if (t === '' || t === JSON_TYPE) return 'json';
  if (t === BINARY_TYPE) return 'binary';
  return null;
}

/** One request's answer: formats its results as JSON or binary. */
class PredictAnswer implements RowAnswer {
  constructor(
    readonly x: Exchange,
    readonly format: Format,
    readonly model: ServedModel,
    readonly id: string | undefined,
    private readonly out: AnswerWriter,
  ) {}

  get predictionId(): string | undefined {
    return this.id;
  }

  write(probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string, inputs: Float32Array): void {
    this.out.write(this, probs, labels, first, rows, served, inputs);
  }

  fail(err: unknown): void {
    const r = this.out.responder;
    r.corked(this.x, () => r.error(this.x, err));
  }
}

/** Formats results as JSON or binary and writes them. */
class AnswerWriter {
  private readonly scratch = new Scratch();
  private readonly text = new AnswerText();

  constructor(
    readonly responder: Responder,
    private readonly store: PredictionIds | null,
  ) {}

  /** `served` names the version that computed the rows. */
  write(a: PredictAnswer, probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string, inputs: Float32Array): void {
    const { x, model: m } = a;
    if (a.format === 'binary') {
      const out = this.scratch.ensure(rows);
      for (let r = 0; r < rows; r++) out[r] = probs[2 * (first + r) + 1]!;
      const body = out.subarray(0, rows);
      this.responder.corked(x, () => this.responder.send(x, 200, BINARY_TYPE, body, { 'X-Model-Name': m.name, 'X-Model-Version': served, 'X-Rows': String(rows) }));
      return;
    }
    const body = this.text.render(m, served, a.id, a.format === 'features', probs, labels, first, rows);
    const store = this.store;
    if (a.id === undefined || store === null) {
      this.responder.corked(x, () => this.responder.send(x, 200, JSON_TYPE, body));
    } else if (!store.remote) {
      this.responder.corked(x, () => this.responder.send(x, 200, JSON_TYPE, body));
      store.put(a.id, this.remembered(a, probs, labels, first, rows, served, inputs));
    } else {
      // The answer waits for Redis: feedback sent right after it, to any replica, finds the id.
      // If Redis refuses, the prediction is still answered (predictions never wait on Redis's
      // health); feedback by this id then gets 404, as for an evicted id.
      // The rendered body lives in a buffer the next answer reuses: this one is sent later, so it keeps a copy.
      const kept = body.slice();
      const send = (): void => this.responder.corked(x, () => this.responder.send(x, 200, JSON_TYPE, kept));
      store.put(a.id, this.remembered(a, probs, labels, first, rows, served, inputs)).then(send, send);
    }
  }

  /** What feedback by id will need: the rows and the answer given (copied: the slab is reused). */
  private remembered(a: PredictAnswer, probs: Float32Array, labels: Int32Array, first: number, rows: number, version: string, inputs: Float32Array): Omit<StoredPrediction, 'at'> {
    const F = a.model.features;
    const p1 = new Float32Array(rows);
    const classes = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      p1[r] = probs[2 * (first + r) + 1]!;
      classes[r] = labels[first + r]!;
    }
    return { model: a.model.name, version, features: inputs.slice(first * F, (first + rows) * F), rows, p1, classes };
  }
}

/** A reusable Float32Array that only grows: binary answers are copied out by uWS at once. */
class Scratch {
  private buf = new Float32Array(1024);
  ensure(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(Math.max(n, this.buf.length * 2));
    return this.buf;
  }
}

export function createPredictHandler(deps: PredictDeps): (x: Exchange, req: HttpRequest) => void {
  const handler = new PredictHandler(deps);
  return function predict(x: Exchange, req: HttpRequest): void {
    handler.accept(x, req);
  };
}

/**
 * Built once with the handler. A request allocates what it needs itself (its answer, its batch
 * entry, the body callbacks in accept) and nothing per step: the steps are methods, not closures.
 */
class PredictHandler {
  private readonly F: number;
  private readonly staging: Float32Array;
  private readonly writer: AnswerWriter;
  private readonly queue: RowSink;

  constructor(private readonly deps: PredictDeps) {
    const { models, responder, options, cache } = deps;
    this.F = models.features;
    this.staging = new Float32Array(options.maxRequestRows * this.F);
    this.writer = new AnswerWriter(responder, deps.store);
    this.queue = deps.queue;
    RowQueue.watchVersions(models, cache);
  }

  /** Checks the headers, then reads the body; the answer is written when the body is in (or its batch is back). */
  accept(x: Exchange, req: HttpRequest): void {
    const { batcher, responder, options } = this.deps;
    const kind = mediaType(req.getHeader('content-type'));
    const contentLength = parseContentLength(req.getHeader('content-length'));
    const timeoutHeader = req.getHeader('x-request-timeout-ms');
    const modelHeader = req.getHeader('x-model');
    let call: BatchClient | null = null;
    x.onAbort = () => {
      if (call) batcher.clientGone(call);
    };
    const media = this.refuseEarly(req, kind, contentLength);
    const deadline = x.startedAt + parseTimeoutHeader(timeoutHeader, options.requestTimeoutMs);
    readBody(
      x.res,
      contentLength,
      options.maxBodyBytes,
      (bytes) => {
        if (x.aborted) return;
        try {
          call = this.dispatch(x, bytes, media, modelHeader, deadline);
        } catch (err) {
          responder.corked(x, () => responder.error(x, err));
        }
      },
      (err) => responder.corked(x, () => responder.error(x, err, true)),
    );
  }

  // Refusals that come before the body is read; the router answers them and closes the
  // connection behind them.
  private refuseEarly(req: HttpRequest, kind: MediaKind | null, contentLength: number): MediaKind {
    if (this.deps.isDraining()) throw tfError('DRAINING', { refusing: 'predictions' });
    if (kind === null) throw tfError('UNSUPPORTED_MEDIA_TYPE', `Content-Type "${req.getHeader('content-type')}" is not supported; use ${JSON_TYPE} or ${BINARY_TYPE}`);
    checkDeclaredLength(contentLength, this.deps.options.maxBodyBytes);
    return kind;
  }

  /** Decodes the body and answers it from the cache or queues its rows: the call in the batch, if any. */
  private dispatch(x: Exchange, bytes: Uint8Array, kind: MediaKind, modelHeader: string, deadline: number): BatchClient | null {
    if (kind === 'binary') {
      const src = this.decodeBinary(bytes);
      return this.enqueue(x, 'binary', modelHeader || this.defaultName(), undefined, src, src.length / this.F, deadline);
    }
    const d = decodeJsonBody(bytes, this.F, this.staging, this.deps.options.maxRequestRows);
    if (d.shape === 'none') throw tfError('INVALID_BODY', 'body needs "features" (one row) or "instances" (a list of rows)');
    return this.enqueue(x, d.shape, d.model ?? (modelHeader || this.defaultName()), d.id, this.staging, d.rows, deadline);
  }

  /**
   * A request naming no model (neither "model" nor X-Model): the champion under
   * SERVE_POLICY=champion. The answer, its headers and a stored id name the model resolved here.
   */
  private defaultName(): string {
    return this.deps.defaultRoute?.current ?? this.deps.models.defaultModel.name;
  }

  private enqueue(x: Exchange, format: Format, modelName: string, id: string | undefined, src: Float32Array, rows: number, deadline: number): BatchClient | null {
    const model = this.deps.models.get(modelName);
    return this.queue.submit(new PredictAnswer(x, format, model, id, this.writer), src, rows, deadline);
  }

  /** The rows of a binary body, read in place when aligned (valid during the body callback only). */
  private decodeBinary(bytes: Uint8Array): Float32Array {
    const F = this.F;
    const maxRows = this.deps.options.maxRequestRows;
    const rowBytes = 4 * F;
    if (bytes.length === 0 || bytes.length % rowBytes !== 0) {
      throw tfError('INVALID_BINARY_BODY', `binary body must be whole rows of ${F} little-endian float32 values (${rowBytes} bytes per row), got ${bytes.length} bytes`);
    }
    const rows = bytes.length / rowBytes;
    if (rows > maxRows) {
      throw tfError('TOO_MANY_ROWS', `request has ${rows} rows, the limit is ${maxRows}`);
    }
    const n = rows * F;
    // x86 and arm64 are little-endian; an aligned body is read in place, anything else copied.
    const src = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer, 0, n);
    for (let i = 0; i < n; i++) {
      const v = src[i]!;
      if (v - v !== 0) {
        throw tfError('NON_FINITE_FEATURE', `row ${Math.floor(i / F)}, column ${i % F} is ${v}: features must be finite`);
      }
    }
    return src;
  }
}
