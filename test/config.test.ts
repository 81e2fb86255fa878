import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_PATH, loadConfig, publicConfig } from '../src/config';
import { projectRoot } from '../src/paths';

describe('configuration', () => {
  it('has defaults that serve on a 2-core machine', () => {
    const c = loadConfig([], {}, 2);
    expect(c).toMatchObject({ port: 8000, host: '0.0.0.0', modelPath: DEFAULT_MODEL_PATH, workers: 1, features: null, adminToken: null });
    expect(loadConfig([], {}, 8).workers).toBe(7);
  });

  it('reads environment variables, and flags win over them', () => {
    const c = loadConfig(['--port', '9001', '--max-batch-rows=64'], { PORT: '9000', WORKERS: '3', MAX_BATCH_ROWS: '32' });
    expect(c.port).toBe(9001);
    expect(c.workers).toBe(3);
    expect(c.maxBatchRows).toBe(64);
  });

  it('takes MODEL_PATH=none only with FEATURES', () => {
    expect(() => loadConfig([], { MODEL_PATH: 'none' })).toThrow(/FEATURES/);
    const c = loadConfig([], { MODEL_PATH: 'none', FEATURES: '7' });
    expect(c.modelPath).toBeNull();
    expect(c.features).toBe(7);
  });

  it('confines loads by path to MODEL_DIR: MODEL_PATH\'s directory unless set, the bundled models/ on a cold start', () => {
    expect(loadConfig([], {}).modelDir).toBe(path.dirname(DEFAULT_MODEL_PATH));
    expect(loadConfig([], { MODEL_PATH: '/srv/tradeflow/models/v3/ensemble.onnx' }).modelDir).toBe('/srv/tradeflow/models/v3');
    expect(loadConfig([], { MODEL_PATH: 'none', FEATURES: '7' }).modelDir).toBe(path.join(projectRoot(), 'models'));
    expect(loadConfig(['--model-dir', 'relative/dir'], { MODEL_DIR: '/elsewhere' }).modelDir).toBe(path.resolve('relative/dir'));
    expect(loadConfig([], { MODEL_DIR: '/srv/models' }).modelDir).toBe('/srv/models');
    expect(publicConfig(loadConfig([], { MODEL_DIR: '/srv/models' })).MODEL_DIR).toBe('/srv/models');
  });

  it('refuses bad values, unknown flags and flags without values, naming them', () => {
    expect(() => loadConfig([], { PORT: '70000' })).toThrow(/PORT.*between 0 and 65535/);
    expect(() => loadConfig([], { WORKERS: '-1' })).toThrow(/WORKERS.*whole number/);
    expect(() => loadConfig([], { LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig(['--bogus', '1'])).toThrow(/unknown flag "--bogus"/);
    expect(() => loadConfig(['--port'])).toThrow(/--port needs a value/);
    expect(() => loadConfig(['serve'])).toThrow(/unexpected argument/);
  });

  it('never shows the admin token', () => {
    const shown = publicConfig(loadConfig([], { ADMIN_TOKEN: 's3cret' }));
    expect(JSON.stringify(shown)).not.toContain('s3cret');
    expect(shown.ADMIN_TOKEN).toBe('<set>');
  });

  it('checks the settings that only make sense together at load, naming the variable', () => {
    expect(() => loadConfig([], { DRIFT_DETECTORS: 'ddm,bogus' })).toThrow(/DRIFT_DETECTORS names "bogus", which is not a detector \(known: ddm, /);
    expect(() => loadConfig([], { DRIFT_DETECTORS: 'ddm,ddm' })).toThrow(/DRIFT_DETECTORS names "ddm" twice/);
    expect(() => loadConfig([], { DRIFT_DETECTORS: ' , ' })).toThrow(/DRIFT_DETECTORS names no detector/);
    expect(() => loadConfig([], { DRIFT_DETECTORS: 'ddm,adwin', TRAIN_ON_DRIFT: 'kswin' })).toThrow(/TRAIN_ON_DRIFT names "kswin", which is not among DRIFT_DETECTORS \(ddm, adwin\)/);
    expect(() => loadConfig([], { SGD_LEARNING_RATE: 'optimal', SGD_ALPHA: '0' })).toThrow(/SGD_ALPHA.*alpha must be > 0 with learningRate "optimal"/);
    expect(() => loadConfig([], { SGD_LEARNING_RATE: 'constant', SGD_ETA0: '0' })).toThrow(/eta0 must be > 0/);
    const c = loadConfig([], { DRIFT_DETECTORS: 'adwin, ddm', TRAIN_ON_DRIFT: 'adwin', SGD_ETA0: '0.05' });
    expect(c.detectors).toEqual(['adwin', 'ddm']);
    expect(c.sgd).toMatchObject({ eta0: 0.05, learningRate: c.sgdLearningRate, standardize: c.sgdStandardize });
  });

  it('makes tradeflow serve exit 2 on a bad setting, naming it, before anything starts', () => {
    const cli = path.join(projectRoot(), 'dist', 'src', 'cli', 'main.js');
    for (const env of [{ DRIFT_DETECTORS: 'bogus' }, { TRAIN_ON_DRIFT: 'kswin' }, { PORT: 'x' }]) {
      const r = spawnSync(process.execPath, [cli, 'serve'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`invalid configuration: .*${Object.keys(env)[0]}`));
    }
  });
});
