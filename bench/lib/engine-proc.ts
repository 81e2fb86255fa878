/**
 * Shared pieces of the engine-only HTTP benchmarks (metrics-overhead, learn-http,
 * training-impact): engines started as child processes on 127.0.0.1 with a fresh state
 * directory, a wrk runner that can count answers by status, per-run CPU and load accounting, and
 * A/B summaries (medians over interleaved rounds, paired ratios).
 *
 * Children are started through ./procs, so they sit in their own process groups and are killed
 * when the script exits, fails or is interrupted (installExitHandlers).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { projectRoot } from '../../src/paths';
import { parseArgs, usage, UsageError, withHelp, type FlagSpec } from './args';
import { featureRow, formatFeature, rng } from './bodies';
import { cpuSeconds, machineBusySeconds } from './cpu';
import { freePort, installExitHandlers, startChild, stopAll, stopChild, tail, waitReady, type Child } from './procs';
import { request } from './request';
import { fmtCount, fmtMs, fmtRatio, median, summarizeRuns, type RunsSummary } from './stats';
import { runWrk, type WrkResult, type WrkRun } from './wrk';

/** Repository root, from dist/bench/lib. */
// From dist/bench/lib (benchmarks) or bench/lib (tests run from sources) alike.
export const ROOT = projectRoot();
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const READINESS = '/monitoring/health/readiness';

/** State directories of engines not yet stopped: removed at exit whatever happens. */
const stateDirs = new Set<string>();
process.on('exit', () => {
  for (const d of stateDirs) fs.rmSync(d, { recursive: true, force: true });
});

export interface EngineProc {
  name: string;
  child: Child;
  port: number;
  stateDir: string;
  env: Record<string, string>;
}

/**
 * `node <entry> serve` (the built CLI unless told) with PORT (free), HOST=127.0.0.1,
 * LOG_LEVEL=warn, a fresh STATE_DIR under the OS temp directory and `env`; resolves once
 * readiness answers 200.
 */
export async function startEngine(name: string, env: Record<string, string>, workDir: string, entry = CLI): Promise<EngineProc> {
  const port = await freePort();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `tradeflow-${name.replace(/[^\w-]/g, '_')}-`));
  stateDirs.add(stateDir);
  const full: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', STATE_DIR: stateDir, ...env };
  const child = startChild(name, process.execPath, [entry, 'serve'], {
    cwd: ROOT,
    env: { ...process.env, ...full },
    logPath: path.join(workDir, `${name.replace(/[^\w-]/g, '_')}.log`),
  });
  await waitReady(child, port, READINESS, 120_000);
  return { name, child, port, stateDir, env: full };
}

export async function stopEngine(e: EngineProc): Promise<void> {
  await stopChild(e.child, 15_000);
  fs.rmSync(e.stateDir, { recursive: true, force: true });
  stateDirs.delete(e.stateDir);
}

/** Throws, with the end of its log, when the server died during the benchmark. */
export function assertAlive(e: { name: string; child: Child }): void {
  if (e.child.exited) throw new Error(`${e.name} exited (code ${e.child.exitCode}, signal ${e.child.exitSignal})\n${tail(e.child.logPath, 30)}`);
}

/**
 * Lines of the engine's log at `minLevel` or above (pino: 40 warn, 50 error, 60 fatal), and any
 * line that is not pino's JSON (a stack trace on stderr), for the report.
 */
export function logProblems(e: { child: Child }, minLevel = 40): string[] {
  if (!e.child.logPath) return [];
  let text = '';
  try {
    text = fs.readFileSync(e.child.logPath, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const o = JSON.parse(line) as { level?: number; msg?: string };
      if ((o.level ?? 0) >= minLevel) out.push(`level ${o.level}: ${o.msg ?? line.slice(0, 200)}`);
    } catch {
      out.push(line.slice(0, 200));
    }
  }
  return out;
}

export async function getJson<T = unknown>(port: number, p: string): Promise<T> {
  const a = await request(port, 'GET', p, undefined, {}, 10_000);
  if (a.status !== 200) throw new Error(`GET ${p}: ${a.status} ${a.body.toString('utf8').slice(0, 300)}`);
  return JSON.parse(a.body.toString('utf8')) as T;
}

export async function postJson(port: number, p: string, body: Buffer | string): Promise<{ status: number; json: unknown }> {
  const a = await request(port, 'POST', p, Buffer.isBuffer(body) ? body : Buffer.from(body), { 'content-type': 'application/json' }, 30_000);
  let json: unknown = null;
  try {
    json = JSON.parse(a.body.toString('utf8'));
  } catch {
    json = a.body.toString('utf8');
  }
  return { status: a.status, json };
}

/** The engine's configuration as it reports it (GET /monitoring/system/info → config). */
export async function engineConfig(e: EngineProc): Promise<Record<string, unknown>> {
  const info = await getJson<{ config: Record<string, unknown> }>(e.port, '/monitoring/system/info');
  return info.config;
}

/** Keys whose values differ between two engines' configurations, PORT and STATE_DIR left out. */
export function configDiff(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    if (k === 'PORT' || k === 'STATE_DIR') continue;
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push(`${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bodies

/**
 * A label for a generated feature row: UP when a noisy mix of the short return, the momentum
 * z-score and the order-flow imbalance is positive, so a model can learn something from the
 * feedback, but not everything (about 25% of labels go against the signal).
 */
export function labelFor(row: readonly number[], rand: () => number): 0 | 1 {
  const vol = row[5]! > 0 ? row[5]! : 0.01;
  const signal = 0.6 * (row[0]! / vol) + 0.4 * row[8]! + 0.8 * row[15]!;
  const noise = Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
  return signal + 0.8 * noise > 0 ? 1 : 0;
}

/** `{"instances":[...],"labels":[...]}` bodies for POST /learn, `rows` labelled rows each. */
export function makeLearnBodies(rows: number, F: number, count: number, seed: number): Buffer[] {
  const rand = rng(seed);
  const row: number[] = [];
  const bodies: Buffer[] = [];
  for (let b = 0; b < count; b++) {
    const parts: string[] = [];
    const labels: number[] = [];
    for (let r = 0; r < rows; r++) {
      featureRow(rand, F, row);
      const text = row.map(formatFeature);
      labels.push(labelFor(text.map(Number), rand));
      parts.push('[' + text.join(',') + ']');
    }
    bodies.push(Buffer.from(`{"instances":[${parts.join(',')}],"labels":[${labels.join(',')}]}`));
  }
  return bodies;
}

export { WRK_PATH } from './wrk';

// ---------------------------------------------------------------------------------------------
// One measured run with CPU accounting.

export interface Measured {
  run: WrkResult;
  /** % of one core used by the engine during the run. */
  serverCpuPct: number;
  loadgenCpuPct: number;
  /** % of one core used by everything else (other jobs, the idle variant, VM steal). */
  otherCpuPct: number;
  /** 1-minute load average when the run started. */
  load1: number;
}

export async function measured(e: EngineProc, spec: WrkRun): Promise<Measured> {
  assertAlive(e);
  const pid = e.child.proc.pid;
  const load1 = os.loadavg()[0]!;
  const c0 = cpuSeconds(pid);
  const b0 = machineBusySeconds();
  const t0 = performance.now();
  const run = await runWrk(spec);
  const wall = (performance.now() - t0) / 1000;
  const c1 = cpuSeconds(pid);
  const b1 = machineBusySeconds();
  assertAlive(e);
  const server = c1 - c0;
  const loadgen = Number.isFinite(run.loadgenCpuS) ? run.loadgenCpuS : 0;
  return {
    run,
    serverCpuPct: (server / wall) * 100,
    loadgenCpuPct: (loadgen / run.durationS) * 100,
    otherCpuPct: Math.max(0, ((b1 - b0 - server - loadgen) / wall) * 100),
    load1,
  };
}

export function runLine(label: string, m: Measured, rowsPerRequest: number): string {
  const r = m.run;
  const bad = r.non2xx + r.socketErrors > 0 ? `  !! ${r.non2xx} non-2xx, ${r.socketErrors} socket errors` : '';
  return `  ${label.padEnd(22)} ${fmtCount(r.okPerS).padStart(7)} req/s ${fmtCount(r.okPerS * rowsPerRequest).padStart(7)} rows/s  p50 ${fmtMs(r.p50Us)} p95 ${fmtMs(r.p95Us)} p99 ${fmtMs(r.p99Us)} ms  cpu engine ${m.serverCpuPct.toFixed(0)}% wrk ${m.loadgenCpuPct.toFixed(0)}% other ${m.otherCpuPct.toFixed(0)}%  load ${m.load1.toFixed(2)}${bad}\n`;
}

// ---------------------------------------------------------------------------------------------
// Summaries

export interface VariantSummary extends RunsSummary {
  rowsPerS: number;
  serverCpuPct: number;
  otherCpuPct: number;
  load1: number;
  /** Median over runs of 2xx answers per second of engine CPU (req/s ÷ engine cores busy). */
  perCpuS: number;
}

export function summarize(runs: readonly Measured[], rowsPerRequest: number): VariantSummary {
  return {
    ...summarizeRuns(runs.map((m) => m.run)),
    rowsPerS: median(runs.map((m) => m.run.okPerS * rowsPerRequest)),
    serverCpuPct: median(runs.map((m) => m.serverCpuPct)),
    otherCpuPct: median(runs.map((m) => m.otherCpuPct)),
    load1: median(runs.map((m) => m.load1)),
    perCpuS: median(runs.map((m) => m.run.okPerS / (m.serverCpuPct / 100))),
  };
}

/** The paired rounds in which other processes used less than `maxOtherPct` of a core during both runs. */
export function quietPairs(a: readonly Measured[], b: readonly Measured[], maxOtherPct: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i]!.otherCpuPct < maxOtherPct && b[i]!.otherCpuPct < maxOtherPct) out.push(i);
  return out;
}

/** What other processes used during each run, for the per-round columns. */
export function otherList(runs: readonly Measured[]): string {
  return runs.map((m) => m.otherCpuPct.toFixed(0) + '%').join(' / ');
}

/** Per-round ratios b/a of a paired statistic (round i of b against round i of a). */
export function pairedRatios(a: readonly Measured[], b: readonly Measured[], pick: (m: Measured) => number): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(pick(b[i]!) / pick(a[i]!));
  return out;
}

export function ratioList(rs: readonly number[]): string {
  return rs.map((r) => r.toFixed(2)).join(' / ');
}

export { fmtCount, fmtMs, fmtRatio, median };

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

/** The commit the engine was built from, and whether the working tree had changes under src/ or workers/. */
export function sourceLine(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'workers'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return `commit ${head}${dirty ? ' with uncommitted changes under src/ or workers/' : ''} (dist/ built from the working tree)`;
  } catch {
    return 'unknown commit';
  }
}

export function loadLine(): string {
  return os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(' / ');
}

/** The `sleep` of ./procs, re-exported for the scripts. */
export { sleep } from './procs';

/**
 * Runs a bench script: parses flags (`--help` prints them), kills every child and removes the
 * engines' state directories on success, failure, a signal or after `budgetS` (watchdog), and
 * exits with main's code (2 for a bad flag).
 */
export function runScript(specs: readonly FlagSpec[], main: (flags: Map<string, string>, setBudget: (s: number) => void) => Promise<number>): void {
  installExitHandlers((err) => {
    process.stderr.write(`\nfatal: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    void stopAll(2000).finally(() => process.exit(1));
  });
  const setBudget = (s: number): void => {
    const t = setTimeout(() => {
      process.stderr.write(`watchdog: still running after ${Math.round(s)} s, stopping\n`);
      void stopAll(2000).finally(() => process.exit(3));
    }, s * 1000);
    t.unref();
  };
  const run = async (): Promise<number> => {
    const flags = parseArgs(process.argv.slice(2), withHelp(specs));
    if (flags.has('help')) {
      process.stdout.write(usage(withHelp(specs)) + '\n');
      return 0;
    }
    return main(flags, setBudget);
  };
  run().then(
    async (code) => {
      await stopAll(3000);
      process.exit(code);
    },
    async (err: unknown) => {
      if (err instanceof UsageError) process.stderr.write(`${err.message}\n${usage(specs)}\n`);
      else process.stderr.write(`\nfailed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      await stopAll(3000);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}

/** The command line as the report shows it. */
export function commandLine(script: string): string {
  return `npx tsc -p tsconfig.json && node dist/bench/${script}${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}`;
}
