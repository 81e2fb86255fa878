/**
 * POST /learn: labelled feedback. `{"features":[...],"label":0|1}`, `{"instances":[...],
 * "labels":[...]}`, or `{"id":"...","label":0|1}` (or `"labels"`) for a prediction made earlier
 * with that id. Answered 202 only once the feedback is durable and applied.
 *
 * Rows that come with their features are first scored by the ensemble (through the batcher, like
 * any prediction), so the log records what the ensemble said about them and replay after a crash
 * gives the same quality windows. Feedback by id records the answer the client was given.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Batcher, BatchClient } from '../batching/batcher';
import { tfError, type TradeflowError } from '../errors';
import type { FeedbackExample, ServedPrediction } from '../learning/feedback-record';
import type { OnlineLearning } from '../learning/online';
import type { PredictionStore } from '../learning/prediction-store';
import type { ModelRegistry, ServedModel } from '../models/registry';
import type { SlabViews } from '../pool/slab';
import type { AdminCheck } from './auth';
import { checkDeclaredLength, mediaTypeOf, parseContentLength, readBody } from './body';
import { decodeJsonBody } from './json-body';
import { JSON_TYPE, type Exchange, type Responder } from './respond';

export interface LearnDeps {
  models: ModelRegistry;
  batcher: Batcher;
  learning: OnlineLearning;
  store: PredictionStore;
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

export function createLearnHandler(deps: LearnDeps) {
  const { models, batcher, learning, store, responder, options } = deps;
  const F = models.features;
  const staging = new Float32Array(options.maxRequestRows * F);
  const labelsOut = new Uint8Array(options.maxRequestRows);
  const ensemble: ServedModel | null = models.has('ensemble') ? models.get('ensemble') : null;

  function score(model: ServedModel, features: Float32Array, rows: number, deadline: number): Promise<ServedPrediction> {
    return new Promise((resolve, reject) => {
      const call = new ScoreCall(rows, deadline, ({ classes, p1 }) => resolve({ model: model.name, classes, p1 }), reject);
      batcher.enqueue(model.index, features, rows, call);
    });
  }

  /** The feedback as the log will keep it, or a 4xx. Synchronous: reads the request bytes. */
  function parse(bytes: Uint8Array): { example: Omit<FeedbackExample, 'served'>; served: ServedPrediction | null; id: string | null } {
    const d = decodeJsonBody(bytes, F, staging, options.maxRequestRows, { labelsOut });
    if (d.shape === 'features' || d.shape === 'instances') {
      let labels: Uint8Array;
      if (d.shape === 'features') {
        if (d.label === undefined) throw invalid('"features" needs "label" (0 or 1)');
        labels = Uint8Array.of(d.label);
      } else {
        if (d.labelCount === 0) throw invalid('"instances" needs "labels": one 0 or 1 per row');
        labels = labelsOut.slice(0, d.rows);
      }
      return { example: { kind: 'feedback', rows: d.rows, features: staging.slice(0, d.rows * F), labels }, served: null, id: null };
    }
    if (d.id === undefined) throw invalid('body needs "features" with "label", "instances" with "labels", or "id" with "label"');
    const p = store.get(d.id);
    if (p === 'unknown') throw tfError('PREDICTION_ID_NOT_FOUND', { id: d.id });
    if (p === 'expired') throw tfError('PREDICTION_ID_EXPIRED', { id: d.id });
    let labels: Uint8Array;
    if (d.label !== undefined && d.labelCount === 0) {
      if (p.rows !== 1) throw invalid(`prediction "${d.id}" has ${p.rows} rows: send "labels" with one label per row`);
      labels = Uint8Array.of(d.label);
    } else if (d.labelCount > 0 && d.label === undefined) {
      if (d.labelCount !== p.rows) throw invalid(`"labels" has ${d.labelCount} entries but prediction "${d.id}" has ${p.rows} rows`);
      labels = labelsOut.slice(0, d.labelCount);
    } else {
      throw invalid('feedback by "id" needs exactly one of "label" or "labels"');
    }
    return {
      example: { kind: 'feedback', rows: p.rows, features: p.features, labels },
      served: { model: p.model, classes: p.classes, p1: p.p1 },
      id: d.id,
    };
  }

  return function learn(x: Exchange, req: HttpRequest): void {
    deps.admin(x.res, req);
    const type = req.getHeader('content-type');
    const contentLength = parseContentLength(req.getHeader('content-length'));
    if (deps.isDraining()) throw tfError('DRAINING', { refusing: 'feedback' });
    const media = mediaTypeOf(type);
    if (media !== '' && media !== JSON_TYPE) throw tfError('UNSUPPORTED_MEDIA_TYPE', `Content-Type "${type}" is not supported; /learn takes ${JSON_TYPE}`);
    checkDeclaredLength(contentLength, options.maxBodyBytes);
    const deadline = x.startedAt + options.requestTimeoutMs;
    readBody(
      x.res,
      contentLength,
      options.maxBodyBytes,
      (bytes) => {
        let parsed: ReturnType<typeof parse>;
        try {
          parsed = parse(bytes);
        } catch (err) {
          responder.corked(x, () => responder.error(x, err));
          return;
        }
        const { example, id } = parsed;
        const served: Promise<ServedPrediction | null> =
          parsed.served !== null || ensemble === null ? Promise.resolve(parsed.served) : score(ensemble, example.features, example.rows, deadline);
        served
          .then((s) => learning.submit({ ...example, served: s }))
          .then(
            () => {
              if (id !== null) store.delete(id);
              responder.corked(x, () => responder.json(x, 202, { accepted: example.rows, durable: true, sgd_updates: learning.learner.updates }));
            },
            (err) => responder.corked(x, () => responder.error(x, err)),
          );
      },
      (err) => responder.corked(x, () => responder.error(x, err, true)),
    );
  };
}
