/**
 * `tradeflow load` from its options to its report: what the engine serves, the requests, the
 * run (or the sweep), the server's view of the same window, the alert watch, the plot, and the
 * exit code (0 passed, 3 a check failed: the alert's state, --p95-under, a sweep with no knee).
 */
import * as fs from 'node:fs';
import { tfError } from '../errors';
import { AlertWatch, type AlertExpectation, type AlertVerdict } from './alert-watch';
import type { Target } from './connection';
import type { RunSpec } from './driver';
import { plotSvg, type PlotSeries } from './plot';
import { progress } from './progress';
import { PrometheusApi } from './prometheus-api';
import { formatStep, formatSweep, hgrm, toJson, type RunDescription } from './report';
import { buildRequests, csvRows, generatedRowCount, generatedRows, RequestCycle, servedModel } from './requests';
import { runStep, type ServerSources, type StepResult } from './session';
import { shapeByName } from './shapes';
import { runSweep, type SweepPlan, type SweepResult } from './sweep';
import { formatMs } from './units';

export interface LoadTestOptions {
  url: string;
  model: string | null;
  /** F from the command line (a target that is not the engine); null: from GET /models. */
  features: number | null;
  mode: 'open' | 'closed';
  rate: number;
  connections: number;
  durationMs: number;
  warmupMs: number;
  timeoutMs: number;
  shape: string;
  rows: number;
  csv: { path: string; labelColumn: string; dropColumns: string[] } | null;
  /** Seed of the generated rows; null: a fresh one each run (reported), so a run's rows are not in the cache from the last. */
  seed: number | null;
  json: boolean;
  hgrm: boolean;
  plot: string | null;
  sweep: SweepPlan | null;
  p95UnderMs: number | null;
  /** Read the engine's GET /monitoring/metrics (off for a target that is not the engine). */
  engineMetrics: boolean;
  prometheus: string | null;
  instance: string | null;
  expectAlert: AlertExpectation | null;
}

export interface LoadTestResult {
  /** What goes to stdout: the report, the JSON object, or the .hgrm text. */
  stdout: string;
  /** With --hgrm the report goes here instead. */
  stderr: string;
  exitCode: 0 | 3;
}

export const EXIT_CHECK_FAILED = 3;
/** The sweep's default threshold: HighAPILatency's (P95 > 1 s, monitoring/prometheus/alert_rules.yml). */
export const DEFAULT_P95_UNDER_MS = 1000;

interface Prepared {
  target: Target;
  description: RunDescription;
  spec: RunSpec;
  sources: ServerSources;
  notes: string[];
}

async function prepare(o: LoadTestOptions): Promise<Prepared> {
  const target = targetOf(o.url);
  const shape = shapeByName(o.shape);
  const served = o.features !== null ? { name: o.model, features: o.features } : await servedModel(o.url, o.model);
  const bare = { features: served.features, rows: o.rows, model: o.model, servedModel: served.name };
  const t = shape.prepare ? await shape.prepare(o.url, bare) : bare;
  const data = o.csv ? await csvRows(o.csv.path, o.csv.labelColumn, o.csv.dropColumns) : generatedRows(served.features, generatedRowCount(o.rows, served.features), o.seed ?? (Math.random() * 2 ** 32) >>> 0);
  const requests = buildRequests(shape, t, data, target);
  const notes: string[] = [];
  const prometheus = o.prometheus ? await prometheusSource(new PrometheusApi(o.prometheus), shape.endpoint, target, o.instance, notes) : null;
  if (o.prometheus && prometheus === null) notes.push(`Prometheus at ${o.prometheus} has no scrape target ${target.host}:${target.port} nor any api_request_duration_seconds series for ${shape.endpoint} yet: its view is left out (--instance names the engine's instance)`);
  return {
    target,
    description: { url: o.url, path: shape.path(t), shape: shape.name, rows: o.rows, model: served.name, features: served.features, source: `${data.source}, ${requests.length} distinct request${requests.length === 1 ? '' : 's'} cycled` },
    spec: { target, requests: new RequestCycle(requests), connections: o.connections, mode: o.mode, rate: o.rate, warmupMs: o.warmupMs, durationMs: o.durationMs, timeoutMs: o.timeoutMs, keepSamples: o.plot !== null },
    sources: { engineUrl: o.engineMetrics ? o.url : null, endpoint: shape.endpoint, prometheus },
    notes,
  };
}

function targetOf(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw tfError('CONFIG_INVALID', `--url must be an http:// URL, got "${url}"`);
  }
  if (u.protocol !== 'http:') throw tfError('CONFIG_INVALID', `--url must be an http:// URL (the load generator speaks plain HTTP/1.1), got "${url}"`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

/**
 * Which of Prometheus' `instance`s is the engine under load: --instance, else the scrape target
 * that names --url's host and port (localhost and 127.0.0.1 alike), else the only instance with
 * the engine's histogram; none of them: null (Prometheus' view is then left out).
 */
async function prometheusSource(api: PrometheusApi, endpoint: string, target: Target, explicit: string | null, notes: string[]): Promise<{ api: PrometheusApi; instance: string } | null> {
  if (explicit) return { api, instance: explicit };
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(target.host);
  const names = loopback ? ['127.0.0.1', 'localhost', '[::1]'].map((h) => `${h}:${target.port}`) : [`${target.host}:${target.port}`];
  const scraped = (await api.targetInstances()).find((i) => names.includes(i));
  if (scraped !== undefined) return { api, instance: scraped };
  const instances = await api.instances(endpoint);
  if (instances.length === 1) {
    notes.push(`Prometheus' only instance with ${endpoint} series is ${instances[0]}: taken as this engine (--instance to name another)`);
    return { api, instance: instances[0]! };
  }
  if (instances.length === 0) return null;
  throw tfError('CONFIG_INVALID', `Prometheus scrapes several engines (${instances.join(', ')}) and none is ${names[0]}: name one with --instance`);
}

export async function runLoadTest(o: LoadTestOptions, progressStream: NodeJS.WritableStream): Promise<LoadTestResult> {
  const p = await prepare(o);
  const watch = o.expectAlert && o.prometheus ? new AlertWatch(new PrometheusApi(o.prometheus), o.expectAlert, p.sources.prometheus?.instance ?? null) : null;
  await watch?.start();
  const bar = progress(progressStream);
  const started = (label: string) => ({ started: (w: Parameters<typeof bar.follow>[1], m: Parameters<typeof bar.follow>[2]) => bar.follow(label, w, m) });
  let step: StepResult | undefined;
  let sweep: SweepResult | undefined;
  try {
    if (o.sweep) sweep = await runSweep(o.sweep, p.spec, p.sources, o.p95UnderMs ?? DEFAULT_P95_UNDER_MS, (v) => started(`${o.sweep!.by} ${v}: `));
    else step = await runStep(p.spec, p.sources, started(''));
  } finally {
    bar.stop();
  }
  const steps = sweep ? sweep.steps.map((s) => s.result) : [step!];
  if (steps.every((s) => s.client.answered === 0)) throw new Error(`no request was answered: ${JSON.stringify(steps[steps.length - 1]!.client.failures)}`);
  const alert = watch ? await watch.finish(steps[steps.length - 1]!.outcome.wallEnd) : null;
  return finish(o, p, step, sweep, alert);
}

function finish(o: LoadTestOptions, p: Prepared, step: StepResult | undefined, sweep: SweepResult | undefined, alert: AlertVerdict | null): LoadTestResult {
  const checks: Record<string, unknown> = {};
  if (alert) checks.alert = alert.ok;
  if (step && o.p95UnderMs !== null) checks.p95Under = step.client.latencyMs.p95 < o.p95UnderMs;
  if (sweep) checks.knee = sweep.knee !== null;
  const notes = [...p.notes, ...stepNotes(sweep ? sweep.steps.map((s) => s.result) : [step!])];
  if (step && o.p95UnderMs !== null) notes.push(`p95 ${formatMs(step.client.latencyMs.p95)} is ${checks.p95Under ? '' : 'NOT '}under --p95-under ${formatMs(o.p95UnderMs)}`);
  if (o.plot) {
    fs.writeFileSync(o.plot, plotSvg(`tradeflow load: ${p.description.shape} ${p.description.rows} row(s) to ${o.url}${p.description.path}`, plotSeries(step, sweep)));
    notes.push(`plot written to ${o.plot}`);
  }
  const report = sweep ? formatSweep(p.description, sweep, alert, notes) : formatStep(p.description, step!, alert, notes);
  const exitCode = Object.values(checks).every(Boolean) ? 0 : EXIT_CHECK_FAILED;
  if (o.json) return { stdout: toJson(p.description, { step, sweep }, alert, checks), stderr: '', exitCode };
  if (o.hgrm) return { stdout: hgrm(step!), stderr: report, exitCode };
  return { stdout: report, stderr: '', exitCode };
}

function stepNotes(steps: StepResult[]): string[] {
  const notes: string[] = [];
  const hits = steps.reduce((n, s) => n + (s.server.find((v) => v.source === 'engine')?.window?.cacheHits ?? 0), 0);
  if (hits > 0) notes.push(`${hits.toLocaleString('en-US')} answers came from the engine's prediction cache (repeated 1-row requests): they measure the cache, not the model`);
  const dropped = steps.reduce((n, s) => n + s.outcome.measured.samplesDropped, 0);
  if (dropped > 0) notes.push(`the plot's time chart leaves out the last ${dropped.toLocaleString('en-US')} answers (it keeps 4,000,000)`);
  // Reopening connections a server closed while idle is routine; it is worth a note beside failures.
  const reconnects = steps.reduce((n, s) => n + s.client.reconnects, 0);
  if (reconnects > 0 && steps.some((s) => s.client.failed > 0)) notes.push(`${reconnects} connections were opened again (the server closed them, or a request on them failed)`);
  return notes;
}

function plotSeries(step: StepResult | undefined, sweep: SweepResult | undefined): PlotSeries[] {
  const runs = sweep ? sweep.steps.map((s) => ({ label: `${sweep.plan.by === 'rate' ? `${s.value}/s` : `${s.value} conns`}`, r: s.result })) : [{ label: step!.client.mode === 'open' ? `${step!.client.askedRate}/s open loop` : 'closed loop', r: step! }];
  let offset = 0;
  return runs.map(({ label, r }) => {
    const { times, latencies } = r.outcome.measured.series();
    const s: PlotSeries = { label, histogram: r.outcome.measured.latencyUs, times, latencies, offsetMs: offset, durationMs: r.outcome.spec.durationMs };
    offset += r.outcome.spec.durationMs;
    return s;
  });
}
