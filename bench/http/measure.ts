/**
 * One run of the load generator against one server, with the CPU the server, the load generator
 * and everything else used meanwhile, and (for the engine) what its metrics saw.
 */
import type { BodySet } from '../lib/bodies';
import { cpuSeconds, machineBusySeconds } from '../lib/cpu';
import { assertAlive } from '../lib/engine-proc';
import { runLoad, type RunResult } from '../lib/loadgen';
import { fmtCount, fmtMs } from '../lib/stats';
import { internalsBetween, scrapeCounters, type EngineCounters, type EngineInternals } from './engine-internals';
import type { Options } from './options';
import type { Scenario } from './scenarios';
import type { Server } from './servers';

export interface RunMeasure {
  run: RunResult;
  serverCpuPct: number;
  /** CPU seconds the server used (user + system, all its threads, /proc/<pid>/stat) per 1,000 2xx answers. */
  cpuSPer1k: number;
  /** CPU used by everything else on the machine during the run (other jobs, the harness), % of one core. */
  otherCpuPct: number;
  internals: EngineInternals | null;
}

/** Per server and scenario: the body where the next run starts (see LoadSpec.startIndex). */
const cursors = new Map<string, number>();

function counters(s: Server): Promise<EngineCounters | null> {
  return s.kind === 'engine' ? scrapeCounters(s.port) : Promise.resolve(null);
}

function runLine(s: Server, sc: Scenario, m: RunMeasure): string {
  const { run, internals } = m;
  const flag = run.non2xx + run.socketErrors > 0 ? `  !! ${run.non2xx} non-2xx, ${run.socketErrors} socket errors` : '';
  const inside = internals ? `  [${internals.rowsPerBatch.toFixed(1)} rows/batch, queue wait ${fmtMs(internals.queueWaitMeanUs)} ms, cache hits ${internals.cacheHits}]` : '';
  return `  ${s.name.padEnd(10)} ${fmtCount(run.okPerS).padStart(7)} req/s ${fmtCount(run.okPerS * sc.rows).padStart(7)} rows/s  p50 ${fmtMs(run.p50Us)} p95 ${fmtMs(run.p95Us)} p99 ${fmtMs(run.p99Us)} ms  cpu server ${m.serverCpuPct.toFixed(0)}% (${m.cpuSPer1k.toFixed(3)} s/1k req) loadgen ${((run.loadgenCpuS / run.durationS) * 100).toFixed(0)}% other ${m.otherCpuPct.toFixed(0)}%${inside}${flag}\n`;
}

export async function measure(o: Options, s: Server, sc: Scenario, set: BodySet, durationS: number, workDir: string): Promise<RunMeasure> {
  assertAlive(s);
  const pid = s.child.proc.pid;
  const m0 = await counters(s);
  const c0 = cpuSeconds(pid);
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const key = `${s.name}/${sc.id}`;
  const startIndex = cursors.get(key) ?? 0;
  const run = await runLoad(o.tool, { port: s.port, connections: sc.connections, durationS, set, threads: o.threads, workDir, id: sc.id, startIndex });
  cursors.set(key, (startIndex + run.responses) % set.bodies.length);
  const wall = (performance.now() - t0) / 1000;
  const c1 = cpuSeconds(pid);
  const busy1 = machineBusySeconds();
  assertAlive(s);
  const internals = internalsBetween(m0, await counters(s));
  const serverCpuPct = ((c1 - c0) / wall) * 100;
  // autocannon runs inside this process: its CPU is the load generator's, not "other".
  // Clamped at 0: clock-tick granularity makes a quiet machine read a few percent either side.
  const otherCpuPct = Math.max(0, ((busy1 - busy0 - (c1 - c0) - run.loadgenCpuS * (wall / run.durationS)) / wall) * 100);
  const cpuSPer1k = run.ok > 0 ? ((c1 - c0) / run.ok) * 1000 : NaN;
  const m = { run, serverCpuPct, cpuSPer1k, otherCpuPct, internals };
  process.stdout.write(runLine(s, sc, m));
  return m;
}
