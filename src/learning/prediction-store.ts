/**
 * Predictions made with an `id`, kept so feedback can name them later (`POST /learn` with
 * `{"id", "label"}`). Bounded in count and age: the oldest entries go first, and an entry older
 * than the TTL is treated as unknown.
 */
export interface StoredPrediction {
  model: string;
  version: string;
  features: Float32Array;
  rows: number;
  /** p(class 1) per row, as answered. */
  p1: Float32Array;
  /** Predicted class per row, as answered. */
  classes: Uint8Array;
  at: number;
}

export class PredictionStore {
  private readonly map = new Map<string, StoredPrediction>();

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  put(id: string, p: Omit<StoredPrediction, 'at'>): void {
    if (this.capacity === 0) return;
    // Re-inserting moves the id to the newest end, so eviction stays oldest-first.
    this.map.delete(id);
    this.map.set(id, { ...p, at: this.now() });
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }

  /** The prediction, or 'expired' / 'unknown'. */
  get(id: string): StoredPrediction | 'expired' | 'unknown' {
    const p = this.map.get(id);
    if (!p) return 'unknown';
    if (this.now() - p.at > this.ttlMs) {
      this.map.delete(id);
      return 'expired';
    }
    return p;
  }

  delete(id: string): void {
    this.map.delete(id);
  }

  get size(): number {
    return this.map.size;
  }
}
