/**
 * What the pool does when an inference worker dies or hangs (issue 12, defects 5 and 6).
 *
 * A worker holds up to BATCHES_PER_WORKER batches, but runs one at a time and marks it in the
 * slab's per-slot records (workers/inference.ts, src/pool/slab.ts). When Piscina rejects a task
 * because its worker exited, the record tells the batch that was running there (it fails: 500
 * WORKER_FAILED, or BATCH_TIMEOUT when the watchdog ended it) from one that was only waiting in
 * that worker: inference is pure and its rows are still in its slot, so that one is dispatched
 * again, to the replacement or another worker, and its requests never see the fault.
 *
 * The watchdog is one interval for the whole pool (BATCH_TIMEOUT_MS / 4), not a timer per
 * batch: it reads the start time each worker wrote when it started a batch, so a batch waiting
 * in a worker behind another is not timed while it waits. A batch running past BATCH_TIMEOUT_MS
 * gets its worker terminated, which Piscina sees as an exit (the task rejects, the worker is
 * replaced). terminate() interrupts JavaScript and Atomics.wait, not a native call that never
 * returns: a thread still there one more BATCH_TIMEOUT_MS later is abandoned (see `abandon`).
 */
import type { Worker } from 'node:worker_threads';
import { tfError } from '../errors';
import type { Logger } from '../telemetry/logger';
import type { WorkerRestartReason as RestartReason } from '../telemetry/metrics';
import { slabClock, type SlabViews } from './slab';
import type { InferenceTask, TaskResult } from './worker-protocol';

export interface WorkerFaultsOptions {
  slab: SlabViews;
  batchTimeoutMs: number;
  /** Sends a task to the workers that serve now. */
  send(task: InferenceTask): Promise<TaskResult>;
  /** The live worker thread with this id, whichever generation it belongs to. */
  thread(threadId: number): Worker | undefined;
  logger?: Logger;
}

export interface WorkerFaultStats {
  /** Batches dispatched again because the worker they waited in died before starting them. */
  redispatched: number;
  /** Batches that ran past BATCH_TIMEOUT_MS (their worker was terminated). */
  timeouts: number;
  /** Threads terminate() could not stop (stuck in a native call), abandoned and replaced. */
  stuck: number;
  restarts: Record<RestartReason, number>;
}

/**
 * A batch waits in a worker that dies only because another batch was running there; it is sent
 * again at most this often, so a run of faults cannot keep one batch going round for ever (a
 * batch that kills its worker itself fails the first time it runs).
 */
const MAX_REDISPATCH = 3;
/** Piscina's rejection of the tasks of a worker that exited (piscina 5: `worker exited with code: N`). */
const WORKER_EXITED = /^worker exited with code/;

/** A thread the watchdog terminated: when, and for which slot. */
interface Termination {
  at: number;
  slot: number;
}

export class WorkerFaults {
  /** One task object per slot, reused batch after batch (a slot holds one batch at a time). */
  private readonly tasks: InferenceTask[] = [];
  /** One rejection handler per slot, made once, so a dispatch allocates no closure. */
  private readonly onRejected: Array<(err: Error) => Promise<TaskResult>> = [];
  private readonly sends: Uint8Array;
  /** 1 while the watchdog has terminated the worker running this slot's batch. */
  private readonly timedOut: Uint8Array;
  private readonly terminated = new Map<number, Termination>();
  /** Timed-out workers whose exit has not been counted as a restart yet. */
  private timeoutExitsPending = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly counts: WorkerFaultStats = { redispatched: 0, timeouts: 0, stuck: 0, restarts: { crash: 0, timeout: 0 } };

  constructor(private readonly opts: WorkerFaultsOptions) {
    const slots = opts.slab.layout.slots;
    this.sends = new Uint8Array(slots);
    this.timedOut = new Uint8Array(slots);
    for (let s = 0; s < slots; s++) {
      this.tasks.push({ slot: s, rows: 0, model: 0, version: -1 });
      this.onRejected.push((err) => this.rejected(s, err));
    }
    this.timer = setInterval(this.watch, Math.max(5, Math.floor(opts.batchTimeoutMs / 4)));
    this.timer.unref();
  }

  run(slot: number, rows: number, model: number, version: number): Promise<TaskResult> {
    const t = this.tasks[slot]!;
    t.rows = rows;
    t.model = model;
    t.version = version;
    this.sends[slot] = 0;
    return this.opts.send(t).catch(this.onRejected[slot]!);
  }

  private rejected(slot: number, err: Error): Promise<TaskResult> {
    const running = this.opts.slab.runningIn;
    const ranIn = Atomics.load(running, slot);
    const timedOut = this.timedOut[slot] === 1;
    this.timedOut[slot] = 0;
    if (!WORKER_EXITED.test(err.message)) throw err;
    if (ranIn !== 0) {
      // The dead worker cannot clear its own record; the slot is about to be reused.
      Atomics.store(running, slot, 0);
      if (timedOut) throw tfError('BATCH_TIMEOUT', { timeoutMs: this.opts.batchTimeoutMs });
      throw tfError('WORKER_FAILED', `the inference worker running this batch died (${err.message}); it is being replaced`);
    }
    if (this.closed) throw tfError('WORKER_FAILED', `the inference worker holding this batch died while the engine was stopping (${err.message})`);
    if (++this.sends[slot]! > MAX_REDISPATCH) {
      throw tfError('WORKER_FAILED', `this batch waited in ${MAX_REDISPATCH + 1} inference workers that each died before it could run (${err.message})`);
    }
    this.counts.redispatched++;
    return this.opts.send(this.tasks[slot]!).catch(this.onRejected[slot]!);
  }

  private readonly watch = (): void => {
    const now = slabClock();
    const { runningIn, startedAt } = this.opts.slab;
    const limit = this.opts.batchTimeoutMs;
    if (this.terminated.size > 0) this.checkTerminated(now);
    for (let s = 0; s < runningIn.length; s++) {
      const thread = Atomics.load(runningIn, s);
      if (thread === 0 || this.timedOut[s] === 1 || now - startedAt[s]! < limit) continue;
      const worker = this.opts.thread(thread);
      // Gone already: it died on its own and its rejection is on the way.
      if (worker === undefined || this.terminated.has(thread)) continue;
      this.timedOut[s] = 1;
      this.counts.timeouts++;
      this.timeoutExitsPending++;
      this.terminated.set(thread, { at: now, slot: s });
      this.opts.logger?.error({ threadId: thread, slot: s, runningMs: Math.round(now - startedAt[s]!), batchTimeoutMs: limit }, 'a batch ran past BATCH_TIMEOUT_MS: terminating its inference worker (its requests get 500 BATCH_TIMEOUT; batches waiting in it are dispatched again)');
      void worker.terminate();
    }
  };

  /** Threads terminated a whole BATCH_TIMEOUT_MS ago and still there are stuck in native code. */
  private checkTerminated(now: number): void {
    for (const [thread, t] of this.terminated) {
      const worker = this.opts.thread(thread);
      if (worker === undefined) this.terminated.delete(thread);
      else if (now - t.at >= this.opts.batchTimeoutMs) this.abandon(thread, worker, t);
    }
  }

  /**
   * A thread that terminate() has not stopped is inside a native call that does not return
   * (JavaScript and Atomics.wait are interrupted at once). Nothing in-process can stop it, so it
   * is given up: Piscina is told it exited, which fails its running batch, hands back the
   * batches waiting in it (dispatched again) and starts a replacement. The thread itself stays
   * until its call returns (then it ends without running any more JavaScript) or the process
   * ends; while it lives the process cannot exit on its own (see README, "Worker faults").
   */
  private abandon(thread: number, worker: Worker, t: Termination): void {
    this.terminated.delete(thread);
    this.counts.stuck++;
    this.opts.logger?.fatal({ threadId: thread, slot: t.slot }, 'an inference worker did not stop when terminated: it is stuck in a native call; it is abandoned and replaced, but its thread lives on (restart the process to reclaim it)');
    worker.emit('exit', 1);
  }

  /** Counts a dead worker's restart, by why it died: the watchdog's terminations first. */
  restarted(): RestartReason {
    const reason: RestartReason = this.timeoutExitsPending > 0 ? 'timeout' : 'crash';
    if (reason === 'timeout') this.timeoutExitsPending--;
    this.counts.restarts[reason]++;
    return reason;
  }

  stats(): WorkerFaultStats {
    return { ...this.counts, restarts: { ...this.counts.restarts } };
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
