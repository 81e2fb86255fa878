/**
 * The model-lifecycle part: the swapper behind hot swaps, uploads and rollbacks, and, when an
 * ensemble serves, the training runs (API, schedule, drift trigger) that promote through it.
 *
 * With REDIS_URL, model changes go through the replicas' one model history (published once, a
 * `model` entry in the feedback stream, every replica swapping when it applies it), and training
 * runs only on the replica holding the training lease.
 */
import type { EngineConfig } from '../config';
import { tfError } from '../errors';
import type { TrainingGate } from '../http/train';
import { DEFAULT_MODEL } from '../models/registry';
import { ModelSwapper, type ModelChanges } from '../pool/model-swap';
import { KIND_MODEL, ModelHistory } from '../replication/model-history';
import { redisOps, type RedisOps } from '../replication/redis-ops';
import { TrainingLease } from '../replication/training-lease';
import { TrainingRuns } from '../retraining/training-runs';
import type { Logger } from '../telemetry/logger';
import type { LearningPart } from './learning';
import type { ModelsPart } from './models';
import type { ObservabilityPart } from './observability';
import type { Part } from './parts';
import type { ServingPart } from './serving';

export interface TrainingPart extends Part {
  /** This process's hot swap. */
  readonly swapper: ModelSwapper;
  /** How routes change a model: the swapper, or with REDIS_URL the replicas' model history. */
  readonly changes: ModelChanges;
  /** Null on a cold start: there is no ensemble to retrain. */
  readonly training: TrainingRuns | null;
  /** With REDIS_URL: who may train (the lease holder). */
  readonly lease: TrainingLease | null;
  /** With REDIS_URL: what POST /train asks before it starts a run. */
  readonly trainingGate: TrainingGate | null;
}

export function startTraining(config: EngineConfig, m: ModelsPart, l: LearningPart, s: ServingPart, obs: ObservabilityPart, logger: Logger): TrainingPart {
  const swapper = new ModelSwapper(m.models, s.pool, s.cache, m.versions);
  const rep = l.replication;
  const ops = rep ? redisOps(rep.connections.open('model-history')) : null;
  const history = rep && ops ? new ModelHistory({ redis: ops, stream: rep.stream, namespace: config.feedbackStream, swapper, versions: m.versions, models: m.models, logger, keep: config.modelVersionsKeep }) : null;
  if (rep && history) rep.dispatch.handle(KIND_MODEL, (e) => history.apply(e));
  const changes: ModelChanges = history ?? swapper;
  const lease = ops && m.models.has(DEFAULT_MODEL) ? new TrainingLease(ops, `${config.feedbackStream}:train-lease`, config.trainLeaseS * 1000, logger) : null;
  const training = m.models.has(DEFAULT_MODEL) ? trainingRuns(config, m, l, changes, obs, logger, lease) : null;
  if (lease && training) {
    lease.onChange((held) => {
      if (!held) training.abortRunning('this replica lost the training lease');
    });
    lease.start();
  }
  // A replica whose learning state comes from a shared checkpoint has not read the model changes
  // before it: it serves the version that served at that position, before it reads on.
  if (rep && history && m.models.has(DEFAULT_MODEL)) {
    rep.onBootstrap((position) =>
      history.catchUp(DEFAULT_MODEL, position).catch((err: Error) => logger.error({ err: err.message, position }, 'model history: could not serve the version of the shared checkpoint; the next model change catches up')),
    );
  }
  return {
    name: 'training',
    swapper,
    changes,
    training,
    lease,
    trainingGate: lease && ops ? leaseGate(lease, ops) : null,
    // A run still training is aborted; one already promoting finishes, so the pool is not closed
    // under a swap. The lease is given up, so another replica trains at once.
    drain: async () => {
      training?.close();
      await training?.idle();
      await lease?.stop();
    },
    stop: async () => {
      training?.close();
      await lease?.stop();
    },
  };
}

/** POST /train starts a run here only if this replica holds the lease (or takes it now, free). */
function leaseGate(lease: TrainingLease, ops: RedisOps): TrainingGate {
  return async () => {
    if (!lease.held && !ops.isReady) throw tfError('FEEDBACK_STREAM_UNAVAILABLE', 'Redis is unreachable: the training lease cannot be checked, and no run was started');
    const st = lease.held ? { held: true, holder: lease.holder } : await lease.tick();
    if (!st.held) throw tfError('NOT_TRAINING_LEADER', { holder: st.holder });
  };
}

function trainingRuns(config: EngineConfig, m: ModelsPart, l: LearningPart, swapper: ModelChanges, obs: ObservabilityPart, logger: Logger, lease: TrainingLease | null): TrainingRuns {
  const t = obs.telemetry;
  const featureNames = m.models.get(DEFAULT_MODEL).onnx!.info.metadata['feature_names']?.split(',');
  t.trainable(DEFAULT_MODEL);
  let lastSuccess: number | null = null;
  const training = new TrainingRuns({
    models: m.models,
    swapper,
    replay: l.learning.replay,
    logger,
    metrics: {
      runFinished: (status, seconds) => {
        t.recordTraining(DEFAULT_MODEL, status, seconds);
        if (status === 'success') lastSuccess = Date.now() / 1000;
      },
    },
    settings: { minRows: config.trainMinRows, margin: config.trainMargin, holdoutFraction: config.trainHoldout, recentRows: config.trainRecentRows },
    ...(featureNames && featureNames.length === m.features ? { featureNames } : {}),
    intervalMs: config.trainIntervalMs,
    driftDetector: config.trainOnDrift === 'off' ? null : config.trainOnDrift,
    driftMinRows: config.trainDriftMinRows,
    historySize: 100,
    ...(lease ? { mayTrain: () => lease.held } : {}),
  });
  l.subscribe({ onDrift: (e) => training.onDrift(e), onApplied: (rows) => training.onExamples(rows) });
  t.setSources({ lastTrainingTimestamp: () => (lastSuccess === null ? [] : [{ modelType: DEFAULT_MODEL, seconds: lastSuccess }]) });
  return training;
}
