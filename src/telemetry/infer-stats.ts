/**
 * Per-model inference statistics in the shape of Triton's statistics extension (what
 * perf_analyzer reads from GET /v2/models/{name}/stats): request counts and cumulative
 * durations, and per batch size the executions. Fed by every route that computes rows
 * (/predict and the Open Inference Protocol alike) and by the executor of the batches.
 *
 * A request's compute time is the wall time of the batch that held it, taken by the executor
 * (`executed`) just before the batch's clients are completed; its queue time is the rest of its
 * time from arrival to its answer.
 */
import { performance } from 'node:perf_hooks';

export interface Duration {
  count: number;
  ns: number;
}

export interface ModelInferStats {
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: {
    success: Duration;
    fail: Duration;
    queue: Duration;
    compute_input: Duration;
    compute_infer: Duration;
    compute_output: Duration;
    cache_hit: Duration;
    cache_miss: Duration;
  };
  batch_stats: Array<{ batch_size: number; compute_input: Duration; compute_infer: Duration; compute_output: Duration }>;
}

interface Counts {
  lastInference: number;
  inferences: number;
  executions: number;
  success: Duration;
  fail: Duration;
  queue: Duration;
  compute: Duration;
  cacheHit: Duration;
  cacheMiss: number;
  batches: Map<number, Duration>;
}

const MS_NS = 1e6;

function counts(): Counts {
  return { lastInference: 0, inferences: 0, executions: 0, success: zero(), fail: zero(), queue: zero(), compute: zero(), cacheHit: zero(), cacheMiss: 0, batches: new Map() };
}

function zero(): Duration {
  return { count: 0, ns: 0 };
}

function add(d: Duration, ms: number): void {
  d.count++;
  d.ns += Math.round(ms * MS_NS);
}

export class InferStats {
  private readonly models: Counts[] = [];
  /** Per slab slot: the compute time (ms) of the batch last completed in it. */
  private readonly slotCompute: number[] = [];

  constructor(models: number) {
    for (let i = 0; i < models; i++) this.models.push(counts());
  }

  /** A batch of `rows` rows of `model` ran in `slot` for `ms`. */
  executed(model: number, slot: number, rows: number, ms: number): void {
    const c = this.models[model];
    if (!c) return;
    c.executions++;
    c.inferences += rows;
    c.lastInference = Date.now();
    let b = c.batches.get(rows);
    if (!b) c.batches.set(rows, (b = zero()));
    add(b, ms);
    this.slotCompute[slot] = ms;
  }

  /** A request answered: from the batch in `slot`, or from the cache (`slot` < 0). */
  succeeded(model: number, startedAt: number, slot: number): void {
    const c = this.models[model];
    if (!c) return;
    const total = performance.now() - startedAt;
    add(c.success, total);
    if (slot < 0) {
      add(c.cacheHit, total);
      return;
    }
    const compute = Math.min(this.slotCompute[slot] ?? 0, total);
    add(c.compute, compute);
    add(c.queue, total - compute);
  }

  failed(model: number, startedAt: number): void {
    const c = this.models[model];
    if (c) add(c.fail, performance.now() - startedAt);
  }

  cacheMiss(model: number): void {
    const c = this.models[model];
    if (c) c.cacheMiss++;
  }

  snapshot(model: number): ModelInferStats {
    const c = this.models[model] ?? counts();
    const none = (): Duration => ({ count: c.compute.count, ns: 0 });
    const batchStats = [...c.batches.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([size, d]) => ({ batch_size: size, compute_input: { count: d.count, ns: 0 }, compute_infer: { ...d }, compute_output: { count: d.count, ns: 0 } }));
    return {
      last_inference: c.lastInference,
      inference_count: c.inferences,
      execution_count: c.executions,
      inference_stats: {
        success: { ...c.success },
        fail: { ...c.fail },
        queue: { ...c.queue },
        compute_input: none(),
        compute_infer: { ...c.compute },
        compute_output: none(),
        cache_hit: { ...c.cacheHit },
        cache_miss: { count: c.cacheMiss, ns: 0 },
      },
      batch_stats: batchStats,
    };
  }
}
