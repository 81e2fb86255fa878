/**
 * The feedback stream (REDIS_URL, FEEDBACK_STREAM): one ordered log in Redis that every replica
 * appends to and every replica reads whole, in order, applying every entry, its own included.
 *
 * Every entry carries its ordinal `n`: how many entries the stream had ever taken, itself included
 * (`entries-added`, read in the same atomic script as the XADD). A replica's position is the last
 * entry it applied and that ordinal. Trimming removes the oldest entries; a reader that finds the
 * next entry's `n` above its ordinal + 1 lost entries after its position (trimmed away), and
 * rebuilds from the shared checkpoint (`bootstrap`). The lag is `entries-added` minus the ordinal.
 *
 * Appending is one script: XADD, and in the same reply the entries between this replica's last
 * fetched entry and the new one (XRANGE, at most APPEND_RANGE). The reply comes once Redis has the
 * entry (fsynced under appendfsync always), and it brings what this replica needs to apply it, so
 * read-your-writes costs one Redis round trip, one fsync, not two. The append resolves once Redis
 * answered AND this replica applied the entry, with what the entry's handler returned. A failed
 * script (Redis down, the connection lost) is FEEDBACK_STREAM_UNAVAILABLE: never acknowledged.
 *
 * Reading: not a consumer group (that would split the entries between replicas) but XREAD BLOCK
 * from the last fetched entry, on its own connection. Entries from both sources go into one
 * queue, deduplicated by id, and are applied one at a time by kind through `EntryDispatch`
 * (stream-entry.ts), a handler's promise awaited before the next entry.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { tfError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { reconnectDelay, type RedisConnection, type RedisConnections } from './redis-client';
import { entryArgs, FIELD_ORDINAL, parseEntry, type EntryDispatch, type EntryFields, type StreamEntry } from './stream-entry';
import { compareStreamIds, ZERO_ID } from './stream-id';

/** Where a replica's state stands in the stream: the last entry applied and how many entries up to it were ever added. */
export interface StreamPosition {
  id: string;
  ordinal: number;
}

export interface FeedbackStreamOptions {
  key: string;
  connections: RedisConnections;
  dispatch: EntryDispatch;
  logger: Logger;
  /** The position the local state includes (its checkpoint's), or null for a replica with none. */
  start: StreamPosition | null;
  /**
   * Replaces the state with the latest shared checkpoint and returns its position, or null when
   * there is none. Called for a replica without local state, and when this replica's position was
   * trimmed away.
   */
  bootstrap(reason: 'new' | 'trimmed'): Promise<StreamPosition | null>;
  /** Entries read per round. */
  readCount?: number;
  /** How long one XREAD BLOCK waits for a new entry before the reader looks again. */
  blockMs?: number;
}

/**
 * An append waiting for both halves of its acknowledgement: Redis's answer to the XADD (it has the
 * entry, fsynced under appendfsync always) and this replica's reader applying it. Either may come
 * first: the reader can see the entry in the same event-loop turn of Redis as the XADD.
 */
interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** The entry's id once XADD answered. */
  id: string | null;
  /** Set once the reader applied it: what its handler returned, or how it failed. */
  applied: { result: unknown; failed: unknown } | null;
}

/**
 * KEYS: the stream. ARGV: the id after which to return entries, how many at most (0: none), then
 * the entry's fields. Returns {new id, its ordinal, entries after ARGV[1]}.
 */
const APPEND_SCRIPT = `
local added = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
end
local fields = {'n', tostring(added + 1)}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
local range = {}
if tonumber(ARGV[2]) > 0 then range = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2]) end
return {id, added + 1, range}
`;

/** Entries an append brings back at most; a replica further behind leaves them to its reader. */
const APPEND_RANGE = 64;

/** How often the lag is read from Redis (XINFO STREAM) besides what appends and reads tell. */
const LAG_POLL_MS = 1000;

export interface StreamStats {
  key: string;
  position: StreamPosition;
  /** Entries added to the stream that this replica has not applied yet; null before the first read. */
  lag_records: number | null;
  appended: number;
  applied: number;
  bootstraps: number;
  unknown_kinds: Record<string, number>;
  handler_errors: number;
  /** Set when the reader stopped: the position was trimmed away and no shared checkpoint covers it. */
  stopped: string | null;
  reader_errors: number;
}

export class FeedbackStream {
  /** The last entry applied. */
  private pos: StreamPosition;
  /** The last entry fetched (applied, or in the queue). */
  private tail: StreamPosition;
  private queue: Array<{ entry: StreamEntry; ordinal: number }> = [];
  private draining: Promise<void> = Promise.resolve();
  private drainRunning = false;
  /** While set, fetched entries are dropped (a bootstrap is replacing the state, or has yet to). */
  private holding: boolean;
  /** A replica without local state looks for a shared checkpoint before its first read. */
  private pendingNew: boolean;
  /** Ordinal of the stream's newest entry as last seen (append replies, XINFO). */
  private streamOrdinal = 0;
  private lagTimer: NodeJS.Timeout | null = null;
  private readonly cmd: RedisConnection;
  private readonly reader: RedisConnection;
  private readonly waiting = new Map<string, Waiter>();
  private readonly originPrefix = randomUUID().slice(0, 8) + ':';
  private nextOrigin = 0;
  private closed = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly s = { appended: 0, applied: 0, bootstraps: 0, handlerErrors: 0, readerErrors: 0, lag: null as number | null, stopped: null as string | null };
  private readonly unknownKinds = new Map<string, number>();

  constructor(private readonly opts: FeedbackStreamOptions) {
    this.pos = opts.start ?? { id: ZERO_ID, ordinal: 0 };
    this.tail = this.pos;
    this.pendingNew = opts.start === null;
    this.holding = this.pendingNew;
    this.cmd = opts.connections.open('stream-commands');
    this.reader = opts.connections.open('stream-reader');
  }

  get key(): string {
    return this.opts.key;
  }

  /** The last entry this replica applied: what a checkpoint taken now includes. */
  get position(): StreamPosition {
    return this.pos;
  }

  /** Entries in the stream not yet applied here (null until the first read). */
  get lag(): number | null {
    return this.s.lag;
  }

  /** The command connection, for modules that send their own commands (scripts, checkpoints). */
  get commands(): RedisConnection {
    return this.cmd;
  }

  /** Whether appends can be taken now: connected, and the reader has not stopped. */
  get available(): boolean {
    return this.cmd.isReady && this.reader.isReady && this.s.stopped === null;
  }

  get stoppedReason(): string | null {
    return this.s.stopped;
  }

  /** Starts the reader. */
  start(): void {
    this.loop ??= this.run();
    this.lagTimer ??= setInterval(() => void this.pollLag(), LAG_POLL_MS);
    this.lagTimer.unref();
  }

  /**
   * Appends an entry; resolves with its handler's result once this replica has applied it.
   * Rejects with FEEDBACK_STREAM_UNAVAILABLE when Redis did not take it.
   */
  append(kind: string, fields: EntryFields): Promise<unknown> {
    if (this.closed) return Promise.reject(tfError('DRAINING', { refusing: 'feedback' }));
    if (this.s.stopped !== null) return Promise.reject(tfError('FEEDBACK_STREAM_UNAVAILABLE', `this replica stopped reading the feedback stream: ${this.s.stopped}`));
    if (!this.cmd.isReady) return Promise.reject(tfError('FEEDBACK_STREAM_UNAVAILABLE', 'Redis is not reachable; the feedback was not taken'));
    const origin = this.originPrefix + (this.nextOrigin++).toString(36);
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject, id: null, applied: null };
      this.waiting.set(origin, w);
      // Close behind the stream's end, the reply brings the entries up to this one; far behind, the reader does.
      const range = this.streamOrdinal - this.tail.ordinal < APPEND_RANGE / 2 ? APPEND_RANGE : 0;
      this.cmd.send(['EVAL', APPEND_SCRIPT, '1', this.opts.key, this.tail.id, String(range), ...entryArgs(kind, origin, fields)]).then(
        (reply) => {
          const [id, n, entries] = reply as [Buffer, number, unknown[]];
          this.s.appended++;
          w.id = String(id);
          this.streamOrdinal = Math.max(this.streamOrdinal, Number(n));
          this.feed(entries);
          if (!this.waiting.has(origin)) return; // applied from this very reply, and answered
          if (w.applied !== null) this.settle(origin, w);
          else if (compareStreamIds(this.pos.id, w.id) >= 0) {
            // A bootstrap passed it: the state it loaded includes the entry.
            this.waiting.delete(origin);
            resolve(null);
          }
        },
        (err: Error) => {
          this.waiting.delete(origin);
          reject(tfError('FEEDBACK_STREAM_UNAVAILABLE', `Redis did not take the feedback (${err.message}); it was not acknowledged`));
        },
      );
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed && this.s.stopped === null) {
      try {
        await Promise.all([this.reader.ready(), this.cmd.ready()]);
        if (this.closed) break;
        await this.round();
        failures = 0;
      } catch (err) {
        if (this.closed) break;
        this.s.readerErrors++;
        this.opts.logger.warn({ err: (err as Error).message, position: this.pos }, 'feedback stream read failed; retrying');
        await this.pause(reconnectDelay(failures++));
      }
    }
  }

  /** One read: waits for entries after the last fetched one, queues them, rebuilds on a gap. */
  private async round(): Promise<void> {
    if (this.pendingNew) {
      await this.bootstrap('new');
      this.pendingNew = false;
      this.holding = false;
    }
    const count = this.opts.readCount ?? 512;
    const reply = (await this.reader.send(['XREAD', 'COUNT', String(count), 'BLOCK', String(this.opts.blockMs ?? 1000), 'STREAMS', this.opts.key, this.tail.id])) as Record<string, unknown[]> | null;
    const entries = reply ? (Object.values(reply)[0] ?? []) : [];
    if (this.feed(entries) === 'gap') {
      await this.bootstrap('trimmed');
      return;
    }
    // Keep at most one read's worth queued: a replica catching up reads as fast as it applies.
    if (this.queue.length >= count) await this.draining;
  }

  /**
   * Queues fetched entries in stream order, skipping those already fetched. 'gap' when the next
   * entry's ordinal shows entries after the last fetched one are gone (nothing after it is queued).
   */
  private feed(raws: unknown[]): 'ok' | 'gap' {
    if (this.holding) return 'ok';
    for (const raw of raws) {
      const entry = parseEntry(raw);
      if (compareStreamIds(entry.id, this.tail.id) <= 0) continue;
      const nf = entry.fields.get(FIELD_ORDINAL);
      // An entry without an ordinal was added by hand (XADD): it counts as the next one.
      const n = nf ? Number(nf.toString()) : this.tail.ordinal + 1;
      if (n !== this.tail.ordinal + 1) return 'gap';
      this.tail = { id: entry.id, ordinal: n };
      this.queue.push({ entry, ordinal: n });
    }
    this.streamOrdinal = Math.max(this.streamOrdinal, this.tail.ordinal);
    if (this.queue.length > 0 && !this.drainRunning) {
      // drain() may finish synchronously (no handler returned a promise): the flag, not the promise, says whether it runs.
      this.drainRunning = true;
      this.draining = this.drain();
    }
    return 'ok';
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.holding) {
        const q = this.queue.shift()!;
        const p = this.applyOne(q.entry, q.ordinal);
        if (p) await p;
      }
    } finally {
      this.drainRunning = false;
      this.s.lag = Math.max(0, this.streamOrdinal - this.pos.ordinal);
    }
  }

  private async pollLag(): Promise<void> {
    if (!this.cmd.isReady || this.closed) return;
    try {
      const info = (await this.cmd.send(['XINFO', 'STREAM', this.opts.key])) as Record<string, unknown> | unknown[];
      const added = Array.isArray(info) ? info[info.findIndex((v) => String(v) === 'entries-added') + 1] : info['entries-added'];
      this.streamOrdinal = Math.max(this.streamOrdinal, Number(added));
      this.s.lag = Math.max(0, this.streamOrdinal - this.pos.ordinal);
    } catch {
      // No stream yet (nothing appended), or Redis is down: the lag stays as last known.
    }
  }

  private async bootstrap(reason: 'new' | 'trimmed'): Promise<void> {
    // No entry is applied while the state is replaced; what was fetched is read again after it.
    this.holding = true;
    await this.draining;
    this.queue = [];
    this.tail = this.pos;
    let p: StreamPosition | null;
    try {
      p = await this.opts.bootstrap(reason);
    } catch (err) {
      // An unusable shared checkpoint does not get better by reading it again.
      if ((err as { code?: string }).code === 'CHECKPOINT_CORRUPT') this.stop('CHECKPOINT_CORRUPT', `the shared checkpoint cannot be loaded: ${(err as Error).message}`);
      throw err;
    } finally {
      if (reason === 'trimmed') this.holding = false;
    }
    if (p === null) {
      if (reason === 'new') return; // nothing shared yet: read from the beginning
      this.stop('FEEDBACK_STREAM_GAP', `entries after ${this.pos.id} were trimmed from ${this.opts.key} and no shared checkpoint covers them`);
      throw tfError('FEEDBACK_STREAM_GAP', this.s.stopped!);
    }
    this.s.bootstraps++;
    this.opts.logger.info({ reason, from: this.pos, to: p }, 'learning state rebuilt from the shared checkpoint');
    this.pos = p;
    this.tail = p;
    for (const [origin, w] of this.waiting) {
      if (w.id !== null && compareStreamIds(w.id, p.id) <= 0) {
        this.waiting.delete(origin);
        w.resolve(null);
      }
    }
  }

  /** Applies one entry; a promise only when its handler returned one (the common case stays synchronous). */
  private applyOne(e: StreamEntry, ordinal: number): Promise<void> | void {
    const handler = this.opts.dispatch.handlerOf(e.kind);
    if (handler === undefined) {
      const n = (this.unknownKinds.get(e.kind) ?? 0) + 1;
      this.unknownKinds.set(e.kind, n);
      if (n === 1) this.opts.logger.warn({ kind: e.kind, id: e.id }, 'feedback stream entry of a kind this engine does not know: skipped');
      return this.applied(e, ordinal, null, null);
    }
    let result: unknown;
    try {
      result = handler(e);
    } catch (err) {
      return this.applied(e, ordinal, null, this.failed(e, err));
    }
    if (!(result instanceof Promise)) return this.applied(e, ordinal, result, null);
    return result.then(
      (r) => this.applied(e, ordinal, r, null),
      (err: unknown) => this.applied(e, ordinal, null, this.failed(e, err)),
    );
  }

  private failed(e: StreamEntry, err: unknown): unknown {
    this.s.handlerErrors++;
    this.opts.logger.error({ kind: e.kind, id: e.id, err: (err as Error).message }, 'feedback stream entry failed to apply; skipped');
    return err;
  }

  private applied(e: StreamEntry, ordinal: number, result: unknown, failed: unknown): void {
    this.pos = { id: e.id, ordinal };
    this.s.applied++;
    if (e.origin === null) return;
    const w = this.waiting.get(e.origin);
    if (!w) return;
    w.applied = { result, failed };
    if (w.id !== null) this.settle(e.origin, w);
  }

  /** The reader stops for good: appends are refused, health is unhealthy, until a restart. */
  private stop(code: 'FEEDBACK_STREAM_GAP' | 'CHECKPOINT_CORRUPT', why: string): void {
    this.s.stopped = why;
    this.opts.logger.error({ key: this.opts.key, position: this.pos, code }, `${code}: ${why}`);
    // Appends waiting for their own entry would wait for ever: Redis may hold them (the other
    // replicas apply them), but this replica never will, so they are not acknowledged here.
    for (const w of this.waiting.values()) {
      w.reject(tfError('FEEDBACK_STREAM_UNAVAILABLE', `this replica stopped reading the feedback stream before it applied this feedback (${why}); Redis may hold it, and other replicas apply it`));
    }
    this.waiting.clear();
  }

  /** Both halves are in: answers the append. */
  private settle(origin: string, w: Waiter): void {
    this.waiting.delete(origin);
    if (w.applied!.failed !== null) w.reject(w.applied!.failed);
    else w.resolve(w.applied!.result);
  }

  private async pause(ms: number): Promise<void> {
    const ac = new AbortController();
    this.wake = () => ac.abort();
    await sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined);
    this.wake = null;
  }

  stats(): StreamStats {
    return {
      key: this.opts.key,
      position: { ...this.pos },
      lag_records: this.s.lag,
      appended: this.s.appended,
      applied: this.s.applied,
      bootstraps: this.s.bootstraps,
      unknown_kinds: Object.fromEntries(this.unknownKinds),
      handler_errors: this.s.handlerErrors,
      stopped: this.s.stopped,
      reader_errors: this.s.readerErrors,
    };
  }

  /**
   * Stops reading. Appends Redis already took are waited for (up to `graceMs`, while the reader
   * can still read them), so their requests are answered 202 rather than refused; requests still
   * waiting after that are refused (DRAINING), though their entries are in the stream and every
   * replica, this one after its restart, applies them.
   */
  async close(graceMs = 2000): Promise<void> {
    const until = Date.now() + graceMs;
    const taken = (): boolean => [...this.waiting.values()].some((w) => w.id !== null);
    while (!this.closed && taken() && this.reader.isReady && this.s.stopped === null && Date.now() < until) await sleep(5);
    this.closed = true;
    this.wake?.();
    if (this.lagTimer) clearInterval(this.lagTimer);
    // The blocked XREAD ends with its connection.
    await Promise.all([this.cmd.close(), this.reader.close()]);
    await this.loop?.catch(() => undefined);
    for (const w of this.waiting.values()) w.reject(tfError('DRAINING', { refusing: 'feedback' }));
    this.waiting.clear();
  }
}
