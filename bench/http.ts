/**
 * End-to-end HTTP benchmark: engine variants against the naive baseline
 * (bench/baselines/naive-server: uWS + one session.run per request) and the JSON-parse ceiling
 * (bench/baselines/parse-ceiling: uWS + JSON.parse + a fake score + JSON.stringify), same model,
 * same JSON contract, same load generator, interleaved runs.
 *
 *   npm run bench:http -- [--duration 10] [--rounds 3] [--scenario a,b] [--tool wrk|autocannon]
 *                          [--engines t1:HTTP_THREADS=1,t2:HTTP_THREADS=2] [--baselines naive,ceiling]
 *                          [--workers N] [--skip-oip] [--write]
 *
 * Starts every server as a child process on a free port of 127.0.0.1, waits until each answers
 * GET /monitoring/health/readiness, then per scenario (bench/http/scenario-run.ts): checks that
 * each server answers the scenario's bodies correctly (status, row count, shape, and each engine
 * vs the naive server's probabilities), runs one discarded warm-up per server, then `rounds`
 * rounds of one run per server, the order alternating (A B C, C B A, ...). Reports
 * (bench/http/report.ts) the median over rounds of answers/s, rows/s, latency percentiles and
 * each server's CPU seconds per 1,000 requests (/proc, all its threads), ratios to the naive
 * server and the ceiling, non-2xx answers and socket errors (a run with any is flagged), and the
 * CPU used by the load generator and everything else. Engine
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
import { BASELINE_JS, CEILING_JS, startServers } from './http/servers';

/** Seconds the whole run may take, from the planned runs with room for waits and retries. */
function timeBudgetS(o: Options): { expectedS: number; budgetS: number } {
  const perServer = o.scenarios.length * (o.engines.length + o.baselines.length);
  const runs = perServer * (o.rounds * o.durationS + o.warmupS);
  const attempts = perServer * o.rounds * (1 + o.retries);
  // The protocol's pairs beside /predict (bench/http/oip.ts): 4 pairs × 2 paths.
  const oip = o.oip ? OIP_PAIRS * 2 * (o.rounds * o.durationS + Math.max(1, o.warmupS)) : 0;
  return {
    expectedS: Math.ceil(runs + oip + perServer * (o.rounds + 1) * 0.5),
    budgetS: Math.ceil(oip * 1.3 + runs * 1.3 + attempts * (o.durationS + o.quietWaitS + 2) - perServer * o.rounds * o.durationS + o.scenarios.length * 30 + 240),
  };
}

function checkBuilt(o: Options): void {
  for (const f of [o.engineJs, BASELINE_JS, CEILING_JS, ...o.engines.flatMap((e) => (e.entry ? [e.entry] : []))]) {
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
  const { engines, info } = servers;
  for (const s of servers.all) process.stdout.write(`${s.name} on 127.0.0.1:${s.port} (pid ${s.child.proc.pid})\n`);
  const engineConfig = await engineConfigLine(engines[0]!, o);
  const modelLine = `Model: ${path.relative(ROOT, o.modelPath) || o.modelPath} (version ${info.version}, F = ${info.features}, input "${info.inputName}", probabilities "${info.probabilityOutput}")`;
  const results: ScenarioResult[] = [];
  for (const sc of o.scenarios) results.push(await runScenario(o, sc, servers.all, o.features ?? info.features, workDir));
  const oip = o.oip ? await runOipPairs(o, engines[0]!, o.features ?? info.features, info.inputName, workDir) : [];
  const engineLogErrors = engines.reduce((n, e) => n + logProblems(e, 50).length, 0);
  await servers.stop();
  const context = { command: commandLine(argv), engineConfig, engineBuild, modelLine, startedAt, engineLogErrors, servers: servers.all };
  const report = [buildReport(o, results, context), ...(o.oip ? oipReport(oip) : [])].join('\n');
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
  process.stdout.write(`bench:http: ${o.tool}, ${o.scenarios.map((s) => s.letter).join(',')}, servers ${[...o.engines.map((e) => e.name), ...o.baselines].join(', ')}, ${o.durationS} s × ${o.rounds} rounds + ${o.warmupS} s warm-up per server: about ${Math.ceil(expectedS / 60)} min (limit ${Math.ceil(budgetS / 60)} min)\n`);
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
