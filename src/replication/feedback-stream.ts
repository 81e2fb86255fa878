/**
 * The feedback stream (REDIS_URL, FEEDBACK_STREAM): one ordered log in Redis that every replica
 * appends to and every replica reads whole, in order, applying every entry, its own included.
 *
 * Appending: XADD with an origin token; the promise resolves only once Redis has the entry AND this
 * replica's reader has applied it (read your writes), with what the entry's handler returned. A
 * failed XADD (Redis down, the connection lost) is FEEDBACK_STREAM_UNAVAILABLE: never acknowledged.
 *
 * Reading: not a consumer group (that would split the entries between replicas) but one script per
 * round, atomic on the server, that returns the stream's length, `entries-added` and
 * `max-deleted-entry-id` together with the next entries after this replica's position (XRANGE).
 * Trimming removes the oldest entries, so `entries-added - length` entries are gone from the head;
 * a replica that has passed fewer than that (its ordinal) lost entries after its position (XTRIM
 * does not move `max-deleted-entry-id`, XDEL does: both are checked). So the reader knows, in the
 * same instant as the entries, whether anything after its position was trimmed away (then the
 * state is rebuilt from the shared checkpoint: `bootstrap`) and how far behind it is
 * (`entries-added` minus its ordinal: the lag). When there is nothing
 * new it waits in XREAD BLOCK on its own connection, only to be woken.
 *
 * Entries are applied by kind through `EntryDispatch` (stream-entry.ts), one at a time.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { tfError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { reconnectDelay, type RedisConnection, type RedisConnections } from './redis-client';
import { entryArgs, parseEntry, type EntryDispatch, type EntryFields, type StreamEntry } from './stream-entry';
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

interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** The entry's id once XADD answered. */
  id: string | null;
}

/** Next entries with the trim mark and the added count, in one atomic step (see the module comment). */
const READ_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', 0, 0, {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local maxdel, added, length = '0-0', 0, 0
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then maxdel = info[i + 1]
  elseif info[i] == 'entries-added' then added = info[i + 1]
  elseif info[i] == 'length' then length = info[i + 1] end
end
return {maxdel, added, length, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
`;

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
  private pos: StreamPosition;
  /** A replica without local state looks for a shared checkpoint before its first read. */
  private pendingNew: boolean;
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
    this.pendingNew = opts.start === null;
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
      const w: Waiter = { resolve, reject, id: null };
      this.waiting.set(origin, w);
      this.cmd.send(['XADD', this.opts.key, '*', ...entryArgs(kind, origin, fields)]).then(
        (id) => {
          this.s.appended++;
          w.id = String(id);
          // A bootstrap may already have passed it (its state includes the entry).
          if (this.waiting.has(origin) && compareStreamIds(this.pos.id, w.id) >= 0) {
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
        await this.reader.ready();
        if (this.closed) break;
        const got = await this.round();
        failures = 0;
        if (got === 0 && !this.closed) await this.waitForNew();
      } catch (err) {
        if (this.closed) break;
        this.s.readerErrors++;
        this.opts.logger.warn({ err: (err as Error).message, position: this.pos }, 'feedback stream read failed; retrying');
        await this.pause(reconnectDelay(failures++));
      }
    }
  }

  /** One read: checks for a gap, applies what came. Returns how many entries were applied. */
  private async round(): Promise<number> {
    if (this.pendingNew) {
      await this.bootstrap('new');
      this.pendingNew = false;
    }
    const reply = (await this.reader.send(['EVAL', READ_SCRIPT, '1', this.opts.key, this.pos.id, String(this.opts.readCount ?? 512)])) as [Buffer | string, number, number, unknown[]];
    const maxDeleted = String(reply[0]);
    const added = Number(reply[1]);
    const removed = added - Number(reply[2]);
    if (removed > this.pos.ordinal || compareStreamIds(maxDeleted, this.pos.id) > 0) {
      // Entries after this position are gone: rebuild from the shared checkpoint, then read again.
      await this.bootstrap('trimmed');
      return 1;
    }
    const entries = reply[3];
    for (const raw of entries) {
      await this.applyOne(parseEntry(raw));
    }
    this.s.lag = Math.max(0, added - this.pos.ordinal);
    return entries.length;
  }

  private async bootstrap(reason: 'new' | 'trimmed'): Promise<void> {
    const p = await this.opts.bootstrap(reason);
    if (p === null) {
      if (reason === 'new') return; // nothing shared yet: read from the beginning
      this.s.stopped = `entries after ${this.pos.id} were trimmed from ${this.opts.key} and no shared checkpoint covers them`;
      this.opts.logger.error({ key: this.opts.key, position: this.pos }, 'FEEDBACK_STREAM_GAP: ' + this.s.stopped);
      throw tfError('FEEDBACK_STREAM_GAP', this.s.stopped);
    }
    this.s.bootstraps++;
    this.opts.logger.info({ reason, from: this.pos, to: p }, 'learning state rebuilt from the shared checkpoint');
    this.pos = p;
    for (const [origin, w] of this.waiting) {
      if (w.id !== null && compareStreamIds(w.id, p.id) <= 0) {
        this.waiting.delete(origin);
        w.resolve(null);
      }
    }
  }

  private async applyOne(e: StreamEntry): Promise<void> {
    const handler = this.opts.dispatch.handlerOf(e.kind);
    let result: unknown = null;
    let failed: unknown = null;
    if (handler === undefined) {
      const n = (this.unknownKinds.get(e.kind) ?? 0) + 1;
      this.unknownKinds.set(e.kind, n);
      if (n === 1) this.opts.logger.warn({ kind: e.kind, id: e.id }, 'feedback stream entry of a kind this engine does not know: skipped');
    } else {
      try {
        result = handler(e);
        if (result instanceof Promise) result = await result;
      } catch (err) {
        failed = err;
        this.s.handlerErrors++;
        this.opts.logger.error({ kind: e.kind, id: e.id, err: (err as Error).message }, 'feedback stream entry failed to apply; skipped');
      }
    }
    this.pos = { id: e.id, ordinal: this.pos.ordinal + 1 };
    this.s.applied++;
    if (e.origin === null) return;
    const w = this.waiting.get(e.origin);
    if (!w) return;
    this.waiting.delete(e.origin);
    if (failed !== null) w.reject(failed);
    else w.resolve(result);
  }

  /** Blocks on the reader's connection until an entry after the position exists (or blockMs passes). */
  private async waitForNew(): Promise<void> {
    await this.reader.send(['XREAD', 'COUNT', '1', 'BLOCK', String(this.opts.blockMs ?? 1000), 'STREAMS', this.opts.key, this.pos.id]);
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
    // The blocked XREAD ends with its connection.
    await Promise.all([this.cmd.close(), this.reader.close()]);
    await this.loop?.catch(() => undefined);
    for (const w of this.waiting.values()) w.reject(tfError('DRAINING', { refusing: 'feedback' }));
    this.waiting.clear();
  }
}
