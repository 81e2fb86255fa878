/**
 * What every route that computes rows shares (POST /predict, the Open Inference Protocol's infer):
 * the deadline header, the cache rules, the batch entry of one request and the checks and
 * records made when its results come back. A route supplies the answer (`RowAnswer`): how the
 * results are written, and how an error is.
 */
import { performance } from 'node:perf_hooks';
import type { Batcher, BatchClient } from '../batching/batcher';
import type { PredictionCache } from '../cache/prediction-cache';
import { tfError, type TradeflowError } from '../errors';
import type { ModelRegistry, ServedModel } from '../models/registry';
import type { SlabViews } from '../pool/slab';
import type { InferStats } from '../telemetry/infer-stats';
import type { ModelMetrics, Telemetry } from '../telemetry/metrics';
import type { Exchange } from './respond';

/** Largest per-request deadline a client may ask for, in ms. */
export const MAX_TIMEOUT_MS = 3_600_000;

export function parseTimeoutHeader(value: string, fallback: number): number {
  if (value === '') return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > MAX_TIMEOUT_MS) {
    throw tfError('INVALID_HEADER', `X-Request-Timeout-Ms must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got "${value}"`);
  }
  return Number(value);
}

/** What a route needs of the served models (a front-end thread has a copy of these facts, not the registry). */
export type ModelCatalog = Pick<ModelRegistry, 'features' | 'defaultModel' | 'get' | 'list'>;

/** Where a route's rows go: the row queue on the main thread, or the hand-off to it from a front-end thread. */
export interface RowSink {
  submit(a: RowAnswer, src: Float32Array, rows: number, deadline: number): BatchClient | null;
}

/** One request's answer. `write` copies what it needs out of the arrays before it returns. */
export interface RowAnswer {
  readonly x: Exchange;
  readonly model: ServedModel;
  /** The prediction id the client gave (feedback by id names it), if any. */
  readonly predictionId?: string | undefined;
  /** Rows [first, first+rows) of `probs` (2 per row) and `labels`; `served` names the version that computed them. */
  write(probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string, inputs: Float32Array): void;
  /** Writes an error answer (each route has its own error shape). */
  fail(err: unknown): void;
}

/** One request waiting in a batch. Writes its own answer when the batch returns. */
class RowCall implements BatchClient {
  offset = 0;
  dead = false;

  constructor(
    private readonly a: RowAnswer,
    private readonly q: RowQueue,
    readonly rows: number,
    readonly deadline: number,
    /** Cache keys of the rows, when the request goes through the cache. */
    private readonly cacheKeys: string[] | null,
  ) {}

  complete(slab: SlabViews, slot: number, _model: number, version: number): void {
    if (this.dead) return;
    this.dead = true;
    const probs = slab.probabilities[slot]!;
    const labels = slab.labels[slot]!;
    const q = this.q;
    const m = this.a.model;
    // The batch ran one version: the online model's update count, or an ONNX version id.
    const served = m.kind !== 'onnx' ? 'u' + version : q.models.versionName(version);
    if (!q.answer(this.a, probs, labels, this.offset, this.rows, served, slab.inputs[slot]!, slot)) return;
    if (this.cacheKeys) {
      for (let r = 0; r < this.rows; r++) {
        const i = this.offset + r;
        q.cache!.set(this.cacheKeys[r]!, probs[2 * i]!, probs[2 * i + 1]!, labels[i]!);
      }
    }
  }

  fail(err: TradeflowError): void {
    if (this.a.x.answered) return;
    this.dead = true;
    this.q.failed(this.a, err);
  }
}

export interface RowQueueDeps {
  models: ModelRegistry;
  batcher: Batcher;
  cache: PredictionCache | null;
  telemetry: Telemetry | null;
  stats?: InferStats | null;
}

/** Takes a request's rows: answers them from the cache, or queues them in the batcher. */
export class RowQueue implements RowSink {
  readonly models: ModelRegistry;
  readonly cache: PredictionCache | null;
  private readonly F: number;
  private readonly metricsOf: (ModelMetrics | null)[] = [];
  // Results of cache hits, laid out like a slab slot so one writer serves both.
  private readonly hitProbs: Float32Array;
  private readonly hitLabels: Int32Array;

  constructor(private readonly deps: RowQueueDeps) {
    const { models, cache, telemetry } = deps;
    this.models = models;
    this.cache = cache;
    this.F = models.features;
    for (const m of models.list) this.metricsOf[m.index] = telemetry ? telemetry.model(m.name) : null;
    this.hitProbs = new Float32Array(2 * (cache ? cache.maxRowsPerRequest : 0));
    this.hitLabels = new Int32Array(cache ? cache.maxRowsPerRequest : 0);
  }

  /** Registers every model's serving version with the cache (once, by the first route built). */
  static watchVersions(models: ModelCatalog, cache: PredictionCache | null): void {
    if (cache) for (const m of models.list) cache.onVersion(m.index, m.version);
  }

  /**
   * The rows of `src` (row-major, valid during the call only: the batcher copies them) for
   * `a.model`: the batch entry, or null when the cache answered. Throws QUEUE_FULL, DRAINING.
   */
  submit(a: RowAnswer, src: Float32Array, rows: number, deadline: number): BatchClient | null {
    const keys = this.fromCache(a, src, rows);
    if (keys === true) return null;
    const call = new RowCall(a, this, rows, deadline, keys);
    try {
      this.deps.batcher.enqueue(a.model.index, src, rows, call);
    } catch (err) {
      call.dead = true;
      throw err;
    }
    return call;
  }

  /** The client of `call` went away: its rows are dropped from their batch if not yet sent. */
  batcherGone(call: BatchClient): void {
    this.deps.batcher.clientGone(call);
  }

  /**
   * Checks the results and writes the answer, recording its latency; false when the model's
   * output was unusable (the request then got a 500).
   */
  answer(a: RowAnswer, probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string, inputs: Float32Array, slot: number): boolean {
    const m = a.model;
    const end = first + rows;
    for (let r = first; r < end; r++) {
      const p0 = probs[2 * r]!;
      const p1 = probs[2 * r + 1]!;
      if (!(p0 >= 0 && p0 <= 1 && p1 >= 0 && p1 <= 1)) {
        this.failed(a, tfError('INVALID_MODEL_OUTPUT', `model ${m.name} ${m.version} produced an invalid probability for row ${r - first} (${p0}, ${p1})`));
        return false;
      }
    }
    a.write(probs, labels, first, rows, served, inputs);
    const mm = this.metricsOf[m.index];
    if (mm) this.deps.telemetry!.recordPredictionLatency(mm, (performance.now() - a.x.startedAt) / 1000);
    this.deps.stats?.succeeded(m.index, a.x.startedAt, slot);
    return true;
  }

  failed(a: RowAnswer, err: unknown): void {
    this.deps.stats?.failed(a.model.index, a.x.startedAt);
    a.fail(err);
  }

  /** Answers from the cache when every row hits; else returns the rows' keys for the insert. */
  private fromCache(a: RowAnswer, src: Float32Array, rows: number): string[] | null | true {
    const { cache, telemetry } = this.deps;
    if (!cache || !cache.applies(rows) || a.model.kind !== 'onnx') return null;
    const keys: string[] = [];
    // Keys name the version serving now; a hit is answered as that version.
    const version = a.model.version;
    for (let r = 0; r < rows; r++) keys.push(cache.key(a.model.index, version, src, r, this.F));
    for (let r = 0; r < rows; r++) {
      const v = cache.get(keys[r]!);
      telemetry?.recordCacheLookup(v !== undefined);
      if (v === undefined) {
        this.deps.stats?.cacheMiss(a.model.index);
        return keys;
      }
      this.hitProbs[2 * r] = v.p0;
      this.hitProbs[2 * r + 1] = v.p1;
      this.hitLabels[r] = v.cls;
    }
    const mm = this.metricsOf[a.model.index];
    if (this.answer(a, this.hitProbs, this.hitLabels, 0, rows, version, src, -1) && mm) {
      telemetry!.countRows(mm, rows, 0, this.hitProbs, this.hitLabels);
    }
    return true;
  }
}
