/**
 * A bounded ring of the latest labelled rows, kept for retraining the ensemble and persisted
 * with the checkpoint. Oldest rows are overwritten first.
 */
import { tfError } from '../errors';

/** What a checkpoint holds: only the rows held, oldest first. */
export interface ReplaySnapshot {
  features: number;
  size: number;
  rows: Float32Array;
  labels: Uint8Array;
}

/** The same in checkpoints of format version 1, which had no binary arrays: base64 of the same bytes. */
export interface ReplaySnapshotV1 {
  features: number;
  size: number;
  rows: string;
  labels: string;
}

export class ReplayBuffer {
  private readonly rows: Float32Array;
  private readonly labels: Uint8Array;
  private next = 0;
  private count = 0;

  constructor(
    readonly capacity: number,
    readonly features: number,
  ) {
    this.rows = new Float32Array(capacity * features);
    this.labels = new Uint8Array(capacity);
  }

  push(x: Float32Array, row: number, label: number): void {
    if (this.capacity === 0) return;
    const F = this.features;
    this.rows.set(x.subarray(row * F, (row + 1) * F), this.next * F);
    this.labels[this.next] = label;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  get size(): number {
    return this.count;
  }

  /**
   * The rows oldest first: a copy, for a training run or a checkpoint. Two block copies (the ring's
   * two halves), not one per row: a checkpoint takes it on the main thread.
   */
  toArrays(): { x: Float32Array; y: Uint8Array; rows: number } {
    const F = this.features;
    const x = new Float32Array(this.count * F);
    const y = new Uint8Array(this.count);
    if (this.count < this.capacity) {
      x.set(this.rows.subarray(0, this.count * F));
      y.set(this.labels.subarray(0, this.count));
    } else {
      const older = this.capacity - this.next;
      x.set(this.rows.subarray(this.next * F));
      x.set(this.rows.subarray(0, this.next * F), older * F);
      y.set(this.labels.subarray(this.next));
      y.set(this.labels.subarray(0, this.next), older);
    }
    return { x, y, rows: this.count };
  }

  /** Only the rows held, oldest first: an empty buffer costs nothing in the checkpoint. */
  snapshot(): ReplaySnapshot {
    const { x, y, rows } = this.toArrays();
    return { features: this.features, size: rows, rows: x, labels: y };
  }

  /** Restores into this buffer; with a smaller capacity the newest rows are kept. */
  restore(s: ReplaySnapshot | ReplaySnapshotV1): void {
    this.next = this.count = 0;
    if (s.features !== this.features) return;
    const F = this.features;
    const { x, y } = typeof s.rows === 'string' ? fromBase64(s as ReplaySnapshotV1) : { x: s.rows, y: s.labels as Uint8Array };
    if (!(x instanceof Float32Array && y instanceof Uint8Array) || !Number.isSafeInteger(s.size) || s.size < 0 || x.length < s.size * F || y.length < s.size) {
      throw tfError('CHECKPOINT_CORRUPT', `the checkpoint's replay buffer says ${String(s.size)} rows of ${F} features but does not hold them`);
    }
    const keep = Math.min(s.size, this.capacity);
    const from = s.size - keep;
    this.rows.set(x.subarray(from * F, s.size * F));
    this.labels.set(y.subarray(from, s.size));
    this.count = keep;
    this.next = keep % Math.max(1, this.capacity);
  }
}

function fromBase64(s: ReplaySnapshotV1): { x: Float32Array; y: Uint8Array } {
  const bytes = Buffer.from(s.rows, 'base64');
  const x = new Float32Array(Math.floor(bytes.length / 4));
  new Uint8Array(x.buffer).set(bytes.subarray(0, x.byteLength));
  return { x, y: new Uint8Array(Buffer.from(s.labels, 'base64')) };
}
