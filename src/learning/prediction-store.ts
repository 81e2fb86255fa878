/**
 * Predictions made with an `id`, kept so feedback can name them later (`POST /learn` with
 * `{"id", "label"}`). Bounded in count and age: the oldest entries go first, and an entry older
 * than the TTL is treated as unknown.
 *
 * An lru-cache (`max` = capacity, `ttl` = the id TTL) does the bounding. Lookups use `peek`, so
 * a lookup never makes an entry younger: eviction stays oldest-inserted-first, as before. Expired
 * entries are not purged by timers (no `ttlAutopurge`): one stays in the cache until it is looked
 * up or evicted, which is what lets a lookup tell "expired" (lru-cache's `stale`) from "never
 * seen" (`miss`) at no cost.
 */
import { LRUCache } from 'lru-cache';

export interface StoredPrediction {
  model: string;
  version: string;
  features: Float32Array;
  rows: number;
  /** p(class 1) per row, as answered. */
  p1: Float32Array;
  /** Predicted class per row, as answered. */
  classes: Uint8Array;
  /** The store's clock when the prediction was stored. */
  at: number;
}

/** What a feedback by id finds. */
export type Claim = StoredPrediction | 'expired' | 'unknown';

/**
 * Predictions kept elsewhere (Redis, src/replication/prediction-ids.ts), where every replica
 * reads them: each operation is a round trip, and a claim takes the prediction atomically.
 */
export interface RemotePredictionIds {
  readonly remote: true;
  put(id: string, p: Omit<StoredPrediction, 'at'>): Promise<void>;
  claim(id: string): Promise<Claim>;
  /** Keeps a claimed prediction again after its feedback was refused. */
  restore(id: string, p: StoredPrediction): Promise<void>;
}

/** The local store, synchronous (one process), or a remote one shared by the replicas. */
export type PredictionIds = PredictionStore | RemotePredictionIds;

export class PredictionStore {
  readonly remote = false;
  /** Null when the capacity is 0: ids are not kept at all. */
  private readonly cache: LRUCache<string, StoredPrediction> | null;

  constructor(
    readonly capacity: number,
    readonly ttlMs: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.cache =
      capacity === 0
        ? null
        : new LRUCache<string, StoredPrediction>({
            max: capacity,
            ttl: ttlMs,
            // Ask the clock on every check: the default (1 ms) would reuse one reading for a
            // millisecond of real time, so a clock moved forward in between would go unseen.
            ttlResolution: 0,
            // lru-cache takes a start time of 0 for "no TTL": keep every reading above 0, so a
            // clock that starts at 0 still expires what it stamped.
            perf: { now: () => this.now() + 1 },
            allowStale: false,
          });
  }

  put(id: string, p: Omit<StoredPrediction, 'at'>): void {
    // Re-inserting moves the id to the newest end and restarts its TTL.
    this.cache?.set(id, { ...p, at: this.now() });
  }

  /** The prediction, or 'expired' (older than the TTL; forgotten now) / 'unknown'. */
  get(id: string): StoredPrediction | 'expired' | 'unknown' {
    if (!this.cache) return 'unknown';
    const status: LRUCache.Status<string, StoredPrediction> = {};
    const p = this.cache.peek(id, { status });
    if (p !== undefined) return p;
    if (status.peek === 'stale') {
      this.cache.delete(id);
      return 'expired';
    }
    return 'unknown';
  }

  delete(id: string): void {
    this.cache?.delete(id);
  }

  /** Entries held, expired ones not yet looked up or evicted included. */
  get size(): number {
    return this.cache?.size ?? 0;
  }
}
