/**
 * One scenario: check every server's answers, one discarded warm-up each, then `rounds` rounds of
 * one measured run per server, the order alternating (A B C, C B A, ...) so none always goes first.
 */
import { makeBodies, type BodySet } from '../lib/bodies';
import type { RunResult } from '../lib/loadgen';
import { sleep } from '../lib/procs';
import { checkServer, compareAnswers, type Checked } from './answers';
import type { EngineInternals } from './engine-internals';
import { measure, type RunMeasure } from './measure';
import type { Options } from './options';
import { BUSY_PCT, waitQuiet } from './quiet';
import type { Scenario } from './scenarios';
import type { Server } from './servers';

/** The measured runs of one server in one scenario, one entry per round. */
export interface ServerRuns {
  runs: RunResult[];
  serverCpuPct: number[];
  /** CPU seconds the server used (all its threads, /proc) per 1,000 2xx answers, per round. */
  cpuSPer1k: number[];
  /** CPU used by everything else on the machine during the run (other jobs, the harness), % of one core. */
  otherCpuPct: number[];
  internals: (EngineInternals | null)[];
  skipped: string | null;
}

export interface ScenarioResult {
  scenario: Scenario;
  problems: string[];
  /** By server name, in the order the servers were given. */
  servers: Record<string, ServerRuns>;
}

function emptyRuns(): ServerRuns {
  return { runs: [], serverCpuPct: [], cpuSPer1k: [], otherCpuPct: [], internals: [], skipped: null };
}

async function checkAnswers(servers: Server[], sc: Scenario, set: BodySet, result: ScenarioResult): Promise<void> {
  const checks = new Map<string, Checked>();
  for (const s of servers) {
    const c = await checkServer(s, sc, set);
    checks.set(s.name, c);
    for (const p of c.problems) result.problems.push(`${s.name}: ${p}`);
    if (!c.ok) result.servers[s.name]!.skipped = 'failed the answer check';
  }
  // Every engine must agree with the naive server (same model); the ceiling's score is fake.
  const naive = servers.find((s) => s.kind === 'naive');
  const b = naive && checks.get(naive.name);
  for (const s of servers) {
    const e = checks.get(s.name);
    if (s.kind === 'engine' && e && b) result.problems.push(...compareAnswers(e, b).map((p) => `${s.name}: ${p}`));
  }
  for (const p of result.problems) process.stdout.write(`  check: ${p}\n`);
}

/** A run disturbed by other processes is run again (bounded); the least disturbed is kept. */
async function leastDisturbed(o: Options, s: Server, sc: Scenario, set: BodySet, workDir: string): Promise<RunMeasure> {
  let best: RunMeasure | null = null;
  for (let attempt = 0; attempt <= o.retries; attempt++) {
    if (best) process.stdout.write(`  ${s.name}: other processes used ${best.otherCpuPct.toFixed(0)}% of a core during that run; running it again (${attempt}/${o.retries})\n`);
    await waitQuiet(o.quietWaitS);
    const next = await measure(o, s, sc, set, o.durationS, workDir);
    if (best === null || next.otherCpuPct < best.otherCpuPct) best = next;
    if (next.otherCpuPct <= BUSY_PCT) break;
    await sleep(300);
  }
  return best!;
}

export async function runScenario(o: Options, sc: Scenario, servers: Server[], features: number, workDir: string): Promise<ScenarioResult> {
  process.stdout.write(`\n== (${sc.letter}) ${sc.title} [${sc.id}]\n`);
  const set = makeBodies(sc.kind, sc.rows, features, sc.bodies, sc.seed);
  const result: ScenarioResult = { scenario: sc, problems: [], servers: Object.fromEntries(servers.map((s) => [s.name, emptyRuns()])) };
  await checkAnswers(servers, sc, set, result);
  const active = servers.filter((s) => result.servers[s.name]!.skipped === null);
  if (o.warmupS > 0) {
    process.stdout.write(`  warm-up ${o.warmupS} s each (discarded)\n`);
    for (const s of active) {
      await measure(o, s, sc, set, o.warmupS, workDir);
      await sleep(300);
    }
  }
  for (let round = 0; round < o.rounds; round++) {
    process.stdout.write(`  round ${round + 1}/${o.rounds}\n`);
    for (const s of round % 2 === 0 ? active : [...active].reverse()) {
      const m = await leastDisturbed(o, s, sc, set, workDir);
      const runs = result.servers[s.name]!;
      runs.runs.push(m.run);
      runs.serverCpuPct.push(m.serverCpuPct);
      runs.cpuSPer1k.push(m.cpuSPer1k);
      runs.otherCpuPct.push(m.otherCpuPct);
      runs.internals.push(m.internals);
      await sleep(300);
    }
  }
  return result;
}
