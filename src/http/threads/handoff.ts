/**
 * A front-end thread's side of the hand-off (./protocol.ts): rows decoded here go into a segment
 * of shared memory this thread owns, a descriptor goes to the main thread, and the answer is
 * written here when the main thread has put the results into the same segment. Stands where the
 * row queue stands on the main thread (a RowSink), so /predict's handler runs unchanged.
 */
import type { MessagePort } from 'node:worker_threads';
import type { BatchClient } from '../../batching/batcher';
import { reviveError, tfError, type TradeflowError } from '../../errors';
import type { ServedModel } from '../../models/registry';
import type { RowAnswer, RowSink } from '../rows';
import { POOLED_SEGMENT_ROWS, segmentWords, SLOTS_PER_CHUNK, type ToMain, type ToThread } from './protocol';

/** A request's place in shared memory: its rows going out, its results coming back. */
interface Segment {
  chunk: number;
  /** Rows the segment holds: POOLED_SEGMENT_ROWS, or a power of two for a larger request (a chunk of one slot). */
  cap: number;
  slot: number;
  buffer: SharedArrayBuffer;
  inputs: Float32Array;
  probs: Float32Array;
  labels: Int32Array;
}

/** The batcher's handle on a request, from the thread's side: only whether it is gone matters here. */
class HandedOff implements BatchClient {
  offset = 0;
  dead = false;
  constructor(
    readonly id: number,
    readonly rows: number,
    readonly deadline: number,
    readonly answer: RowAnswer,
    readonly seg: Segment,
  ) {}
  complete(): void {}
  fail(): void {}
}

/** Large segments of one size kept for reuse; more in flight at once are made and let go. */
const LARGE_KEPT = 8;

export class Handoff implements RowSink {
  private readonly free: Segment[] = [];
  private chunks = 0;
  private nextId = 1;
  private readonly pending = new Map<number, HandedOff>();
  private desc: number[] = [];
  /** Segments for requests of more than POOLED_SEGMENT_ROWS rows, by capacity, kept for reuse. */
  private readonly large = new Map<number, Segment[]>();
  private ids: (string | null)[] = [];
  private gone: number[] = [];
  private flushScheduled = false;
  /** Segment geometry: words per pooled slot, and where the classes start in a segment of `cap` rows. */
  private readonly slotWords: number;

  constructor(
    private readonly port: MessagePort,
    private readonly features: number,
    /** Test hook: a request with this prediction id makes the thread fail once it is handed off. */
    private readonly crashOnId: string | null,
  ) {
    this.slotWords = segmentWords(POOLED_SEGMENT_ROWS, features);
  }

  /** Rows of `src` for `a.model`, handed to the main thread; the handle the handler keeps for aborts. */
  submit(a: RowAnswer, src: Float32Array, rows: number, deadline: number): BatchClient | null {
    const seg = rows <= POOLED_SEGMENT_ROWS ? this.take() : this.takeLarge(rows);
    seg.inputs.set(src.subarray(0, rows * this.features));
    const id = this.nextId++;
    const call = new HandedOff(id, rows, deadline, a, seg);
    this.pending.set(id, call);
    // Deadlines and start times cross threads on the slab clock, which every thread reads alike.
    const offset = performance.timeOrigin;
    this.desc.push(id, seg.chunk, seg.slot, rows, a.model.index, offset + deadline, offset + a.x.startedAt);
    this.ids.push(a.predictionId ?? null);
    this.schedule();
    if (this.crashOnId !== null && a.predictionId === this.crashOnId) {
      setImmediate(() => {
        throw new Error('test fault: the front-end thread fails with a request in flight');
      });
    }
    return call;
  }

  /** The client of a handed-off request went away: the main thread drops its rows if it can. */
  clientGone(c: BatchClient): void {
    if (c.dead) return;
    c.dead = true;
    this.gone.push((c as HandedOff).id);
    this.schedule();
  }

  /** Requests the main thread holds for this thread. */
  get inFlight(): number {
    return this.pending.size;
  }

  onDone(m: Extract<ToThread, { t: 'done' }>): void {
    const { ok, v, l, err, rel } = m;
    for (let i = 0; i < ok.length; i += 2) {
      const c = this.settle(ok[i]!);
      if (c === null) continue;
      const a = c.answer;
      const vi = ok[i + 1]!;
      syncLabels(a.model, l[2 * vi]!, l[2 * vi + 1]!);
      if (!a.x.aborted) a.write(c.seg.probs, c.seg.labels, 0, c.rows, v[vi]!, c.seg.inputs);
      this.release(c.seg);
    }
    for (let i = 0; i < err.length; i += 3) {
      const c = this.settle(err[i] as number);
      if (c === null) continue;
      if (!c.answer.x.aborted) c.answer.fail(reviveError(err[i + 1], err[i + 2] as string));
      this.release(c.seg);
    }
    for (const id of rel) {
      const c = this.settle(id);
      if (c !== null) this.release(c.seg);
    }
  }

  /** Answers every request still held by the main thread with `err` (the thread is going away). */
  failAll(err: TradeflowError): void {
    for (const c of this.pending.values()) if (!c.answer.x.aborted && !c.answer.x.answered) c.answer.fail(err);
    this.pending.clear();
  }

  private settle(id: number): HandedOff | null {
    const c = this.pending.get(id);
    if (c === undefined) return null;
    this.pending.delete(id);
    return c;
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  /** One message per event-loop pass, however many requests it carries. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.desc.length > 0) {
      this.post({ t: 'submit', d: this.desc, ids: this.ids });
      this.desc = [];
      this.ids = [];
    }
    if (this.gone.length > 0) {
      this.post({ t: 'gone', ids: this.gone });
      this.gone = [];
    }
  };

  private post(m: ToMain): void {
    this.port.postMessage(m);
  }

  private take(): Segment {
    const s = this.free.pop();
    if (s !== undefined) return s;
    // A new chunk is announced before any descriptor naming it: the port keeps the order.
    this.flush();
    const chunk = this.chunks++;
    const buffer = new SharedArrayBuffer(SLOTS_PER_CHUNK * this.slotWords * 4);
    this.post({ t: 'chunk', chunk, buffer, cap: POOLED_SEGMENT_ROWS });
    for (let slot = SLOTS_PER_CHUNK - 1; slot >= 0; slot--) this.free.push(this.view(buffer, chunk, slot, POOLED_SEGMENT_ROWS, slot * this.slotWords * 4));
    return this.free.pop()!;
  }

  /**
   * A segment for a large request, reused: a fresh SharedArrayBuffer per request left memory to
   * the collector, which a client sending 4096-row requests outran (the slow-clients chaos test).
   */
  private takeLarge(rows: number): Segment {
    let cap = POOLED_SEGMENT_ROWS * 2;
    while (cap < rows) cap *= 2;
    const kept = this.large.get(cap);
    const s = kept?.pop();
    if (s !== undefined) return s;
    this.flush();
    const chunk = this.chunks++;
    const buffer = new SharedArrayBuffer(segmentWords(cap, this.features) * 4);
    this.post({ t: 'chunk', chunk, buffer, cap });
    return this.view(buffer, chunk, 0, cap, 0);
  }

  private view(buffer: SharedArrayBuffer, chunk: number, slot: number, cap: number, byteOffset: number): Segment {
    return {
      chunk,
      cap,
      slot,
      buffer,
      inputs: new Float32Array(buffer, byteOffset, cap * this.features),
      probs: new Float32Array(buffer, byteOffset, 2 * cap),
      labels: new Int32Array(buffer, byteOffset + 8 * cap, cap),
    };
  }

  private release(seg: Segment): void {
    if (seg.cap === POOLED_SEGMENT_ROWS) {
      this.free.push(seg);
      return;
    }
    let kept = this.large.get(seg.cap);
    if (kept === undefined) this.large.set(seg.cap, (kept = []));
    if (kept.length < LARGE_KEPT) kept.push(seg);
    else this.post({ t: 'forget', chunk: seg.chunk });
  }
}

/** This thread's copy of a model takes the class names of the version that computed (after a hot swap). */
function syncLabels(m: ServedModel, l0: string, l1: string): void {
  if (m.classLabels[0] !== l0 || m.classLabels[1] !== l1) m.classLabels = [l0, l1];
}

export function frontEndFailed(): TradeflowError {
  return tfError('INTERNAL', 'internal error: the front-end thread handling this request failed; it is being replaced');
}


