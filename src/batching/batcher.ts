/**
 * Dynamic micro-batcher.
 *
 * Rows of all requests that arrive within one pass of the event loop go into one batch, written
 * straight into a slot of the shared slab. At the end of the pass (setImmediate) batches go to
 * free workers. While every worker is busy, the open batch keeps taking rows until it reaches
 * MAX_BATCH_ROWS or is MAX_QUEUE_DELAY_US old; then it is sealed and waits its turn. A prototype
 * on this machine showed that dispatching a batch per request the moment a worker looks idle
 * gives mostly one-row batches and a worse p99, so the pass boundary is the unit.
 *
 * Above MAX_QUEUE_ROWS waiting rows a request is refused at once (503). A request whose client
 * went away, or whose deadline passed, before its batch was dispatched is dropped from the
 * batch (the slot is compacted) and costs no inference.
 */
import { performance } from 'node:perf_hooks';
import { isTradeflowError, tfError, type TradeflowError } from '../errors';
import type { SlabViews } from '../pool/slab';

/** One request's rows in a batch. Implemented by the HTTP layer; the batcher never sees HTTP. */
export interface BatchClient {
  readonly rows: number;
  /** Row offset of this request inside its batch slot; set by the batcher. */
  offset: number;
  /** performance.now() time after which the request is answered 504 instead of computed. */
  readonly deadline: number;
  /** True once the client went away or was already answered: skip it. */
  dead: boolean;
  /**
   * Results are in `slab` at `slot`, rows [offset, offset+rows). Copy them out synchronously.
   * `version` is the weights version the scorer used (online model) or -1.
   */
  complete(slab: SlabViews, slot: number, model: number, version: number): void;
  fail(err: TradeflowError): void;
}

export interface BatchReport {
  model: number;
  /** The slab slot holding the batch's results; valid only during onBatch. */
  slot: number;
  rows: number;
  /** Time from the batch's first row to its dispatch. */
  queueWaitSeconds: number;
  ok: boolean;
}

export interface BatchObserver {
  onBatch(report: BatchReport): void;
}

export interface Executor {
  /** Runs the scorer of `model` over `rows` rows of `slot`; resolves with the weights version it used. */
  run(task: { slot: number; rows: number; model: number }): Promise<{ version: number }>;
}

export interface BatcherOptions {
  slab: SlabViews;
  executor: Executor;
  /** Batches in flight at once (the worker count). */
  concurrency: number;
  models: number;
  maxBatchRows: number;
  maxQueueDelayUs: number;
  maxQueueRows: number;
  observer?: BatchObserver;
}

class Batch {
  model = -1;
  rows = 0;
  openedAt = 0;
  readonly clients: BatchClient[] = [];
  constructor(readonly slot: number) {}
}

const SWEEP_INTERVAL_MS = 5;

export class Batcher {
  private readonly batches: Batch[];
  private readonly free: number[] = [];
  private readonly open: (Batch | null)[];
  private readonly ready: Batch[] = [];
  private inFlight = 0;
  private queuedRows = 0;
  private pumpScheduled = false;
  private sealTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  private readonly F: number;
  private readonly capacity: number;
  private readonly maxDelayMs: number;
  private counters = { batches: 0, rowsComputed: 0, requestsDropped: 0, requestsExpired: 0, requestsRejected: 0, requestsAborted: 0 };

  constructor(private readonly opts: BatcherOptions) {
    const { slots, capacity, features } = opts.slab.layout;
    this.F = features;
    this.capacity = capacity;
    this.maxDelayMs = opts.maxQueueDelayUs / 1000;
    this.batches = [];
    for (let s = 0; s < slots; s++) {
      this.batches.push(new Batch(s));
      this.free.push(slots - 1 - s);
    }
    this.open = new Array<Batch | null>(opts.models).fill(null);
  }

  /**
   * Queues `rows` rows of `src` (row-major) for `model`. Throws QUEUE_FULL or DRAINING at once;
   * otherwise the client is later completed or failed exactly once (unless it is dead).
   */
  enqueue(model: number, src: Float32Array, rows: number, client: BatchClient): void {
    if (this.draining) throw tfError('DRAINING', { refusing: 'predictions' });
    if (this.queuedRows + rows > this.opts.maxQueueRows) {
      this.counters.requestsRejected++;
      throw tfError('QUEUE_FULL', { waiting: this.queuedRows, limit: this.opts.maxQueueRows });
    }
    const b = this.target(model, rows);
    const F = this.F;
    this.opts.slab.inputs[b.slot]!.set(rows * F === src.length ? src : src.subarray(0, rows * F), b.rows * F);
    client.offset = b.rows;
    b.rows += rows;
    b.clients.push(client);
    this.queuedRows += rows;
    if (b.rows >= this.opts.maxBatchRows && this.open[model] === b) this.seal(b);
    this.schedulePump();
    if (this.sweepTimer === null) this.sweepTimer = setTimeout(this.sweep, SWEEP_INTERVAL_MS);
  }

  /** The batch the rows go into: the open one while it has room, else a fresh slot. */
  private target(model: number, rows: number): Batch {
    const open = this.open[model] ?? null;
    if (open !== null && open.rows + rows <= this.opts.maxBatchRows) return open;
    const slot = this.free.pop();
    if (slot !== undefined) {
      if (open !== null) this.seal(open);
      const b = this.batches[slot]!;
      b.model = model;
      b.rows = 0;
      b.openedAt = performance.now();
      this.open[model] = b;
      return b;
    }
    // Every slot is taken: waiting batches grow past MAX_BATCH_ROWS, up to a slot's capacity,
    // rather than refusing rows the queue limit allows (load turns into bigger batches).
    if (open !== null && open.rows + rows <= this.capacity) return open;
    for (let i = this.ready.length - 1; i >= 0; i--) {
      const r = this.ready[i]!;
      if (r.model !== model) continue;
      if (r.rows + rows <= this.capacity) return r;
      break;
    }
    this.counters.requestsRejected++;
    throw tfError('QUEUE_FULL', { waiting: this.queuedRows, limit: null });
  }

  /** The client went away: its rows are skipped if its batch has not been dispatched yet. */
  clientGone(c: BatchClient): void {
    if (c.dead) return;
    c.dead = true;
    this.counters.requestsAborted++;
  }

  /** Rows accepted but not yet sent to a worker. */
  get depth(): number {
    return this.queuedRows;
  }

  get busy(): number {
    return this.inFlight;
  }

  stats(): { queuedRows: number; inFlight: number; freeSlots: number; slots: number } & Batcher['counters'] {
    return { queuedRows: this.queuedRows, inFlight: this.inFlight, freeSlots: this.free.length, slots: this.batches.length, ...this.counters };
  }

  /** Stops taking work; resolves once every accepted request has been answered. */
  drain(): Promise<void> {
    this.draining = true;
    for (let m = 0; m < this.open.length; m++) {
      const b = this.open[m];
      if (b && b.rows > 0) this.seal(b);
    }
    this.pump();
    return this.whenIdle();
  }

  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.inFlight === 0 && this.queuedRows === 0 && this.ready.length === 0 && this.open.every((b) => b === null);
  }

  private seal(b: Batch): void {
    if (this.open[b.model] === b) this.open[b.model] = null;
    this.ready.push(b);
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(this.pump);
  }

  private readonly pump = (): void => {
    this.pumpScheduled = false;
    while (this.inFlight < this.opts.concurrency) {
      let b = this.ready.shift();
      if (b === undefined) b = this.oldestOpen();
      if (b === undefined) break;
      if (this.open[b.model] === b) this.open[b.model] = null;
      this.dispatch(b);
    }
    this.armSealTimer();
    if (this.isIdle()) this.notifyIdle();
  };

  private oldestOpen(): Batch | undefined {
    let best: Batch | undefined;
    for (const b of this.open) if (b && b.rows > 0 && (best === undefined || b.openedAt < best.openedAt)) best = b;
    return best;
  }

  /** While workers are busy, a partial batch takes rows for at most MAX_QUEUE_DELAY_US. */
  private armSealTimer(): void {
    if (this.sealTimer !== null) return;
    const oldest = this.oldestOpen();
    if (oldest === undefined) return;
    const wait = Math.max(0, oldest.openedAt + this.maxDelayMs - performance.now());
    this.sealTimer = setTimeout(() => {
      this.sealTimer = null;
      const now = performance.now();
      for (const b of this.open) if (b && b.rows > 0 && now - b.openedAt >= this.maxDelayMs) this.seal(b);
      this.pump();
    }, wait);
  }

  /** Answers 504 to waiting requests whose deadline passed; their rows are skipped at dispatch. */
  private readonly sweep = (): void => {
    this.sweepTimer = null;
    if (this.queuedRows === 0) return;
    const now = performance.now();
    const expire = (b: Batch | null | undefined): void => {
      if (!b) return;
      for (const c of b.clients) if (!c.dead && now > c.deadline) this.expire(c);
    };
    for (const b of this.ready) expire(b);
    for (const b of this.open) expire(b);
    this.sweepTimer = setTimeout(this.sweep, SWEEP_INTERVAL_MS);
  };

  private expire(c: BatchClient): void {
    c.dead = true;
    this.counters.requestsExpired++;
    c.fail(tfError('DEADLINE_EXCEEDED'));
  }

  private dispatch(b: Batch): void {
    const now = performance.now();
    const F = this.F;
    const input = this.opts.slab.inputs[b.slot]!;
    this.queuedRows -= b.rows;
    // Drop dead and expired clients, moving later rows down so the worker sees only live rows.
    let rows = 0;
    let kept = 0;
    for (let i = 0; i < b.clients.length; i++) {
      const c = b.clients[i]!;
      if (!c.dead && now > c.deadline) this.expire(c);
      if (c.dead) {
        this.counters.requestsDropped++;
        continue;
      }
      if (c.offset !== rows) input.copyWithin(rows * F, c.offset * F, (c.offset + c.rows) * F);
      c.offset = rows;
      rows += c.rows;
      b.clients[kept++] = c;
    }
    b.clients.length = kept;
    const queueWaitSeconds = (now - b.openedAt) / 1000;
    if (rows === 0) {
      this.release(b);
      return;
    }
    b.rows = rows;
    this.inFlight++;
    this.counters.batches++;
    this.counters.rowsComputed += rows;
    const model = b.model;
    this.opts.executor.run({ slot: b.slot, rows, model }).then(
      (result) => {
        const slab = this.opts.slab;
        for (const c of b.clients) if (!c.dead) c.complete(slab, b.slot, model, result.version);
        this.finish(b, { model, slot: b.slot, rows, queueWaitSeconds, ok: true });
      },
      (err: Error) => {
        // The pool says why when it knows (BATCH_TIMEOUT, WORKER_FAILED naming the exit).
        const failure = isTradeflowError(err) ? err : tfError('WORKER_FAILED', `the inference worker failed on this batch: ${err.message}`);
        for (const c of b.clients) if (!c.dead) c.fail(failure);
        this.finish(b, { model, slot: b.slot, rows, queueWaitSeconds, ok: false });
      },
    );
  }

  private finish(b: Batch, report: BatchReport): void {
    this.inFlight--;
    this.opts.observer?.onBatch(report);
    this.release(b);
    this.pump();
  }

  private release(b: Batch): void {
    b.clients.length = 0;
    b.rows = 0;
    b.model = -1;
    this.free.push(b.slot);
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  close(): void {
    if (this.sealTimer) clearTimeout(this.sealTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sealTimer = this.sweepTimer = null;
  }
}
