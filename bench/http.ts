/**
 * End-to-end HTTP benchmark: the engine against the naive baseline (bench/baselines/naive-server),
 * same model, same JSON contract, same load generator, interleaved runs.
 *
 *   npm run bench:http -- [--duration 10] [--rounds 3] [--scenario a,b] [--tool wrk|autocannon]
 *                          [--workers N] [--write]
 *
 * Starts both servers as child processes on free ports of 127.0.0.1, waits until each answers
 * GET /monitoring/health/readiness, then per scenario (bench/http/scenario-run.ts): checks that
 * each server answers the scenario's bodies correctly (status, row count, shape, and engine vs
 * baseline probabilities), runs one discarded warm-up per server, then `rounds` rounds of one run
 * per server, the order alternating (A B, B A, ...). Reports (bench/http/report.ts) the median
 * over rounds of answers/s, rows/s and latency percentiles, non-2xx answers and socket errors (a
 * run with any is flagged), and the CPU used by each server and by the load generator. Engine
 * settings come from the environment (WORKERS, MAX_BATCH_ROWS, MAX_QUEUE_DELAY_US, ...), as for
 * `tradeflow serve`. Then the Open Inference Protocol's JSON and binary infer at 1 and 64 rows,
 * each beside /predict on the engine (bench/http/oip.ts). Every child is killed on exit, error or Ctrl-C; the whole run has a time limit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { logProblems, ROOT, sourceLine } from './lib/engine-proc';
import { installExitHandlers, stopAll } from './lib/procs';
import { commandLine, engineConfigLine } from './http/context';
import { OIP_PAIRS, oipReport, runOipPairs } from './http/oip';
import { benchOptions, type Options } from './http/options';
import { buildReport } from './http/report';
import { writeResults } from './http/results-file';
import { runScenario, type ScenarioResult } from './http/scenario-run';
import { BASELINE_JS, startServers } from './http/servers';

/** Seconds the whole run may take, from the planned runs with room for waits and retries. */
function timeBudgetS(o: Options): { expectedS: number; budgetS: number } {
  const perServer = o.scenarios.length * 2;
  const runs = perServer * (o.rounds * o.durationS + o.warmupS);
  const attempts = perServer * o.rounds * (1 + o.retries);
  // The protocol's pairs beside /predict (bench/http/oip.ts): 4 pairs × 2 paths.
  const oip = OIP_PAIRS * 2 * (o.rounds * o.durationS + Math.max(1, o.warmupS));
  return {
    expectedS: Math.ceil(runs + oip + perServer * (o.rounds + 1) * 0.5),
    budgetS: Math.ceil(oip * 1.3 + runs * 1.3 + attempts * (o.durationS + o.quietWaitS + 2) - perServer * o.rounds * o.durationS + o.scenarios.length * 30 + 240),
  };
}

function checkBuilt(o: Options): void {
  for (const f of [o.engineJs, BASELINE_JS]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(ROOT, f)} does not exist: run npm run build first`);
  }
  if (!fs.existsSync(o.modelPath)) throw new Error(`model ${o.modelPath} does not exist (make it with npm run model:default, or pass --model)`);
}

/** Runs every scenario and prints the report; answers whether the scratch directory should be kept. */
async function benchmark(o: Options, argv: string[], workDir: string): Promise<boolean> {
  const startedAt = new Date();
  // Taken before the engine starts: sources may change while the benchmark runs.
  const engineBuild = sourceLine();
  const servers = await startServers(o, workDir);
  const { engine, baseline, info } = servers;
  process.stdout.write(`engine on 127.0.0.1:${engine.port} (pid ${engine.child.proc.pid}), baseline on 127.0.0.1:${baseline.port} (pid ${baseline.child.proc.pid})\n`);
  const engineConfig = await engineConfigLine(engine, o);
  const modelLine = `Model: ${path.relative(ROOT, o.modelPath) || o.modelPath} (version ${info.version}, F = ${info.features}, input "${info.inputName}", probabilities "${info.probabilityOutput}")`;
  const results: ScenarioResult[] = [];
  for (const sc of o.scenarios) results.push(await runScenario(o, sc, [engine, baseline], o.features ?? info.features, workDir));
  const oip = await runOipPairs(o, engine, o.features ?? info.features, info.inputName, workDir);
  const engineLogErrors = logProblems(engine, 50).length;
  await servers.stop();
  const report = [buildReport(o, results, { command: commandLine(argv), engineConfig, engineBuild, modelLine, startedAt, engineLogErrors }), ...oipReport(oip)].join('\n');
  process.stdout.write('\n' + report + '\n');
  if (o.write) process.stdout.write(`\nappended to ${writeResults(report)}\n`);
  return engineLogErrors > 0;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = benchOptions();
  checkBuilt(o);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-bench-'));
  const { expectedS, budgetS } = timeBudgetS(o);
  process.stdout.write(`bench:http: ${o.tool}, ${o.scenarios.map((s) => s.letter).join(',')}, ${o.durationS} s × ${o.rounds} rounds + ${o.warmupS} s warm-up per server: about ${Math.ceil(expectedS / 60)} min (limit ${Math.ceil(budgetS / 60)} min)\n`);
  process.stdout.write(`scratch directory (logs): ${workDir}\n`);
  const limit = setTimeout(() => {
    process.stderr.write(`bench:http: time limit of ${budgetS} s reached; stopping\n`);
    void stopAll(2000).finally(() => process.exit(1));
  }, budgetS * 1000);
  let keep = true;
  try {
    keep = (await benchmark(o, argv, workDir)) || o.keep;
    return 0;
  } finally {
    clearTimeout(limit);
    await stopAll(3000);
    if (keep) process.stdout.write(`logs kept in ${workDir}\n`);
    else fs.rmSync(workDir, { recursive: true, force: true });
  }
}

installExitHandlers((err) => {
  process.stderr.write(`bench:http: ${(err as Error)?.stack ?? String(err)}\n`);
  void stopAll(2000).finally(() => process.exit(1));
});

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:http: ${(err as Error).message ?? String(err)}\n`);
    void stopAll(2000).finally(() => process.exit(1));
  },
);
