/**
 * A start that fails part-way must release what had started: worker threads, the feedback log's
 * file descriptor, the uWS app. Checked from outside the engine's objects, through what the
 * process itself holds (/proc/self/task and /proc/self/fd), since the failed start returns none.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../src/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/telemetry/logger';
import { startTestEngine, waitFor } from './helpers/engine';

const threads = (): number => readdirSync('/proc/self/task').length;

/** Paths of this process's open files under `dir`. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(path.join('/proc/self/fd', fd));
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed between readdir and readlink
    }
  }
  return out;
}

describe('engine start', () => {
  let running: Engine | null = null;
  const dirs: string[] = [];
  afterAll(async () => {
    await running?.shutdown('test done');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('releases worker threads, the feedback log and the HTTP app when listening fails', async () => {
    running = await startTestEngine();
    // Everything the process keeps for good (libuv's pool, onnxruntime's globals) exists by now.
    const baseline = threads();
    const stateDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-partial-'));
    dirs.push(stateDir);
    const config = loadConfig([], { PORT: String(running.port), HOST: '127.0.0.1', WORKERS: '2', STATE_DIR: stateDir, LOG_LEVEL: 'silent' });
    let started = false;
    const attempt = startEngine(config, createLogger('silent')).then(
      () => {
        started = true;
      },
      (err: { code?: string }) => err,
    );
    // While it starts, its workers and its log exist: the check below is not vacuous.
    await waitFor(() => threads() >= baseline + 2 && openFilesUnder(stateDir).length > 0, 'the second engine to start its workers and open its log');
    const err = await attempt;
    expect(started).toBe(false);
    expect(err).toMatchObject({ code: 'LISTEN_FAILED' });
    expect(openFilesUnder(stateDir)).toEqual([]);
    await waitFor(() => threads() <= baseline, `worker threads to exit (baseline ${baseline}, now ${threads()})`);
    // The engine that held the port is untouched.
    expect(running.health().status).toBe('healthy');
  });
});
