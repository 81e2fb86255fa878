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
import { parseArgs, usage, UsageError, withHelp, type FlagSpec } from './args';
import { featureRow, formatFeature, rng } from './bodies';
import { cpuSeconds, freePort, installExitHandlers, machineBusySeconds, request, startChild, stopAll, stopChild, tail, waitReady, type Child } from './procs';
import { fmtCount, fmtMs, fmtRatio, median } from './stats';
import { parseTimes, wrkScript } from './wrk-script';

/** Repository root, from dist/bench/lib. */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
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
 * `node dist/src/cli/main.js serve` with PORT (free), HOST=127.0.0.1, LOG_LEVEL=warn, a fresh
 * STATE_DIR under the OS temp directory and `env`; resolves once readiness answers 200.
 */
export async function startEngine(name: string, env: Record<string, string>, workDir: string): Promise<EngineProc> {
  const port = await freePort();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `tradeflow-${name.replace(/[^\w-]/g, '_')}-`));
  stateDirs.add(stateDir);
  const full: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', STATE_DIR: stateDir, ...env };
  const child = startChild(name, process.execPath, [CLI, 'serve'], {
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

export function assertAlive(e: EngineProc): void {
  if (e.child.exited) throw new Error(`engine ${e.name} exited (code ${e.child.exitCode}, signal ${e.child.exitSignal})\n${tail(e.child.logPath, 30)}`);
}

/** Lines of the engine's log at level warn or above (pino: level >= 40), for the report. */
export function logProblems(e: EngineProc): string[] {
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
      if ((o.level ?? 0) >= 40) out.push(`level ${o.level}: ${o.msg ?? line.slice(0, 200)}`);
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

// ---------------------------------------------------------------------------------------------
// Load generation: wrk with a generated Lua script rotating pre-built bodies.

export const WRK = '/usr/bin/wrk';

export interface WrkSpec {
  port: number;
  path: string;
  connections: number;
  durationS: number;
  bodies: readonly Buffer[];
  contentType: string;
  /** First body to send; callers continue where the previous run stopped. */
  startIndex: number;
  workDir: string;
  /** Scratch file name prefix (one bodies file and script per id). */
  id: string;
  threads?: number;
  /**
   * Count answers per status in Lua (a response() callback: a little more load-generator CPU).
   * Without it, wrk counts statuses >= 400 only.
   */
  countStatuses?: boolean;
}

export interface WrkResult {
  durationS: number;
  responses: number;
  /** 2xx answers (with countStatuses: answers with the expected status, see `statuses`). */
  ok: number;
  /** Answers that are not 2xx (wrk: status >= 400; with countStatuses: every non-2xx). */
  non2xx: number;
  /** Answers per status (only with countStatuses). */
  statuses: Record<string, number> | null;
  socketErrors: number;
  okPerS: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  maxUs: number;
  loadgenCpuS: number;
}

export async function runWrk(spec: WrkSpec): Promise<WrkResult> {
  const script = wrkScript(spec);
  const threads = Math.max(1, Math.min(spec.threads ?? 1, spec.connections));
  const args = ['-c', 'wrk "$@"; rc=$?; times; exit $rc', 'wrk',
    '-t', String(threads), '-c', String(spec.connections), '-d', `${spec.durationS}s`, '--timeout', '10s',
    '-s', script, `http://127.0.0.1:${spec.port}${spec.path}`, '--', String(spec.startIndex), String(threads)];
  const child = startChild('wrk', 'bash', args, { pipeStdout: true });
  let out = '';
  let err = '';
  child.proc.stdout!.setEncoding('utf8');
  child.proc.stdout!.on('data', (s: string) => (out += s));
  child.proc.stderr!.setEncoding('utf8');
  child.proc.stderr!.on('data', (s: string) => (err += s));
  const killer = setTimeout(() => {
    if (child.proc.pid !== undefined && !child.exited) process.kill(-child.proc.pid, 'SIGKILL');
  }, (spec.durationS + 30) * 1000);
  await child.exitPromise;
  clearTimeout(killer);
  const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
  if (child.exitCode !== 0 || !line) throw new Error(`wrk failed (exit ${child.exitCode}, signal ${child.exitSignal}):\n${out}${err}`);
  const r = JSON.parse(line.slice('@@RESULT '.length)) as Record<string, number> & { counts: Array<Record<string, number>> };
  const durationS = r.duration_us! / 1e6;
  const responses = r.requests!;
  let statuses: Record<string, number> | null = null;
  let ok = responses - r.status!;
  let non2xx = r.status!;
  if (spec.countStatuses) {
    statuses = {};
    for (const c of r.counts) for (const [k, v] of Object.entries(c)) statuses[k] = (statuses[k] ?? 0) + v;
    ok = 0;
    for (const [k, v] of Object.entries(statuses)) if (k.startsWith('2')) ok += v;
    non2xx = responses - ok;
  }
  return {
    durationS,
    responses,
    ok,
    non2xx,
    statuses,
    socketErrors: r.connect! + r.read! + r.write! + r.timeout!,
    okPerS: ok / durationS,
    p50Us: r.p50!,
    p95Us: r.p95!,
    p99Us: r.p99!,
    maxUs: r.max!,
    loadgenCpuS: parseTimes(out),
  };
}

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

export async function measured(e: EngineProc, spec: WrkSpec): Promise<Measured> {
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

export interface VariantSummary {
  reqPerS: number;
  rowsPerS: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  non2xx: number;
  socketErrors: number;
  responses: number;
  serverCpuPct: number;
  otherCpuPct: number;
  load1: number;
  perRound: number[];
  /** Median over runs of 2xx answers per second of engine CPU (req/s ÷ engine cores busy). */
  perCpuS: number;
}

export function summarize(runs: readonly Measured[], rowsPerRequest: number): VariantSummary {
  return {
    reqPerS: median(runs.map((m) => m.run.okPerS)),
    rowsPerS: median(runs.map((m) => m.run.okPerS * rowsPerRequest)),
    p50Us: median(runs.map((m) => m.run.p50Us)),
    p95Us: median(runs.map((m) => m.run.p95Us)),
    p99Us: median(runs.map((m) => m.run.p99Us)),
    non2xx: runs.reduce((s, m) => s + m.run.non2xx, 0),
    socketErrors: runs.reduce((s, m) => s + m.run.socketErrors, 0),
    responses: runs.reduce((s, m) => s + m.run.responses, 0),
    serverCpuPct: median(runs.map((m) => m.serverCpuPct)),
    otherCpuPct: median(runs.map((m) => m.otherCpuPct)),
    load1: median(runs.map((m) => m.load1)),
    perRound: runs.map((m) => m.run.okPerS),
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
