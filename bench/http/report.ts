/**
 * The markdown report of `npm run bench:http`: how it was run, medians per scenario and server
 * (throughput, latency, CPU per 1,000 requests, ratios to the naive server and the JSON-parse
 * ceiling), what the engines' metrics saw, issue 11's targets, and every run or answer that
 * looked wrong. Every table is pasteable Markdown as printed.
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
import type { Server } from './servers';

interface Summary extends RunsSummary {
  rowsPerS: number;
  serverCpuPct: number;
  cpuSPer1k: number;
  loadgenCpuPct: number;
  otherCpuPct: number;
}

/** Scenario id → server name → its summary (null: not measured). */
type Summaries = Map<string, Map<string, Summary | null>>;

export interface ReportContext {
  command: string;
  engineConfig: string;
  engineBuild: string;
  modelLine: string;
  startedAt: Date;
  engineLogErrors: number;
  servers: Server[];
}

function summarize(m: ServerRuns, rows: number): Summary | null {
  if (m.runs.length === 0) return null;
  const runs = summarizeRuns(m.runs);
  return {
    ...runs,
    rowsPerS: runs.reqPerS * rows,
    serverCpuPct: median(m.serverCpuPct),
    cpuSPer1k: median(m.cpuSPer1k),
    loadgenCpuPct: median(m.runs.map((r) => (r.loadgenCpuS / r.durationS) * 100)),
    otherCpuPct: median(m.otherCpuPct),
  };
}

function describeServer(s: Server, o: Options): string {
  if (s.kind === 'naive') return '`naive`: bench/baselines/naive-server.ts (uWS, JSON.parse, one onnxruntime session.run per request on the main thread)';
  if (s.kind === 'ceiling') return '`ceiling`: bench/baselines/parse-ceiling.ts (uWS, JSON.parse, a fake score, JSON.stringify: no model)';
  const v = o.engines.find((e) => e.name === s.name);
  const settings = [...Object.entries(v?.env ?? {}).map(([k, x]) => `${k}=${x}`), ...(v?.entry ? [`entry ${v.entry}`] : [])];
  return `\`${s.name}\`: the engine${settings.length ? ` with ${settings.join(', ')}` : ''}`;
}

function header(o: Options, results: ScenarioResult[], context: ReportContext): string[] {
  const generator = o.tool === 'wrk' ? `wrk (${WRK_PATH}, ${o.threads} thread${o.threads > 1 ? 's' : ''})` : 'autocannon (in the harness process)';
  return [
    `### ${context.startedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC`,
    '',
    `- Command: \`${context.command}\``,
    ...(o.note ? [`- Note: ${o.note}`] : []),
    `- Machine: ${machineLine()}`,
    `- Load generator: ${generator} on the same machine, 127.0.0.1; ${o.durationS} s per run, ${o.rounds} round(s), ${o.warmupS} s warm-up per server discarded, runs interleaved (A B C, C B A, ...); medians over rounds; before each run, up to ${o.quietWaitS} s wait for other processes to use < ${QUIET_PCT}% of a core; a run during which they used > ${BUSY_PCT}% is run again (up to ${o.retries} times) and the least disturbed attempt kept`,
    `- ${context.modelLine}`,
    `- Servers: ${context.servers.map((s) => describeServer(s, o)).join('; ')}`,
    `- Engine: ${context.engineConfig}; ${context.engineBuild}`,
    `- Bodies: seeded, ${results.map((r) => `${r.scenario.bodies} distinct for (${r.scenario.letter})`).join(', ')}, sent in a cycle that continues across runs; features rounded to 8 significant digits in JSON`,
    '',
  ];
}

function ratio(a: Summary | null | undefined, b: Summary | null | undefined, pick: (s: Summary) => number): number {
  return a && b ? pick(a) / pick(b) : NaN;
}

function resultsTable(results: ScenarioResult[], byId: Summaries, servers: Server[]): string[] {
  const firstEngine = servers.find((s) => s.kind === 'engine');
  const multi = servers.filter((s) => s.kind === 'engine').length > 1;
  const lines = [
    `| scenario | server | req/s | rows/s | p50 ms | p95 ms | p99 ms | CPU s / 1k req | server CPU | rows/s ÷ naive | req/s ÷ ceiling | CPU/req ÷ naive |${multi ? ` req/s ÷ ${firstEngine!.name} |` : ''} non-2xx / socket err | load-gen CPU | other CPU | req/s per round |`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |${multi ? ' ---: |' : ''} ---: | ---: | ---: | --- |`,
  ];
  for (const r of results) {
    const sums = byId.get(r.scenario.id)!;
    const naive = sums.get('naive');
    const ceiling = sums.get('ceiling');
    const first = firstEngine ? sums.get(firstEngine.name) : null;
    for (const srv of servers) {
      const s = sums.get(srv.name);
      const label = `(${r.scenario.letter}) ${r.scenario.title}`;
      if (!s) {
        lines.push(`| ${label} | ${srv.name} | — | — | — | — | — | — | — | — | — | — |${multi ? ' — |' : ''} — | — | — | ${r.servers[srv.name]?.skipped ?? 'not run'} |`);
        continue;
      }
      const errs = s.non2xx + s.socketErrors > 0 ? `**${s.non2xx} / ${s.socketErrors}** ⚠` : '0 / 0';
      const own = srv.kind === 'naive';
      const vsNaive = own ? '' : fmtRatio(ratio(s, naive, (x) => x.rowsPerS));
      const vsCeiling = srv.kind === 'ceiling' ? '' : fmtRatio(ratio(s, ceiling, (x) => x.reqPerS));
      const cpuVsNaive = own ? '' : fmtRatio(ratio(s, naive, (x) => x.cpuSPer1k));
      const vsFirst = multi ? ` ${srv.kind === 'engine' && srv !== firstEngine ? fmtRatio(ratio(s, first, (x) => x.reqPerS)) : ''} |` : '';
      lines.push(
        `| ${label} | ${srv.name} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${s.cpuSPer1k.toFixed(3)} | ${s.serverCpuPct.toFixed(0)}% | ${vsNaive} | ${vsCeiling} | ${cpuVsNaive} |${vsFirst} ${errs} | ${s.loadgenCpuPct.toFixed(0)}% | ${s.otherCpuPct.toFixed(0)}% | ${s.perRound.map(fmtCount).join(' / ')} |`,
      );
    }
  }
  lines.push(
    '',
    'CPU s / 1k req: user + system CPU seconds of the server process (all its threads, from /proc/<pid>/stat) per 1,000 2xx answers. ' +
      'Server, load-gen and other CPU are percentages of one core (the machine has ' + os.cpus().length + '); "other" is what the rest of the machine used meanwhile (other jobs, VM steal): ' +
      'a run where it is high was disturbed. req/s counts 2xx answers only.',
    '',
  );
  return lines;
}

function internalsTable(results: ScenarioResult[], servers: Server[]): string[] {
  const rows: string[] = [];
  for (const r of results) {
    for (const srv of servers) {
      const m = r.servers[srv.name];
      if (srv.kind !== 'engine' || !m) continue;
      const ok = m.internals.map((x, i) => ({ x, run: m.runs[i]! })).filter((p): p is { x: EngineInternals; run: RunResult } => p.x !== null);
      if (ok.length === 0) continue;
      rows.push(
        `| (${r.scenario.letter}) ${r.scenario.title} | ${srv.name} | ${median(ok.map((p) => p.x.rowsPerBatch)).toFixed(1)} | ${fmtCount(median(ok.map((p) => p.x.batches / p.run.durationS)))} | ${fmtMs(median(ok.map((p) => p.x.queueWaitMeanUs)))} | ${ok.reduce((a, p) => a + p.x.cacheHits, 0)} / ${ok.reduce((a, p) => a + p.x.cacheMisses, 0)} |`,
      );
    }
  }
  if (rows.length === 0) return [];
  return [
    "Inside the engines during the measured runs (from their /monitoring/metrics: `ml_batch_size`, `ml_queue_wait_seconds`, `ml_cache_requests_total`; medians over rounds):",
    '',
    '| scenario | engine | rows per batch (mean) | batches/s | queue wait (mean) ms | cache hits / misses |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ];
}

/** Issue 11's targets, per engine, for the scenarios that ran. */
function targets(byId: Summaries, servers: Server[]): string[] {
  const t: string[] = [];
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  for (const e of servers.filter((s) => s.kind === 'engine')) {
    const get = (id: string, name: string): Summary | null | undefined => byId.get(id)?.get(name);
    const a = get('json1-c64', e.name);
    const aCeil = get('json1-c64', 'ceiling');
    if (a && aCeil) {
      const x = a.reqPerS / aCeil.reqPerS;
      t.push(`- ${e.name} (a) 1 row at 64 connections: ≥ 1.2× the parse ceiling's req/s with p99 ≤ 2 ms — got ${fmtRatio(x)}, p99 ${fmtMs(a.p99Us)} ms: **${mark(x >= 1.2 && a.p99Us <= 2000)}**`);
    }
    for (const id of ['json64-c8', 'json64-c64']) {
      const x = get(id, e.name);
      const n = get(id, 'naive');
      if (!x || !n) continue;
      const sc = SCENARIOS.find((s) => s.id === id)!;
      const r = x.rowsPerS / n.rowsPerS;
      const c = x.cpuSPer1k / n.cpuSPer1k;
      t.push(`- ${e.name} (${sc.letter}) 64-row JSON at ${sc.connections} connections: ≥ 1.8× naive rows/s — got ${fmtRatio(r)}: **${mark(r >= 1.8)}**; CPU per 1,000 requests ≤ naive's — got ${x.cpuSPer1k.toFixed(3)} s vs ${n.cpuSPer1k.toFixed(3)} s (${fmtRatio(c)}): **${mark(c <= 1)}**`);
    }
    const d = get('bin64-c64', e.name);
    const c = get('json64-c64', e.name);
    if (d && c) {
      const r = d.rowsPerS / c.rowsPerS;
      t.push(`- ${e.name} (d) binary 64 rows: ≥ 4× its own 64-row JSON rows/s (c) — got ${fmtRatio(r)} (${fmtCount(d.rowsPerS)} vs ${fmtCount(c.rowsPerS)} rows/s): **${mark(r >= 4)}**`);
    }
  }
  if (t.length === 0) return [];
  return ['Targets (issue 11, this machine, load generator on the same machine):', '', ...t, ''];
}

/** Runs with errors or disturbed by other processes, failed checks, a cache that answered, engine errors. */
function flagged(results: ScenarioResult[], servers: Server[], engineLogErrors: number): string[] {
  const runs = results.flatMap((r) =>
    servers.flatMap((srv) => {
      const m = r.servers[srv.name];
      if (!m) return [];
      return m.runs.flatMap((run, i) => {
        const why: string[] = [];
        if (run.non2xx + run.socketErrors > 0) why.push(`${run.non2xx} non-2xx answers, ${run.socketErrors} socket errors out of ${run.responses}`);
        if (m.otherCpuPct[i]! > BUSY_PCT) why.push(`other processes used ${m.otherCpuPct[i]!.toFixed(0)}% of a core meanwhile`);
        return why.length > 0 ? [`- (${r.scenario.letter}) ${srv.name}, round ${i + 1}: ${why.join('; ')}`] : [];
      });
    }),
  );
  const problems = results.flatMap((r) => r.problems.map((p) => `- (${r.scenario.letter}) ${p}`));
  for (const r of results) {
    for (const srv of servers.filter((s) => s.kind === 'engine')) {
      const m = r.servers[srv.name];
      if (!m) continue;
      const hits = m.internals.reduce((a, x) => a + (x?.cacheHits ?? 0), 0);
      const answers = m.runs.reduce((a, x) => a + x.responses, 0);
      if (answers > 0 && hits > 0.01 * answers) problems.push(`- (${r.scenario.letter}) ${srv.name}'s prediction cache answered ${hits} of ${answers} measured requests: the bodies repeat within its capacity`);
    }
  }
  const log = engineLogErrors > 0 ? [`- the engines logged ${engineLogErrors} error/fatal line(s) during the run`] : [];
  if (runs.length === 0 && problems.length === 0 && log.length === 0) return [];
  return ['Flagged:', '', ...problems, ...runs, ...log, ''];
}

export function buildReport(o: Options, results: ScenarioResult[], context: ReportContext): string {
  const byId: Summaries = new Map(results.map((r) => [r.scenario.id, new Map(context.servers.map((s) => [s.name, r.servers[s.name] ? summarize(r.servers[s.name]!, r.scenario.rows) : null]))]));
  return [
    ...header(o, results, context),
    ...resultsTable(results, byId, context.servers),
    ...internalsTable(results, context.servers),
    ...targets(byId, context.servers),
    ...flagged(results, context.servers, context.engineLogErrors),
  ].join('\n');
}
