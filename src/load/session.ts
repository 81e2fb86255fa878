/**
 * One measured step of a load test: the engine's metrics read at the start of the window, the
 * run, the metrics read again (and Prometheus', once it has scraped past the end), and the
 * server's P95 set beside the client's.
 */
import { runLoad, type RunHooks, type RunOutcome, type RunSpec } from './driver';
import type { PrometheusApi } from './prometheus-api';
import { clientStats, type ClientStats } from './stats';
import { compareP95, engineSnapshot, quantileOf, windowOf, type Agreement, type ServerQuantile, type ServerSnapshot } from './server-side';

export interface ServerSources {
  /** Engine base URL whose GET /monitoring/metrics is read; null: none (a target that is not the engine). */
  engineUrl: string | null;
  /** Route template of the load's requests (the `endpoint` label). */
  endpoint: string;
  prometheus: { api: PrometheusApi; instance: string } | null;
}

export interface ServerView {
  source: 'engine' | 'prometheus';
  /** Where it was read, for the report. */
  from: string;
  /** Null when it could not be read (`error` says why). */
  window: ServerSnapshot | null;
  p95: ServerQuantile | null;
  /** Answers the engine counted in the window (api_requests_total of the endpoint). */
  requests: number;
  agreement: Agreement | null;
  error?: string;
}

export interface StepResult {
  outcome: RunOutcome;
  client: ClientStats;
  server: ServerView[];
}

export async function runStep(spec: RunSpec, sources: ServerSources, hooks: Pick<RunHooks, 'started'> = {}): Promise<StepResult> {
  let before: Promise<ServerSnapshot | Error> = Promise.resolve(new Error('not read'));
  const atMeasureStart = (): Promise<unknown> => {
    before = sources.engineUrl === null ? before : engineSnapshot(sources.engineUrl, sources.endpoint).catch((err: Error) => err);
    return before;
  };
  const outcome = await runLoad(spec, { ...hooks, atMeasureStart });
  const client = clientStats(outcome);
  const server: ServerView[] = [];
  if (sources.engineUrl !== null) server.push(await engineView(sources.engineUrl, sources.endpoint, await before, client));
  if (sources.prometheus) server.push(await prometheusView(sources.prometheus.api, sources.prometheus.instance, sources.endpoint, outcome, client));
  return { outcome, client, server };
}

function view(source: ServerView['source'], from: string, window: ServerSnapshot, client: ClientStats): ServerView {
  const p95 = quantileOf(window.buckets, 0.95);
  const requests = Object.values(window.byStatus).reduce((a, b) => a + b, 0);
  return { source, from, window, p95, requests, agreement: compareP95({ p95Ms: client.latencyMs.p95, waited: client.schedule.waitedForConnection, late: client.schedule.late }, p95) };
}

function unread(source: ServerView['source'], from: string, error: string): ServerView {
  return { source, from, window: null, p95: null, requests: 0, agreement: null, error };
}

async function engineView(url: string, endpoint: string, before: ServerSnapshot | Error, client: ClientStats): Promise<ServerView> {
  const from = `${url}/monitoring/metrics`;
  if (before instanceof Error) return unread('engine', from, before.message);
  try {
    return view('engine', from, windowOf(before, await engineSnapshot(url, endpoint)), client);
  } catch (err) {
    return unread('engine', from, (err as Error).message);
  }
}

/**
 * Prometheus' counters at the last scrape before the window and at the first that holds every
 * answer of it: the window it sees is the run's, widened to its scrapes.
 */
async function prometheusView(api: PrometheusApi, instance: string, endpoint: string, o: RunOutcome, client: ClientStats): Promise<ServerView> {
  const from = `${api.url} (instance ${instance})`;
  try {
    const b = await api.snapshot(endpoint, instance, o.wallStart / 1000);
    const a = await scrapedPast(api, instance, endpoint, total(b) + client.answered);
    return view('prometheus', from, windowOf(b, a), client);
  } catch (err) {
    return unread('prometheus', from, (err as Error).message);
  }
}

function total(s: ServerSnapshot): number {
  return s.buckets.length === 0 ? 0 : s.buckets[s.buckets.length - 1]!.count;
}

/** Polls (for at most three scrape intervals and 5 s) until Prometheus has `want` observations; then the latest snapshot. */
async function scrapedPast(api: PrometheusApi, instance: string, endpoint: string, want: number): Promise<ServerSnapshot> {
  const target = await api.lastScrape(instance);
  if (target === null) throw new Error(`Prometheus does not scrape instance ${instance}`);
  const until = Date.now() + 3 * target.intervalMs + 5000;
  for (;;) {
    const s = await api.snapshot(endpoint, instance, Date.now() / 1000);
    if (total(s) >= want || Date.now() > until) return s;
    await new Promise((r) => setTimeout(r, Math.min(500, target.intervalMs / 4)));
  }
}
