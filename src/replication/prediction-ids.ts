/**
 * Predictions made with an `id`, kept in Redis so that feedback naming the id can reach any
 * replica (issue 13, part 2). The same rules as the local store (src/learning/prediction-store.ts):
 * at most PREDICTION_ID_CAPACITY ids, the oldest evicted first; an id older than
 * PREDICTION_ID_TTL_S is "expired", one never seen (or evicted, or already given feedback) is
 * "unknown"; one feedback per id.
 *
 *   <ns>:prediction:<id>   the prediction (binary, below), SET with PX = the TTL
 *   <ns>:predictions       sorted set of the ids kept, scored by Redis's clock (ms) when stored
 *
 * Capacity is the sorted set's: each store adds its id and, past the capacity, deletes the oldest
 * ids' keys and entries in the same script. It bounds what the engine keeps whatever Redis's
 * `maxmemory` is, as the local store's count does (a `maxmemory` eviction policy alone would
 * drop feedback ids together with the stream's own keys, at Redis's choice). The per-key PX lets
 * Redis free an old prediction without a sweep; its entry in the set stays until capacity pushes
 * it out, and is what tells "expired" from "unknown", as the local cache's stale entries do.
 *
 * Every check and write is one Lua script, atomic on the server (the predictions answered in one
 * event-loop pass are stored by one call; ties in the clock are evicted in id order): a claim is GETDEL, so of two
 * feedbacks for one id sent to two replicas at once exactly one gets the prediction. The clock
 * is Redis's (TIME), so replicas' clocks do not decide what is expired. Keys not named in KEYS
 * (the evicted ids') are touched by the script: this needs one Redis primary, not Redis Cluster.
 *
 *   value: u8 format (1) | u8 model length | model | u8 version length | version | u32 rows
 *          | u32 features per row | f32 features[rows*F] | f32 p1[rows] | u8 classes[rows]
 */
import { tfError } from '../errors';
import type { Claim, RemotePredictionIds, StoredPrediction } from '../learning/prediction-store';
import type { RedisOps } from './redis-ops';

const FORMAT = 1;

const NOW_MS = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/**
 * KEYS: index. ARGV: ttl ms, capacity, value key prefix, then id and value for each prediction
 * (those of one event-loop pass, stored in one call).
 */
const PUT = `${NOW_MS}
for i = 4, #ARGV, 2 do
  redis.call('SET', ARGV[3] .. ARGV[i], ARGV[i + 1], 'PX', ARGV[1])
  redis.call('ZADD', KEYS[1], now, ARGV[i])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  for i = 1, #old do redis.call('DEL', ARGV[3] .. old[i]) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
return 1`;

/** KEYS: value key, index. ARGV: id, ttl ms. Reply: {1, value} | {2} expired | {0} unknown. */
const CLAIM = `local v = redis.call('GETDEL', KEYS[1])
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if s then redis.call('ZREM', KEYS[2], ARGV[1]) end
if v then return {1, v} end
if not s then return {0} end
${NOW_MS}
if now - tonumber(s) >= tonumber(ARGV[2]) then return {2} end
return {0}`;

export class RedisPredictionIds implements RemotePredictionIds {
  readonly remote = true as const;
  private readonly valuePrefix: string;
  private readonly index: string;
  /** Ids and values waiting for the end of this event-loop pass, and who waits for them. */
  private pending: Array<string | Uint8Array> = [];
  private waiters: Array<{ resolve(): void; reject(err: unknown): void }> = [];

  constructor(
    private readonly redis: RedisOps,
    /** Key namespace (FEEDBACK_STREAM's name), so two clusters can share one Redis. */
    namespace: string,
    readonly capacity: number,
    readonly ttlMs: number,
  ) {
    this.valuePrefix = `${namespace}:prediction:`;
    this.index = `${namespace}:predictions`;
  }

  /**
   * Resolves once Redis holds it (or rejects: then feedback by this id will be "unknown"). The
   * predictions answered in one pass of the event loop go to Redis in one script call: one
   * command to encode, send and parse for all of them instead of one each.
   */
  put(id: string, p: Omit<StoredPrediction, 'at'>): Promise<void> {
    if (this.capacity === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.pending.push(id, encodePrediction(p));
      this.waiters.push({ resolve, reject });
      if (this.pending.length === 2) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const args: Array<string | Uint8Array> = [String(this.ttlMs), String(this.capacity), this.valuePrefix, ...this.pending];
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    this.redis.script(PUT, [this.index], args).then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }

  /** Takes the prediction out for feedback, atomically across replicas. */
  async claim(id: string): Promise<Claim> {
    if (this.capacity === 0) return 'unknown';
    let reply: [number, Buffer?];
    try {
      reply = (await this.redis.script(CLAIM, [this.valuePrefix + id, this.index], [id, String(this.ttlMs)])) as [number, Buffer?];
    } catch (err) {
      throw tfError('FEEDBACK_STREAM_UNAVAILABLE', `Redis could not be asked for the prediction with id "${id}" (${(err as Error).message}); it was not taken, send the feedback again`);
    }
    if (Number(reply[0]) === 1) return { ...decodePrediction(reply[1]!), at: 0 };
    return Number(reply[0]) === 2 ? 'expired' : 'unknown';
  }

  /** A claimed prediction whose feedback was refused: kept again for a retry (TTL restarted, as locally). */
  async restore(id: string, p: StoredPrediction): Promise<void> {
    await this.put(id, p);
  }
}

export function encodePrediction(p: Omit<StoredPrediction, 'at'>): Buffer {
  const model = Buffer.from(p.model, 'utf8');
  const version = Buffer.from(p.version, 'utf8');
  const rows = p.rows;
  const F = rows === 0 ? 0 : p.features.length / rows;
  const b = Buffer.alloc(1 + 1 + model.length + 1 + version.length + 8 + rows * F * 4 + rows * 4 + rows);
  let o = 0;
  b[o++] = FORMAT;
  b[o++] = model.length;
  o += model.copy(b, o);
  b[o++] = version.length;
  o += version.copy(b, o);
  b.writeUInt32LE(rows, o);
  b.writeUInt32LE(F, o + 4);
  o += 8;
  o += Buffer.from(p.features.buffer, p.features.byteOffset, rows * F * 4).copy(b, o);
  o += Buffer.from(p.p1.buffer, p.p1.byteOffset, rows * 4).copy(b, o);
  b.set(p.classes.subarray(0, rows), o);
  return b;
}

export function decodePrediction(b: Buffer): Omit<StoredPrediction, 'at'> {
  if (b[0] !== FORMAT) throw new Error(`stored prediction of format ${b[0]}, this engine reads ${FORMAT}`);
  let o = 1;
  const ml = b[o++]!;
  const model = b.toString('utf8', o, o + ml);
  o += ml;
  const vl = b[o++]!;
  const version = b.toString('utf8', o, o + vl);
  o += vl;
  const rows = b.readUInt32LE(o);
  const F = b.readUInt32LE(o + 4);
  o += 8;
  // Copies: float32 views need 4-byte alignment, which a reply buffer does not promise.
  const features = new Float32Array(rows * F);
  new Uint8Array(features.buffer).set(b.subarray(o, o + rows * F * 4));
  o += rows * F * 4;
  const p1 = new Float32Array(rows);
  new Uint8Array(p1.buffer).set(b.subarray(o, o + rows * 4));
  o += rows * 4;
  const classes = Uint8Array.from(b.subarray(o, o + rows));
  return { model, version, features, rows, p1, classes };
}
