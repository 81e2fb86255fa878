/**
 * One generation of inference workers: a Piscina pool whose threads all start from the same list
 * of models. The engine serves from one generation; a model swap starts the next one with the
 * candidate in the list and adopts it once every thread has built and warmed it (see
 * InferencePool.stage). The old generation then finishes the batches it holds and stops, and its
 * onnxruntime sessions go with its threads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MessagePort, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { projectRoot } from '../paths';
import type { ControlReply, FetchReply, InferenceTask, InferenceWorkerData, OnnxWorkerModel, TaskResult, WarmMessage } from './worker-protocol';

/** The compiled worker: under dist/ whether we run from dist/ or from sources (tests). */
export function workerFile(): string {
  const file = path.join(projectRoot(), 'dist', 'workers', 'inference.js');
  if (!fs.existsSync(file)) throw new Error(`worker not built: ${file} is missing (run npm run build)`);
  return file;
}

export interface GenerationOptions {
  workers: number;
  batchesPerWorker: number;
  data: InferenceWorkerData;
  /** A version's descriptor, for a worker asked to run a version it was not started with. */
  describeVersion(id: number): OnnxWorkerModel | null;
  /** A warm worker of this generation died (not one the generation stopped itself). */
  onRestart(): void;
}

export class WorkerGeneration {
  private readonly piscina: Piscina<InferenceTask, TaskResult>;
  private readonly warm = new Set<number>();
  private readonly controls = new Map<number, MessagePort>();
  private readonly readyWaiters: Array<() => void> = [];
  private startupError: Error | null = null;
  private inflight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private stopping: Promise<void> | null = null;
  private ended: Promise<void> | null = null;

  constructor(private readonly opts: GenerationOptions) {
    this.piscina = new Piscina<InferenceTask, TaskResult>({
      filename: workerFile(),
      minThreads: opts.workers,
      maxThreads: opts.workers,
      idleTimeout: 0,
      maxQueue: Infinity,
      concurrentTasksPerWorker: opts.batchesPerWorker,
      workerData: opts.data,
      // Timing histograms cost per task; the engine records its own per batch.
      recordTiming: false,
      // An idle worker must still hear its control channel: 'sync' would park it in
      // Atomics.wait between tasks.
      atomics: 'async',
    });
    this.piscina.on('message', (msg: WarmMessage) => {
      if (msg && msg.type === 'warm') {
        this.attachControl(msg.threadId, msg.control);
        this.warm.add(msg.threadId);
        if (this.isReady()) this.wake();
      }
    });
    // A dead thread's threadId reads -1, so the event cannot name it: compare with live threads.
    this.piscina.on('workerDestroy', () => setImmediate(() => this.forgetDeadWorkers()));
    this.piscina.on('error', (err: Error) => {
      this.startupError ??= err;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private attachControl(threadId: number, port: MessagePort): void {
    this.controls.set(threadId, port);
    port.on('message', (msg: ControlReply) => {
      if (msg.cmd !== 'fetch') return;
      const reply: FetchReply = { cmd: 'fetched', req: msg.req, model: this.opts.describeVersion(msg.id) };
      port.postMessage(reply);
    });
    // Control traffic must not keep the process alive on its own.
    port.unref();
  }

  private forgetDeadWorkers(): void {
    const live = new Set(this.piscina.threads.map((t) => t.threadId));
    for (const [id, port] of this.controls) {
      if (live.has(id)) continue;
      this.controls.delete(id);
      port.close();
    }
    for (const id of this.warm) {
      if (live.has(id)) continue;
      this.warm.delete(id);
      if (this.stopping === null) this.opts.onRestart();
    }
  }

  run(task: InferenceTask): Promise<TaskResult> {
    this.inflight++;
    const p = this.piscina.run(task);
    p.then(this.taskDone, this.taskDone);
    return p;
  }

  private readonly taskDone = (): void => {
    if (--this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
  };

  isReady(): boolean {
    return this.warm.size >= this.opts.workers;
  }

  get warmThreads(): number[] {
    return [...this.warm];
  }

  /** The live thread with this id, for the pool's watchdog (src/pool/worker-faults.ts). */
  thread(threadId: number): Worker | undefined {
    return this.piscina.threads.find((t) => t.threadId === threadId);
  }

  /**
   * Resolves when every worker is warm; rejects with the first worker error (a model that does
   * not build or warm up), after `timeoutMs`, or when the generation stops first.
   */
  waitReady(timeoutMs: number): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    if (this.startupError) return Promise.reject(this.startupError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers not warm after ${timeoutMs} ms (${this.warm.size}/${this.opts.workers})`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        if (this.isReady()) resolve();
        else reject(this.startupError ?? new Error('the workers were stopped before they were warm'));
      });
    });
  }

  /**
   * Retires the generation: the batches it holds finish, then its threads end. `now` ends them at
   * once (shutdown, or a candidate that was refused), failing whatever still runs there.
   */
  stop(now = false): Promise<void> {
    if (this.stopping === null) {
      this.wake();
      this.stopping = (this.inflight === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.idleWaiters.push(resolve))).then(() => this.end());
    }
    if (now) return this.end();
    return this.stopping;
  }

  private end(): Promise<void> {
    this.ended ??= this.piscina.destroy();
    return this.ended;
  }
}
