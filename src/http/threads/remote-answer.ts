/**
 * The main thread's side of a request a front-end thread handed off: a RowAnswer like any other
 * route's, so the row queue treats it the same (cache, deadlines, checks, latency, statistics).
 * Its `write` puts the results into the request's segment and queues `[id, version]` for the
 * thread, which writes the answer text itself.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { isTradeflowError, tfError } from '../../errors';
import type { ServedModel } from '../../models/registry';
import type { BatchClient } from '../../batching/batcher';
import type { PredictionIds, StoredPrediction } from '../../learning/prediction-store';
import type { Exchange } from '../respond';
import type { RowAnswer } from '../rows';

/** Where the answers for one thread are gathered until the end of the current task. */
export interface ThreadOutbox {
  /** `labels`: the class names of the version that computed (a hot swap may change them). */
  ok(id: number, version: string, labels: readonly [string, string]): void;
  err(id: number, code: string, message: string): void;
}

export class RemoteAnswer implements RowAnswer {
  readonly x: Exchange;
  /** The batch entry, to drop the rows when the thread's client goes away. */
  call: BatchClient | null = null;

  constructor(
    private readonly out: ThreadOutbox,
    readonly requestId: number,
    readonly model: ServedModel,
    readonly id: string | undefined,
    startedAt: number,
    private readonly probs: Float32Array,
    private readonly labels: Int32Array,
    private readonly store: PredictionIds | null,
  ) {
    this.x = { res: null as unknown as HttpResponse, endpoint: '/predict', method: 'POST', startedAt, aborted: false, answered: false, onAbort: null, unread: null };
  }

  write(probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string, inputs: Float32Array): void {
    // Before the results overwrite them: for a cache hit, `inputs` are the segment's own rows.
    const kept = this.id !== undefined && this.store ? this.remembered(probs, labels, first, rows, served, inputs) : null;
    // Loops, not set(subarray): two views per request would cost more than a few rows' copy.
    const p = this.probs;
    const l = this.labels;
    for (let r = 0; r < rows; r++) {
      p[2 * r] = probs[2 * (first + r)]!;
      p[2 * r + 1] = probs[2 * (first + r) + 1]!;
      l[r] = labels[first + r]!;
    }
    this.x.answered = true;
    const store = this.store;
    if (kept === null || store === null) {
      this.out.ok(this.requestId, served, this.model.classLabels);
    } else if (!store.remote) {
      store.put(this.id!, kept);
      this.out.ok(this.requestId, served, this.model.classLabels);
    } else {
      // As on one thread (src/http/predict.ts): the answer waits until Redis holds the id, so
      // feedback sent right after it to any replica finds it; a refusal still answers.
      const ok = (): void => this.out.ok(this.requestId, served, this.model.classLabels);
      store.put(this.id!, kept).then(ok, ok);
    }
  }

  fail(err: unknown): void {
    if (this.x.answered) return;
    this.x.answered = true;
    const e = isTradeflowError(err) ? err : tfError('INTERNAL', `internal error: ${(err as Error)?.message ?? String(err)}`);
    this.out.err(this.requestId, e.code, e.message);
  }

  /** What feedback by id needs, as /predict keeps it on one thread (src/http/predict.ts). */
  private remembered(probs: Float32Array, labels: Int32Array, first: number, rows: number, version: string, inputs: Float32Array): Omit<StoredPrediction, 'at'> {
    const F = this.model.features;
    const p1 = new Float32Array(rows);
    const classes = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      p1[r] = probs[2 * (first + r) + 1]!;
      classes[r] = labels[first + r]!;
    }
    return { model: this.model.name, version, features: inputs.slice(first * F, (first + rows) * F), rows, p1, classes };
  }
}
