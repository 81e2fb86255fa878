/**
 * POST /learn: labelled feedback. `{"features":[...],"label":0|1}`, `{"instances":[...],
 * "labels":[...]}`, or `{"id":"...","label":0|1}` (or `"labels"`) for a prediction made earlier
 * with that id. Answered 202 only once the feedback is durable and applied.
 *
 * Rows that come with their features are first scored by the ensemble (through the batcher, like
 * any prediction), so the log records what the ensemble said about them and replay after a crash
 * gives the same quality windows. Feedback by id records the answer the client was given, by the
 * model that gave it; when that was not the ensemble (a champion answered), the ensemble scores the
 * rows now as well, so every model's window sees every outcome.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Batcher, BatchClient } from '../batching/batcher';
import { tfError, type TradeflowError } from '../errors';
import type { FeedbackExample, ServedPrediction } from '../learning/feedback-record';
import type { OnlineLearning } from '../learning/online';
import type { Claim, PredictionIds, PredictionStore, RemotePredictionIds, StoredPrediction } from '../learning/prediction-store';
import type { ModelRegistry, ServedModel } from '../models/registry';
import type { SlabViews } from '../pool/slab';
import type { AdminCheck } from './auth';
import { checkDeclaredLength, mediaTypeOf, parseContentLength, readBody } from './body';
import { decodeJsonBody, type DecodedBody } from './json-body';
import { JSON_TYPE, type Exchange, type Responder } from './respond';

export interface LearnDeps {
  models: ModelRegistry;
  batcher: Batcher;
  learning: OnlineLearning;
  /** Local, or shared by the replicas in Redis (then a lookup is a round trip). */
  store: PredictionIds;
  responder: Responder;
  admin: AdminCheck;
  isDraining(): boolean;
  options: { maxBodyBytes: number; maxRequestRows: number; requestTimeoutMs: number };
}

/** Scores feedback rows with a served model through the batcher, for the record. */
class ScoreCall implements BatchClient {
  offset = 0;
  dead = false;
  constructor(
    readonly rows: number,
    readonly deadline: number,
    private readonly resolve: (p: { classes: Uint8Array; p1: Float32Array }) => void,
    private readonly reject: (e: TradeflowError) => void,
  ) {}

  complete(slab: SlabViews, slot: number): void {
    this.dead = true;
    const probs = slab.probabilities[slot]!;
    const labels = slab.labels[slot]!;
    const classes = new Uint8Array(this.rows);
    const p1 = new Float32Array(this.rows);
    for (let r = 0; r < this.rows; r++) {
      classes[r] = labels[this.offset + r]!;
      p1[r] = probs[2 * (this.offset + r) + 1]!;
    }
    this.resolve({ classes, p1 });
  }

  fail(err: TradeflowError): void {
    this.dead = true;
    this.reject(err);
  }
}

function invalid(message: string): TradeflowError {
  return tfError('INVALID_BODY', message);
}

/** Feedback as decoded from one request: what the log will keep, and what was served for it. */
interface Parsed {
  example: Omit<FeedbackExample, 'served'>;
  /** The answer given to an earlier prediction named by id; null: the rows are scored now. */
  served: ServedPrediction | null;
  /** The prediction named by id, taken out of the store (put back if the feedback is refused). */
  claimed: { id: string; prediction: StoredPrediction } | null;
}

export interface LearnRoute {
  (x: Exchange, req: HttpRequest): void;
  /** Takes feedback a front-end thread decoded (HTTP_THREADS ≥ 2), answering on `x`. */
  take(x: Exchange, input: LearnInput): void;
}

export function createLearnHandler(deps: LearnDeps): LearnRoute {
  const handler = new LearnHandler(deps);
  const learn = function learn(x: Exchange, req: HttpRequest): void {
    handler.accept(x, req);
  } as LearnRoute;
  learn.take = (x, input) => handler.take(x, input, x.startedAt + deps.options.requestTimeoutMs);
  return learn;
}

/**
 * What a /learn body says, decoded and checked as far as the body alone allows: plain data, so a
 * front-end thread (HTTP_THREADS ≥ 2) decodes it and the main thread, the one writer of the
 * learning state, applies it.
 */
export type LearnInput =
  | { kind: 'rows'; rows: number; features: Float32Array; labels: Uint8Array }
  | { kind: 'id'; id: string; label: number | undefined; labels: Uint8Array | null };

/** Decodes /learn bodies into a staging buffer reused request after request. */
export class LearnDecoder {
  private readonly staging: Float32Array;
  private readonly labelsOut: Uint8Array;

  constructor(
    private readonly F: number,
    private readonly maxRequestRows: number,
  ) {
    this.staging = new Float32Array(maxRequestRows * F);
    this.labelsOut = new Uint8Array(maxRequestRows);
  }

  /** The feedback a body carries, or a 4xx. Synchronous: reads the request bytes. */
  decode(bytes: Uint8Array): LearnInput {
    const d = decodeJsonBody(bytes, this.F, this.staging, this.maxRequestRows, { labelsOut: this.labelsOut });
    if (d.shape === 'features' || d.shape === 'instances') return this.withFeatures(d);
    if (d.id === undefined) throw invalid('body needs "features" with "label", "instances" with "labels", or "id" with "label"');
    return { kind: 'id', id: d.id, label: d.label, labels: d.labelCount > 0 ? this.labelsOut.slice(0, d.labelCount) : null };
  }

  /** Feedback that brings its rows: copied out of the staging buffer, which the next request reuses. */
  private withFeatures(d: DecodedBody): LearnInput {
    let labels: Uint8Array;
    if (d.shape === 'features') {
      if (d.label === undefined) throw invalid('"features" needs "label" (0 or 1)');
      labels = Uint8Array.of(d.label);
    } else {
      if (d.labelCount === 0) throw invalid('"instances" needs "labels": one 0 or 1 per row');
      labels = this.labelsOut.slice(0, d.rows);
    }
    return { kind: 'rows', rows: d.rows, features: this.staging.slice(0, d.rows * this.F), labels };
  }
}

/** The checks /learn makes before it reads a body (a front-end thread makes them too). */
export function refuseLearnEarly(x: Exchange, req: HttpRequest, deps: Pick<LearnDeps, 'admin' | 'isDraining' | 'options'>): number {
  deps.admin(x.res, req);
  const type = req.getHeader('content-type');
  const contentLength = parseContentLength(req.getHeader('content-length'));
  if (deps.isDraining()) throw tfError('DRAINING', { refusing: 'feedback' });
  const media = mediaTypeOf(type);
  if (media !== '' && media !== JSON_TYPE) throw tfError('UNSUPPORTED_MEDIA_TYPE', `Content-Type "${type}" is not supported; /learn takes ${JSON_TYPE}`);
  checkDeclaredLength(contentLength, deps.options.maxBodyBytes);
  return contentLength;
}

/** Built once with the handler; the steps of a request are methods, so a request allocates no closures for them. */
class LearnHandler {
  private readonly decoder: LearnDecoder;
  private readonly ensemble: ServedModel | null;

  constructor(private readonly deps: LearnDeps) {
    const { models, options } = deps;
    this.decoder = new LearnDecoder(models.features, options.maxRequestRows);
    this.ensemble = models.has('ensemble') ? models.get('ensemble') : null;
  }

  /** Checks the caller and the headers, then reads the body. */
  accept(x: Exchange, req: HttpRequest): void {
    const { responder, options } = this.deps;
    const contentLength = refuseLearnEarly(x, req, this.deps);
    const deadline = x.startedAt + options.requestTimeoutMs;
    readBody(
      x.res,
      contentLength,
      options.maxBodyBytes,
      (bytes) => this.onBody(x, bytes, deadline),
      (err) => responder.corked(x, () => responder.error(x, err, true)),
    );
  }

  private onBody(x: Exchange, bytes: Uint8Array, deadline: number): void {
    let input: LearnInput;
    try {
      input = this.decoder.decode(bytes);
    } catch (err) {
      this.deps.responder.corked(x, () => this.deps.responder.error(x, err));
      return;
    }
    this.take(x, input, deadline);
  }

  /** Feedback decoded here or by a front-end thread: resolved against the store, then applied. */
  take(x: Exchange, input: LearnInput, deadline: number): void {
    const { responder, store } = this.deps;
    let parsed: Parsed | Promise<Parsed>;
    try {
      if (input.kind === 'rows') parsed = { example: { kind: 'feedback', rows: input.rows, features: input.features, labels: input.labels }, served: null, claimed: null };
      else parsed = store.remote ? this.byRemoteId(store, input) : this.byId(store, input);
    } catch (err) {
      responder.corked(x, () => responder.error(x, err));
      return;
    }
    if (parsed instanceof Promise) {
      parsed.then(
        (p) => this.apply(x, p, deadline),
        (err) => responder.corked(x, () => responder.error(x, err)),
      );
      return;
    }
    this.apply(x, parsed, deadline);
  }

  /** Scores the rows if they need it, then submits the feedback and answers once it is durable. */
  private apply(x: Exchange, parsed: Parsed, deadline: number): void {
    const { learning, responder } = this.deps;
    const { example, claimed } = parsed;
    const ensemble = this.ensemble;
    const given = parsed.served;
    let record: Promise<FeedbackExample>;
    if (ensemble === null || given?.model === ensemble.name) record = Promise.resolve({ ...example, served: given });
    else if (given === null) record = this.score(ensemble, example.features, example.rows, deadline).then((s) => ({ ...example, served: s }));
    // Another model answered (the champion): the ensemble is scored too, so its window keeps up.
    else record = this.score(ensemble, example.features, example.rows, deadline).then((s) => ({ ...example, served: given, others: [s] }));
    record
      .then((r) => learning.submit(r))
      .then(
        () => responder.corked(x, () => responder.json(x, 202, { accepted: example.rows, durable: learning.durable, sgd_updates: learning.learner.updates })),
        (err) => {
          // Not learned: the id may be labelled again (a retry after a 503), once it is back.
          const back = claimed ? this.giveBack(claimed.id, claimed.prediction) : null;
          const answer = (): void => responder.corked(x, () => responder.error(x, err));
          if (back) void back.then(answer);
          else answer();
        },
      );
  }

  private score(model: ServedModel, features: Float32Array, rows: number, deadline: number): Promise<ServedPrediction> {
    return new Promise((resolve, reject) => {
      const call = new ScoreCall(rows, deadline, ({ classes, p1 }) => resolve({ model: model.name, classes, p1 }), reject);
      this.deps.batcher.enqueue(model.index, features, rows, call);
    });
  }

  /**
   * A claimed prediction whose feedback was not learned goes back to its store: at once locally
   * (null), or a promise that settles once Redis has it again, so the refusal is answered only
   * when a retry can find the id. Redis unreachable: the id is lost for a retry, as an evicted one.
   */
  private giveBack(id: string, p: StoredPrediction): Promise<void> | null {
    const store = this.deps.store;
    if (!store.remote) {
      store.put(id, p);
      return null;
    }
    return store.restore(id, p).catch(() => undefined);
  }

  /** Feedback on an earlier prediction: its rows and the answer given come from the store. */
  private byId(store: PredictionStore, input: Extract<LearnInput, { kind: 'id' }>): Parsed {
    const { id, label } = input;
    const p = store.get(id);
    if (p === 'unknown') throw tfError('PREDICTION_ID_NOT_FOUND', { id });
    if (p === 'expired') throw tfError('PREDICTION_ID_EXPIRED', { id });
    const labelCount = input.labels?.length ?? 0;
    let labels: Uint8Array;
    if (label !== undefined && labelCount === 0) {
      if (p.rows !== 1) throw invalid(`prediction "${id}" has ${p.rows} rows: send "labels" with one label per row`);
      labels = Uint8Array.of(label);
    } else if (labelCount > 0 && label === undefined) {
      if (labelCount !== p.rows) throw invalid(`"labels" has ${labelCount} entries but prediction "${id}" has ${p.rows} rows`);
      labels = input.labels!;
    } else {
      throw invalid('feedback by "id" needs exactly one of "label" or "labels"');
    }
    // Taken now, in the same turn as the lookup: a second feedback for this id, even one that
    // arrives before this one is durable, finds it gone (404). Exactly one is learned.
    store.delete(id);
    return {
      example: { kind: 'feedback', rows: p.rows, features: p.features, labels },
      served: { model: p.model, classes: p.classes, p1: p.p1 },
      claimed: { id, prediction: p },
    };
  }

  /**
   * Feedback by id through the replicas' shared store. The labels were copied out of the staging
   * buffer by the decoder, and their form is checked first, so a malformed body never takes the
   * prediction. The claim is atomic in Redis: of two feedbacks for one id on any replicas, one gets
   * it; the other finds it gone (404).
   */
  private async byRemoteId(store: RemotePredictionIds, input: Extract<LearnInput, { kind: 'id' }>): Promise<Parsed> {
    const { id, label: single } = input;
    const count = input.labels?.length ?? 0;
    if ((single === undefined) === (count === 0)) throw invalid('feedback by "id" needs exactly one of "label" or "labels"');
    const labels = single !== undefined ? Uint8Array.of(single) : input.labels!;
    const p: Claim = await store.claim(id);
    if (p === 'unknown') throw tfError('PREDICTION_ID_NOT_FOUND', { id });
    if (p === 'expired') throw tfError('PREDICTION_ID_EXPIRED', { id });
    let wrong: string | null = null;
    if (single !== undefined && p.rows !== 1) wrong = `prediction "${id}" has ${p.rows} rows: send "labels" with one label per row`;
    else if (single === undefined && count !== p.rows) wrong = `"labels" has ${count} entries but prediction "${id}" has ${p.rows} rows`;
    if (wrong !== null) {
      await this.giveBack(id, p);
      throw invalid(wrong);
    }
    return {
      example: { kind: 'feedback', rows: p.rows, features: p.features, labels },
      served: { model: p.model, classes: p.classes, p1: p.p1 },
      claimed: { id, prediction: p },
    };
  }
}
