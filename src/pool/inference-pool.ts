/**
 * The inference workers and their readiness bookkeeping. A worker is counted ready once it has
 * built and warmed every scorer; a replaced worker counts again only after its own warm-up.
 *
 * Model swaps never build a session in a thread that serves: `stage` starts a fresh generation
 * of workers on the candidate (src/pool/worker-generation.ts), which is where the candidate is
 * validated, and `adopt` makes it the one batches run on. Creating an onnxruntime session and
 * its warm-up run are synchronous native calls of a few hundred milliseconds for a large model;
 * in the main thread they would stall every request, in a serving worker every batch.
 */
import type { Worker } from 'node:worker_threads';
import type { WorkerModel } from '../models/registry';
import type { Logger } from '../telemetry/logger';
import type { InferenceWorkerData, TaskResult, WorkerTestHooks } from './worker-protocol';
import type { SlabViews } from './slab';
import { WorkerFaults, type WorkerFaultStats } from './worker-faults';
import { WorkerGeneration } from './worker-generation';

export { workerFile } from './worker-generation';

export interface PoolOptions {
  workers: number;
  slab: SlabViews;
  models: WorkerModel[];
  ortThreads: number;
  batchesPerWorker: number;
  hooks: WorkerTestHooks;
  /** Test hook: an Int32 gate candidate workers wait on, before they report warm, while it reads 0. */
  candidateWarmGate: SharedArrayBuffer | null;
  /** Restarts younger than this count in `restartsRecent`. */
  restartWindowMs: number;
  /** A batch running longer than this in a worker fails (BATCH_TIMEOUT) and the worker is replaced. */
  batchTimeoutMs: number;
  logger?: Logger;
  /** The version id each served model runs now (ONNX models; -1 for the online model). */
  versionOf(model: number): number;
  /** A version's descriptor, for a worker asked to run a version it was not started with; null when unknown. */
  describeVersion(id: number): OnnxVersion | null;
}

export type OnnxVersion = Extract<WorkerModel, { kind: 'onnx' }> & { id: number };

/** Workers started on a candidate model list, warm, not yet serving (see `stage`). */
export interface StagedWorkers {
  readonly generation: WorkerGeneration;
}

export class InferencePool {
  private serving: WorkerGeneration;
  private readonly staged = new Set<WorkerGeneration>();
  private readonly retiring = new Set<WorkerGeneration>();
  private restarts = 0;
  private readonly restartTimes: number[] = [];
  private closed = false;
  readonly size: number;
  private readonly restartWindowMs: number;
  private readonly faults: WorkerFaults;

  constructor(private readonly opts: PoolOptions) {
    this.size = opts.workers;
    this.restartWindowMs = opts.restartWindowMs;
    this.faults = new WorkerFaults({
      slab: opts.slab,
      batchTimeoutMs: opts.batchTimeoutMs,
      send: (task) => this.serving.run(task),
      thread: (id) => this.thread(id),
      logger: opts.logger,
    });
    this.serving = this.generation(opts.models, opts.hooks);
  }

  private generation(models: WorkerModel[], hooks: WorkerTestHooks): WorkerGeneration {
    const data: InferenceWorkerData = { slab: this.opts.slab.buffer, layout: this.opts.slab.layout, models, ortThreads: this.opts.ortThreads, hooks };
    return new WorkerGeneration({
      workers: this.opts.workers,
      batchesPerWorker: this.opts.batchesPerWorker,
      data,
      describeVersion: (id) => this.opts.describeVersion(id),
      onRestart: () => {
        this.faults.restarted();
        this.restarts++;
        this.restartTimes.push(Date.now());
        if (this.restartTimes.length > 64) this.restartTimes.shift();
      },
    });
  }

  /**
   * Starts as many workers as serve, on `models` (the served list with a candidate version in
   * place), and resolves once every one has built and warmed every model: this is the
   * candidate's validation, done off the main thread and off the serving workers. Rejects with
   * the first worker's error (the candidate does not load, or fails its warm-up) after stopping
   * them; the serving workers are untouched either way.
   */
  async stage(models: WorkerModel[], timeoutMs: number): Promise<StagedWorkers> {
    if (this.closed) throw new Error('the engine is shutting down');
    const g = this.generation(models, { ...this.opts.hooks, warmGate: this.opts.candidateWarmGate });
    this.staged.add(g);
    try {
      await g.waitReady(timeoutMs);
    } catch (err) {
      this.staged.delete(g);
      await g.stop(true);
      throw err;
    }
    if (this.closed) {
      this.staged.delete(g);
      await g.stop(true);
      throw new Error('the engine is shutting down');
    }
    return { generation: g };
  }

  /**
   * The flip: batches dispatched from now on run on the staged workers. The previous workers
   * finish the batches they hold, then stop; the promise resolves when they have (no batch on a
   * version they served is in flight any more).
   */
  adopt(staged: StagedWorkers): Promise<void> {
    const g = staged.generation;
    if (!this.staged.delete(g)) throw new Error('these workers are not staged (already adopted or discarded)');
    const old = this.serving;
    this.serving = g;
    this.retiring.add(old);
    return old.stop().finally(() => this.retiring.delete(old));
  }

  /** Stops staged workers that will not serve (the swap failed after they were warm). */
  async discard(staged: StagedWorkers): Promise<void> {
    if (this.staged.delete(staged.generation)) await staged.generation.stop(true);
  }

  /** Candidate generations still building or warming a model. */
  get validating(): number {
    return this.staged.size;
  }

  /**
   * Runs a batch on the version of its model that serves now: the batch is served by one version
   * (also when it is dispatched again because the worker it waited in died: src/pool/worker-faults.ts).
   */
  run(task: { slot: number; rows: number; model: number }): Promise<TaskResult> {
    return this.faults.run(task.slot, task.rows, task.model, this.opts.versionOf(task.model));
  }

  /** A live worker thread of any generation (a retiring one still runs the batches it holds). */
  private thread(threadId: number): Worker | undefined {
    let w = this.serving.thread(threadId);
    for (const g of this.retiring) w ??= g.thread(threadId);
    for (const g of this.staged) w ??= g.thread(threadId);
    return w;
  }

  isReady(): boolean {
    return this.serving.isReady();
  }

  /** Resolves when every serving worker is warm; rejects if a worker fails while starting. */
  async waitReady(timeoutMs: number): Promise<void> {
    const g = this.serving;
    const started = Date.now();
    try {
      await g.waitReady(timeoutMs);
    } catch (err) {
      // Replaced while this waited: the generation that serves now is the one to wait for.
      if (g === this.serving) throw err;
    }
    if (g !== this.serving) await this.waitReady(Math.max(0, timeoutMs - (Date.now() - started)));
  }

  stats(): { size: number; warm: number; restarts: number; restartsRecent: number; restartWindowSeconds: number; threadIds: number[]; faults: WorkerFaultStats } {
    const cutoff = Date.now() - this.restartWindowMs;
    const threadIds = this.serving.warmThreads;
    return {
      size: this.size,
      warm: threadIds.length,
      restarts: this.restarts,
      faults: this.faults.stats(),
      restartsRecent: this.restartTimes.filter((t) => t >= cutoff).length,
      restartWindowSeconds: this.restartWindowMs / 1000,
      threadIds,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.faults.close();
    const all = [this.serving, ...this.staged, ...this.retiring];
    this.staged.clear();
    await Promise.all(all.map((g) => g.stop(true)));
  }
}
