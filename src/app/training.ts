/**
 * The model-lifecycle part: the swapper behind hot swaps, uploads and rollbacks, and, when an
 * ensemble serves, the training runs (API, schedule, drift trigger) that promote through it.
 */
import type { EngineConfig } from '../config';
import { DEFAULT_MODEL } from '../models/registry';
import { ModelSwapper } from '../pool/model-swap';
import { TrainingRuns } from '../retraining/training-runs';
import type { Logger } from '../telemetry/logger';
import type { LearningPart } from './learning';
import type { ModelsPart } from './models';
import type { ObservabilityPart } from './observability';
import type { Part } from './parts';
import type { ServingPart } from './serving';

export interface TrainingPart extends Part {
  readonly swapper: ModelSwapper;
  /** Null on a cold start: there is no ensemble to retrain. */
  readonly training: TrainingRuns | null;
}

export function startTraining(config: EngineConfig, m: ModelsPart, l: LearningPart, s: ServingPart, obs: ObservabilityPart, logger: Logger): TrainingPart {
  const swapper = new ModelSwapper(m.models, s.pool, s.cache, m.versions);
  const training = m.models.has(DEFAULT_MODEL) ? trainingRuns(config, m, l, swapper, obs, logger) : null;
  return {
    name: 'training',
    swapper,
    training,
    // A run still training is aborted; one already promoting finishes, so the pool is not closed
    // under a swap.
    drain: async () => {
      training?.close();
      await training?.idle();
    },
    stop: () => training?.close(),
  };
}

function trainingRuns(config: EngineConfig, m: ModelsPart, l: LearningPart, swapper: ModelSwapper, obs: ObservabilityPart, logger: Logger): TrainingRuns {
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
  });
  l.subscribe({ onDrift: (e) => training.onDrift(e), onApplied: (rows) => training.onExamples(rows) });
  t.setSources({ lastTrainingTimestamp: () => (lastSuccess === null ? [] : [{ modelType: DEFAULT_MODEL, seconds: lastSuccess }]) });
  return training;
}
