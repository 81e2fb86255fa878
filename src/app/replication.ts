/**
 * The replication part (REDIS_URL): the Redis connections, the feedback stream every replica
 * reads, the dispatch of its entries by kind, and the shared checkpoints. Started by the learning
 * part right after the online learner opens, stopped before it (so the final local checkpoint
 * records where the reader stopped).
 *
 * Other parts add their own entry kinds with `dispatch.handle(kind, handler)` before `start()`
 * (the reader starts once every kind is registered), append with `stream.append(kind, fields)`,
 * and open further connections with `connections.open(role)`.
 */
import { readFile } from 'node:fs/promises';
import type { EngineConfig } from '../config';
import { decodeCheckpoint } from '../learning/checkpoint';
import type { OnlineLearning, StreamPositionRecord } from '../learning/online';
import { FeedbackStream, type StreamPosition } from '../replication/feedback-stream';
import { RedisConnections } from '../replication/redis-client';
import { fetchSharedCheckpoint, publishSharedCheckpoint } from '../replication/shared-checkpoint';
import { EntryDispatch, FIELD_DATA, KIND_LEARNING } from '../replication/stream-entry';
import { entryTimeMs } from '../replication/stream-id';
import type { ComponentHealth } from '../telemetry/health';
import { redisHealth } from '../telemetry/health';
import type { Logger } from '../telemetry/logger';
import type { Part } from './parts';

export interface ReplicationPart extends Part {
  readonly connections: RedisConnections;
  readonly stream: FeedbackStream;
  readonly dispatch: EntryDispatch;
  /** Starts reading the stream; call once every kind is registered (the engine does, after the parts that add kinds). */
  start(): void;
  /** Publishes a just-written local checkpoint to Redis when SHARED_CHECKPOINT_INTERVAL_S has passed. */
  onCheckpointWritten(file: string, stream: StreamPositionRecord | null): void;
  /**
   * Adds what runs after the learning state was rebuilt from a shared checkpoint, with the entry
   * id it includes, before any entry after it is applied: state kept outside the learning
   * checkpoint catches up to that position there (the model history serves the version that
   * served at it). A listener must not throw.
   */
  onBootstrap(listener: (position: string) => Promise<void>): void;
  health(): ComponentHealth;
}

/**
 * What Redis promises for a write it answered: its AOF settings, read once connected. A managed
 * Redis may refuse CONFIG; then it is unknown, and /learn's answer says `"durable":false`.
 */
function probeDurability(stream: FeedbackStream, logger: Logger): { value: { appendonly: string; appendfsync: string } | null } {
  const out: { value: { appendonly: string; appendfsync: string } | null } = { value: null };
  void stream.commands.ready().then(async () => {
    try {
      const reply = await stream.commands.send(['CONFIG', 'GET', 'append*']);
      const m = new Map<string, string>();
      if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), String(reply[i + 1]));
      else for (const [k, v] of Object.entries(reply as Record<string, unknown>)) m.set(k, String(v));
      out.value = { appendonly: m.get('appendonly') ?? 'unknown', appendfsync: m.get('appendfsync') ?? 'unknown' };
      if (out.value.appendonly !== 'yes' || out.value.appendfsync !== 'always') {
        logger.warn(out.value, 'Redis does not fsync every write (appendonly yes, appendfsync always): feedback answered 202 can be lost if Redis crashes (with everysec, up to about a second of it)');
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'Redis refused CONFIG GET: how durable acknowledged feedback is depends on its AOF settings, unknown here');
    }
  });
  return out;
}

/**
 * `entryClock.ms` is set to the entry's time (the ms part of its id) while a learning entry is
 * applied: what the drift monitor stamps its events with.
 */
export function startReplication(config: EngineConfig, learning: OnlineLearning, logger: Logger, entryClock: { ms: number | null }): ReplicationPart {
  const key = config.feedbackStream;
  const connections = new RedisConnections(config.redisUrl!, logger);
  const dispatch = new EntryDispatch().handle(KIND_LEARNING, (e) => {
    entryClock.ms = entryTimeMs(e.id);
    try {
      return learning.applyReplicated(e.fields.get(FIELD_DATA) ?? Buffer.alloc(0));
    } finally {
      entryClock.ms = null;
    }
  });
  const local = learning.localStreamPosition;
  const bootstrapped: Array<(position: string) => Promise<void>> = [];
  const stream: FeedbackStream = new FeedbackStream({
    key,
    connections,
    dispatch,
    logger,
    start: local ? { id: local.id, ordinal: local.ordinal } : null,
    bootstrap: async (): Promise<StreamPosition | null> => {
      const cp = await fetchSharedCheckpoint(stream.commands, key);
      if (!cp) return null;
      learning.restoreShared(decodeCheckpoint(cp.bytes, `the shared checkpoint ${key}:checkpoint`));
      for (const l of bootstrapped) await l(cp.id);
      return { id: cp.id, ordinal: cp.ordinal };
    },
  });
  const durability = probeDurability(stream, logger);
  learning.attachStream({
    key,
    append: (payload) => stream.append(KIND_LEARNING, { [FIELD_DATA]: payload }),
    position: () => stream.position,
    durable: () => durability.value?.appendonly === 'yes' && durability.value.appendfsync === 'always',
    stats: () => ({ ...stream.stats(), redis_durability: durability.value }),
  });
  const replica = `${process.env.HOSTNAME ?? 'replica'}:${process.pid}`;
  const intervalMs = config.sharedCheckpointIntervalS * 1000;
  let lastPublished = -Infinity;
  let publishing = false;
  return {
    name: 'replication',
    connections,
    stream,
    dispatch,
    start: () => stream.start(),
    onBootstrap: (listener) => bootstrapped.push(listener),
    onCheckpointWritten(file, pos) {
      if (!pos || publishing || !stream.commands.isReady || Date.now() - lastPublished < intervalMs) return;
      publishing = true;
      readFile(file)
        .then((bytes) => publishSharedCheckpoint(stream.commands, key, { id: pos.id, ordinal: pos.ordinal, bytes, replica }, intervalMs))
        .then(
          (outcome) => {
            lastPublished = Date.now();
            logger.debug({ outcome, id: pos.id }, 'shared checkpoint');
          },
          (err: Error) => logger.warn({ err: err.message }, 'shared checkpoint not published'),
        )
        .finally(() => {
          publishing = false;
        });
    },
    health: () => redisHealth({ connections: connections.states(), lagRecords: stream.lag, stopped: stream.stoppedReason, position: stream.position.id }),
    stop: async () => {
      await stream.close();
      await connections.closeAll();
    },
  };
}
