/**
 * LRU cache of predictions keyed by model, model version and the exact float32 bytes of a row.
 * A hit is answered without queueing. The version is part of the key, and a version change
 * clears the model's entries, so an old version's answer is never served.
 */
import { LRUCache } from 'lru-cache';

export interface CachedPrediction {
  p0: number;
  p1: number;
  cls: number;
}

export interface CacheStats {
  enabled: boolean;
  size: number;
  capacity: number;
  hits: number;
  misses: number;
  hit_ratio: number | null;
  evictions: number;
  max_rows_per_request: number;
}

export class PredictionCache {
  private readonly lru: LRUCache<string, CachedPrediction> | null;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private readonly versions = new Map<number, string>();

  constructor(
    readonly capacity: number,
    /** Requests with more rows than this bypass the cache (a lookup and an insert per row). */
    readonly maxRowsPerRequest: number,
  ) {
    this.lru =
      capacity > 0
        ? new LRUCache<string, CachedPrediction>({
            max: capacity,
            dispose: (_v, _k, reason) => {
              if (reason === 'evict') this.evictions++;
            },
          })
        : null;
  }

  get enabled(): boolean {
    return this.lru !== null;
  }

  applies(rows: number): boolean {
    return this.lru !== null && rows <= this.maxRowsPerRequest;
  }

  /** Key of one row: model index, version and the row's bytes as a latin1 string (1 char per byte). */
  key(model: number, version: string, rows: Float32Array, row: number, features: number): string {
    const bytes = Buffer.from(rows.buffer, rows.byteOffset + row * features * 4, features * 4);
    return model + ':' + version + ':' + bytes.toString('latin1');
  }

  get(key: string): CachedPrediction | undefined {
    const v = this.lru!.get(key);
    if (v === undefined) this.misses++;
    else this.hits++;
    return v;
  }

  set(key: string, p0: number, p1: number, cls: number): void {
    this.lru!.set(key, { p0, p1, cls });
  }

  /** Called whenever the version served for a model changes: its old entries go. */
  onVersion(model: number, version: string): void {
    const before = this.versions.get(model);
    this.versions.set(model, version);
    if (before === undefined || before === version || !this.lru) return;
    const prefix = model + ':';
    for (const k of this.lru.keys()) if (k.startsWith(prefix)) this.lru.delete(k);
  }

  hitRatio(): number | null {
    const n = this.hits + this.misses;
    return n === 0 ? null : this.hits / n;
  }

  stats(): CacheStats {
    return {
      enabled: this.enabled,
      size: this.lru?.size ?? 0,
      capacity: this.capacity,
      hits: this.hits,
      misses: this.misses,
      hit_ratio: this.hitRatio(),
      evictions: this.evictions,
      max_rows_per_request: this.maxRowsPerRequest,
    };
  }
}
