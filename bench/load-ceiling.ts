/**
 * The load tool's own ceiling (issue 15): what `tradeflow load` can send against the cheapest
 * server there is (bench/baselines/constant-server.ts, uWS answering a constant body), beside
 * autocannon's and wrk's in the same run, so users know when the tool rather than the engine is
 * the limit.
 *
 *   npm run bench:load            (or: npx tsc -p tsconfig.json && node dist/bench/load-ceiling.js)
 *
 * 1. Closed loop, the same connections and duration for each: `tradeflow load --closed`,
 *    autocannon (in this process, which does nothing else meanwhile) and wrk -t1: answers per
 *    second and the CPU each generator used. One thread each, so the server keeps the other core.
 * 2. Open loop, `tradeflow load --rate R`: R grows by half until a run is not sustained (under
 *    99 % of R answered, or a median over 1 ms: requests queueing in the generator); the ceiling
 *    is the last sustained R.
 *
 * Prints a markdown table (for bench/RESULTS.md) and the machine's load while it ran.
 */
import autocannon from 'autocannon';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PREDICT_JSON } from '../src/load/shape-predict';
import { generatedRows } from '../src/load/requests';
import { numberFlag, programFlags, type FlagSpec } from './lib/args';
import { ROOT } from './lib/engine-proc';
import { freePort, installExitHandlers, startChild, stopChild, waitReady } from './lib/procs';
import { runWrk, wrkAvailable } from './lib/wrk';

const FLAGS: FlagSpec[] = [
  { name: 'duration', help: 'seconds per run (default 5)' },
  { name: 'connections', help: 'connections of every generator (default 64, as bench:http drives the engine)' },
  { name: 'start-rate', help: 'first open-loop rate (default 2000/s)' },
];

interface Options {
  durationS: number;
  connections: number;
  startRate: number;
}

interface Row {
  tool: string;
  mode: string;
  answersPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU seconds the generator used per 1000 answers. */
  cpuPerK: number;
  note: string;
}

const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const SERVER = path.join(ROOT, 'dist', 'bench', 'baselines', 'constant-server.js');
const F = 16;
/**
 * Sustained: the asked rate answered (within 1 %) and a median under 1 ms (the server answers in
 * about 0.1 ms: a median above that is requests queueing in the generator). How many requests
 * went out over 1 ms late is reported, not judged: on a shared 2-core machine a few per cent do
 * at any rate, whenever the process is descheduled, and the catch-up absorbs them.
 */
const MAX_P50_MS = 1;

/** `tradeflow load ... --json` under bash, whose `times` gives the generator's CPU. */
function tradeflowLoad(port: number, args: string[]): Promise<{ json: any; cpuS: number }> {
  const all = ['-c', 'node "$@"; rc=$?; times; exit $rc', 'bash', CLI, 'load', '--url', `http://127.0.0.1:${port}`, '--features', String(F), '--no-engine-metrics', '--json', ...args];
  return new Promise((resolve, reject) => {
    execFile('bash', all, { maxBuffer: 16 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      const lines = stdout.trim().split('\n');
      const jsonLine = lines.find((l) => l.startsWith('{'));
      if (err && !jsonLine) return reject(new Error(`tradeflow load ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      const times = lines.filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l.trim())).pop() ?? '';
      const cpuS = [...times.matchAll(/(\d+)m([\d.]+)s/g)].reduce((n, m) => n + Number(m[1]) * 60 + Number(m[2]), 0);
      resolve({ json: JSON.parse(jsonLine!), cpuS });
    });
  });
}

function body(): Buffer {
  const t = { features: F, rows: 1, model: null, servedModel: null };
  return PREDICT_JSON.body(generatedRows(F, 1, 7).rows, 0, t);
}

async function ours(port: number, o: Options): Promise<Row> {
  const { json, cpuS } = await tradeflowLoad(port, ['--closed', '--connections', String(o.connections), '--duration', `${o.durationS}s`]);
  return { tool: 'tradeflow load', mode: `closed, ${o.connections} connections`, answersPerS: json.achievedRate, p50Ms: json.latencyMs.p50, p99Ms: json.latencyMs.p99, cpuPerK: (1000 * cpuS) / json.answered, note: `${json.errors} errors` };
}

async function viaAutocannon(port: number, o: Options): Promise<Row> {
  const cpu0 = process.cpuUsage();
  const r = await autocannon({ url: `http://127.0.0.1:${port}/predict`, connections: o.connections, duration: o.durationS, method: 'POST', headers: { 'content-type': 'application/json' }, body: body() });
  const cpu = process.cpuUsage(cpu0);
  const answers = r['2xx'];
  return { tool: 'autocannon 8', mode: `closed, ${o.connections} connections`, answersPerS: answers / r.duration, p50Ms: r.latency.p50, p99Ms: r.latency.p99, cpuPerK: (1000 * (cpu.user + cpu.system)) / 1e6 / answers, note: `${r.errors + r.non2xx} errors; latency at 1 ms resolution` };
}

async function viaWrk(port: number, o: Options, workDir: string): Promise<Row> {
  if (!wrkAvailable()) return { tool: 'wrk', mode: '-', answersPerS: NaN, p50Ms: NaN, p99Ms: NaN, cpuPerK: NaN, note: '/usr/bin/wrk not installed' };
  const r = await runWrk({ workDir, id: 'ceiling', bodies: [body()], contentType: 'application/json', path: '/predict', port, connections: o.connections, durationS: o.durationS, startIndex: 0, threads: 1 });
  return { tool: 'wrk 4 (-t1)', mode: `closed, ${o.connections} connections`, answersPerS: r.okPerS, p50Ms: r.p50Us / 1000, p99Ms: r.p99Us / 1000, cpuPerK: (1000 * r.loadgenCpuS) / r.ok, note: `${r.non2xx + r.socketErrors} errors` };
}

/** Open loop at growing rates until one is not sustained; the rows of every step. */
async function openCeiling(port: number, o: Options): Promise<{ rows: Row[]; ceiling: number }> {
  const rows: Row[] = [];
  let ceiling = 0;
  for (let rate = o.startRate, i = 0; i < 12; rate = Math.round(rate * 1.5), i++) {
    const { json, cpuS } = await tradeflowLoad(port, ['--rate', String(rate), '--connections', String(o.connections), '--duration', `${o.durationS}s`]);
    const lateShare = json.schedule.late / Math.max(1, json.sent);
    const sustained = json.achievedRate >= 0.99 * rate && json.latencyMs.p50 <= MAX_P50_MS && json.errors === 0;
    rows.push({
      tool: 'tradeflow load',
      mode: `open, ${rate}/s`,
      answersPerS: json.achievedRate,
      p50Ms: json.latencyMs.p50,
      p99Ms: json.latencyMs.p99,
      cpuPerK: (1000 * cpuS) / Math.max(1, json.answered),
      note: `${(100 * lateShare).toFixed(1)} % issued >1 ms late (max ${json.schedule.maxLateMs.toFixed(1)} ms), ${json.schedule.waitedForConnection} waited for a connection: ${sustained ? 'sustained' : 'NOT sustained'}`,
    });
    if (!sustained) break;
    ceiling = rate;
  }
  return { rows, ceiling };
}

function table(rows: Row[]): string {
  const f = (v: number, d = 0): string => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-');
  return [
    '| generator | mode | answers/s | p50 | p99 | generator CPU s per 1000 answers | note |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.tool} | ${r.mode} | ${f(r.answersPerS)} | ${f(r.p50Ms, 3)} ms | ${f(r.p99Ms, 3)} ms | ${f(r.cpuPerK, 3)} | ${r.note} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const o = programFlags('load-ceiling', 'Usage: node dist/bench/load-ceiling.js [options]', FLAGS, (f) => ({
    durationS: numberFlag(f, 'duration', 5, 1, 600),
    connections: numberFlag(f, 'connections', 64, 1, 1024),
    startRate: numberFlag(f, 'start-rate', 2000, 1, 1e7),
  }));
  installExitHandlers((err) => {
    process.stderr.write(`load-ceiling: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-load-ceiling-'));
  const port = await freePort();
  const server = startChild('constant-server', process.execPath, [SERVER, '--port', String(port), '--exit-with-parent'], { logPath: path.join(workDir, 'server.log') });
  try {
    await waitReady(server, port, '/monitoring/health/readiness', 30_000);
    const load0 = os.loadavg()[0]!;
    const closed = [await ours(port, o), await viaAutocannon(port, o), await viaWrk(port, o, workDir)];
    const open = await openCeiling(port, o);
    process.stdout.write(`${table([...closed, ...open.rows])}\n\n`);
    process.stdout.write(`open-loop ceiling of tradeflow load here: ${open.ceiling.toLocaleString('en-US')}/s (${o.connections} connections, ${o.durationS} s per run)\n`);
    process.stdout.write(`Node ${process.version}, ${os.cpus().length} cores, load average ${load0.toFixed(2)} before and ${os.loadavg()[0]!.toFixed(2)} after\n`);
  } finally {
    await stopChild(server);
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

void main();
