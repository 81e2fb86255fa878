/**
 * The shared-memory layout between the main thread and the workers.
 *
 * One SharedArrayBuffer holds a fixed number of slots, reused batch after batch. A slot has an
 * input region (rows × F float32, written by the main thread), an output region (rows × 2
 * float32 class probabilities) and a label region (rows × int32 predicted class), both written
 * by the worker. Only a slot index and a row count cross the thread boundary per batch.
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
}

export function slabBytes(l: SlabLayout): number {
  return l.slots * l.capacity * (l.features + 2 + 1) * 4;
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
  return { layout, buffer, inputs, probabilities, labels };
}
