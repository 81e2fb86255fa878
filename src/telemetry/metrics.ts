/**
 * Every metric the engine exports, created once, here. The names, types and labels are fixed by
 * SPEC §4: the Grafana dashboard, the alert rules and users' PromQL depend on them, so no other
 * module spells a metric name.
 *
 * Hot-path recording is per batch or per request, never per row, except the confidence
 * histogram, which has its own cheap per-row path (FastHistogram, fast-metrics.ts). Attribute
 * objects are created once per label combination and reused. Gauges are observed at scrape time
 * from sources the engine registers, so nothing is computed for them between scrapes.
 */
import { ValueType, type Attributes, type Counter, type Histogram, type Meter, type ObservableResult } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { FastCounter, FastHistogram, FastMetricsProducer, type CounterSeries, type HistogramSeries } from './fast-metrics';
import { cellsOf, recordInCells, type SeriesRegistration, type SeriesWriter } from './shared-series';

/** 50 µs … 10 s: resolves sub-millisecond serving and still shows a stall. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const CONFIDENCE_BUCKETS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1];
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
export const TRAINING_DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type ComponentName = 'cache' | 'api' | 'model' | 'redis';
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';
export const HEALTH_VALUE: Record<HealthStatus, number> = { healthy: 1, degraded: 0.5, unhealthy: 0 };

export interface QualityReading {
  model: string;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

/** Read at scrape time. Later layers (learning, drift, training) set theirs. */
export interface GaugeSources {
  uptimeSeconds(): number;
  queueDepth(): number;
  cacheHitRatio(): number | null;
  componentHealth(): Partial<Record<ComponentName, HealthStatus>>;
  /** With REDIS_URL: feedback stream entries not applied here yet (null: unknown, or no stream). */
  feedbackLag(): number | null;
  quality(): QualityReading[];
  driftScores(): Array<{ detector: string; score: number }>;
  onlineBufferSize(): Array<{ modelType: string; size: number }>;
  lastTrainingTimestamp(): Array<{ modelType: string; seconds: number }>;
  /** Inference workers replaced since start, by why: they died (`crash`) or BATCH_TIMEOUT_MS ended them (`timeout`). */
  workerRestarts(): Record<WorkerRestartReason, number>;
  /** The model a request naming none goes to (SERVE_POLICY), and every other candidate. */
  champion(): { models: string[]; champion: string | null; switches: number };
}

export type WorkerRestartReason = 'crash' | 'timeout';

const EMPTY_SOURCES: GaugeSources = {
  uptimeSeconds: () => 0,
  queueDepth: () => 0,
  cacheHitRatio: () => null,
  componentHealth: () => ({ cache: 'healthy', api: 'healthy', model: 'healthy' }),
  feedbackLag: () => null,
  quality: () => [],
  driftScores: () => [],
  onlineBufferSize: () => [],
  lastTrainingTimestamp: () => [],
  workerRestarts: () => ({ crash: 0, timeout: 0 }),
  champion: () => ({ models: [], champion: null, switches: 0 }),
};

const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

/** Per-model handles for the hot path: attribute objects and series made once. */
export interface ModelMetrics {
  readonly name: string;
  readonly classes: [CounterSeries, CounterSeries];
  readonly confidence: HistogramSeries;
  readonly latency: HistogramSeries;
  readonly batchSize: HistogramSeries;
}

const API_REQUESTS = 'api_requests_total';
const API_DURATION = 'api_request_duration_seconds';
const API_ERRORS = 'api_errors_total';

function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'OTHER';
}

/**
 * A front-end thread's record of the answers it writes itself (HTTP_THREADS ≥ 2): the api_*
 * families, in its shared block, with the labels the main thread's Telemetry gives them.
 */
export class ThreadApiMetrics {
  private readonly series = new Map<string, { requests: Float64Array | null; duration: Float64Array | null; errors: Float64Array | null }>();

  constructor(private readonly writer: SeriesWriter) {}

  recordResponse(endpoint: string, method: string, status: number, seconds: number): void {
    const m = methodLabel(method);
    const key = endpoint + ' ' + m + ' ' + status;
    let a = this.series.get(key);
    if (!a) {
      const s = String(status);
      a = {
        requests: this.writer.series('counter', API_REQUESTS, { endpoint, method: m, status: s }),
        duration: this.writer.series('histogram', API_DURATION, { endpoint, method: m }, LATENCY_BUCKETS),
        errors: status >= 400 ? this.writer.series('counter', API_ERRORS, { endpoint, status: s }) : null,
      };
      this.series.set(key, a);
    }
    if (a.requests) a.requests[0]!++;
    if (a.duration) recordInCells(a.duration, LATENCY_BUCKETS, seconds);
    if (a.errors) a.errors[0]!++;
  }
}

/** Per (endpoint, method, status): the series one answer increments. */
interface ApiSeries {
  requests: CounterSeries;
  duration: HistogramSeries;
  errors: CounterSeries | null;
}

export class Telemetry {
  private readonly provider: MeterProvider;
  private readonly exporter: PrometheusExporter;
  private readonly serializer = new PrometheusSerializer('', false, undefined, true, true);
  private readonly meter: Meter;
  private readonly apiSeries = new Map<string, ApiSeries>();
  private readonly models = new Map<string, ModelMetrics>();
  // Recorded per request or per row: the cheap families (fast-metrics.ts).
  private readonly confidence: FastHistogram;
  private readonly predictionLatency: FastHistogram;
  private readonly apiRequests: FastCounter;
  private readonly apiDuration: FastHistogram;
  private readonly apiErrors: FastCounter;
  private readonly predictions: FastCounter;
  private readonly batchSize: FastHistogram;
  private readonly queueWait: FastHistogram;
  private readonly queueWaitAll: HistogramSeries;
  private readonly cacheRequests: FastCounter;
  private readonly cacheHit: CounterSeries;
  private readonly cacheMiss: CounterSeries;

  readonly trainingRuns: Counter;
  readonly trainingDuration: Histogram;
  readonly driftDetected: Counter;
  readonly onlineUpdates: Counter;


  private sources: GaugeSources;

  /** Sources not given here read as empty until a later part registers them (`setSources`). */
  constructor(sources: Partial<GaugeSources> = {}) {
    this.sources = { ...EMPTY_SOURCES, ...sources };
    this.confidence = new FastHistogram('ml_prediction_confidence', 'Probability of the predicted class, per predicted row', '', CONFIDENCE_BUCKETS);
    this.predictionLatency = new FastHistogram('ml_prediction_latency_seconds', 'Time from receiving a prediction request to its answer', 's', LATENCY_BUCKETS);
    this.apiRequests = new FastCounter(API_REQUESTS, 'HTTP requests answered, by route template, method and status');
    this.apiDuration = new FastHistogram(API_DURATION, 'HTTP request duration, from routing to the last byte written', 's', LATENCY_BUCKETS);
    this.apiErrors = new FastCounter(API_ERRORS, 'HTTP answers with a 4xx or 5xx status');
    this.predictions = new FastCounter('ml_predictions_total', 'Rows predicted, by model and predicted class');
    this.batchSize = new FastHistogram('ml_batch_size', 'Rows per executed batch', '', BATCH_SIZE_BUCKETS);
    this.queueWait = new FastHistogram('ml_queue_wait_seconds', 'Time from a batch receiving its first row to its dispatch to a worker', 's', LATENCY_BUCKETS);
    this.queueWaitAll = this.queueWait.seriesFor({});
    this.cacheRequests = new FastCounter('ml_cache_requests_total', 'Prediction cache lookups, by result');
    // Known label sets exist from the start (at 0), so rates and increase() work from the first scrape.
    this.cacheHit = this.cacheRequests.seriesFor({ result: 'hit' });
    this.cacheMiss = this.cacheRequests.seriesFor({ result: 'miss' });
    const fast = new FastMetricsProducer([
      this.predictions,
      this.predictionLatency,
      this.confidence,
      this.batchSize,
      this.queueWait,
      this.apiRequests,
      this.apiDuration,
      this.apiErrors,
      this.cacheRequests,
    ]);
    this.exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, withoutTargetInfo: true, metricProducers: [fast] });
    this.provider = new MeterProvider({ readers: [this.exporter] });
    const m = (this.meter = this.provider.getMeter('tradeflow'));
    const seconds = (name: string, description: string, boundaries = LATENCY_BUCKETS): Histogram =>
      m.createHistogram(name, { description, unit: 's', valueType: ValueType.DOUBLE, advice: { explicitBucketBoundaries: boundaries } });

    this.trainingRuns = m.createCounter('ml_training_runs_total', { description: 'Training runs, by model type and outcome', valueType: ValueType.INT });
    this.trainingDuration = seconds('ml_training_duration_seconds', 'Training run duration', TRAINING_DURATION_BUCKETS);
    this.driftDetected = m.createCounter('ml_drift_detected_total', { description: 'Drifts, and entries into a warning episode, by detector', valueType: ValueType.INT });
    this.onlineUpdates = m.createCounter('ml_online_updates_total', { description: 'Labelled examples learned online', valueType: ValueType.INT });


    this.observableGauges(m);
  }

  private observableGauges(m: Meter): void {
    const gauge = (name: string, description: string, observe: (r: ObservableResult) => void, unit = ''): void => {
      m.createObservableGauge(name, { description, unit, valueType: ValueType.DOUBLE }).addCallback(observe);
    };
    gauge('ml_uptime_seconds', 'Seconds since the engine started', (r) => r.observe(this.sources.uptimeSeconds()), 's');
    gauge('ml_queue_depth', 'Rows accepted and waiting for a worker', (r) => r.observe(this.sources.queueDepth()));
    gauge('ml_cache_hit_ratio', 'Prediction cache hits over lookups since start', (r) => {
      const v = this.sources.cacheHitRatio();
      if (v !== null) r.observe(v);
    });
    gauge('ml_component_health', 'Component health: 1 healthy, 0.5 degraded, 0 unhealthy', (r) => {
      const h = this.sources.componentHealth();
      for (const c of Object.keys(h) as ComponentName[]) r.observe(HEALTH_VALUE[h[c]!], { component: c });
    });
    gauge('ml_feedback_lag_records', 'Feedback stream entries (REDIS_URL) added but not yet applied by this replica (absent without a stream)', (r) => {
      const v = this.sources.feedbackLag();
      if (v !== null) r.observe(v);
    });
    const quality = (name: string, key: keyof Omit<QualityReading, 'model'>, what: string): void =>
      gauge(name, `${what} of class UP over the sliding window of labelled outcomes (absent until the window holds enough)`, (r) => {
        for (const q of this.sources.quality()) r.observe(q[key], { model_name: q.model });
      });
    quality('ml_model_accuracy', 'accuracy', 'Accuracy');
    quality('ml_model_f1_score', 'f1', 'F1 score');
    quality('ml_model_precision', 'precision', 'Precision');
    quality('ml_model_recall', 'recall', 'Recall');
    gauge('ml_drift_score', 'Normalised drift evidence: 0 none, 1 at the drift threshold', (r) => {
      for (const d of this.sources.driftScores()) r.observe(d.score, { detector_type: d.detector });
    });
    gauge('ml_online_buffer_size', 'Labelled rows held for retraining', (r) => {
      for (const b of this.sources.onlineBufferSize()) r.observe(b.size, { model_type: b.modelType });
    });
    // A counter read at scrape time: restarts are rare and the pool already counts them.
    m.createObservableCounter('ml_worker_restarts_total', { description: 'Inference workers replaced, by reason: crash (the worker died) or timeout (a batch ran past BATCH_TIMEOUT_MS)', valueType: ValueType.INT }).addCallback((r) => {
      const n = this.sources.workerRestarts();
      for (const reason of Object.keys(n) as WorkerRestartReason[]) r.observe(n[reason], { reason });
    });
    gauge('ml_model_champion', 'The model answering requests that name none: 1 for the champion, 0 for every other candidate', (r) => {
      const c = this.sources.champion();
      for (const name of c.models) r.observe(name === c.champion ? 1 : 0, { model_name: name });
    });
    m.createObservableCounter('ml_champion_switches_total', { description: 'Changes of the model answering requests that name none (SERVE_POLICY=champion)', valueType: ValueType.INT }).addCallback((r) => {
      r.observe(this.sources.champion().switches);
    });
    gauge('ml_last_training_timestamp', 'Unix time of the last successful training run', (r) => {
      for (const t of this.sources.lastTrainingTimestamp()) r.observe(t.seconds, { model_type: t.modelType });
    }, 's');
  }

  /** Lets later layers add their gauge sources. */
  setSources(partial: Partial<GaugeSources>): void {
    this.sources = { ...this.sources, ...partial };
  }

  model(name: string): ModelMetrics {
    let mm = this.models.get(name);
    if (!mm) {
      mm = {
        name,
        classes: [this.predictions.seriesFor({ model_name: name, predicted_class: '0' }), this.predictions.seriesFor({ model_name: name, predicted_class: '1' })],
        confidence: this.confidence.seriesFor({ model_name: name }),
        latency: this.predictionLatency.seriesFor({ model_name: name }),
        batchSize: this.batchSize.seriesFor({ model_name: name }),
      };
      this.models.set(name, mm);
    }
    return mm;
  }

  /**
   * One executed batch: its size and queue wait, and per row its predicted class (counted) and
   * confidence (the row histogram).
   */
  recordBatch(mm: ModelMetrics, rows: number, queueWaitSeconds: number, probabilities: Float32Array, labels: Int32Array): void {
    this.batchSize.record(mm.batchSize, rows);
    this.queueWait.record(this.queueWaitAll, queueWaitSeconds);
    this.countRows(mm, rows, 0, probabilities, labels);
  }

  /** Rows answered from the prediction cache: counted as predictions, with their confidence. */
  countRows(mm: ModelMetrics, rows: number, first: number, probabilities: Float32Array, labels: Int32Array): void {
    let up = 0;
    for (let r = first; r < first + rows; r++) {
      const cls = labels[r]!;
      up += cls;
      this.confidence.record(mm.confidence, probabilities[2 * r + cls]!);
    }
    mm.classes[1].value += up;
    mm.classes[0].value += rows - up;
  }

  recordPredictionLatency(mm: ModelMetrics, seconds: number): void {
    this.predictionLatency.record(mm.latency, seconds);
  }

  recordResponse(endpoint: string, method: string, status: number, seconds: number): void {
    const m = methodLabel(method);
    const key = endpoint + ' ' + m + ' ' + status;
    let a = this.apiSeries.get(key);
    if (!a) {
      const s = String(status);
      a = {
        requests: this.apiRequests.seriesFor({ endpoint, method: m, status: s }),
        duration: this.apiDuration.seriesFor({ endpoint, method: m }),
        errors: status >= 400 ? this.apiErrors.seriesFor({ endpoint, status: s }) : null,
      };
      this.apiSeries.set(key, a);
    }
    a.requests.value++;
    this.apiDuration.record(a.duration, seconds);
    if (a.errors) a.errors.value++;
  }

  /**
   * A series a front-end thread records in shared memory (HTTP_THREADS ≥ 2): from now on the
   * exposition adds its cells to the series of the same labels. Only the families the threads
   * record (ThreadApiMetrics) are taken.
   */
  adoptSeries(block: SharedArrayBuffer, r: SeriesRegistration): void {
    const family = { [API_REQUESTS]: this.apiRequests, [API_DURATION]: this.apiDuration, [API_ERRORS]: this.apiErrors }[r.family];
    if (family === undefined) throw new Error(`a front-end thread announced an unknown metric family ${r.family}`);
    if (family instanceof FastHistogram) family.addRemote(r.attributes, cellsOf(block, r, family.boundaries));
    else family.addRemote(r.attributes, cellsOf(block, r, []));
  }

  /** One finished training run of `modelType`: counted by outcome and timed. */
  recordTraining(modelType: string, status: 'success' | 'failure', seconds: number): void {
    this.trainingRuns.add(1, { model_type: modelType, status });
    this.trainingDuration.record(seconds, { model_type: modelType });
  }

  /** Training counters start at zero for a model type that can be trained. */
  trainable(modelType: string): void {
    this.trainingRuns.add(0, { model_type: modelType, status: 'success' });
    this.trainingRuns.add(0, { model_type: modelType, status: 'failure' });
  }

  recordCacheLookup(hit: boolean): void {
    (hit ? this.cacheHit : this.cacheMiss).value++;
  }

  /** The Prometheus text exposition of everything above. */
  async scrape(): Promise<string> {
    const { resourceMetrics, errors } = await this.exporter.collect();
    if (errors.length > 0) throw new Error(`metric collection failed: ${errors.map(String).join('; ')}`);
    return this.serializer.serialize(resourceMetrics);
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}
