/**
 * The two servers `npm run bench:http` compares, as child processes on 127.0.0.1: the engine
 * (through the engine start-up every bench shares, ../lib/engine-proc) and the naive baseline.
 */
import * as path from 'node:path';
import { READINESS, ROOT, startEngine, stopEngine, type EngineProc } from '../lib/engine-proc';
import { freePort, startChild, stopChild, waitReady, type Child } from '../lib/procs';
import { request } from '../lib/request';
import type { Options } from './options';

export type ServerName = 'engine' | 'baseline';

export interface Server {
  name: ServerName;
  child: Child;
  port: number;
}

export const BASELINE_JS = path.join(ROOT, 'dist', 'bench', 'baselines', 'naive-server.js');

/** The model the baseline loaded, as its GET /info describes it. */
export interface BaselineInfo {
  version: string;
  features: number;
  inputName: string;
  probabilityOutput: string;
}

export interface Servers {
  engine: Server;
  baseline: Server;
  info: BaselineInfo;
  stop(): Promise<void>;
}

async function startBaseline(o: Options, workDir: string): Promise<Server> {
  const port = await freePort();
  const args = [BASELINE_JS, '--port', String(port), '--host', '127.0.0.1', '--model', o.modelPath, '--exit-with-parent'];
  if (o.features !== null) args.push('--features', String(o.features));
  const child = startChild('baseline', process.execPath, args, { cwd: ROOT, logPath: path.join(workDir, 'baseline.log') });
  await waitReady(child, port, READINESS, 60_000);
  return { name: 'baseline', child, port };
}

/** Engine settings come from the environment (as for `tradeflow serve`), plus the flags'. */
function startBenchEngine(o: Options, workDir: string): Promise<EngineProc> {
  const env: Record<string, string> = { MODEL_PATH: o.modelPath, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' };
  if (o.workers !== null) env.WORKERS = String(o.workers);
  if (o.features !== null) env.FEATURES = String(o.features);
  return startEngine('engine', env, workDir, o.engineJs);
}

export async function startServers(o: Options, workDir: string): Promise<Servers> {
  const [engine, baseline] = await Promise.all([startBenchEngine(o, workDir), startBaseline(o, workDir)]);
  const info = JSON.parse((await request(baseline.port, 'GET', '/info')).body.toString('utf8')) as BaselineInfo;
  return {
    engine: { name: 'engine', child: engine.child, port: engine.port },
    baseline,
    info,
    stop: async () => {
      await Promise.all([stopEngine(engine), stopChild(baseline.child)]);
    },
  };
}
