/**
 * The markdown report of `npm run bench:http`: how it was run, medians per scenario and server,
 * what the engine's metrics saw, issue #2's targets, and every run or answer that looked wrong.
 */
import * as os from 'node:os';
import { machineLine } from '../lib/engine-proc';
import type { RunResult } from '../lib/loadgen';
import { fmtCount, fmtMs, fmtRatio, median, summarizeRuns, type RunsSummary } from '../lib/stats';
import { WRK_PATH } from '../lib/wrk';
import type { EngineInternals } from './engine-internals';
import type { Options } from './options';
import { BUSY_PCT, QUIET_PCT } from './quiet';
import type { ScenarioResult, ServerRuns } from './scenario-run';
import { SCENARIOS } from './scenarios';

interface Summary extends RunsSummary {
  rowsPerS: number;
  serverCpuPct: number;
  loadgenCpuPct: number;
  otherCpuPct: number;
}

type Summaries = Map<string, { engine: Summary | null; baseline: Summary | null }>;

export interface ReportContext {
  command: string;
  engineConfig: string;
  engineBuild: string;
  modelLine: string;
  startedAt: Date;
  engineLogErrors: number;
}

function summarize(m: ServerRuns, rows: number): Summary | null {
  if (m.runs.length === 0) return null;
  const runs = summarizeRuns(m.runs);
  return {
    ...runs,
    rowsPerS: runs.reqPerS * rows,
    serverCpuPct: median(m.serverCpuPct),
    loadgenCpuPct: median(m.runs.map((r) => (r.loadgenCpuS / r.durationS) * 100)),
    otherCpuPct: median(m.otherCpuPct),
  };
}

function header(o: Options, results: ScenarioResult[], context: ReportContext): string[] {
  const generator = o.tool === 'wrk' ? `wrk (${WRK_PATH}, ${o.threads} thread${o.threads > 1 ? 's' : ''})` : 'autocannon (in the harness process)';
  return [
    `### ${context.startedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC`,
    '',
    `- Command: \`${context.command}\``,
    ...(o.note ? [`- Note: ${o.note}`] : []),
    `- Machine: ${machineLine()}`,
    `- Load generator: ${generator} on the same machine, 127.0.0.1; ${o.durationS} s per run, ${o.rounds} round(s), ${o.warmupS} s warm-up per server discarded, runs interleaved (A B, B A, ...); medians over rounds; before each run, up to ${o.quietWaitS} s wait for other processes to use < ${QUIET_PCT}% of a core; a run during which they used > ${BUSY_PCT}% is run again (up to ${o.retries} times) and the least disturbed attempt kept`,
    `- ${context.modelLine}`,
    `- Engine: ${context.engineConfig}; ${context.engineBuild}`,
    `- Bodies: seeded, ${results.map((r) => `${r.scenario.bodies} distinct for (${r.scenario.letter})`).join(', ')}, sent in a cycle that continues across runs; features rounded to 8 significant digits in JSON`,
    '',
  ];
}

function resultsTable(results: ScenarioResult[], byId: Summaries): string[] {
  const lines = [
    '| scenario | server | req/s | rows/s | p50 ms | p95 ms | p99 ms | non-2xx / socket err | server CPU | load-gen CPU | other CPU | req/s per round | engine ÷ baseline |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const r of results) {
    const { engine: e, baseline: b } = byId.get(r.scenario.id)!;
    const ratio = e && b ? e.reqPerS / b.reqPerS : NaN;
    for (const [name, s] of [['engine', e], ['baseline', b]] as const) {
      const label = `(${r.scenario.letter}) ${r.scenario.title}`;
      if (!s) {
        lines.push(`| ${label} | ${name} | — | — | — | — | — | — | — | — | — | ${r.servers[name].skipped ?? 'not run'} | |`);
        continue;
      }
      const errs = s.non2xx + s.socketErrors > 0 ? `**${s.non2xx} / ${s.socketErrors}** ⚠` : '0 / 0';
      lines.push(
        `| ${label} | ${name} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${errs} | ${s.serverCpuPct.toFixed(0)}% | ${s.loadgenCpuPct.toFixed(0)}% | ${s.otherCpuPct.toFixed(0)}% | ${s.perRound.map(fmtCount).join(' / ')} | ${name === 'engine' ? `**${fmtRatio(ratio)}**` : ''} |`,
      );
    }
  }
  lines.push(
    '',
    'CPU is a percentage of one core (the machine has ' + os.cpus().length + '); "other" is what the rest of the machine used meanwhile (other jobs, VM steal): ' +
      'a run where it is high was disturbed. req/s counts 2xx answers only.',
    '',
  );
  return lines;
}

function internalsTable(results: ScenarioResult[]): string[] {
  const inside = results.filter((r) => r.servers.engine.internals.some((i) => i !== null));
  if (inside.length === 0) return [];
  const lines = [
    "Inside the engine during the measured runs (from its /monitoring/metrics: `ml_batch_size`, `ml_queue_wait_seconds`, `ml_cache_requests_total`; medians over rounds):",
    '',
    '| scenario | rows per batch (mean) | batches/s | queue wait (mean) ms | cache hits / misses |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of inside) {
    const runs = r.servers.engine.runs;
    const ok = r.servers.engine.internals.map((x, i) => ({ x, run: runs[i]! })).filter((p): p is { x: EngineInternals; run: RunResult } => p.x !== null);
    lines.push(
      `| (${r.scenario.letter}) ${r.scenario.title} | ${median(ok.map((p) => p.x.rowsPerBatch)).toFixed(1)} | ${fmtCount(median(ok.map((p) => p.x.batches / p.run.durationS)))} | ${fmtMs(median(ok.map((p) => p.x.queueWaitMeanUs)))} | ${ok.reduce((a, p) => a + p.x.cacheHits, 0)} / ${ok.reduce((a, p) => a + p.x.cacheMisses, 0)} |`,
    );
  }
  lines.push('');
  return lines;
}

/** Issue #2's targets, for the scenarios that ran. */
function targets(byId: Summaries): string[] {
  const t: string[] = [];
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  const a = byId.get('json1-c64');
  if (a?.engine && a.baseline) {
    const ratio = a.engine.reqPerS / a.baseline.reqPerS;
    t.push(`- (a) 1 row at 64 connections: ≥ 1.8× baseline req/s with p99 ≤ 2 ms — got ${fmtRatio(ratio)}, p99 ${fmtMs(a.engine.p99Us)} ms: **${mark(ratio >= 1.8 && a.engine.p99Us <= 2000)}**`);
  }
  for (const id of ['json64-c8', 'json64-c64']) {
    const x = byId.get(id);
    if (!x?.engine || !x.baseline) continue;
    const ratio = x.engine.rowsPerS / x.baseline.rowsPerS;
    const sc = SCENARIOS.find((s) => s.id === id)!;
    t.push(`- (${sc.letter}) 64-row JSON at ${sc.connections} connections: ≥ 1.8× baseline rows/s — got ${fmtRatio(ratio)}: **${mark(ratio >= 1.8)}**`);
  }
  const d = byId.get('bin64-c64');
  const c = byId.get('json64-c64');
  if (d?.engine && c?.engine) {
    const ratio = d.engine.rowsPerS / c.engine.rowsPerS;
    t.push(`- (d) binary 64 rows: ≥ 4× the engine's 64-row JSON rows/s (c) — got ${fmtRatio(ratio)} (${fmtCount(d.engine.rowsPerS)} vs ${fmtCount(c.engine.rowsPerS)} rows/s): **${mark(ratio >= 4)}**`);
  } else if (d?.engine) {
    t.push('- (d) binary vs 64-row JSON: n/a (run scenario c too)');
  }
  if (d?.engine && d.baseline) t.push(`- (d) binary, engine ÷ baseline rows/s: ${fmtRatio(d.engine.rowsPerS / d.baseline.rowsPerS)} (no target)`);
  if (t.length === 0) return [];
  return ['Targets (issue #2, this 2-core machine, load generator on the same machine):', '', ...t, ''];
}

/** Runs with errors or disturbed by other processes, failed checks, a cache that answered, engine errors. */
function flagged(results: ScenarioResult[], engineLogErrors: number): string[] {
  const runs = results.flatMap((r) =>
    (['engine', 'baseline'] as const).flatMap((n) =>
      r.servers[n].runs.flatMap((run, i) => {
        const why: string[] = [];
        if (run.non2xx + run.socketErrors > 0) why.push(`${run.non2xx} non-2xx answers, ${run.socketErrors} socket errors out of ${run.responses}`);
        if (r.servers[n].otherCpuPct[i]! > BUSY_PCT) why.push(`other processes used ${r.servers[n].otherCpuPct[i]!.toFixed(0)}% of a core meanwhile`);
        return why.length > 0 ? [`- (${r.scenario.letter}) ${n}, round ${i + 1}: ${why.join('; ')}`] : [];
      }),
    ),
  );
  const problems = results.flatMap((r) => r.problems.map((p) => `- (${r.scenario.letter}) ${p}`));
  for (const r of results) {
    const hits = r.servers.engine.internals.reduce((a, x) => a + (x?.cacheHits ?? 0), 0);
    const answers = r.servers.engine.runs.reduce((a, x) => a + x.responses, 0);
    if (answers > 0 && hits > 0.01 * answers) problems.push(`- (${r.scenario.letter}) the engine's prediction cache answered ${hits} of ${answers} measured requests: the bodies repeat within its capacity`);
  }
  const log = engineLogErrors > 0 ? [`- the engine logged ${engineLogErrors} error/fatal line(s) during the run`] : [];
  if (runs.length === 0 && problems.length === 0 && log.length === 0) return [];
  return ['Flagged:', '', ...problems, ...runs, ...log, ''];
}

export function buildReport(o: Options, results: ScenarioResult[], context: ReportContext): string {
  const byId: Summaries = new Map(results.map((r) => [r.scenario.id, { engine: summarize(r.servers.engine, r.scenario.rows), baseline: summarize(r.servers.baseline, r.scenario.rows) }]));
  return [...header(o, results, context), ...resultsTable(results, byId), ...internalsTable(results), ...targets(byId), ...flagged(results, context.engineLogErrors)].join('\n');
}
