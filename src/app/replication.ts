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
  health(): ComponentHealth;
}

export function startReplication(config: EngineConfig, learning: OnlineLearning, logger: Logger): ReplicationPart {
  const key = config.feedbackStream;
  const connections = new RedisConnections(config.redisUrl!, logger);
  const dispatch = new EntryDispatch().handle(KIND_LEARNING, (e) => learning.applyReplicated(e.fields.get(FIELD_DATA) ?? Buffer.alloc(0)));
  const local = learning.localStreamPosition;
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
      return { id: cp.id, ordinal: cp.ordinal };
    },
  });
  learning.attachStream({ key, append: (payload) => stream.append(KIND_LEARNING, { [FIELD_DATA]: payload }), position: () => stream.position, stats: () => stream.stats() });
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
