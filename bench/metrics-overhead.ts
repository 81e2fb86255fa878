/**
 * Cost of the request and batch metrics (issue 3: "throughput with metrics on vs off in the same
 * run, target >= 0.95"). Two engines, identical but for METRICS_ENABLED (true / false), both with
 * CACHE_CAPACITY=0 so that no answer comes from the prediction cache; POST /predict JSON with
 *   (a) 1 row per request at 64 connections,
 *   (b) 64 rows per request at 8 connections,
 * seeded distinct rows (16 market features), rotated so the bodies vary. wrk drives one engine at
 * a time, interleaved: warm-up of each (discarded), then rounds A B, B A, ... Medians over rounds,
 * and the ratio on ÷ off both of the medians and per round (paired).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/metrics-overhead.js [--rounds 8] [--duration 4] [--warmup 3] [--scenarios a,b] [--out file.md]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError, numberFlag, type FlagSpec } from './lib/args';
import { makeBodies, type BodySet } from './lib/bodies';
import {
  configDiff,
  engineConfig,
  fmtCount,
  fmtMs,
  fmtRatio,
  loadLine,
  logProblems,
  machineLine,
  sourceLine,
  measured,
  median,
  otherList,
  pairedRatios,
  quietPairs,
  ratioList,
  runLine,
  sleep,
  startEngine,
  runScript,
  commandLine,
  stopEngine,
  summarize,
  WRK_PATH,
  type EngineProc,
  type Measured,
} from './lib/engine-proc';
import { request } from './lib/request';
import { parsePrometheusText, sumSamples } from '../src/telemetry/prometheus-text';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds per variant and scenario (default 8)' },
  { name: 'duration', help: 'seconds per measured run (default 4)' },
  { name: 'warmup', help: 'seconds of discarded warm-up per variant and scenario (default 3)' },
  { name: 'scenarios', help: 'comma-separated scenario ids to run (default a,b)' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

interface Scenario {
  id: string;
  title: string;
  kind: 'features' | 'instances';
  rows: number;
  connections: number;
  bodies: number;
  seed: number;
}

const SCENARIOS: Scenario[] = [
  { id: 'a', title: '(a) JSON, 1 row/request, 64 connections', kind: 'features', rows: 1, connections: 64, bodies: 65536, seed: 301 },
  { id: 'b', title: '(b) JSON, 64 rows/request, 8 connections', kind: 'instances', rows: 64, connections: 8, bodies: 512, seed: 302 },
];

/** A run is "quiet" when other processes used less than this share of a core meanwhile (%). */
const QUIET_PCT = 35;

const VARIANTS = [
  { key: 'on', env: { METRICS_ENABLED: 'true', CACHE_CAPACITY: '0' } },
  { key: 'off', env: { METRICS_ENABLED: 'false', CACHE_CAPACITY: '0' } },
] as const;

type Key = (typeof VARIANTS)[number]['key'];

/** Sum of a counter's series on the engine whose labels include `selector`. */
async function counterSum(port: number, name: string, selector: Record<string, string>): Promise<number> {
  const a = await request(port, 'GET', '/monitoring/metrics', undefined, {}, 5000);
  return sumSamples(parsePrometheusText(a.body.toString('utf8')).samples, name, selector);
}

async function check(e: EngineProc, set: BodySet): Promise<string | null> {
  const a = await request(e.port, 'POST', '/predict', set.bodies[0]!, { 'content-type': set.contentType });
  if (a.status !== 200) return `${e.name}: ${a.status} ${a.body.toString('utf8').slice(0, 200)}`;
  const o = JSON.parse(a.body.toString('utf8')) as { predictions?: unknown[]; probabilities?: unknown };
  const n = o.predictions ? o.predictions.length : o.probabilities ? 1 : 0;
  return n === set.rows ? null : `${e.name}: ${n} predictions for ${set.rows} rows`;
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 8, 1, 20);
  const durationS = numberFlag(flags, 'duration', 4, 1, 60);
  const warmupS = numberFlag(flags, 'warmup', 3, 0, 30);
  const wanted = (flags.get('scenarios') ?? 'a,b').split(',').map((x) => x.trim());
  for (const id of wanted) if (!SCENARIOS.some((sc) => sc.id === id)) throw new UsageError(`unknown scenario "${id}" (a, b)`);
  const scenarios = SCENARIOS.filter((sc) => wanted.includes(sc.id));
  const budgetS = scenarios.length * (2 * warmupS + 2 * rounds * durationS) * 1.2 + 90;
  if (budgetS > 290) throw new UsageError(`these settings would take about ${Math.round(budgetS)} s; keep them under 290 s`);
  setBudget(budgetS + 60);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-metrics-overhead-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const source = sourceLine();
  process.stdout.write(`work dir ${workDir}; load average ${loadAtStart}\n`);

  const engines = new Map<Key, EngineProc>();
  for (const v of VARIANTS) engines.set(v.key, await startEngine(`metrics-${v.key}`, { ...v.env }, workDir));
  const on = engines.get('on')!;
  const off = engines.get('off')!;
  const diff = configDiff(await engineConfig(on), await engineConfig(off));
  process.stdout.write(`engines ready: on :${on.port}, off :${off.port}; configuration differences: ${diff.join('; ') || 'none'}\n`);
  if (diff.length !== 1 || !diff[0]!.startsWith('METRICS_ENABLED')) throw new Error(`the engines should differ in METRICS_ENABLED only, got: ${diff.join('; ')}`);
  const cfg = await engineConfig(on);

  const results: Array<{ sc: Scenario; runs: Record<Key, Measured[]>; recorded: Record<Key, number>; sent: Record<Key, number> }> = [];
  for (const sc of scenarios) {
    process.stdout.write(`\n== ${sc.title}\n`);
    const set = makeBodies(sc.kind, sc.rows, 16, sc.bodies, sc.seed);
    for (const e of engines.values()) {
      const problem = await check(e, set);
      if (problem) throw new Error(`answer check failed: ${problem}`);
    }
    const cursor: Record<Key, number> = { on: 1, off: 1 };
    const runs: Record<Key, Measured[]> = { on: [], off: [] };
    const sent: Record<Key, number> = { on: 0, off: 0 };
    const recordedBefore: Record<Key, number> = {
      on: await counterSum(on.port, 'api_requests_total', { endpoint: '/predict' }),
      off: await counterSum(off.port, 'api_requests_total', { endpoint: '/predict' }),
    };
    const one = async (key: Key, secs: number): Promise<Measured> => {
      const e = engines.get(key)!;
      const m = await measured(e, {
        port: e.port, path: '/predict', connections: sc.connections, durationS: secs, bodies: set.bodies, contentType: set.contentType,
        startIndex: cursor[key], workDir, id: `predict-${sc.id}`,
      });
      cursor[key] = (cursor[key] + m.run.responses) % set.bodies.length;
      sent[key] += m.run.responses;
      await sleep(300);
      return m;
    };
    if (warmupS > 0) {
      for (const v of VARIANTS) process.stdout.write(runLine(`warm-up metrics ${v.key}`, await one(v.key, warmupS), sc.rows));
    }
    for (let r = 0; r < rounds; r++) {
      const order: Key[] = r % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
      for (const key of order) {
        const m = await one(key, durationS);
        runs[key].push(m);
        process.stdout.write(runLine(`round ${r + 1} metrics ${key}`, m, sc.rows));
      }
    }
    const recorded: Record<Key, number> = {
      on: (await counterSum(on.port, 'api_requests_total', { endpoint: '/predict' })) - recordedBefore.on,
      off: (await counterSum(off.port, 'api_requests_total', { endpoint: '/predict' })) - recordedBefore.off,
    };
    results.push({ sc, runs, recorded, sent });
  }
  const problemsOn = logProblems(on).filter((l) => !l.includes('no ADMIN_TOKEN'));
  const problemsOff = logProblems(off).filter((l) => !l.includes('no ADMIN_TOKEN'));
  for (const e of engines.values()) await stopEngine(e);
  const loadAtEnd = loadLine();

  // ---- report
  const L: string[] = [];
  const stamp = startedAt.toISOString().slice(0, 16).replace('T', ' ');
  L.push(`### ${stamp} UTC`, '');
  L.push(`- Command: \`${commandLine('metrics-overhead.js')}\``);
  L.push(`- Source: ${source}`);
  L.push(`- Machine: ${machineLine()}; load average (1 / 5 / 15 min) ${loadAtStart} at the start, ${loadAtEnd} at the end`);
  L.push(`- Engines: two, started together, identical but for \`METRICS_ENABLED\` (checked on /monitoring/system/info); both \`CACHE_CAPACITY=0\`, otherwise defaults (WORKERS=${cfg.WORKERS}, MAX_BATCH_ROWS=${cfg.MAX_BATCH_ROWS}, MAX_QUEUE_DELAY_US=${cfg.MAX_QUEUE_DELAY_US}, ORT_THREADS=${cfg.ORT_THREADS}), model models/ensemble.onnx`);
  L.push(`- Load: wrk (${WRK_PATH}, 1 thread), 127.0.0.1, ${durationS} s per run, ${warmupS} s warm-up per engine and scenario discarded, ${rounds} rounds interleaved (on off, off on, ...); seeded bodies (65,536 distinct 1-row bodies for (a), 512 distinct 64-row bodies for (b)), each engine continuing its own rotation so no body repeats within a scenario`);
  L.push('');
  L.push('| scenario | metrics | req/s | rows/s | p50 ms | p95 ms | p99 ms | non-2xx / socket err | engine CPU | req/s per engine core | other CPU | load avg (1 min) | req/s per round | other CPU per round | on ÷ off (medians) | on ÷ off per round |');
  L.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |');
  const verdicts: string[] = [];
  for (const { sc, runs } of results) {
    const sOn = summarize(runs.on, sc.rows);
    const sOff = summarize(runs.off, sc.rows);
    const ratio = sOn.reqPerS / sOff.reqPerS;
    const paired = pairedRatios(runs.off, runs.on, (m) => m.run.okPerS);
    for (const [key, s] of [['on', sOn], ['off', sOff]] as const) {
      const errs = s.non2xx + s.socketErrors > 0 ? `**${s.non2xx} / ${s.socketErrors}** ⚠` : `${s.non2xx} / ${s.socketErrors}`;
      L.push(
        `| ${sc.title} | ${key} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${errs} | ${s.serverCpuPct.toFixed(0)}% | ${fmtCount(s.perCpuS)} | ${s.otherCpuPct.toFixed(0)}% | ${s.load1.toFixed(2)} | ${s.perRound.map(fmtCount).join(' / ')} | ${otherList(runs[key])} | ${key === 'on' ? `**${fmtRatio(ratio)}**` : ''} | ${key === 'on' ? `${ratioList(paired)} (median ${fmtRatio(median(paired))})` : ''} |`,
      );
    }
    const quiet = quietPairs(runs.off, runs.on, QUIET_PCT);
    const quietRatios = quiet.map((i) => paired[i]!);
    const cpuRatio = sOn.perCpuS / sOff.perCpuS;
    verdicts.push(
      `- ${sc.title}: on ÷ off = ${fmtRatio(ratio)} of the medians, ${fmtRatio(median(paired))} median of the paired rounds (${paired.filter((p) => p >= 0.95).length} of ${paired.length} rounds ≥ 0.95); ` +
        `rounds where other processes used < ${QUIET_PCT}% of a core during both runs: ${quiet.length ? `${quiet.length} (${ratioList(quietRatios)}, median ${fmtRatio(median(quietRatios))})` : 'none'}; ` +
        `per engine core ${fmtRatio(cpuRatio)}: **${ratio >= 0.95 ? 'PASS' : 'FAIL'}** on the medians`,
    );
  }
  L.push('');
  L.push('CPU is a percentage of one core (2 cores in all); "other" is everything else on the machine during the run (other jobs, the idle engine, VM steal). req/s counts 2xx answers. "req/s per engine core" is req/s ÷ the engine\'s CPU (median over rounds): what the same work costs in CPU, less sensitive to what else runs than req/s.');
  L.push('');
  L.push('Target (issue 3): metrics on ≥ 0.95 × metrics off in throughput.');
  L.push('');
  L.push(...verdicts);
  L.push('');
  L.push('Checks:');
  L.push('');
  for (const { sc, recorded, sent } of results) {
    L.push(`- ${sc.title}: \`api_requests_total{endpoint="/predict"}\` grew by ${recorded.on} on the metrics-on engine (wrk counted ${sent.on} answers; the difference is requests still in flight when wrk stopped) and by ${recorded.off} on the metrics-off engine (${sent.off} answers)`);
  }
  L.push(`- engine log lines at warn or above (besides the no-ADMIN_TOKEN notice): on ${problemsOn.length}, off ${problemsOff.length}${problemsOn.length + problemsOff.length > 0 ? ': ' + [...problemsOn, ...problemsOff].slice(0, 5).join('; ') : ''}`);
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
