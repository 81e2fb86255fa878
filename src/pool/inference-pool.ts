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
import type { MessagePort } from 'node:worker_threads';
import type { ControlReply, ControlRequest, FetchReply, InferenceTask, InferenceWorkerData, TaskResult, WarmMessage, WorkerTestHooks } from './worker-protocol';
import type { SlabViews } from './slab';

export interface PoolOptions {
  workers: number;
  slab: SlabViews;
  models: WorkerModel[];
  ortThreads: number;
  batchesPerWorker: number;
  hooks: WorkerTestHooks;
  /** Restarts younger than this count in `restartsRecent`. */
  restartWindowMs: number;
  /** The version id each served model runs now (ONNX models; -1 for the online model). */
  versionOf(model: number): number;
  /** A version's descriptor, for a worker that starts after a swap; null when unknown. */
  describeVersion(id: number): OnnxVersion | null;
}

export type OnnxVersion = Extract<ControlRequest, { cmd: 'prepare' }>['model'];

interface Control {
  port: MessagePort;
  pending: Map<number, { resolve: () => void; reject: (e: Error) => void }>;
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
  private readonly controls = new Map<number, Control>();
  private readonly inflight = new Map<number, number>();
  private readonly idleWaiters = new Map<number, Array<() => void>>();
  private nextReq = 1;

  constructor(private readonly opts: PoolOptions) {
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
      concurrentTasksPerWorker: opts.batchesPerWorker,
      workerData,
      // Timing histograms cost per task; the engine records its own per batch.
      recordTiming: false,
      // An idle worker must still hear its control channel (model swaps): 'sync' would park it
      // in Atomics.wait between tasks.
      atomics: 'async',
    });
    this.piscina.on('message', (msg: WarmMessage) => {
      if (msg && msg.type === 'warm') {
        this.attachControl(msg.threadId, msg.control);
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

  private attachControl(threadId: number, port: MessagePort): void {
    const c: Control = { port, pending: new Map() };
    this.controls.set(threadId, c);
    port.on('message', (msg: ControlReply) => {
      if (msg.cmd === 'fetch') {
        const reply: FetchReply = { cmd: 'fetched', req: msg.req, model: this.opts.describeVersion(msg.id) };
        port.postMessage(reply);
        return;
      }
      const p = c.pending.get(msg.req);
      if (!p) return;
      c.pending.delete(msg.req);
      if (msg.ok) p.resolve();
      else p.reject(new Error(msg.error));
    });
    // Control traffic must not keep the process alive on its own.
    port.unref();
  }

  private request(c: Control, make: (req: number) => ControlRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = this.nextReq++;
      c.pending.set(req, { resolve, reject });
      c.port.postMessage(make(req));
    });
  }

  /**
   * Has every live worker build and warm a version; rejects with the first worker's error. A
   * worker that dies meanwhile is skipped (its replacement fetches the version on demand).
   */
  async prepare(model: OnnxVersion): Promise<void> {
    await Promise.all([...this.controls.values()].map((c) => this.request(c, (req) => ({ cmd: 'prepare', req, id: model.id, model }))));
  }

  /** Lets every worker drop a version's session. */
  async release(id: number): Promise<void> {
    await Promise.all([...this.controls.values()].map((c) => this.request(c, (req) => ({ cmd: 'release', req, id })).catch(() => undefined)));
  }

  private forgetDeadWorkers(): void {
    const live = new Set(this.piscina.threads.map((t) => t.threadId));
    for (const [id, c] of this.controls) {
      if (live.has(id)) continue;
      this.controls.delete(id);
      for (const p of c.pending.values()) p.resolve();
      c.pending.clear();
      c.port.close();
    }
    for (const id of this.warm) {
      if (live.has(id)) continue;
      this.warm.delete(id);
      this.restarts++;
      this.restartTimes.push(Date.now());
      if (this.restartTimes.length > 64) this.restartTimes.shift();
    }
  }

  /** Runs a batch on the version of its model that serves now: the batch is served by one version. */
  run(task: { slot: number; rows: number; model: number }): Promise<TaskResult> {
    const version = this.opts.versionOf(task.model);
    const t: InferenceTask = { slot: task.slot, rows: task.rows, model: task.model, version };
    if (version < 0) return this.piscina.run(t);
    this.inflight.set(version, (this.inflight.get(version) ?? 0) + 1);
    const done = (): void => {
      const n = this.inflight.get(version)! - 1;
      if (n > 0) {
        this.inflight.set(version, n);
        return;
      }
      this.inflight.delete(version);
      const waiters = this.idleWaiters.get(version);
      this.idleWaiters.delete(version);
      if (waiters) for (const w of waiters) w();
    };
    const p = this.piscina.run(t);
    p.then(done, done);
    return p;
  }

  /** Resolves once no batch on version `id` is in flight. */
  whenVersionIdle(id: number): Promise<void> {
    if (!this.inflight.has(id)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.idleWaiters.get(id) ?? [];
      list.push(resolve);
      this.idleWaiters.set(id, list);
    });
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
