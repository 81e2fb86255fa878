/**
 * The online model's weights in a SharedArrayBuffer: one writer (the main thread, which learns),
 * many readers (the scoring workers). A seqlock: readers never take a lock and never see a
 * vector that is half old and half new.
 *
 * Layout (bytes):  0 Int32 sequence word | 4 Int32 feature count | 8 Float64 bias |
 *                 16 Float64 version | 24 Float64 weights[features]
 *
 * Protocol. The sequence word is even while the data is stable and odd while a write is in
 * progress.
 *   writer: Atomics.add(seq, 1)      -> odd
 *           plain stores of bias, version, weights
 *           Atomics.store(seq, s + 2) -> even again
 *   reader: s1 = Atomics.load(seq); if odd, retry
 *           plain loads of bias, version, weights into the caller's array
 *           valid iff Atomics.compareExchange(seq, s1, s1) === s1, else retry
 *
 * Why the copy is consistent, under the ECMAScript memory model (not only on x86):
 *  - The reader's first load reads the writer's closing store of publish k, and a SeqCst load
 *    that reads a SeqCst store synchronizes with it, so every data store of publish k happens
 *    before the reader's data loads: they see publish k or something later, never earlier.
 *  - The closing check is a read-modify-write (it writes back the value it read, so it changes
 *    nothing). If it still reads s1, it comes before the writer's next Atomics.add in the
 *    sequence word's modification order, so that add reads it (or a later reader's write, which
 *    chains the same way) and the check synchronizes with it: the reader's data loads happen
 *    before the data stores of publish k+1, and cannot have read them. So a validated copy holds
 *    exactly publish k. A plain Atomics.load as the closing check would not give this: a load
 *    orders what comes after it, not the data loads before it (on ARM64 V8's load-acquire lets
 *    them drift past; x86 happens not to reorder loads).
 *  - A copy that overlapped a write may be torn (Float64 plain accesses may tear), but then the
 *    check fails and the copy is redone.
 * The writer pays one Atomics.add and one Atomics.store per publish; a reader one load and one
 * compare-exchange per read (a read is per scored batch, not per row).
 */

const SEQ = 0;
const FEATURES = 1;
const HEADER_BYTES = 8;
const BIAS = 0;
const VERSION = 1;
const WEIGHTS = 2;
/** Spins before a reader backs off with a short sleep (a writer preempted mid-publish). */
const SPINS_BEFORE_SLEEP = 1000;
const SLEEP_MS = 0.05;

function bytesFor(features: number): number {
  return HEADER_BYTES + (WEIGHTS + features) * 8;
}

export class SharedWeights {
  readonly buffer: SharedArrayBuffer;
  readonly features: number;
  private readonly seq: Int32Array;
  private readonly data: Float64Array;

  private constructor(buffer: SharedArrayBuffer, features: number) {
    this.buffer = buffer;
    this.features = features;
    this.seq = new Int32Array(buffer, 0, 2);
    this.data = new Float64Array(buffer, HEADER_BYTES, WEIGHTS + features);
  }

  /** Writer side (main thread): zero weights, bias 0, version 0. */
  static create(features: number): SharedWeights {
    if (!Number.isInteger(features) || features < 1 || features > 1 << 20) {
      throw new RangeError(`SharedWeights: features must be an integer from 1 to ${1 << 20}, got ${features}`);
    }
    const buffer = new SharedArrayBuffer(bytesFor(features));
    new Int32Array(buffer, 0, 2)[FEATURES] = features;
    return new SharedWeights(buffer, features);
  }

  /** Reader side (worker threads): the buffer the writer created, passed over postMessage. */
  static attach(buffer: SharedArrayBuffer): SharedWeights {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < bytesFor(1)) {
      throw new TypeError('SharedWeights.attach needs the SharedArrayBuffer made by SharedWeights.create');
    }
    const features = Atomics.load(new Int32Array(buffer, 0, 2), FEATURES);
    if (features < 1 || buffer.byteLength !== bytesFor(features)) {
      throw new TypeError(`SharedWeights.attach: a buffer of ${buffer.byteLength} bytes does not hold ${features} weights`);
    }
    return new SharedWeights(buffer, features);
  }

  /** The single writer publishes a whole vector. Never call from two threads. */
  publish(weights: Float64Array, bias: number, version: number): void {
    const f = this.features;
    if (weights.length < f) throw new RangeError(`SharedWeights.publish: ${weights.length} weights, ${f} expected`);
    const d = this.data;
    const s = Atomics.add(this.seq, SEQ, 1); // now odd: readers keep off
    d[BIAS] = bias;
    d[VERSION] = version;
    for (let j = 0; j < f; j++) d[WEIGHTS + j] = weights[j]!;
    Atomics.store(this.seq, SEQ, (s + 2) | 0); // even: the new vector is complete
  }

  /** A consistent snapshot: weights into `outWeights`, with the bias and version published with them. */
  read(outWeights: Float64Array): { bias: number; version: number } {
    const f = this.features;
    if (outWeights.length < f) throw new RangeError(`SharedWeights.read: room for ${outWeights.length} weights, ${f} needed`);
    const d = this.data;
    const seq = this.seq;
    for (let attempt = 1; ; attempt++) {
      const s1 = Atomics.load(seq, SEQ);
      if ((s1 & 1) === 0) {
        const bias = d[BIAS]!;
        const version = d[VERSION]!;
        for (let j = 0; j < f; j++) outWeights[j] = d[WEIGHTS + j]!;
        if (Atomics.compareExchange(seq, SEQ, s1, s1) === s1) return { bias, version };
      }
      // Mid-write. A publish takes nanoseconds unless the writer was descheduled inside it, so
      // spin first, then sleep briefly instead of burning the core the writer needs.
      if (attempt % SPINS_BEFORE_SLEEP === 0) Atomics.wait(seq, SEQ, s1 | 1, SLEEP_MS);
    }
  }
}
