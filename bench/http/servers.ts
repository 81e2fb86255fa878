/**
 * The servers `npm run bench:http` compares, as child processes on 127.0.0.1: one engine per
 * variant (--engines; through the engine start-up every bench shares, ../lib/engine-proc), the
 * naive baseline (uWS + onnxruntime per request) and the JSON-parse ceiling (uWS + JSON.parse +
 * a fake score + JSON.stringify).
 */
import * as path from 'node:path';
import { READINESS, ROOT, startEngine, stopEngine, type EngineProc } from '../lib/engine-proc';
import { freePort, startChild, stopChild, waitReady, type Child } from '../lib/procs';
import { request } from '../lib/request';
import type { EngineVariant, Options } from './options';

/** engine: a tradeflow engine; naive: one session.run per request; ceiling: JSON.parse and a fake score. */
export type ServerKind = 'engine' | 'naive' | 'ceiling';

export interface Server {
  /** Unique within a run: the variant's name for engines, `naive` and `ceiling` for the baselines. */
  name: string;
  kind: ServerKind;
  child: Child;
  port: number;
}

export const BASELINE_JS = path.join(ROOT, 'dist', 'bench', 'baselines', 'naive-server.js');
export const CEILING_JS = path.join(ROOT, 'dist', 'bench', 'baselines', 'parse-ceiling.js');

/** The model the baseline loaded, as its GET /info describes it. */
export interface BaselineInfo {
  version: string;
  features: number;
  inputName: string;
  probabilityOutput: string;
}

export interface Servers {
  /** Engines first (in --engines order), then the naive baseline, then the ceiling. */
  all: Server[];
  engines: Server[];
  info: BaselineInfo;
  stop(): Promise<void>;
}

async function startBaseline(kind: 'naive' | 'ceiling', o: Options, workDir: string, features: number | null): Promise<Server> {
  const port = await freePort();
  const args = [kind === 'naive' ? BASELINE_JS : CEILING_JS, '--port', String(port), '--host', '127.0.0.1', '--model', o.modelPath, '--exit-with-parent'];
  if (features !== null) args.push('--features', String(features));
  const child = startChild(kind, process.execPath, args, { cwd: ROOT, logPath: path.join(workDir, `${kind}.log`) });
  await waitReady(child, port, READINESS, 60_000);
  return { name: kind, kind, child, port };
}

/** Engine settings come from the environment (as for `tradeflow serve`), the flags', then the variant's. */
function startBenchEngine(o: Options, v: EngineVariant, workDir: string): Promise<EngineProc> {
  const env: Record<string, string> = { MODEL_PATH: o.modelPath, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' };
  if (o.workers !== null) env.WORKERS = String(o.workers);
  if (o.features !== null) env.FEATURES = String(o.features);
  Object.assign(env, v.env);
  return startEngine(v.name, env, workDir, v.entry ?? o.engineJs);
}

export async function startServers(o: Options, workDir: string): Promise<Servers> {
  // One at a time: engines starting together on 2 cores slow each other's warm-up past nothing useful.
  const procs: EngineProc[] = [];
  const stoppers: Array<() => Promise<void>> = [];
  try {
    for (const v of o.engines) {
      const e = await startBenchEngine(o, v, workDir);
      procs.push(e);
      stoppers.push(() => stopEngine(e));
    }
    const naive = await startBaseline('naive', o, workDir, o.features);
    stoppers.push(() => stopChild(naive.child));
    const info = JSON.parse((await request(naive.port, 'GET', '/info')).body.toString('utf8')) as BaselineInfo;
    const engines: Server[] = procs.map((e) => ({ name: e.name, kind: 'engine', child: e.child, port: e.port }));
    const all = [...engines];
    if (o.baselines.includes('naive')) all.push(naive);
    if (o.baselines.includes('ceiling')) {
      const ceiling = await startBaseline('ceiling', o, workDir, o.features ?? info.features);
      stoppers.push(() => stopChild(ceiling.child));
      all.push(ceiling);
    }
    return { all, engines, info, stop: async () => void (await Promise.all(stoppers.map((s) => s()))) };
  } catch (err) {
    await Promise.all(stoppers.map((s) => s()));
    throw err;
  }
}
