/**
 * --sweep: one measured step per rate (or per connection count), in the order given, stopping
 * after the first step that fails, as perf_analyzer's sweep stops at its latency threshold. The
 * knee is the last step that passed: the highest load whose client P95 stayed under --p95-under
 * while the engine still answered it (at most 1 % errors and, in the open loop, at least 95 % of
 * the asked rate achieved: a load answered with 503s is not a load sustained).
 */
import { tfError } from '../errors';
import type { RunHooks, RunSpec } from './driver';
import { runStep, type ServerSources, type StepResult } from './session';

export interface SweepPlan {
  by: 'rate' | 'connections';
  values: number[];
}

export interface SweepStep {
  value: number;
  result: StepResult;
  ok: boolean;
  /** Why it failed; '' when it passed. */
  why: string;
}

export interface SweepResult {
  plan: SweepPlan;
  p95UnderMs: number;
  steps: SweepStep[];
  /** The last passing step; null when the first failed. */
  knee: SweepStep | null;
}

export const MAX_ERROR_SHARE = 0.01;
export const MIN_ACHIEVED_SHARE = 0.95;
const MAX_STEPS = 100;

/** "100,200,400", "100:1000:100" (start:end:step), "rate=...", "connections=1,2,4". */
export function parseSweep(raw: string): SweepPlan {
  const m = /^(?:(rate|connections)=)?(.+)$/.exec(raw.trim())!;
  const by = (m[1] ?? 'rate') as SweepPlan['by'];
  const bad = (why: string): never => {
    throw tfError('CONFIG_INVALID', `--sweep ${raw}: ${why} (e.g. 100,200,400, 100:1000:100, connections=1,2,4)`);
  };
  let values: number[];
  const range = /^([\d.]+):([\d.]+):([\d.]+)$/.exec(m[2]!);
  if (range) {
    const [start, end, step] = range.slice(1).map(Number) as [number, number, number];
    if (!(step > 0) || !(end >= start)) bad('a range is start:end:step with end ≥ start and step > 0');
    values = [];
    for (let v = start; v <= end + 1e-9 && values.length <= MAX_STEPS; v += step) values.push(Number(v.toPrecision(12)));
  } else values = m[2]!.split(',').map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !(v > 0) || !Number.isFinite(v))) bad('every value must be a number above 0');
  if (values.length > MAX_STEPS) bad(`at most ${MAX_STEPS} steps`);
  if (by === 'connections' && values.some((v) => !Number.isInteger(v))) bad('connection counts are whole numbers');
  return { by, values };
}

/** Why `r` is not a sustained load at this P95 threshold ('' if it is). */
export function stepVerdict(r: StepResult, p95UnderMs: number): string {
  const c = r.client;
  const reasons: string[] = [];
  if (!(c.latencyMs.p95 < p95UnderMs)) reasons.push(`p95 not under the threshold`);
  const requests = c.answered + c.failed;
  if (requests === 0 || c.errors / requests > MAX_ERROR_SHARE) reasons.push(`errors ${requests ? ((100 * c.errors) / requests).toFixed(1) : 100} %`);
  if (c.askedRate !== null && c.achievedRate < MIN_ACHIEVED_SHARE * c.askedRate) reasons.push(`achieved ${((100 * c.achievedRate) / c.askedRate).toFixed(0)} % of the rate`);
  return reasons.join(', ');
}

/** `hooksFor(value)`: the run hooks of the step at `value` (a progress line). */
export async function runSweep(plan: SweepPlan, base: RunSpec, sources: ServerSources, p95UnderMs: number, hooksFor: (value: number) => Pick<RunHooks, 'started'> = () => ({})): Promise<SweepResult> {
  const steps: SweepStep[] = [];
  for (const value of plan.values) {
    const spec: RunSpec = plan.by === 'rate' ? { ...base, rate: value } : { ...base, connections: value };
    const result = await runStep(spec, sources, hooksFor(value));
    const why = stepVerdict(result, p95UnderMs);
    const step: SweepStep = { value, result, ok: why === '', why };
    steps.push(step);
    if (!step.ok) break;
  }
  const firstFail = steps.findIndex((s) => !s.ok);
  const passed = firstFail < 0 ? steps : steps.slice(0, firstFail);
  return { plan, p95UnderMs, steps, knee: passed[passed.length - 1] ?? null };
}
