/**
 * A bounded ring of the latest labelled rows, kept for retraining the ensemble and persisted
 * with the checkpoint. Oldest rows are overwritten first.
 */
export interface ReplaySnapshot {
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

  /** The rows oldest first: a copy, for a training run. */
  toArrays(): { x: Float32Array; y: Uint8Array; rows: number } {
    const F = this.features;
    const x = new Float32Array(this.count * F);
    const y = new Uint8Array(this.count);
    const start = this.count < this.capacity ? 0 : this.next;
    for (let i = 0; i < this.count; i++) {
      const src = (start + i) % this.capacity;
      x.set(this.rows.subarray(src * F, (src + 1) * F), i * F);
      y[i] = this.labels[src]!;
    }
    return { x, y, rows: this.count };
  }

  /** Only the rows held, oldest first: an empty buffer costs nothing in the checkpoint. */
  snapshot(): ReplaySnapshot {
    const { x, y, rows } = this.toArrays();
    return {
      features: this.features,
      size: rows,
      rows: Buffer.from(x.buffer, 0, x.byteLength).toString('base64'),
      labels: Buffer.from(y).toString('base64'),
    };
  }

  /** Restores into this buffer; with a smaller capacity the newest rows are kept. */
  restore(s: ReplaySnapshot): void {
    this.next = this.count = 0;
    if (s.features !== this.features) return;
    const bytes = Buffer.from(s.rows, 'base64');
    const x = new Float32Array(s.size * s.features);
    new Uint8Array(x.buffer).set(bytes.subarray(0, x.byteLength));
    const y = Buffer.from(s.labels, 'base64');
    for (let i = 0; i < s.size; i++) this.push(x, i, y[i]!);
  }
}
