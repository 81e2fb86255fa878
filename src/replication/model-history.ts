/**
 * One model history for every replica (issue 13, part 3). A model change — a training run's
 * promotion, an upload or load by path, a rollback — made on any replica is published once:
 *
 *   1. the version's ONNX bytes go to Redis, `<ns>:model:<name>:<version>` (written once per
 *      version; every replica fetches them from there unless its own version store has them;
 *      the last MODEL_VERSIONS_KEEP versions are kept there, listed in `<ns>:model-versions:<name>`);
 *   2. a `model` entry is appended to the feedback stream: name, version, sha-256, reason,
 *      source, card, and for a rollback the next step back;
 *   3. every replica, the origin included, swaps to it when it applies that entry, through its
 *      own validated hot swap (src/pool/model-swap.ts). The stream applies the next entry only
 *      after the swap settled, so every replica changes version at the same stream position; the
 *      origin's request is answered with its own swap's result (or its refusal, 422), once done.
 *
 * Before anything is published the origin checks the file as the swap's first phase does (ONNX,
 * one input of the served width), so a file every replica would refuse is refused once, at the
 * origin, and never announced. A swap that still fails (warm-up in the workers) fails the same way
 * on every replica, and each keeps its serving version.
 *
 * Applying an entry for the version already serving does nothing (a replica restarted from a
 * checkpoint older than the entry, whose version store already serves it). Every replica also
 * records the change under the entry's id in `<ns>:model-changes:<name>` (the same field and value
 * from each), so a replica whose learning state is rebuilt from a shared checkpoint (a new one, or
 * one whose position was trimmed away) serves the version that served at that position before it
 * reads on (`catchUp`, run inside the stream's bootstrap), instead of MODEL_PATH's until the next
 * change.
 */
import { createHash } from 'node:crypto';
import { tfError } from '../errors';
import { describeOnnxModel } from '../models/model-loader';
import type { ModelRegistry } from '../models/registry';
import type { VersionStore } from '../models/version-store';
import type { ModelSwapper, SwapOptions, SwapResult } from '../pool/model-swap';
import type { Logger } from '../telemetry/logger';
import type { RedisOps } from './redis-ops';
import type { EntryFields, StreamEntry } from './stream-entry';
import { compareStreamIds } from './stream-id';

export const KIND_MODEL = 'model';

/**
 * Stores a version's bytes and makes it the newest of the versions kept in Redis, dropping the
 * bytes of the oldest beyond MODEL_VERSIONS_KEEP (a rollback target announced again is newest
 * again). KEYS: bytes key, list of versions. ARGV: bytes, version, keep, bytes key prefix, NX.
 */
const PUT_BYTES = `if ARGV[5] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'NX') else redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[2])
while redis.call('LLEN', KEYS[2]) > tonumber(ARGV[3]) do
  redis.call('DEL', ARGV[4] .. redis.call('RPOP', KEYS[2]))
end
return 1`;

/** Tries of a version's bytes from Redis before its swap is given up on this replica. */
const FETCH_ATTEMPTS = 5;

/** Changes remembered per model for `catchUp`: far more than any checkpoint lags behind. */
const CHANGES_KEPT = 200;

/** What a `model` entry's `d` field holds (JSON). */
export interface ModelChange {
  name: string;
  version: string;
  sha256: string;
  reason: SwapOptions['reason'];
  source: string;
  card: Record<string, unknown> | null;
  /** Rollbacks: the version a further rollback goes to. Absent: the version replaced. */
  previous?: string | null;
}

/** The stream as this module uses it: append, and wait until this replica applied the entry. */
export interface EntryAppender {
  append(kind: string, fields: EntryFields): Promise<unknown>;
}

export interface ModelHistoryDeps {
  redis: RedisOps;
  stream: EntryAppender;
  /** Key namespace (FEEDBACK_STREAM's name). */
  namespace: string;
  swapper: ModelSwapper;
  versions: VersionStore;
  models: ModelRegistry;
  logger: Logger;
  /** Versions whose bytes stay in Redis per model (MODEL_VERSIONS_KEEP, as each replica's store keeps). */
  keep: number;
}

export class ModelHistory {
  constructor(private readonly d: ModelHistoryDeps) {}

  private bytesKey(name: string, version: string): string {
    return `${this.d.namespace}:model:${name}:${version}`;
  }

  private changesKey(name: string): string {
    return `${this.d.namespace}:model-changes:${name}`;
  }

  /** Publishes `bytes` as the next version of `name`; resolves with this replica's swap. */
  async load(name: string, bytes: Uint8Array, source: string, opts: SwapOptions): Promise<SwapResult> {
    const served = this.onnxModel(name);
    const keeps = `version ${served.version} keeps serving`;
    let described;
    try {
      described = await describeOnnxModel(name, bytes, source, { featuresHint: served.features });
    } catch (err) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped; ${keeps}: ${(err as Error).message}`);
    }
    if (described.contract.features !== served.features) {
      throw tfError('MODEL_REJECTED', `${name} was not swapped: the new model takes ${described.contract.features} features, the engine serves ${served.features}; ${keeps}`);
    }
    await this.putBytes(name, described.version, bytes, false);
    return this.announce({ name, version: described.version, sha256: described.sha256, reason: opts.reason, source, card: opts.card ?? null });
  }

  /** Announces a rollback to the version the serving one replaced (every replica's history is this one). */
  async rollback(name: string): Promise<SwapResult> {
    this.onnxModel(name);
    const target = this.d.versions.rollbackTarget(name);
    if (!target) throw tfError('NO_PREVIOUS_VERSION', `model ${name} has no earlier version to roll back to`);
    if (!this.d.versions.has(name, target.version)) throw tfError('NO_PREVIOUS_VERSION', `version ${target.version} of ${name} is no longer kept (MODEL_VERSIONS_KEEP)`);
    const bytes = await this.d.versions.bytes(name, target.version);
    // Replicas whose store lost the version (a newer replica) fetch it; SET NX keeps the first copy.
    await this.putBytes(name, target.version, bytes, true);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    return this.announce({ name, version: target.version, sha256, reason: 'rollback', source: `rollback to ${target.version}`, card: null, previous: target.previous });
  }

  private onnxModel(name: string) {
    const m = this.d.models.get(name);
    if (m.kind !== 'onnx') throw tfError('UNSUPPORTED_OPERATION', `model ${name} is learned online; it cannot be loaded or rolled back`);
    return m;
  }

  private async putBytes(name: string, version: string, bytes: Uint8Array, nx: boolean): Promise<void> {
    try {
      await this.d.redis.script(PUT_BYTES, [this.bytesKey(name, version), `${this.d.namespace}:model-versions:${name}`], [bytes, version, String(this.d.keep), this.bytesKey(name, ''), nx ? '1' : '0']);
    } catch (err) {
      throw tfError('FEEDBACK_STREAM_UNAVAILABLE', `Redis did not take the model's bytes (${(err as Error).message}); ${name} ${version} was not published and nothing changed`);
    }
  }

  private async announce(change: ModelChange): Promise<SwapResult> {
    const result = (await this.d.stream.append(KIND_MODEL, { d: JSON.stringify(change) })) as SwapResult | null;
    // Null: a bootstrap passed the entry before this replica applied it itself; it serves it now.
    return result ?? { name: change.name, version: change.version, previous: '', reason: change.reason };
  }

  /** The `model` entry handler: every replica swaps here, at the entry's position in the stream. */
  async apply(entry: StreamEntry): Promise<SwapResult> {
    const change = JSON.parse(entry.fields.get('d')!.toString('utf8')) as ModelChange;
    // The entry's id goes into the version's card: the same on every replica, where it swapped.
    change.card = { ...(change.card ?? {}), stream_entry: entry.id };
    void this.remember(entry.id, change);
    return this.swapTo(change);
  }

  private async swapTo(change: ModelChange): Promise<SwapResult> {
    const served = this.onnxModel(change.name);
    if (served.version === change.version) {
      return { name: change.name, version: change.version, previous: this.d.versions.current(change.name)?.previous ?? change.version, reason: change.reason };
    }
    const bytes = await this.fetch(change);
    const opts: SwapOptions = { reason: change.reason, ...(change.card ? { card: change.card } : {}), ...(change.previous !== undefined ? { previous: change.previous } : {}) };
    const result = await this.d.swapper.load(change.name, bytes, change.source, opts);
    this.d.logger.info({ model: change.name, version: result.version, previous: result.previous, reason: change.reason }, 'model version from the feedback stream serves');
    return result;
  }

  /** The version's bytes: from the local version store when kept there, else from Redis; checked against the announced hash. */
  private async fetch(change: ModelChange): Promise<Uint8Array> {
    let bytes: Uint8Array | null = null;
    if (this.d.versions.has(change.name, change.version)) bytes = await this.d.versions.bytes(change.name, change.version);
    else {
      const got = await this.fetchFromRedis(this.bytesKey(change.name, change.version));
      if (Buffer.isBuffer(got)) bytes = got;
    }
    if (bytes === null) throw tfError('MODEL_REJECTED', `${change.name} ${change.version} was announced but its bytes are neither in the version store nor in Redis; the serving version keeps serving`);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== change.sha256) throw tfError('MODEL_REJECTED', `${change.name} ${change.version}: the fetched bytes hash to ${sha}, the announcement says ${change.sha256}; the serving version keeps serving`);
    return bytes;
  }

  /**
   * GET that waits out a lost connection (a few times): a replica that skipped the swap over a
   * Redis hiccup would serve another version than the others until the next change, and the
   * stream does not move on meanwhile anyway. A key that is not there is not retried.
   */
  private async fetchFromRedis(key: string): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.d.redis.command(['GET', key]);
      } catch (err) {
        if (attempt >= FETCH_ATTEMPTS) throw err;
        this.d.logger.warn({ err: (err as Error).message, key, attempt }, 'model history: fetching a version from Redis failed; retrying once connected');
        await this.d.redis.ready();
      }
    }
  }

  private async remember(id: string, change: ModelChange): Promise<void> {
    const key = this.changesKey(change.name);
    try {
      await this.d.redis.command(['HSET', key, id, JSON.stringify(change)]);
      const n = Number(await this.d.redis.command(['HLEN', key]));
      if (n > CHANGES_KEPT) {
        const ids = ((await this.d.redis.command(['HKEYS', key])) as Buffer[]).map(String).sort(compareStreamIds);
        await this.d.redis.command(['HDEL', key, ...ids.slice(0, n - CHANGES_KEPT)]);
      }
    } catch (err) {
      this.d.logger.warn({ err: (err as Error).message, model: change.name }, 'model history: could not record the change for replicas that start later');
    }
  }

  /**
   * Serves the version that served at stream position `position` (a shared checkpoint's), when
   * this replica serves another: the changes before it are not in what it will read.
   */
  async catchUp(name: string, position: string): Promise<void> {
    if (!this.d.models.has(name)) return;
    await this.d.redis.ready();
    const flat = (await this.d.redis.command(['HGETALL', this.changesKey(name)])) as unknown;
    const pairs: Array<[string, string]> = [];
    if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([String(flat[i]), String(flat[i + 1])]);
    else if (flat && typeof flat === 'object') for (const [k, v] of Object.entries(flat as Record<string, unknown>)) pairs.push([k, String(v)]);
    let last: [string, string] | null = null;
    for (const p of pairs) if (compareStreamIds(p[0], position) <= 0 && (last === null || compareStreamIds(p[0], last[0]) > 0)) last = p;
    if (last === null) return;
    await this.swapTo(JSON.parse(last[1]) as ModelChange);
  }
}
