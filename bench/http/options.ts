/** The command line of `npm run bench:http`. */
import * as path from 'node:path';
import { numberFlag, programFlags, UsageError, type FlagSpec } from '../lib/args';
import { ROOT } from '../lib/engine-proc';
import type { Tool } from '../lib/loadgen';
import { WRK_PATH, wrkAvailable } from '../lib/wrk';
import { pickScenarios, type Scenario } from './scenarios';

const FLAGS: FlagSpec[] = [
  { name: 'duration', help: 'seconds per measured run (default 10)' },
  { name: 'rounds', help: 'measured rounds per scenario and server (default 3)' },
  { name: 'warmup', help: 'seconds of the discarded warm-up run per server and scenario (default 3)' },
  { name: 'scenario', help: 'comma-separated scenarios to run: a|json1-c64, b|json64-c8, c|json64-c64, d|bin64-c64 (default all)' },
  { name: 'tool', help: 'load generator: wrk (default when /usr/bin/wrk exists) or autocannon' },
  { name: 'threads', help: 'wrk threads (default 1: the load generator shares the 2 cores)' },
  { name: 'quiet-wait', help: 'before each measured run, wait up to this many seconds for other processes to leave the CPUs alone (default 30; 0 = never wait)' },
  { name: 'retries', help: 'times a measured run disturbed by other processes is run again (default 2)' },
  { name: 'workers', help: 'engine inference workers (sets WORKERS for the engine)' },
  {
    name: 'engines',
    help: 'engine variants, comma-separated, each name[:SETTING+SETTING...], a setting KEY=value (environment) or entry=PATH (another build\'s dist/src/cli/main.js); e.g. t1:HTTP_THREADS=1,t2:HTTP_THREADS=2 (default: one engine named engine)',
  },
  { name: 'baselines', help: 'baselines to measure beside the engines: naive, ceiling, both (default naive,ceiling) or none' },
  { name: 'skip-oip', switch: true, help: 'skip the Open Inference Protocol pairs (engine only) after the scenarios' },
  { name: 'model', help: 'ONNX model both servers load (default models/ensemble.onnx)' },
  { name: 'engine', help: 'engine entry point run as `node <file> serve` (default dist/src/cli/main.js)' },
  { name: 'features', help: 'features per row if the model does not fix it' },
  { name: 'note', help: 'a sentence recorded with the results (why this run, what differs)' },
  { name: 'write', switch: true, help: 'append the results to bench/RESULTS.md ("HTTP end to end")' },
  { name: 'keep', switch: true, help: 'keep the scratch directory (server logs, wrk scripts)' },
  { name: 'help', switch: true, help: 'show this help' },
];

/** One engine to run: its name in the report, environment on top of the run's, and entry point. */
export interface EngineVariant {
  name: string;
  env: Record<string, string>;
  /** `node <entry> serve`; undefined: --engine (or the built CLI). */
  entry?: string;
}

export type BaselineKind = 'naive' | 'ceiling';

export interface Options {
  durationS: number;
  rounds: number;
  warmupS: number;
  tool: Tool;
  threads: number;
  scenarios: Scenario[];
  workers: number | null;
  modelPath: string;
  engineJs: string;
  features: number | null;
  write: boolean;
  keep: boolean;
  note: string | null;
  quietWaitS: number;
  retries: number;
  engines: EngineVariant[];
  baselines: BaselineKind[];
  oip: boolean;
}

/** --engines: `name[:KEY=v+KEY=v+entry=PATH]`, comma-separated. */
export function parseEngines(flag: string | undefined): EngineVariant[] {
  if (flag === undefined) return [{ name: 'engine', env: {} }];
  const out: EngineVariant[] = [];
  for (const spec of flag.split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = spec.indexOf(':');
    const name = colon < 0 ? spec : spec.slice(0, colon);
    if (!/^[\w.-]+$/.test(name)) throw new UsageError(`--engines: "${name}" is not a name (letters, digits, . _ -)`);
    if (name === 'naive' || name === 'ceiling' || out.some((v) => v.name === name)) throw new UsageError(`--engines: the name "${name}" is taken`);
    const v: EngineVariant = { name, env: {} };
    for (const setting of colon < 0 ? [] : spec.slice(colon + 1).split('+').filter(Boolean)) {
      const eq = setting.indexOf('=');
      if (eq <= 0) throw new UsageError(`--engines: "${setting}" in "${spec}" is not KEY=value`);
      const key = setting.slice(0, eq);
      const value = setting.slice(eq + 1);
      if (key === 'entry') v.entry = path.resolve(value);
      else if (/^[A-Z][A-Z0-9_]*$/.test(key)) v.env[key] = value;
      else throw new UsageError(`--engines: "${key}" is neither an environment variable (upper case) nor entry`);
    }
    out.push(v);
  }
  if (out.length === 0) throw new UsageError('--engines names no engine');
  return out;
}

function parseBaselines(flag: string | undefined): BaselineKind[] {
  if (flag === undefined || flag === 'both') return ['naive', 'ceiling'];
  if (flag === 'none') return [];
  const list = flag.split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of list) if (b !== 'naive' && b !== 'ceiling') throw new UsageError(`--baselines: "${b}" is not naive or ceiling`);
  return list as BaselineKind[];
}

function toolOf(flag: string | undefined): Tool {
  if (flag !== undefined && flag !== 'wrk' && flag !== 'autocannon') throw new UsageError(`--tool must be wrk or autocannon, got "${flag}"`);
  const tool: Tool = flag ?? (wrkAvailable() ? 'wrk' : 'autocannon');
  if (tool === 'wrk' && !wrkAvailable()) throw new UsageError(`--tool wrk: ${WRK_PATH} is not installed (apt-get install wrk), or use --tool autocannon`);
  return tool;
}

function readOptions(flags: Map<string, string>): Options {
  const whole = (name: string, fallback: number, min: number, max: number): number => Math.round(numberFlag(flags, name, fallback, min, max));
  return {
    durationS: numberFlag(flags, 'duration', 10, 1, 600),
    rounds: whole('rounds', 3, 1, 50),
    warmupS: numberFlag(flags, 'warmup', 3, 0, 600),
    tool: toolOf(flags.get('tool')),
    threads: whole('threads', 1, 1, 64),
    scenarios: pickScenarios(flags.get('scenario')),
    workers: flags.has('workers') ? whole('workers', 1, 1, 256) : null,
    modelPath: path.resolve(flags.get('model') ?? path.join(ROOT, 'models', 'ensemble.onnx')),
    engineJs: path.resolve(flags.get('engine') ?? path.join(ROOT, 'dist', 'src', 'cli', 'main.js')),
    features: flags.has('features') ? whole('features', 16, 1, 65536) : null,
    write: flags.has('write'),
    keep: flags.has('keep'),
    note: flags.get('note') ?? null,
    quietWaitS: numberFlag(flags, 'quiet-wait', 30, 0, 600),
    retries: whole('retries', 2, 0, 10),
    engines: parseEngines(flags.get('engines')),
    baselines: parseBaselines(flags.get('baselines')),
    oip: !flags.has('skip-oip'),
  };
}

/** The options, or the process exits: 0 after --help, 2 after a bad flag. */
export function benchOptions(): Options {
  return programFlags('bench:http', 'Usage: npm run bench:http -- [options]\n       node dist/bench/http.js [options]', FLAGS, readOptions);
}
