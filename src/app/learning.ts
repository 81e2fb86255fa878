/**
 * The learning part: the drift monitor, the per-model quality windows, the online learner with
 * its durable feedback log (opened and replayed here), and the store of predictions made with an
 * id. Training subscribes to the learner's events when it starts; nothing here waits for it.
 */
import type { EngineConfig } from '../config';
import { DriftMonitor, type DriftEvent } from '../drift/monitor';
import { ChampionSelector } from '../learning/champion';
import { validateArfOptions, type ArfOptions } from '../learning/arf/forest';
import { ARF_MODEL, OnlineLearning } from '../learning/online';
import { PredictionStore, type PredictionIds } from '../learning/prediction-store';
import { RedisPredictionIds } from '../replication/prediction-ids';
import { redisOps } from '../replication/redis-ops';
import { QualityWindow } from '../learning/quality-window';
import { validateSgdOptions } from '../learning/sgd';
import { DEFAULT_MODEL, ONLINE_MODEL } from '../models/registry';
import type { Logger } from '../telemetry/logger';
import type { ModelsPart } from './models';
import type { ObservabilityPart } from './observability';
import type { Part } from './parts';
import { startReplication, type ReplicationPart } from './replication';

export interface LearningListeners {
  onDrift(e: DriftEvent): void;
  onApplied(rows: number): void;
}

export interface LearningPart extends Part {
  readonly drift: DriftMonitor;
  /** Per model name: the sliding window of labelled outcomes behind the quality gauges. */
  readonly quality: Map<string, QualityWindow>;
  readonly learning: OnlineLearning;
  /** Predictions made with an id: local, or with REDIS_URL in Redis, where every replica finds them. */
  readonly store: PredictionIds;
  /** The model a request naming none goes to (SERVE_POLICY), re-evaluated after each applied record. */
  readonly champion: ChampionSelector;
  /** With REDIS_URL: the feedback stream, its entry dispatch and the Redis connections; null without. */
  readonly replication: ReplicationPart | null;
  /** Adds a listener to learning events (applied in log order, on the main thread). */
  subscribe(listener: Partial<LearningListeners>): void;
}

export async function startLearning(config: EngineConfig, m: ModelsPart, obs: ObservabilityPart, logger: Logger): Promise<LearningPart> {
  // Replicated, a detector's warning and drift times are the stream entry's (Redis's clock when it
  // took the entry), so they too are the same on every replica; otherwise the engine's clock.
  const entryClock = { ms: null as number | null };
  const drift = new DriftMonitor({ detectors: config.detectors, realInput: config.driftRealInput, now: () => new Date(entryClock.ms ?? Date.now()) });
  const quality = new Map<string, QualityWindow>();
  const online = config.arfEnabled ? [ONLINE_MODEL, ARF_MODEL] : [ONLINE_MODEL];
  for (const name of [...m.models.list.map((x) => x.name), ...online]) quality.set(name, new QualityWindow(config.qualityWindow, config.qualityMinOutcomes));
  const listeners: Array<Partial<LearningListeners>> = [];
  let replication: ReplicationPart | null = null;
  const learning = await OnlineLearning.open({
    stateDir: config.stateDir,
    sgd: validateSgdOptions({ features: m.features, ...config.sgd }),
    arf: config.arfEnabled ? arfOptions(config, m.features) : null,
    primaryModel: m.primaryModel,
    quality,
    drift,
    replayCapacity: config.replayBufferRows,
    commitIntervalMs: config.feedbackCommitIntervalMs,
    durable: config.feedbackFsync,
    maxPendingBytes: config.feedbackMaxPendingBytes,
    repair: config.feedbackRepair,
    checkpointIntervalMs: config.checkpointIntervalS * 1000,
    ...(config.redisUrl !== null ? { replicated: { key: config.feedbackStream } } : {}),
    onCheckpointWritten: (file, stream) => replication?.onCheckpointWritten(file, stream),
    onDriftEvent: (e) => {
      for (const l of listeners) l.onDrift?.(e);
    },
    onApplied: (rows) => {
      for (const l of listeners) l.onApplied?.(rows);
    },
    onCheckpointError: (err) => logger.error({ err: err.message }, 'checkpoint failed'),
  });
  logRecovery(logger, config, learning);
  if (config.redisUrl !== null) {
    replication = startReplication(config, learning, logger, entryClock);
    obs.telemetry.setSources({ feedbackLag: () => replication!.stream.lag });
  }
  registerOnlineModels(config, m, learning);
  observeLearning(obs, drift, quality, learning, listeners);
  const champion = startChampion(config, m, obs, quality, listeners, logger);
  return {
    name: 'learning',
    drift,
    quality,
    learning,
    champion,
    store: replication
      ? new RedisPredictionIds(redisOps(replication.connections.open('prediction-ids')), config.feedbackStream, config.predictionIdCapacity, config.predictionIdTtlS * 1000)
      : new PredictionStore(config.predictionIdCapacity, config.predictionIdTtlS * 1000),
    replication,
    subscribe: (l) => listeners.push(l),
    // The final checkpoint: what was acknowledged is in it (the log is flushed first). The stream
    // reader stops first, so the checkpoint records where it stopped.
    drain: async () => {
      await replication?.stop();
      await learning.close();
    },
    stop: async () => {
      await replication?.stop();
      await learning.close();
    },
  };
}

/** The online models join the served ones: `sgd` always, `arf` when it is enabled. */
function registerOnlineModels(config: EngineConfig, m: ModelsPart, learning: OnlineLearning): void {
  m.models.addOnline({
    features: m.features,
    weights: learning.weights.buffer,
    version: () => 'u' + learning.learner.updates,
    describe: () => {
      const w = new Float64Array(m.features);
      const bias = learning.learner.effectiveWeights(w);
      return { options: learning.learner.options, updates: learning.learner.updates, weights: Array.from(w), bias, state_dir: config.stateDir };
    },
  });
  const forest = learning.forest;
  if (forest) {
    m.models.addOnline(
      {
        features: m.features,
        weights: learning.sharedForest!.buffer,
        version: () => 'u' + forest.rows,
        describe: () => ({ options: forest.options, ...learning.arfStats(), state_dir: config.stateDir }),
      },
      'arf',
    );
  }
}

/**
 * The default route. Made after every served model is registered: each one with a quality window
 * is a candidate, so a model kind added later joins without a change here.
 */
function startChampion(
  config: EngineConfig,
  m: ModelsPart,
  obs: ObservabilityPart,
  quality: Map<string, QualityWindow>,
  listeners: Array<Partial<LearningListeners>>,
  logger: Logger,
): ChampionSelector {
  const candidates = m.models.list.map((x) => x.name).filter((name) => quality.has(name));
  const champion = new ChampionSelector(quality, {
    policy: config.servePolicy,
    margin: config.championMargin,
    minOutcomes: config.qualityMinOutcomes,
    fallback: m.models.defaultModel.name,
    candidates,
  });
  champion.onSwitch((from, to) => logger.info({ from, to, reason: champion.status().reason }, 'champion changed: requests naming no model now go to ' + to));
  listeners.push({ onApplied: () => champion.evaluate() });
  obs.telemetry.setSources({ champion: () => ({ models: candidates, champion: champion.current, switches: champion.switches }) });
  logger.info({ policy: config.servePolicy, champion: champion.current, candidates, reason: champion.status().reason }, 'default route');
  return champion;
}

function arfOptions(c: EngineConfig, features: number): ArfOptions {
  return validateArfOptions({
    features,
    trees: c.arfTrees,
    seed: c.arfSeed,
    lambda: c.arfLambda,
    gracePeriod: c.arfGracePeriod,
    delta: c.arfDelta,
    tau: c.arfTau,
    splitCriterion: c.arfSplitCriterion,
    leafPrediction: c.arfLeafPrediction,
    maxFeatures: c.arfMaxFeatures,
    maxNodes: c.arfMaxNodes,
    warningDelta: 0.01,
    driftDelta: 0.001,
  });
}

/** What start-up found, and loudly what a repair dropped: acknowledged feedback is gone. */
function logRecovery(logger: Logger, config: EngineConfig, learning: OnlineLearning): void {
  const { log: report, ...recovery } = learning.recovery;
  const cut = report?.truncated ?? null;
  // The online models' options are the checkpoint's when there is one, whatever SGD_* and ARF_* say now.
  const arf = learning.forest?.options ?? null;
  logger.info({ stateDir: config.stateDir, ...recovery, logCut: cut, sgd: learning.learner.options, arf }, 'learning state recovered');
  if (learning.recovery.ignoredLocalCheckpoint) {
    logger.warn({ stateDir: config.stateDir, stream: config.feedbackStream }, 'REDIS_URL is set but the learning checkpoint in STATE_DIR is not of this feedback stream (local-log state): it is not loaded; the state comes from the stream');
  }
  if (cut?.acknowledged) {
    logger.warn(
      { segment: cut.segment, offset: cut.offset, discardedBytes: cut.discardedBytes, reason: cut.reason, copiedTo: cut.copiedTo, discardedSegments: report!.discardedSegments },
      'FEEDBACK_REPAIR: acknowledged feedback was damaged and is dropped from the damage on (copies kept as *.discarded); turn FEEDBACK_REPAIR off again',
    );
  } else if (config.feedbackRepair) {
    logger.warn('FEEDBACK_REPAIR is set but the feedback log needed no repair; turn it off again');
  }
}

function observeLearning(
  obs: ObservabilityPart,
  drift: DriftMonitor,
  quality: Map<string, QualityWindow>,
  learning: OnlineLearning,
  listeners: Array<Partial<LearningListeners>>,
): void {
  const t = obs.telemetry;
  const updateAttrs = { model_type: ONLINE_MODEL };
  t.onlineUpdates.add(0, updateAttrs);
  for (const d of drift.types) for (const severity of ['warning', 'drift']) t.driftDetected.add(0, { detector_type: d, severity });
  listeners.push({
    onDrift: (e) => t.driftDetected.add(1, { detector_type: e.detector, severity: e.severity }),
    onApplied: (rows) => t.onlineUpdates.add(rows, updateAttrs),
  });
  t.setSources({
    quality: () => {
      const out = [];
      for (const [model, w] of quality) {
        const q = w.metrics();
        if (q) out.push({ model, accuracy: q.accuracy, precision: q.precision, recall: q.recall, f1: q.f1 });
      }
      return out;
    },
    driftScores: () => Object.entries(drift.scores()).map(([detector, score]) => ({ detector, score })),
    onlineBufferSize: () => [{ modelType: DEFAULT_MODEL, size: learning.replay.size }],
  });
}
