import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_PATH, loadConfig, publicConfig } from '../src/config';

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
});
