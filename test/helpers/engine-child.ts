/**
 * The engine as its own process (`node dist/src/cli/main.js serve`), for tests that kill it with
 * -9, restart it on the same state directory, or watch it refuse to start: the real CLI, server,
 * workers and files. Ports come from the OS (PORT=0; the port is read from the start-up log line).
 */
import * as path from 'node:path';
import { startChild, stopChild, type Child } from '../../bench/lib/procs';
import { waitFor } from './engine';

export const CLI = path.join(__dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

const started: Child[] = [];

/** Starts `tradeflow serve` on `stateDir` (checkpoints only at shutdown unless `env` says otherwise). */
export function spawnEngine(stateDir: string, env: Record<string, string> = {}): Child {
  const child = startChild('engine', process.execPath, [CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', WORKERS: '1', STATE_DIR: stateDir, CHECKPOINT_INTERVAL_S: '0', ...env },
    capture: true,
  });
  started.push(child);
  return child;
}

/** Resolves with the port once the engine is ready; throws with its output if it exits first. */
export async function engineReady(child: Child, timeoutMs = 30_000): Promise<number> {
  await waitFor(() => /"msg":"ready: every worker is warm"/.test(child.output()) || child.exited, 'the engine to be ready', timeoutMs);
  const m = /"port":(\d+),"config"/.exec(child.output());
  if (!m || child.exited) throw new Error(`engine did not start (exit ${child.exitCode}): ${child.output()}`);
  return Number(m[1]);
}

export async function serveEngine(stateDir: string, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  const child = spawnEngine(stateDir, env);
  return { child, port: await engineReady(child) };
}

/** kill -9: no drain, no final checkpoint. */
export async function killEngine(child: Child): Promise<void> {
  child.proc.kill('SIGKILL');
  await child.exitPromise;
}

/** Stops every engine these helpers started (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopEngines(graceMs = 0): Promise<void> {
  for (const c of started.splice(0)) await stopChild(c, graceMs);
}
