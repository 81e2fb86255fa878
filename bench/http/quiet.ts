/**
 * The machine is shared (other jobs, test suites): runs wait for a quiet moment, and a run
 * during which other processes were busy is flagged as disturbed and run again.
 */
import { machineBusySeconds } from '../lib/cpu';
import { sleep } from '../lib/procs';

/** What counts as a quiet machine before a run (% of one core used by other processes). */
export const QUIET_PCT = 10;
/** A run during which other processes used more than this (% of one core) is disturbed. */
export const BUSY_PCT = 20;

/** Busy CPU of the whole machine over the next second, % of one core (our servers are idle then). */
async function machineBusyPct(): Promise<number> {
  const b0 = machineBusySeconds();
  const t0 = performance.now();
  await sleep(1000);
  return ((machineBusySeconds() - b0) / ((performance.now() - t0) / 1000)) * 100;
}

/** Waits up to `maxS` seconds for a second in which everything else uses less than QUIET_PCT. */
export async function waitQuiet(maxS: number): Promise<void> {
  if (maxS <= 0) return;
  const deadline = Date.now() + maxS * 1000;
  let busy = await machineBusyPct();
  if (busy < QUIET_PCT) return;
  process.stdout.write(`  waiting for a quiet machine (other processes use ${busy.toFixed(0)}% of a core)`);
  while (busy >= QUIET_PCT && Date.now() < deadline) busy = await machineBusyPct();
  process.stdout.write(busy < QUIET_PCT ? ': quiet\n' : `: still ${busy.toFixed(0)}% after ${maxS} s, running anyway\n`);
}
