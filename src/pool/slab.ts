/**
 * The shared-memory layout between the main thread and the workers.
 *
 * One SharedArrayBuffer holds a fixed number of slots, reused batch after batch. A slot has an
 * input region (rows × F float32, written by the main thread), an output region (rows × 2
 * float32 class probabilities) and a label region (rows × int32 predicted class), both written
 * by the worker. Only a slot index and a row count cross the thread boundary per batch.
 *
 * After the slots comes one small record per slot saying whether a worker has started its batch:
 * the thread id of that worker (0: not started) and when it started. It survives the worker, so
 * when a worker dies the pool can tell the batch it was running (failed) from a batch that was
 * only waiting in it (dispatched again: inference is pure and the rows are still in the slot),
 * and the watchdog can see how long a batch has been running.
 */

export interface SlabLayout {
  slots: number;
  /** Rows one slot holds. */
  capacity: number;
  features: number;
}

export interface SlabViews {
  readonly layout: SlabLayout;
  readonly buffer: SharedArrayBuffer;
  /** Per slot: rows × F input floats. */
  readonly inputs: Float32Array[];
  /** Per slot: rows × 2 probabilities (class 0, class 1). */
  readonly probabilities: Float32Array[];
  /** Per slot: rows predicted classes (0 | 1). */
  readonly labels: Int32Array[];
  /**
   * Per slot: the threadId of the worker running its batch, 0 while no worker has started it.
   * Written with Atomics by the worker (start, end) and by the pool (clearing a dead worker's).
   */
  readonly runningIn: Int32Array;
  /** Per slot: when the running batch started (slabClock() milliseconds); valid while runningIn is set. */
  readonly startedAt: Float64Array;
}

/**
 * A clock every thread reads alike: performance.now() counts from each thread's own start, so it
 * is offset by that thread's timeOrigin. Monotonic within a thread, unlike Date.now().
 */
export function slabClock(): number {
  return performance.timeOrigin + performance.now();
}

function slotBytes(l: SlabLayout): number {
  return l.capacity * (l.features + 2 + 1) * 4;
}

/** The per-slot run records, 8-byte aligned for the Float64 start times. */
function recordsOffset(l: SlabLayout): number {
  return Math.ceil((l.slots * slotBytes(l)) / 8) * 8;
}

export function slabBytes(l: SlabLayout): number {
  return recordsOffset(l) + l.slots * (8 + 4);
}

export function createSlab(layout: SlabLayout): SlabViews {
  return viewSlab(new SharedArrayBuffer(slabBytes(layout)), layout);
}

export function viewSlab(buffer: SharedArrayBuffer, layout: SlabLayout): SlabViews {
  const { slots, capacity, features } = layout;
  const inputs: Float32Array[] = [];
  const probabilities: Float32Array[] = [];
  const labels: Int32Array[] = [];
  const inputBytes = capacity * features * 4;
  const probBytes = capacity * 2 * 4;
  const labelBytes = capacity * 4;
  const perSlot = inputBytes + probBytes + labelBytes;
  for (let s = 0; s < slots; s++) {
    const base = s * perSlot;
    inputs.push(new Float32Array(buffer, base, capacity * features));
    probabilities.push(new Float32Array(buffer, base + inputBytes, capacity * 2));
    labels.push(new Int32Array(buffer, base + inputBytes + probBytes, capacity));
  }
  const records = recordsOffset(layout);
  const startedAt = new Float64Array(buffer, records, slots);
  const runningIn = new Int32Array(buffer, records + slots * 8, slots);
  return { layout, buffer, inputs, probabilities, labels, runningIn, startedAt };
}
