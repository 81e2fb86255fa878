/**
 * HTTP_THREADS (issue 11): the same engine with the main thread serving HTTP (1) and with front-end
 * threads (2, and more when asked), interleaved in one run, per scenario: req/s, rows/s,
 * p50/p95/p99, and the engine's CPU per 1,000 requests (every thread of the process, from /proc),
 * with each variant's ratio to HTTP_THREADS=1. Seeded varying bodies, CACHE_CAPACITY=0, so no
 * answer comes from the cache. Otherwise the engine's defaults (WORKERS = cores - 1).
 *
 *   npm run build && node dist/bench/http-threads.js [--threads 1,2] [--rounds 3] [--duration 5] [--warmup 2] [--scenarios a,b,c,d] [--metrics-off] [--out file.md]
 *
 * --metrics-off adds, for the largest thread count, an engine with METRICS_ENABLED=false: the cost
 * of the shared-memory metrics of the front-end threads (target ≥ 0.95×).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError, numberFlag, type FlagSpec } from './lib/args';
import { makeBodies, type BodySet } from './lib/bodies';
import { commandLine, fmtCount, fmtMs, fmtRatio, loadLine, logProblems, machineLine, measured, median, runLine, runScript, sleep, sourceLine, startEngine, stopEngine, summarize, WRK_PATH, type EngineProc, type Measured } from './lib/engine-proc';
import { request } from './lib/request';

const FLAGS: FlagSpec[] = [
  { name: 'threads', help: 'comma-separated HTTP_THREADS values (default 1,2)' },
  { name: 'rounds', help: 'measured rounds per variant and scenario (default 3)' },
  { name: 'duration', help: 'seconds per measured run (default 5)' },
  { name: 'warmup', help: 'seconds of discarded warm-up per variant and scenario (default 2)' },
  { name: 'scenarios', help: 'comma-separated scenario ids (default a,b,c,d,e,f)' },
  { name: 'metrics-off', help: 'also run the largest thread count with METRICS_ENABLED=false', switch: true },
  { name: 'out', help: 'also write the markdown section to this file' },
];

interface Scenario {
  id: string;
  title: string;
  kind: 'features' | 'instances' | 'binary';
  rows: number;
  connections: number;
  bodies: number;
  seed: number;
}

const SCENARIOS: Scenario[] = [
  { id: 'a', title: 'JSON 1 row, 64 conn', kind: 'features', rows: 1, connections: 64, bodies: 65536, seed: 1101 },
  { id: 'b', title: 'JSON 64 rows, 8 conn', kind: 'instances', rows: 64, connections: 8, bodies: 512, seed: 1102 },
  { id: 'c', title: 'JSON 64 rows, 64 conn', kind: 'instances', rows: 64, connections: 64, bodies: 512, seed: 1103 },
  { id: 'd', title: 'binary 64 rows, 64 conn', kind: 'binary', rows: 64, connections: 64, bodies: 512, seed: 1104 },
  // One request at a time: the latency difference between the variants is the hand-off's cost (issue 11, part 5).
  { id: 'e', title: 'JSON 1 row, 1 conn', kind: 'features', rows: 1, connections: 1, bodies: 65536, seed: 1105 },
  { id: 'f', title: 'JSON 64 rows, 1 conn', kind: 'instances', rows: 64, connections: 1, bodies: 512, seed: 1106 },
];

interface Variant {
  key: string;
  env: Record<string, string>;
}

async function check(e: EngineProc, set: BodySet): Promise<void> {
  const a = await request(e.port, 'POST', '/predict', set.bodies[0]!, { 'content-type': set.contentType });
  if (a.status !== 200) throw new Error(`${e.name}: ${a.status} ${a.body.toString('utf8').slice(0, 200)}`);
}

/** CPU seconds of one thread of a process (the main thread: tid = pid), or NaN. */
function threadCpuSeconds(pid: number | undefined, tid: number | undefined): number {
  if (pid === undefined || tid === undefined) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface ThreadMeasured extends Measured {
  /** Main-thread CPU seconds in the run: the part that stays serial however many front-end threads there are. */
  mainCpuS: number;
}

/** Engine CPU-seconds per 1,000 answered requests in one run. */
function cpuPer1000(m: Measured): number {
  return ((m.serverCpuPct / 100) * m.run.durationS * 1000) / Math.max(1, m.run.ok);
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const threads = (flags.get('threads') ?? '1,2').split(',').map((x) => Number(x.trim()));
  if (threads.some((t) => !Number.isInteger(t) || t < 1 || t > 16)) throw new UsageError('--threads takes whole numbers from 1 to 16');
  const rounds = numberFlag(flags, 'rounds', 3, 1, 20);
  const durationS = numberFlag(flags, 'duration', 5, 1, 60);
  const warmupS = numberFlag(flags, 'warmup', 2, 0, 30);
  const wanted = (flags.get('scenarios') ?? 'a,b,c,d,e,f').split(',').map((x) => x.trim());
  for (const id of wanted) if (!SCENARIOS.some((sc) => sc.id === id)) throw new UsageError(`unknown scenario "${id}"`);
  const scenarios = SCENARIOS.filter((sc) => wanted.includes(sc.id));
  const variants: Variant[] = threads.map((t) => ({ key: `HTTP_THREADS=${t}`, env: { HTTP_THREADS: String(t), CACHE_CAPACITY: '0' } }));
  if (flags.has('metrics-off')) {
    const t = Math.max(...threads);
    variants.push({ key: `HTTP_THREADS=${t} metrics off`, env: { HTTP_THREADS: String(t), CACHE_CAPACITY: '0', METRICS_ENABLED: 'false' } });
  }
  setBudget(scenarios.length * variants.length * (warmupS + rounds * (durationS + 1)) * 1.3 + 120);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-http-threads-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const engines: EngineProc[] = [];
  for (const v of variants) engines.push(await startEngine(v.key, v.env, workDir));
  const results: Array<{ sc: Scenario; runs: ThreadMeasured[][] }> = [];
  for (const sc of scenarios) {
    process.stdout.write(`\n== ${sc.title}\n`);
    const set = makeBodies(sc.kind, sc.rows, 16, sc.bodies, sc.seed);
    for (const e of engines) await check(e, set);
    const cursor = engines.map(() => 1);
    const runs: ThreadMeasured[][] = engines.map(() => []);
    const one = async (i: number, secs: number): Promise<ThreadMeasured> => {
      const e = engines[i]!;
      const pid = e.child.proc.pid;
      const main0 = threadCpuSeconds(pid, pid);
      const m = await measured(e, { port: e.port, path: '/predict', connections: sc.connections, durationS: secs, bodies: set.bodies, contentType: set.contentType, startIndex: cursor[i]!, workDir, id: `threads-${sc.id}` });
      const mainCpuS = threadCpuSeconds(pid, pid) - main0;
      cursor[i] = (cursor[i]! + m.run.responses) % set.bodies.length;
      await sleep(300);
      return { ...m, mainCpuS };
    };
    if (warmupS > 0) for (let i = 0; i < engines.length; i++) await one(i, warmupS);
    for (let r = 0; r < rounds; r++) {
      // Interleaved, the order turned round every round, so a slow spell of the machine hits every variant.
      const order = engines.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        const m = await one(i, durationS);
        runs[i]!.push(m);
        process.stdout.write(runLine(`round ${r + 1} ${variants[i]!.key}`, m, sc.rows).replace(/\n$/, `  cpu/1000 req ${(cpuPer1000(m) * 1000).toFixed(0)} ms (main thread ${((m.mainCpuS * 1e6) / Math.max(1, m.run.ok)).toFixed(0)})\n`));
      }
    }
    results.push({ sc, runs });
  }
  const problems = engines.flatMap((e) => logProblems(e).filter((l) => !l.includes('no ADMIN_TOKEN')));
  for (const e of engines) await stopEngine(e);
  const L: string[] = [];
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`- Command: \`${commandLine('http-threads.js')}\``);
  L.push(`- Source: ${sourceLine()}`);
  L.push(`- Machine: ${machineLine()}; load average ${loadAtStart} at the start, ${loadLine()} at the end`);
  L.push(`- Load: wrk (${WRK_PATH}, 1 thread), 127.0.0.1, ${durationS} s per run, ${warmupS} s warm-up discarded, ${rounds} rounds interleaved (order reversed every round); engines: ${variants.map((v) => v.key).join(', ')}, CACHE_CAPACITY=0, otherwise defaults, the bundled 16-feature model`);
  L.push('');
  L.push('| scenario | engine | req/s | rows/s | p50 ms | p95 ms | p99 ms | non-2xx / socket err | engine CPU | CPU ms / 1,000 req | of it main thread | req/s per round | ÷ HTTP_THREADS=1 (medians) |');
  L.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  for (const { sc, runs } of results) {
    const base = summarize(runs[0]!, sc.rows);
    runs.forEach((rs, i) => {
      const s = summarize(rs, sc.rows);
      const cpu = median(rs.map(cpuPer1000)) * 1000;
      const mainCpu = median(rs.map((m) => (m.mainCpuS * 1e6) / Math.max(1, m.run.ok)));
      L.push(`| ${sc.title} | ${variants[i]!.key} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${s.non2xx} / ${s.socketErrors} | ${s.serverCpuPct.toFixed(0)}% | ${cpu.toFixed(0)} | ${mainCpu.toFixed(0)} | ${s.perRound.map(fmtCount).join(' / ')} | ${i === 0 ? '' : fmtRatio(s.reqPerS / base.reqPerS)} |`);
    });
  }
  L.push('');
  L.push(`Engine log lines at warn or above (besides the no-ADMIN_TOKEN notice): ${problems.length}${problems.length ? ': ' + problems.slice(0, 5).join('; ') : ''}`);
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
