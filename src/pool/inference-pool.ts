/**
 * The Piscina pool of inference workers and its readiness bookkeeping. A worker is counted
 * ready once it has built and warmed every scorer; a replaced worker counts again only after
 * its own warm-up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { projectRoot } from '../paths';
import type { WorkerModel } from '../models/registry';
import type { InferenceTask, InferenceWorkerData, TaskResult, WarmMessage, WorkerTestHooks } from '../../workers/inference';
import type { SlabViews } from './slab';

export interface PoolOptions {
  workers: number;
  slab: SlabViews;
  models: WorkerModel[];
  ortThreads: number;
  hooks: WorkerTestHooks;
  /** Restarts younger than this count in `restartsRecent`. */
  restartWindowMs: number;
}

/** The compiled worker: under dist/ whether we run from dist/ or from sources (tests). */
export function workerFile(): string {
  const file = path.join(projectRoot(), 'dist', 'workers', 'inference.js');
  if (!fs.existsSync(file)) throw new Error(`worker not built: ${file} is missing (run npm run build)`);
  return file;
}

export class InferencePool {
  private readonly piscina: Piscina<InferenceTask, TaskResult>;
  private readonly warm = new Set<number>();
  private readonly readyWaiters: Array<() => void> = [];
  private restarts = 0;
  private readonly restartTimes: number[] = [];
  private startupError: Error | null = null;
  readonly size: number;
  private readonly restartWindowMs: number;

  constructor(opts: PoolOptions) {
    this.size = opts.workers;
    this.restartWindowMs = opts.restartWindowMs;
    const workerData: InferenceWorkerData = {
      slab: opts.slab.buffer,
      layout: opts.slab.layout,
      models: opts.models,
      ortThreads: opts.ortThreads,
      hooks: opts.hooks,
    };
    this.piscina = new Piscina<InferenceTask, TaskResult>({
      filename: workerFile(),
      minThreads: opts.workers,
      maxThreads: opts.workers,
      idleTimeout: 0,
      maxQueue: Infinity,
      concurrentTasksPerWorker: 1,
      workerData,
      // Timing histograms cost per task; the engine records its own per batch.
      recordTiming: false,
    });
    this.piscina.on('message', (msg: WarmMessage) => {
      if (msg && msg.type === 'warm') {
        this.warm.add(msg.threadId);
        if (this.isReady()) for (const w of this.readyWaiters.splice(0)) w();
      }
    });
    // A dead thread's threadId reads -1, so the event cannot name it: compare with live threads.
    this.piscina.on('workerDestroy', () => setImmediate(() => this.forgetDeadWorkers()));
    this.piscina.on('error', (err: Error) => {
      this.startupError = err;
      for (const w of this.readyWaiters.splice(0)) w();
    });
  }

  private forgetDeadWorkers(): void {
    const live = new Set(this.piscina.threads.map((t) => t.threadId));
    for (const id of this.warm) {
      if (live.has(id)) continue;
      this.warm.delete(id);
      this.restarts++;
      this.restartTimes.push(Date.now());
      if (this.restartTimes.length > 64) this.restartTimes.shift();
    }
  }

  run(task: InferenceTask): Promise<TaskResult> {
    return this.piscina.run(task);
  }

  isReady(): boolean {
    return this.warm.size >= this.size;
  }

  /** Resolves when every worker is warm; rejects if a worker fails while starting. */
  waitReady(timeoutMs: number): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers not warm after ${timeoutMs} ms (${this.warm.size}/${this.size})`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        if (this.startupError && !this.isReady()) reject(this.startupError);
        else resolve();
      });
    });
  }

  stats(): { size: number; warm: number; restarts: number; restartsRecent: number; restartWindowSeconds: number; threadIds: number[] } {
    const cutoff = Date.now() - this.restartWindowMs;
    return {
      size: this.size,
      warm: this.warm.size,
      restarts: this.restarts,
      restartsRecent: this.restartTimes.filter((t) => t >= cutoff).length,
      restartWindowSeconds: this.restartWindowMs / 1000,
      threadIds: [...this.warm],
    };
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}
