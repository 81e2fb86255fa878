/**
 * The models part: which ensemble serves at start (MODEL_PATH or the version that served before
 * a restart) and the version store behind rollbacks. Holds nothing that needs releasing: the
 * sessions that serve live in the workers.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { EngineConfig } from '../config';
import { loadOnnxModel, readModelFile, type LoadedModel } from '../models/model-loader';
import { DEFAULT_MODEL, ModelRegistry, ONLINE_MODEL } from '../models/registry';
import { VersionStore } from '../models/version-store';
import type { Logger } from '../telemetry/logger';

export interface ModelsPart {
  readonly models: ModelRegistry;
  readonly versions: VersionStore;
  /** Features per row: the model's, or FEATURES on a cold start. */
  readonly features: number;
  /** The model whose outcomes feed the drift monitor. */
  readonly primaryModel: string;
}

export async function startModels(config: EngineConfig, logger: Logger): Promise<ModelsPart> {
  const models = new ModelRegistry();
  const versions = new VersionStore(path.join(config.stateDir, 'models'), config.modelVersionsKeep);
  if (config.modelPath !== null) {
    models.add(await loadServingModel(config, versions, logger));
    logger.info({ model: models.describe(models.get(DEFAULT_MODEL)) }, 'model loaded and validated');
  } else {
    logger.info({ features: config.features }, 'cold start: no ONNX model; serving the online sgd model alone');
  }
  const onnx = models.list.length > 0;
  return { models, versions, features: onnx ? models.features : config.features!, primaryModel: onnx ? DEFAULT_MODEL : ONLINE_MODEL };
}

/**
 * The ensemble to serve at start. The version that served before a restart (from the state
 * directory) keeps serving, unless the MODEL_PATH file changed since it was last deployed: a new
 * file there is a new deployment and takes over (as a new version; the old one stays a rollback
 * target).
 */
async function loadServingModel(config: EngineConfig, store: VersionStore, logger: Logger): Promise<LoadedModel> {
  const opts = { featuresHint: config.features ?? undefined, intraOpNumThreads: config.ortThreads };
  const saved = store.servingVersion(DEFAULT_MODEL);
  const configured = store.configured(DEFAULT_MODEL);
  let bytes: Uint8Array | null = null;
  try {
    bytes = await readModelFile(config.modelPath!);
  } catch (err) {
    if (!saved) throw err;
    logger.warn({ err: (err as Error).message }, 'MODEL_PATH cannot be read; serving the version from the state directory');
  }
  const sha = bytes ? createHash('sha256').update(bytes).digest('hex') : null;
  if (saved && (sha === null || (configured !== null && configured.sha256 === sha))) {
    try {
      const m = await loadOnnxModel(DEFAULT_MODEL, saved.bytes, saved.file, opts);
      logger.info({ version: m.version, file: saved.file }, 'serving the version that served before the restart');
      return m;
    } catch (err) {
      if (!bytes) throw err;
      logger.error({ err: (err as Error).message, file: saved.file }, 'the version that served before the restart does not load; serving MODEL_PATH');
    }
  }
  const m = await loadOnnxModel(DEFAULT_MODEL, bytes!, config.modelPath!, opts);
  await recordDeployment(config.modelPath!, store, m, bytes!, saved?.version ?? null);
  if (saved && saved.version !== m.version) logger.info({ version: m.version, replaced: saved.version }, 'MODEL_PATH holds a new model file: it replaces the version that served before');
  return m;
}

/** MODEL_PATH's model serves now: its bytes become a version, and the store remembers the file. */
async function recordDeployment(source: string, store: VersionStore, m: LoadedModel, bytes: Uint8Array, savedVersion: string | null): Promise<void> {
  await store.save(DEFAULT_MODEL, m.version, bytes, { name: DEFAULT_MODEL, version: m.version, sha256: m.sha256, source, loaded_at: m.loadedAt });
  await store.setServing(
    DEFAULT_MODEL,
    {
      version: m.version,
      previous: savedVersion !== null && savedVersion !== m.version ? savedVersion : store.current(DEFAULT_MODEL)?.previous ?? null,
      at: new Date().toISOString(),
      reason: savedVersion !== null ? 'configured' : 'initial',
      source,
    },
    { path: source, sha256: m.sha256 },
  );
}
