/**
 * Engine configuration: environment variables with CLI flag equivalents (flags win), validated
 * once at start. Names are fixed by SPEC §7; everything else is listed in the README.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { DetectorType } from './drift/detector';
import { DETECTOR_TYPES, isDetectorType } from './drift/registry';
import { tfError, type TradeflowError } from './errors';
import { DEFAULT_LINGER } from './http/linger';
import { projectRoot } from './paths';
import { DEFAULT_ARF_OPTIONS } from './learning/arf/forest';
import { DEFAULT_SGD_OPTIONS, validateSgdOptions, type SgdOptions } from './learning/sgd';

export interface EngineConfig {
  port: number;
  host: string;
  /** Path of the ensemble ONNX model, or null for a cold start (`MODEL_PATH=none`). */
  modelPath: string | null;
  /** Feature count when the model does not fix it (or there is no model). */
  features: number | null;
  workers: number;
  httpThreads: number;
  batchesPerWorker: number;
  maxBatchRows: number;
  maxQueueDelayUs: number;
  maxQueueRows: number;
  maxRequestRows: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  lingerMs: number;
  lingerMaxBytes: number;
  stateDir: string;
  adminToken: string | null;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  ortThreads: number;
  shutdownTimeoutMs: number;
  cacheCapacity: number;
  cacheMaxRows: number;
  qualityWindow: number;
  qualityMinOutcomes: number;
  servePolicy: 'fixed' | 'champion';
  championMargin: number;
  metricsEnabled: boolean;
  healthRestartWindowS: number;
  batchTimeoutMs: number;
  feedbackCommitIntervalMs: number;
  feedbackFsync: boolean;
  feedbackMaxPendingBytes: number;
  feedbackRepair: boolean;
  checkpointIntervalS: number;
  replayBufferRows: number;
  /** Redis for the shared feedback stream (REDIS_URL), or null: the local feedback log. */
  redisUrl: string | null;
  feedbackStream: string;
  sharedCheckpointIntervalS: number;
  predictionIdCapacity: number;
  predictionIdTtlS: number;
  sgdLearningRate: 'constant' | 'optimal' | 'invscaling';
  sgdAlpha: number;
  sgdEta0: number;
  sgdPowerT: number;
  sgdStandardize: boolean;
  arfEnabled: boolean;
  arfTrees: number;
  arfSeed: number;
  arfLambda: number;
  arfGracePeriod: number;
  arfDelta: number;
  arfTau: number;
  arfSplitCriterion: 'info_gain' | 'gini';
  arfLeafPrediction: 'nba' | 'mc';
  arfMaxFeatures: number;
  arfMaxNodes: number;
  driftDetectors: string;
  driftRealInput: 'error' | 'proba';
  modelVersionsKeep: number;
  modelUploadMaxBytes: number;
  /** The only directory POST /models/{name}/load {"path"} may read from (default: MODEL_PATH's). */
  modelDir: string;
  trainIntervalMs: number;
  trainMinRows: number;
  trainMargin: number;
  trainHoldout: number;
  trainOnDrift: string;
  trainDriftMinRows: number;
  trainRecentRows: number;
  /** With REDIS_URL: how long the training lease lasts unless its holder renews it. */
  trainLeaseS: number;
  /** Derived and checked at load: DRIFT_DETECTORS as a list of known detector types. */
  detectors: DetectorType[];
  /** Derived and checked at load: the SGD_* settings as the online learner takes them. */
  sgd: Omit<SgdOptions, 'features'>;
}

type OptionKey = Exclude<keyof EngineConfig, 'detectors' | 'sgd'>;

type Kind = 'int' | 'float' | 'string' | 'path' | 'model' | 'level' | 'bool' | 'choice' | 'duration';

interface Option {
  key: OptionKey;
  env: string;
  flag: string;
  kind: Kind;
  min?: number;
  max?: number;
  secret?: boolean;
  choices?: readonly string[];
  help: string;
  default: (cpus: number) => EngineConfig[keyof EngineConfig];
}

export const DEFAULT_MODEL_PATH = path.join(projectRoot(), 'models', 'ensemble.onnx');

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** One row per setting: the single source for parsing, `--help` and the README table. */
export const OPTIONS: readonly Option[] = [
  { key: 'port', env: 'PORT', flag: '--port', kind: 'int', min: 0, max: 65535, help: 'HTTP port (0 picks a free one)', default: () => 8000 },
  { key: 'host', env: 'HOST', flag: '--host', kind: 'string', help: 'address to listen on', default: () => '0.0.0.0' },
  { key: 'modelPath', env: 'MODEL_PATH', flag: '--model-path', kind: 'model', help: 'ensemble ONNX model file, or "none" for a cold start', default: () => DEFAULT_MODEL_PATH },
  { key: 'features', env: 'FEATURES', flag: '--features', kind: 'int', min: 1, max: 65536, help: 'features per row when the model does not fix it', default: () => null },
  { key: 'workers', env: 'WORKERS', flag: '--workers', kind: 'int', min: 1, max: 256, help: 'inference worker threads (default: cores - 1, at least 1)', default: (cpus) => Math.max(1, cpus - 1) },
  { key: 'httpThreads', env: 'HTTP_THREADS', flag: '--http-threads', kind: 'int', min: 1, max: 64, help: 'HTTP front-end threads, each a uWS app on the same port feeding the one batcher (1: the main thread serves HTTP itself)', default: () => 1 },
  { key: 'batchesPerWorker', env: 'BATCHES_PER_WORKER', flag: '--batches-per-worker', kind: 'int', min: 1, max: 2, help: 'batches in flight per worker (2: the next batch waits in the worker while one runs)', default: () => 2 },
  { key: 'maxBatchRows', env: 'MAX_BATCH_ROWS', flag: '--max-batch-rows', kind: 'int', min: 1, max: 65536, help: 'rows at which a batch is sent at once', default: () => 256 },
  { key: 'maxQueueDelayUs', env: 'MAX_QUEUE_DELAY_US', flag: '--max-queue-delay-us', kind: 'int', min: 0, max: 10_000_000, help: 'while every worker is busy, how long a partial batch keeps taking rows', default: () => 2000 },
  { key: 'maxQueueRows', env: 'MAX_QUEUE_ROWS', flag: '--max-queue-rows', kind: 'int', min: 1, max: 100_000_000, help: 'rows waiting for a worker above which requests get 503', default: () => 16384 },
  { key: 'maxRequestRows', env: 'MAX_REQUEST_ROWS', flag: '--max-request-rows', kind: 'int', min: 1, max: 1_000_000, help: 'rows one request may carry (413 above)', default: () => 4096 },
  { key: 'requestTimeoutMs', env: 'REQUEST_TIMEOUT_MS', flag: '--request-timeout-ms', kind: 'int', min: 1, max: 3_600_000, help: 'default deadline for a prediction waiting in the queue (504 after)', default: () => 10_000 },
  { key: 'maxBodyBytes', env: 'MAX_BODY_BYTES', flag: '--max-body-bytes', kind: 'int', min: 64, max: 1 << 30, help: 'largest request body accepted (413 above)', default: () => 4 * 1024 * 1024 },
  { key: 'lingerMs', env: 'LINGER_MS', flag: '--linger-ms', kind: 'int', min: 0, max: 600_000, help: 'after an early refusal (413, 415, 401/403, 404/405, 503) of a body still arriving, how long the rest is read and dropped before the connection is closed, so the client reads the answer (0: close at once)', default: () => DEFAULT_LINGER.ms },
  { key: 'lingerMaxBytes', env: 'LINGER_MAX_BYTES', flag: '--linger-max-bytes', kind: 'int', min: 0, max: 2 ** 31 - 1, help: 'most bytes of a refused body read and dropped before the connection is closed anyway', default: () => DEFAULT_LINGER.maxBytes },
  { key: 'stateDir', env: 'STATE_DIR', flag: '--state-dir', kind: 'path', help: 'directory for durable state', default: () => path.resolve('state') },
  { key: 'adminToken', env: 'ADMIN_TOKEN', flag: '--admin-token', kind: 'string', secret: true, help: 'bearer token for mutating endpoints (unset: loopback clients only)', default: () => null },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: '--log-level', kind: 'level', help: `one of ${LEVELS.join(', ')}`, default: () => 'info' },
  { key: 'ortThreads', env: 'ORT_THREADS', flag: '--ort-threads', kind: 'int', min: 1, max: 64, help: 'onnxruntime intra-op threads per worker', default: () => 1 },
  { key: 'cacheCapacity', env: 'CACHE_CAPACITY', flag: '--cache-capacity', kind: 'int', min: 0, max: 10_000_000, help: 'prediction cache entries (0 disables the cache)', default: () => 10_000 },
  { key: 'cacheMaxRows', env: 'CACHE_MAX_ROWS', flag: '--cache-max-rows', kind: 'int', min: 1, max: 65536, help: 'requests with more rows than this bypass the cache', default: () => 1 },
  { key: 'qualityWindow', env: 'QUALITY_WINDOW', flag: '--quality-window', kind: 'int', min: 1, max: 10_000_000, help: 'labelled outcomes in the sliding window of the quality gauges', default: () => 1000 },
  { key: 'qualityMinOutcomes', env: 'QUALITY_MIN_OUTCOMES', flag: '--quality-min-outcomes', kind: 'int', min: 1, max: 10_000_000, help: 'outcomes needed before quality gauges are exported, and by every candidate before SERVE_POLICY=champion picks by accuracy', default: () => 100 },
  { key: 'servePolicy', env: 'SERVE_POLICY', flag: '--serve-policy', kind: 'choice', choices: ['fixed', 'champion'], help: 'which model answers a request naming none: fixed (ensemble, or sgd on a cold start) or champion (the best rolling accuracy over QUALITY_WINDOW)', default: () => 'champion' },
  { key: 'championMargin', env: 'CHAMPION_MARGIN', flag: '--champion-margin', kind: 'float', min: 0, max: 1, help: 'lead in rolling accuracy a challenger needs to become champion (hysteresis)', default: () => 0.02 },
  { key: 'metricsEnabled', env: 'METRICS_ENABLED', flag: '--metrics-enabled', kind: 'bool', help: 'record request and batch metrics (false: only for measuring their cost)', default: () => true },
  { key: 'batchTimeoutMs', env: 'BATCH_TIMEOUT_MS', flag: '--batch-timeout-ms', kind: 'int', min: 10, max: 3_600_000, help: 'a batch running longer than this in a worker fails (500 BATCH_TIMEOUT) and the worker is replaced', default: () => 5000 },
  { key: 'healthRestartWindowS', env: 'HEALTH_RESTART_WINDOW_S', flag: '--health-restart-window-s', kind: 'int', min: 1, max: 86_400, help: 'how long a worker restart keeps the model component degraded', default: () => 60 },
  { key: 'feedbackCommitIntervalMs', env: 'FEEDBACK_COMMIT_INTERVAL_MS', flag: '--feedback-commit-interval-ms', kind: 'int', min: 0, max: 10_000, help: 'how long a group of feedback waits for more before its fsync (0: right after the previous fsync)', default: () => 0 },
  { key: 'feedbackFsync', env: 'FEEDBACK_FSYNC', flag: '--feedback-fsync', kind: 'bool', help: 'fsync feedback before answering 202 (false: only for measuring the fsync cost; acknowledged feedback can then be lost)', default: () => true },
  { key: 'feedbackMaxPendingBytes', env: 'FEEDBACK_MAX_PENDING_BYTES', flag: '--feedback-max-pending-bytes', kind: 'int', min: 1024, max: 1 << 30, help: 'feedback bytes waiting for their fsync above which /learn answers 503', default: () => 32 * 1024 * 1024 },
  { key: 'feedbackRepair', env: 'FEEDBACK_REPAIR', flag: '--feedback-repair', kind: 'bool', help: 'start even though acknowledged records in the feedback log are damaged: keep the records before the damage, set the rest aside (*.discarded); for one start, then turn it off again', default: () => false },
  { key: 'checkpointIntervalS', env: 'CHECKPOINT_INTERVAL_S', flag: '--checkpoint-interval-s', kind: 'int', min: 0, max: 86_400, help: 'seconds between checkpoints of the learning state (0: only at shutdown)', default: () => 60 },
  { key: 'replayBufferRows', env: 'REPLAY_BUFFER_ROWS', flag: '--replay-buffer-rows', kind: 'int', min: 0, max: 10_000_000, help: 'latest labelled rows kept for retraining', default: () => 50_000 },
  { key: 'redisUrl', env: 'REDIS_URL', flag: '--redis-url', kind: 'string', secret: true, help: 'Redis (redis://[user:password@]host:port[/db]) holding the feedback stream every replica reads; unset: the local feedback log', default: () => null },
  { key: 'feedbackStream', env: 'FEEDBACK_STREAM', flag: '--feedback-stream', kind: 'string', help: 'key of the Redis stream of feedback (with REDIS_URL)', default: () => 'tradeflow:feedback' },
  { key: 'sharedCheckpointIntervalS', env: 'SHARED_CHECKPOINT_INTERVAL_S', flag: '--shared-checkpoint-interval-s', kind: 'int', min: 0, max: 86_400, help: 'with REDIS_URL: least seconds between checkpoints published to Redis (new replicas start from the latest; the stream is trimmed below the one before it)', default: () => 300 },
  { key: 'predictionIdCapacity', env: 'PREDICTION_ID_CAPACITY', flag: '--prediction-id-capacity', kind: 'int', min: 0, max: 10_000_000, help: 'predictions with an id kept for later feedback (oldest evicted)', default: () => 100_000 },
  { key: 'predictionIdTtlS', env: 'PREDICTION_ID_TTL_S', flag: '--prediction-id-ttl-s', kind: 'int', min: 1, max: 30 * 86_400, help: 'how long feedback may name a prediction by id', default: () => 3600 },
  { key: 'sgdLearningRate', env: 'SGD_LEARNING_RATE', flag: '--sgd-learning-rate', kind: 'choice', choices: ['constant', 'optimal', 'invscaling'], help: 'online model learning-rate schedule (scikit-learn SGDClassifier meanings)', default: () => DEFAULT_SGD_OPTIONS.learningRate },
  { key: 'sgdAlpha', env: 'SGD_ALPHA', flag: '--sgd-alpha', kind: 'float', min: 0, max: 1e3, help: 'online model L2 strength (also drives the optimal schedule)', default: () => DEFAULT_SGD_OPTIONS.alpha },
  { key: 'sgdEta0', env: 'SGD_ETA0', flag: '--sgd-eta0', kind: 'float', min: 0, max: 1e3, help: 'online model initial / constant learning rate', default: () => DEFAULT_SGD_OPTIONS.eta0 },
  { key: 'sgdPowerT', env: 'SGD_POWER_T', flag: '--sgd-power-t', kind: 'float', min: 0, max: 10, help: 'exponent of the invscaling schedule', default: () => DEFAULT_SGD_OPTIONS.powerT },
  { key: 'sgdStandardize', env: 'SGD_STANDARDIZE', flag: '--sgd-standardize', kind: 'bool', help: 'standardize features with running mean and variance before learning', default: () => DEFAULT_SGD_OPTIONS.standardize },
  { key: 'arfEnabled', env: 'ARF_ENABLED', flag: '--arf-enabled', kind: 'bool', help: 'serve and learn the adaptive random forest "arf" beside sgd', default: () => true },
  { key: 'arfTrees', env: 'ARF_TREES', flag: '--arf-trees', kind: 'int', min: 1, max: 100, help: 'trees in the arf forest', default: () => DEFAULT_ARF_OPTIONS.trees },
  { key: 'arfSeed', env: 'ARF_SEED', flag: '--arf-seed', kind: 'int', min: 0, max: 4294967295, help: 'seed of the arf forest (bagging weights, feature subsets): same seed and feedback, same forest', default: () => DEFAULT_ARF_OPTIONS.seed },
  { key: 'arfLambda', env: 'ARF_LAMBDA', flag: '--arf-lambda', kind: 'float', min: 0.1, max: 50, help: 'mean of the Poisson weight each arf tree gives a row (online bagging)', default: () => DEFAULT_ARF_OPTIONS.lambda },
  { key: 'arfGracePeriod', env: 'ARF_GRACE_PERIOD', flag: '--arf-grace-period', kind: 'int', min: 1, max: 1_000_000, help: 'weight an arf leaf sees between split attempts', default: () => DEFAULT_ARF_OPTIONS.gracePeriod },
  { key: 'arfDelta', env: 'ARF_DELTA', flag: '--arf-delta', kind: 'float', min: 1e-12, max: 0.5, help: 'arf split confidence (Hoeffding bound delta)', default: () => DEFAULT_ARF_OPTIONS.delta },
  { key: 'arfTau', env: 'ARF_TAU', flag: '--arf-tau', kind: 'float', min: 0, max: 1, help: 'arf tie threshold: split when the Hoeffding bound is below it', default: () => DEFAULT_ARF_OPTIONS.tau },
  { key: 'arfSplitCriterion', env: 'ARF_SPLIT_CRITERION', flag: '--arf-split-criterion', kind: 'choice', choices: ['info_gain', 'gini'], help: 'arf split criterion', default: () => DEFAULT_ARF_OPTIONS.splitCriterion },
  { key: 'arfLeafPrediction', env: 'ARF_LEAF_PREDICTION', flag: '--arf-leaf-prediction', kind: 'choice', choices: ['nba', 'mc'], help: 'arf leaves: naive Bayes adaptive or majority class', default: () => DEFAULT_ARF_OPTIONS.leafPrediction },
  { key: 'arfMaxFeatures', env: 'ARF_MAX_FEATURES', flag: '--arf-max-features', kind: 'int', min: 0, max: 65536, help: 'features each arf leaf monitors, drawn at random (0: round(sqrt(F)))', default: () => DEFAULT_ARF_OPTIONS.maxFeatures },
  { key: 'arfMaxNodes', env: 'ARF_MAX_NODES', flag: '--arf-max-nodes', kind: 'int', min: 1, max: 65535, help: 'most nodes per arf tree (bounds its shared memory); a leaf that would pass it stops splitting', default: () => DEFAULT_ARF_OPTIONS.maxNodes },
  { key: 'driftDetectors', env: 'DRIFT_DETECTORS', flag: '--drift-detectors', kind: 'string', help: 'comma-separated drift detectors watching the primary model', default: () => 'ddm,eddm,hddm_a,hddm_w,adwin,page_hinkley' },
  { key: 'driftRealInput', env: 'DRIFT_REAL_INPUT', flag: '--drift-real-input', kind: 'choice', choices: ['error', 'proba'], help: 'what real-valued detectors get: the error bit, or 1 - p(actual class)', default: () => 'error' },
  { key: 'modelVersionsKeep', env: 'MODEL_VERSIONS_KEEP', flag: '--model-versions-keep', kind: 'int', min: 1, max: 1000, help: 'model versions kept in the state directory per model (for rollback)', default: () => 5 },
  { key: 'modelUploadMaxBytes', env: 'MODEL_UPLOAD_MAX_BYTES', flag: '--model-upload-max-bytes', kind: 'int', min: 1024, max: 2 ** 31 - 1, help: 'largest ONNX file POST /models/{name}/load takes', default: () => 64 * 1024 * 1024 },
  { key: 'modelDir', env: 'MODEL_DIR', flag: '--model-dir', kind: 'path', help: 'the only directory whose model files POST /models/{name}/load {"path"} may load (default: the directory of MODEL_PATH)', default: () => null },
  { key: 'trainIntervalMs', env: 'TRAIN_INTERVAL', flag: '--train-interval', kind: 'duration', help: 'time between scheduled training runs (e.g. 24h, 30m, 90s; 0 disables)', default: () => 24 * 3600 * 1000 },
  { key: 'trainMinRows', env: 'TRAIN_MIN_ROWS', flag: '--train-min-rows', kind: 'int', min: 10, max: 100_000_000, help: 'labelled rows a training run needs (scheduled runs are skipped below)', default: () => 200 },
  { key: 'trainMargin', env: 'TRAIN_MARGIN', flag: '--train-margin', kind: 'float', min: 0, max: 1, help: 'a candidate is promoted unless its holdout accuracy is lower than the serving model\'s by more than this', default: () => 0.01 },
  { key: 'trainHoldout', env: 'TRAIN_HOLDOUT', flag: '--train-holdout', kind: 'float', min: 0.01, max: 0.9, help: 'share of the buffer (the most recent rows) held out to compare candidate and serving model', default: () => 0.2 },
  { key: 'trainOnDrift', env: 'TRAIN_ON_DRIFT', flag: '--train-on-drift', kind: 'string', help: 'detector whose drift triggers a training run on the rows seen since ("off" disables)', default: () => 'off' },
  { key: 'trainDriftMinRows', env: 'TRAIN_DRIFT_MIN_ROWS', flag: '--train-drift-min-rows', kind: 'int', min: 10, max: 100_000_000, help: 'rows needed after a drift before the drift-triggered run', default: () => 500 },
  { key: 'trainRecentRows', env: 'TRAIN_RECENT_ROWS', flag: '--train-recent-rows', kind: 'int', min: 0, max: 100_000_000, help: 'a training run also trains a candidate on only this many most recent training rows; the holdout picks (0: whole buffer only)', default: () => 5000 },
  { key: 'trainLeaseS', env: 'TRAIN_LEASE_S', flag: '--train-lease-s', kind: 'int', min: 1, max: 3600, help: 'with REDIS_URL: seconds the training lease lasts unless renewed (every third of it); a dead holder\'s lease moves after at most this', default: () => 15 },
  { key: 'shutdownTimeoutMs', env: 'SHUTDOWN_TIMEOUT_MS', flag: '--shutdown-timeout-ms', kind: 'int', min: 0, max: 600_000, help: 'bound on the whole shutdown after SIGTERM (drain, training abort, final checkpoint); exit 3 when reached', default: () => 10_000 },
];

function invalid(message: string): TradeflowError {
  return tfError('CONFIG_INVALID', message);
}

function parseValue(opt: Option, raw: string, source: string): EngineConfig[keyof EngineConfig] {
  const where = `${source} (${opt.env} / ${opt.flag})`;
  switch (opt.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) throw invalid(`${where} must be a whole number, got "${raw}"`);
      const n = Number(raw.trim());
      if ((opt.min !== undefined && n < opt.min) || (opt.max !== undefined && n > opt.max)) {
        throw invalid(`${where} must be between ${opt.min} and ${opt.max}, got ${n}`);
      }
      return n;
    }
    case 'float': {
      const n = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(n)) throw invalid(`${where} must be a number, got "${raw}"`);
      if ((opt.min !== undefined && n < opt.min) || (opt.max !== undefined && n > opt.max)) {
        throw invalid(`${where} must be between ${opt.min} and ${opt.max}, got ${n}`);
      }
      return n;
    }
    case 'duration': {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(raw);
      if (!m) throw invalid(`${where} must be a duration such as 24h, 30m, 90s or 500ms (0 disables), got "${raw}"`);
      const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
      return Math.round(Number(m[1]) * unit);
    }
    case 'choice':
      if (!opt.choices!.includes(raw)) throw invalid(`${where} must be one of ${opt.choices!.join(', ')}, got "${raw}"`);
      return raw as never;
    case 'string':
      if (raw.length === 0) throw invalid(`${where} must not be empty`);
      return raw;
    case 'path':
      if (raw.length === 0) throw invalid(`${where} must not be empty`);
      return path.resolve(raw);
    case 'model':
      if (raw.length === 0) throw invalid(`${where} must not be empty`);
      return raw.toLowerCase() === 'none' ? null : path.resolve(raw);
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      throw invalid(`${where} must be true or false, got "${raw}"`);
    }
    case 'level':
      if (!(LEVELS as readonly string[]).includes(raw)) throw invalid(`${where} must be one of ${LEVELS.join(', ')}, got "${raw}"`);
      return raw as EngineConfig['logLevel'];
  }
}

/** `--flag value` and `--flag=value`, every flag known and given a value; nothing else. */
function parseFlags(argv: readonly string[]): Map<string, string> {
  const options = Object.fromEntries(OPTIONS.map((o) => [o.flag.slice(2), { type: 'string' as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw invalid(flagError(err as Error & { code?: string }));
  }
  const flags = new Map<string, string>();
  for (const [name, value] of Object.entries(values)) if (typeof value === 'string') flags.set('--' + name, value);
  return flags;
}

/** parseArgs's messages name the flag but speak of "options"; say it the way --help does. */
function flagError(err: Error & { code?: string }): string {
  const flag = /'(-[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag "${flag}" (see --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `flag ${flag} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${/'([^']*)'/.exec(err.message)?.[1] ?? ''}"`;
    default:
      return err.message;
  }
}

export function loadConfig(argv: readonly string[] = [], env: NodeJS.ProcessEnv = process.env, cpus = os.cpus().length): EngineConfig {
  const flags = parseFlags(argv);
  const config = {} as Record<OptionKey, unknown>;
  for (const opt of OPTIONS) {
    const flag = flags.get(opt.flag);
    const fromEnv = env[opt.env];
    if (flag !== undefined) config[opt.key] = parseValue(opt, flag, `flag ${opt.flag}`);
    else if (fromEnv !== undefined && fromEnv !== '') config[opt.key] = parseValue(opt, fromEnv, `environment variable ${opt.env}`);
    else config[opt.key] = opt.default(cpus);
  }
  const c = config as unknown as EngineConfig;
  // A cold start has no MODEL_PATH: loads by path then come from the bundled models/ folder.
  c.modelDir ??= path.dirname(c.modelPath ?? DEFAULT_MODEL_PATH);
  checkCombinations(c);
  c.detectors = detectorList(c);
  c.sgd = sgdSettings(c);
  return c;
}

function checkCombinations(c: EngineConfig): void {
  if (c.qualityMinOutcomes > c.qualityWindow) {
    throw invalid(`QUALITY_MIN_OUTCOMES (${c.qualityMinOutcomes}) cannot exceed QUALITY_WINDOW (${c.qualityWindow})`);
  }
  if (c.modelPath === null && c.features === null) {
    throw invalid('MODEL_PATH=none (cold start) needs FEATURES=F, the number of features per row');
  }
  if (c.redisUrl !== null) checkRedisUrl(c.redisUrl);
  if (c.feedbackStream.trim() === '') throw invalid('FEEDBACK_STREAM must name a key');
}

/** The URL may hold a password: the message never repeats it. */
function checkRedisUrl(raw: string): void {
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    /* reported below */
  }
  if (url === null || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw invalid(`REDIS_URL must look like redis://[user:password@]host[:port][/db] (or rediss:// for TLS); got a value${url ? ` with scheme "${url.protocol}"` : ' that is not a URL'}`);
  }
}

function detectorList(c: EngineConfig): DetectorType[] {
  const names = c.driftDetectors.split(',').map((d) => d.trim()).filter((d) => d !== '');
  if (names.length === 0) throw invalid('DRIFT_DETECTORS names no detector');
  const out: DetectorType[] = [];
  for (const name of names) {
    if (!isDetectorType(name)) throw invalid(`DRIFT_DETECTORS names "${name}", which is not a detector (known: ${DETECTOR_TYPES.join(', ')})`);
    // Metrics are labelled by detector_type alone, so each type may appear once.
    if (out.includes(name)) throw invalid(`DRIFT_DETECTORS names "${name}" twice`);
    out.push(name);
  }
  if (c.trainOnDrift !== 'off' && !(out as string[]).includes(c.trainOnDrift)) {
    throw invalid(`TRAIN_ON_DRIFT names "${c.trainOnDrift}", which is not among DRIFT_DETECTORS (${out.join(', ')})`);
  }
  return out;
}

/** The SGD settings checked together (e.g. the optimal schedule needs alpha > 0). */
function sgdSettings(c: EngineConfig): Omit<SgdOptions, 'features'> {
  const settings = { learningRate: c.sgdLearningRate, alpha: c.sgdAlpha, eta0: c.sgdEta0, powerT: c.sgdPowerT, standardize: c.sgdStandardize };
  try {
    const { features: _features, ...checked } = validateSgdOptions({ features: c.features ?? 1, ...settings });
    return checked;
  } catch (err) {
    throw invalid(`the online model settings (SGD_LEARNING_RATE, SGD_ALPHA, SGD_ETA0, SGD_POWER_T) do not fit together: ${(err as Error).message}`);
  }
}

/** The configuration without secrets, for logs and /monitoring/system/info. */
export function publicConfig(c: EngineConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const opt of OPTIONS) {
    const v = c[opt.key];
    out[opt.env] = opt.secret ? (v === null ? null : '<set>') : v;
  }
  return out;
}

export function configHelp(): string {
  const rows = OPTIONS.map((o) => {
    const d = o.default(os.cpus().length);
    const shown = o.key === 'modelPath' ? 'models/ensemble.onnx' : o.key === 'stateDir' ? './state' : o.key === 'modelDir' ? "MODEL_PATH's directory" : d === null ? '(unset)' : String(d);
    return `  ${(o.flag + ' <v>').padEnd(26)} ${o.env.padEnd(20)} ${o.help} [default: ${shown}]`;
  });
  return rows.join('\n');
}
