/**
 * The monitoring stack end to end, against the real binaries (issue 5, "Tests and CI"):
 *
 * 1. Every query works: a real engine scraped by a real Prometheus (temporary copy of the shipped
 *    prometheus.yml and alert_rules.yml, 1 s intervals, temporary storage) gets prediction traffic;
 *    every PromQL expression of the alert rules, of every dashboard panel (Grafana variables
 *    substituted) and the README's example queries then runs through /api/v1/query: none errors,
 *    and every panel fed by prediction traffic returns data.
 * 2. The P95 latency alert fires under real load: one worker, large binary batches at a growing
 *    concurrency until Prometheus' P95 of api_request_duration_seconds is above 1 s;
 *    HighAPILatency (rules copy with only the for: durations shortened) fires in Prometheus,
 *    reaches a real Alertmanager (copy of the shipped config with the webhooks pointed at a
 *    server this test runs) and is delivered to the `warning` receiver; after the load stops and
 *    light traffic brings the 5-minute P95 back under 1 s, it resolves and the webhook receives
 *    `resolved`.
 * 3. `tradeflow load --expect-alert` against the same Prometheus and engine: 3 when the alert does
 *    not fire after light load, 0 when the tool's own load makes it fire, 3 when it is expected
 *    inactive while it fires.
 *
 * All traffic stays on 127.0.0.1, ports come from the OS, waits are on conditions (Prometheus'
 * API polled), every loop is bounded in requests and time, and everything started is stopped in
 * afterAll. Missing prometheus / alertmanager: fails under CI, skipped elsewhere
 * (test/helpers/requirements.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Engine } from '../src/app';
import { makeRows, postBinary, postJson, request, rowsToArrays, startTestEngine, type Reply } from './helpers/engine';
import { writeEnsembleOnnx } from '../src/training/onnx-writer';
import { FEATURE_NAMES } from '../src/training/features';
import { ALERT_RULES, ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG, RECORDING_RULES, REPO_ROOT } from './helpers/monitoring-files';
import { startAlertmanager, startPrometheus, type Daemon } from './helpers/prom-daemons';
import { queryPrometheus, type QueryResult } from './helpers/prom-query';
import { extractPromQL, metricNamesIn } from './helpers/promql';
import { parsePrometheusText } from '../src/telemetry/prometheus-text';
import { loadYaml } from './helpers/yaml';
import { parse } from 'yaml';
import { requireTool } from './helpers/requirements';
import { runLoadCli } from './helpers/load-cli';

const prometheusBin = requireTool('prometheus');
const alertmanagerBin = requireTool('alertmanager');

const F = 16; // features of the default model
const ROW_BYTES = F * 4;

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `check` every `intervalMs` until it returns a truthy value, which it returns; after
 * `timeoutMs` fails with `what` and whatever `state()` describes.
 */
async function poll<T>(check: () => T | Promise<T>, what: string, timeoutMs: number, intervalMs = 200, state: () => string = () => ''): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state() ? `\n${state()}` : ''}`);
    await sleep(intervalMs);
  }
}

async function getJson<T = any>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as T;
}

/** The single finite value of an instant query (sum(...) etc.), or NaN when it has none. */
async function scalarOf(promUrl: string, expr: string): Promise<number> {
  const r = await queryPrometheus(promUrl, expr);
  if (r.status !== 'success') throw new Error(`${expr}: ${r.errorType}: ${r.error}`);
  const first = r.data?.result[0];
  return first?.value ? Number(first.value[1]) : NaN;
}

/** Runs every clean-up step even when one fails; throws the first failure afterwards. */
async function cleanUp(steps: Array<[string, () => unknown]>): Promise<void> {
  const failures: string[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
    }
  }
  if (failures.length) throw new Error(`clean-up failed: ${failures.join('; ')}`);
}

interface TargetsAnswer {
  data: { activeTargets: Array<{ labels: Record<string, string>; scrapePool: string; health: string; lastError: string; scrapeUrl: string }> };
}

/** Waits until Prometheus reports the `count` ml-api targets up (each scraped successfully). */
async function waitForTargetUp(prom: Daemon, timeoutMs = 30_000, count = 1): Promise<void> {
  let last = '';
  await poll(
    async () => {
      const t = await getJson<TargetsAnswer>(`${prom.url}/api/v1/targets?state=active`);
      const targets = t.data.activeTargets.filter((x) => x.scrapePool === 'ml-api');
      last = JSON.stringify(targets.length ? targets : t.data.activeTargets);
      return targets.length === count && targets.every((x) => x.health === 'up');
    },
    `the ${count} ml-api target(s) to be up`,
    timeoutMs,
    100,
    () => `last target state: ${last}\n${prom.logs()}`,
  );
}

/**
 * A temporary copy of the shipped prometheus.yml: 1 s scrape and evaluation intervals, the
 * ml-api targets rewritten to the test engines (a port, or several with target labels), the
 * other jobs (node exporter, Prometheus itself, Alertmanager: not running here) dropped, and alerts
 * sent to `alertmanagerPort` or nowhere. Written as JSON, which is YAML; rule_files stay
 * `alert_rules.yml` and `recording_rules.yml`, next to the copy (RULE_FILES).
 */
function prometheusConfigFor(engines: number | Array<{ port: number; labels: Record<string, string> }>, alertmanagerPort?: number): string {
  const cfg = loadYaml(PROMETHEUS_CONFIG);
  cfg.global.scrape_interval = '1s';
  cfg.global.evaluation_interval = '1s';
  const job = cfg.scrape_configs.find((j: { job_name: string }) => j.job_name === 'ml-api');
  if (!job) throw new Error('prometheus.yml has no ml-api job');
  job.scrape_interval = '1s';
  job.scrape_timeout = '1s';
  job.static_configs =
    typeof engines === 'number' ? [{ targets: [`127.0.0.1:${engines}`] }] : engines.map((e) => ({ targets: [`127.0.0.1:${e.port}`], labels: e.labels }));
  cfg.scrape_configs = [job];
  expect(cfg.rule_files).toEqual(Object.keys(RULE_FILES));
  if (alertmanagerPort === undefined) delete cfg.alerting;
  else cfg.alerting.alertmanagers[0].static_configs = [{ targets: [`127.0.0.1:${alertmanagerPort}`] }];
  return JSON.stringify(cfg, null, 2);
}

/** The rule files prometheus.yml names, by the name it gives them. */
const RULE_FILES: Record<string, string> = { 'alert_rules.yml': ALERT_RULES, 'recording_rules.yml': RECORDING_RULES };

interface RuleDoc {
  groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }>;
}

/** The example queries of README.md's "Metrics" section (its ```promql block), comments left out. */
function readmeExampleQueries(): string[] {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Metrics'));
  const m = /```promql\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md: no ```promql block in the Metrics section');
  return m[1]!
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

type Outcome = 'data' | 'nan' | 'empty' | 'error';

/** data: at least one finite value; nan: series whose values are all NaN/Inf; empty: no series. */
function outcomeOf(r: QueryResult): Outcome {
  if (r.status !== 'success') return 'error';
  const d = r.data!;
  if (d.resultType === 'scalar' || d.resultType === 'string') {
    const v = Number((d.result as unknown as [number, string])[1]);
    return Number.isFinite(v) ? 'data' : 'nan';
  }
  if (d.result.length === 0) return 'empty';
  return d.result.some((s) => s.value && Number.isFinite(Number(s.value[1]))) ? 'data' : 'nan';
}

// ---------------------------------------------------------------------------------------------
// HTTP load (binary /predict), bounded in requests and time
// ---------------------------------------------------------------------------------------------

interface RawAnswer {
  status: number;
  rows: number;
  ms: number;
  body: string;
}

function postRaw(port: number, body: Buffer, agent: http.Agent | false, timeoutMs: number): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/predict',
        agent,
        timeout: timeoutMs,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        // A 64k-row answer is 256 KiB of probabilities: only error bodies are kept.
        res.on('data', (c: Buffer) => {
          if (status !== 200) chunks.push(c);
        });
        res.on('end', () => resolve({ status, rows: Number(res.headers['x-rows'] ?? 0), ms: performance.now() - t0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

interface LoadLimits {
  /** Requests this generator sends at most. */
  maxRequests: number;
  /** Date.now() after which it sends no more. */
  deadline: number;
  /** Client-side timeout of one request. */
  requestTimeoutMs: number;
}

/**
 * Closed-loop load: `concurrency` requests in flight, each of `rows` rows taken from one shared,
 * never modified buffer (memory stays bounded whatever the level). The level can be raised while
 * it runs; it stops by itself at its limits, or after too many transport failures.
 */
class ClosedLoopLoad {
  private rows = 0;
  private concurrency = 0;
  private level = -1;
  private stopped = false;
  private readonly slots: Array<Promise<void>> = [];
  sent = 0;
  answered = 0;
  answeredAtLevel = 0;
  rowsAnswered = 0;
  over1s = 0;
  maxMs = 0;
  readonly statuses = new Map<number, number>();
  readonly problems: string[] = [];
  readonly levelLatencies: number[] = [];

  constructor(
    private readonly port: number,
    private readonly buffer: Buffer,
    private readonly limits: LoadLimits,
    private readonly agent: http.Agent | false = false,
  ) {}

  setLevel(rows: number, concurrency: number): void {
    if (rows * ROW_BYTES > this.buffer.length) throw new Error(`${rows} rows do not fit the load buffer`);
    if (concurrency < this.concurrency) throw new Error('the load only grows');
    this.rows = rows;
    this.concurrency = concurrency;
    this.level++;
    this.answeredAtLevel = 0;
    this.levelLatencies.length = 0;
    while (this.slots.length < concurrency) this.slots.push(this.slot(this.slots.length));
  }

  /** True once it sends nothing more (stopped, or its limits reached). */
  get finished(): boolean {
    return this.stopped || this.sent >= this.limits.maxRequests || Date.now() >= this.limits.deadline;
  }

  private async slot(index: number): Promise<void> {
    while (!this.finished && index < this.concurrency) {
      const level = this.level;
      const body = this.buffer.subarray(0, this.rows * ROW_BYTES);
      this.sent++;
      try {
        const r = await postRaw(this.port, body, this.agent, this.limits.requestTimeoutMs);
        this.answered++;
        this.statuses.set(r.status, (this.statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) this.rowsAnswered += r.rows;
        else if (this.problems.length < 20) this.problems.push(`HTTP ${r.status}: ${r.body.slice(0, 300)}`);
        if (r.ms > 1000) this.over1s++;
        this.maxMs = Math.max(this.maxMs, r.ms);
        if (level === this.level) {
          this.answeredAtLevel++;
          this.levelLatencies.push(r.ms);
        }
      } catch (err) {
        this.problems.push(`transport: ${(err as Error).message}`);
        if (this.problems.length >= 20) this.stopped = true;
      }
    }
  }

  /** Resolves when every slot has ended by itself (limits reached). */
  async done(): Promise<void> {
    await Promise.all(this.slots);
  }

  /** Sends nothing more; resolves when the requests in flight are answered. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.slots);
  }

  summary(): string {
    const statuses = [...this.statuses].map(([s, n]) => `${s}×${n}`).join(' ');
    return `${this.sent} sent, ${this.answered} answered (${statuses}), ${this.rowsAnswered} rows, ${this.over1s} over 1 s, slowest ${this.maxMs.toFixed(0)} ms${this.problems.length ? `; problems: ${this.problems.slice(0, 5).join(' | ')}` : ''}`;
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// 1. Every query works
// ---------------------------------------------------------------------------------------------

/** Panels the prediction traffic feeds: each of their queries must return data. */
const PREDICTION_FED_PANELS = [
  'Predictions per minute',
  'Prediction confidence',
  'Prediction latency percentiles',
  'Request rate',
  'API latency percentiles',
  'Component health',
  'Cache hit ratio',
  'Uptime',
];

/**
 * Metrics the engine of this branch may not export yet (issue 13's feedback stream lag, issue
 * 16's champion routing): the rules and the panel query over them run without error and are
 * empty until it does.
 */
const LATER_METRICS = ['ml_feedback_lag_records', 'ml_model_champion', 'ml_champion_switches_total'];

/** The Kubernetes labels each engine's target gets, as prometheus-adapter finds pods by them. */
const POD_LABELS = [
  { namespace: 'tradeflow', pod: 'tradeflow-a' },
  { namespace: 'tradeflow', pod: 'tradeflow-b' },
];

describe.skipIf(prometheusBin.skip)('every rule, panel and README query works against a real Prometheus scraping two real engines', () => {
  let engine: Engine | undefined;
  let engineB: Engine | undefined;
  let prom: Daemon | undefined;
  let started = 0;

  beforeAll(async () => {
    prometheusBin.get();
    started = Date.now();
    // Two replicas of job ml-api, as a Prometheus in front of several sees them.
    engine = await startTestEngine({ WORKERS: '1' });
    engineB = await startTestEngine({ WORKERS: '1' });
    prom = await startPrometheus({
      config: prometheusConfigFor([
        { port: engine.port, labels: POD_LABELS[0]! },
        { port: engineB.port, labels: POD_LABELS[1]! },
      ]),
      files: Object.fromEntries(Object.entries(RULE_FILES).map(([name, file]) => [name, readFileSync(file, 'utf8')])),
    });
    await waitForTargetUp(prom, 30_000, 2);
  }, 60_000);

  afterAll(async () => {
    await cleanUp([
      ['prometheus', () => prom?.stop()],
      ['engine', () => engine?.shutdown('test end')],
      ['engine B', () => engineB?.shutdown('test end')],
    ]);
  }, 60_000);

  it('answers every expression without error, with data for every panel fed by predictions, aggregated over both engines', async () => {
    const port = engine!.port;
    const portB = engineB!.port;
    const promUrl = prom!.url;
    let rowsPredicted = 0;
    let requestsSent = 0;
    const statuses = new Map<number, number>();
    const unexpected: string[] = [];

    // Counts an answer: its status, and the rows it predicted (from the cache or computed).
    // `rows`: the rows a 200 answer predicts.
    const tally = async (expected: number, rows: number, send: () => Promise<Reply>) => {
      requestsSent++;
      const r = await send();
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status !== expected) unexpected.push(`expected ${expected}, got ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`);
      if (r.status === 200) rowsPredicted += rows;
    };
    const runAll = async (jobs: Array<() => Promise<void>>, concurrency = 8) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < jobs.length) await jobs[next++]!();
        }),
      );
    };

    const repeatedJson = rowsToArrays(makeRows(1, F, 11), F)[0]!; // the same row: cache hits
    const repeatedBinary = makeRows(1, F, 12);
    const jsonSingle = () => tally(200, 1, () => postJson(port, { features: repeatedJson }));
    const binarySingle = () => tally(200, 1, () => postBinary(port, repeatedBinary));
    let seed = 100;
    const jsonBatch = () => {
      const rows = rowsToArrays(makeRows(8, F, seed++), F);
      return tally(200, 8, () => postJson(port, { instances: rows }));
    };
    const binaryBatch = () => {
      const rows = makeRows(64, F, seed++);
      return tally(200, 64, () => postBinary(port, rows));
    };
    // The second replica's share: batches only (above CACHE_MAX_ROWS, so its cache is not asked).
    const binaryBatchB = () => {
      const rows = makeRows(64, F, seed++);
      return tally(200, 64, () => postBinary(portB, rows));
    };
    const invalidJson = () => tally(400, 0, () => request(port, 'POST', '/predict', '{"features": [1, 2', { 'content-type': 'application/json' }));
    const wrongCount = () => tally(400, 0, () => postJson(port, { features: [1, 2, 3] }));
    const notFound = () => tally(404, 0, () => request(port, 'GET', '/no/such/path'));

    // The series of a request kind appear with its first request; rate() needs two samples of a
    // series, so one request of each kind is sent and scraped before the bulk of the traffic.
    const scraped = async (what: string) => {
      const wantRows = rowsPredicted;
      const wantRequests = requestsSent;
      let seen = '';
      await poll(
        async () => {
          const rows = await scalarOf(promUrl, 'sum(ml_predictions_total)');
          const reqs = await scalarOf(promUrl, 'sum(api_requests_total{endpoint!="/monitoring/metrics"})');
          seen = `sum(ml_predictions_total) = ${rows} (want ${wantRows}), sum(api_requests_total) without scrapes = ${reqs} (want ${wantRequests})`;
          return rows === wantRows && reqs === wantRequests;
        },
        `Prometheus to scrape ${what}`,
        20_000,
        200,
        () => seen,
      );
    };
    await runAll([jsonSingle, jsonSingle, binarySingle, jsonBatch, binaryBatch, invalidJson, wrongCount, notFound, binaryBatchB], 1);
    await scraped('one request of each kind');

    // The bulk: ~300 requests; 8 errors in all (under HighErrorRate's minimum of 10, 2.6 %).
    const bulk: Array<() => Promise<void>> = [];
    const repeatedJsonCount = 98;
    const repeatedBinaryCount = 49;
    for (let i = 0; i < repeatedJsonCount; i++) bulk.push(jsonSingle);
    for (let i = 0; i < repeatedBinaryCount; i++) bulk.push(binarySingle);
    for (let i = 0; i < 50; i++) bulk.push(jsonBatch);
    for (let i = 0; i < 100; i++) bulk.push(binaryBatch);
    for (let i = 0; i < 40; i++) bulk.push(binaryBatchB);
    bulk.push(invalidJson, invalidJson, wrongCount, notFound, notFound);
    await runAll(bulk);
    expect(unexpected).toEqual([]);
    await scraped(`${requestsSent} requests, ${rowsPredicted} predicted rows`);
    const cacheHits = await scalarOf(promUrl, 'sum(ml_cache_requests_total{result="hit"})');
    console.log(
      `monitoring e2e: sent ${requestsSent} requests (${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ')}), ${rowsPredicted} rows predicted, ${cacheHits} cache hits; Prometheus has scraped them`,
    );
    // Phase one stored both repeated rows (and hit the JSON one once): every bulk repeat hits.
    expect(cacheHits).toBe(1 + repeatedJsonCount + repeatedBinaryCount);

    // Every expression through /api/v1/query.
    const exprs = [
      ...extractPromQL(),
      ...readmeExampleQueries().map((expr, i) => ({ source: 'readme' as const, name: `README example ${i + 1}`, expr, raw: expr, panelType: undefined })),
    ];
    const results: Array<{ source: string; name: string; expr: string; outcome: Outcome; detail: string }> = [];
    for (const e of exprs) {
      const r = await queryPrometheus(promUrl, e.expr);
      const outcome = outcomeOf(r);
      const detail = outcome === 'error' ? `${r.errorType}: ${r.error}` : `${r.data!.result.length} series`;
      results.push({ source: e.source, name: e.name, expr: e.expr, outcome, detail });
    }
    const count = (pred: (x: (typeof results)[number]) => boolean) => results.filter(pred).length;
    const bySource = ['rule', 'recording', 'variable', 'panel', 'readme']
      .map((s) => `${s}s ${count((x) => x.source === s && x.outcome === 'data')}/${count((x) => x.source === s)}`)
      .join(', ');
    console.log(
      `monitoring e2e: ${results.length} PromQL expressions run through Prometheus: ${count((x) => x.outcome === 'data')} return data, ` +
        `${count((x) => x.outcome === 'nan')} only NaN, ${count((x) => x.outcome === 'empty')} empty, ${count((x) => x.outcome === 'error')} errors (with data: ${bySource})\n` +
        results.map((x) => `  [${x.outcome}] ${x.source} ${x.name}: ${x.detail}`).join('\n'),
    );
    const withoutData = results.filter((x) => x.source === 'panel' && x.outcome !== 'data');
    console.log(
      `monitoring e2e: panels without data (fed by online learning, drift detection or training, none of which this traffic exercises):\n` +
        (withoutData.map((x) => `  ${x.name}: ${x.outcome}  ${x.expr}`).join('\n') || '  none'),
    );

    // None errors.
    expect(results.filter((x) => x.outcome === 'error').map((x) => `${x.source} ${x.name}: ${x.detail}\n  ${x.expr}`)).toEqual([]);
    // Every panel fed by prediction traffic has data, each of its queries; so do the model_name
    // variable and the README's examples (all about predictions).
    const panelNames = new Set(results.filter((x) => x.source === 'panel').map((x) => x.name.replace(/ \[\w+\]$/, '')));
    for (const title of PREDICTION_FED_PANELS) expect(panelNames, title).toContain(title);
    const missing = results.filter(
      (x) =>
        x.outcome !== 'data' &&
        ((x.source === 'panel' && PREDICTION_FED_PANELS.includes(x.name.replace(/ \[\w+\]$/, ''))) || x.source === 'variable' || x.source === 'readme'),
    );
    expect(missing.map((x) => `${x.source} ${x.name}: ${x.outcome}\n  ${x.expr}`)).toEqual([]);
    // Healthy traffic on a fresh engine: no alert condition holds (SPEC §5, issue 5), so every
    // rule expression is empty and Prometheus has no pending or firing alert.
    expect(results.filter((x) => x.source === 'rule' && x.outcome !== 'empty').map((x) => `${x.name}: ${x.outcome}`)).toEqual([]);
    const alerts = await getJson<{ data: { alerts: unknown[] } }>(`${promUrl}/api/v1/alerts`);
    expect(alerts.data.alerts).toEqual([]);

    // Metrics of later issues: absent from this engine, their queries are empty (not an error);
    // once it exports them, the same queries fill in.
    const exported = new Set(parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/monitoring/metrics`)).text()).samples.map((x) => x.name));
    const notYet = LATER_METRICS.filter((m) => !exported.has(m));
    console.log(`monitoring e2e: later-issue metrics exported by this engine: ${LATER_METRICS.filter((m) => exported.has(m)).join(', ') || 'none'}; not yet: ${notYet.join(', ') || 'none'}`);
    const overMissing = results.filter((x) => metricNamesIn(x.expr).some((n) => notYet.includes(n)));
    expect(overMissing.filter((x) => x.outcome !== 'empty').map((x) => `${x.source} ${x.name}: ${x.outcome}`)).toEqual([]);

    // Two replicas: every panel but Uptime aggregates them (no series keeps an instance), Uptime
    // has one series per replica.
    const instances = new Set<string>();
    for (const e of extractPromQL().filter((x) => x.source === 'panel')) {
      const r = await queryPrometheus(promUrl, e.expr);
      const series = r.data?.result ?? [];
      if (e.name.startsWith('Uptime ')) {
        for (const x of series) instances.add(x.metric.instance!);
        expect(series, e.name).toHaveLength(2);
      } else expect(series.filter((x) => 'instance' in x.metric).map((x) => JSON.stringify(x.metric)), `${e.name}: ${e.expr}`).toEqual([]);
    }
    expect([...instances].sort()).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${portB}`].sort());
    // The per-model rate is the sum over both replicas: both served the ensemble.
    const perReplica = await queryPrometheus(promUrl, 'sum by (instance) (ml_predictions_total{model_name="ensemble"})');
    expect(perReplica.data!.result).toHaveLength(2);

    // The recording rules run (every second here) and aggregate per job: data for what this
    // traffic feeds (not the quality gauges, which need labelled outcomes, nor later metrics).
    const recorded = results.filter((x) => x.source === 'recording');
    const fedHere = (x: (typeof results)[number]) => !metricNamesIn(x.expr).some((n) => n === 'ml_model_accuracy' || LATER_METRICS.includes(n));
    expect(recorded.filter((x) => fedHere(x) && x.outcome !== 'data').map((x) => `${x.name}: ${x.outcome}`)).toEqual([]);
    await poll(
      async () => {
        for (const x of recorded.filter(fedHere)) {
          const r = await queryPrometheus(promUrl, x.name);
          const series = r.data?.result ?? [];
          if (series.length === 0 || series.some((y) => 'instance' in y.metric || y.metric.job !== 'ml-api')) return false;
        }
        return true;
      },
      'every recording rule fed by this traffic to be recorded, per job',
      20_000,
    );

    // prometheus-adapter's rule (deploy/kubernetes) as the adapter runs it for the HPA: one
    // value per pod, found by the namespace and pod labels.
    const adapterConfig = loadYaml(path.join(REPO_ROOT, 'deploy', 'kubernetes', 'prometheus-adapter', 'configmap.yaml'));
    const adapterRule = parse(adapterConfig.data['config.yaml']).rules.find((r: { name: { as: string } }) => r.name.as === 'ml_queue_depth');
    const seriesFound = await queryPrometheus(promUrl, adapterRule.seriesQuery);
    expect(seriesFound.data!.result.map((x) => x.metric.pod).sort()).toEqual(['tradeflow-a', 'tradeflow-b']);
    const perPod = await queryPrometheus(
      promUrl,
      adapterRule.metricsQuery
        .replaceAll('<<.Series>>', 'ml_queue_depth')
        .replaceAll('<<.LabelMatchers>>', 'namespace="tradeflow",pod=~"tradeflow-a|tradeflow-b"')
        .replaceAll('<<.GroupBy>>', 'pod'),
    );
    expect(perPod.data!.result.map((x) => [x.metric.pod, Number.isFinite(Number(x.value![1]))]).sort()).toEqual([
      ['tradeflow-a', true],
      ['tradeflow-b', true],
    ]);
    console.log(`monitoring e2e: every-query test took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// 2. HighAPILatency fires under real load, reaches Alertmanager and a webhook, then resolves
// ---------------------------------------------------------------------------------------------

interface Notification {
  path: string;
  at: number;
  body: {
    receiver: string;
    status: 'firing' | 'resolved';
    alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string>; startsAt: string; endsAt: string }>;
    groupLabels: Record<string, string>;
    commonLabels: Record<string, string>;
  };
}

interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

/** Load levels: rows per request, then requests in flight (one worker: they queue). */
const LOAD_LEVELS: Array<[rows: number, concurrency: number]> = [
  [4096, 4],
  [16384, 4],
  [65536, 4],
  [65536, 8],
  [65536, 16],
  [65536, 24],
  [65536, 32],
  [65536, 48],
  [65536, 64],
];
const MAX_ROWS = 65536; // 4 MiB of float32 rows, one shared buffer
/** The ramp stops above this P95; the rule fires above 1 s. */
const P95_TARGET = 1.5;
let heavyDir: string | null = null;

/** A valid 16-feature ensemble whose MLP branch has `hidden` units: slow per row on purpose. */
function heavyMlp(hidden: number): Uint8Array {
  let s = 7;
  const rnd = (scale: number) => (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1) * scale;
  return writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: { mean: new Float64Array(16), std: new Float64Array(16).fill(1) },
    mlp: {
      features: 16,
      hidden,
      w1: Float64Array.from({ length: 16 * hidden }, () => rnd(0.5)),
      b1: Float64Array.from({ length: hidden }, () => rnd(0.1)),
      w2: Float64Array.from({ length: hidden }, () => rnd(1 / Math.sqrt(hidden))),
      b2: 0,
    },
  });
}
const SHORT_FOR = '2s';

describe.skipIf(prometheusBin.skip || alertmanagerBin.skip)('HighAPILatency under real load: Prometheus → Alertmanager → webhook, then resolved', () => {
  let engine: Engine | undefined;
  let prom: Daemon | undefined;
  let am: Daemon | undefined;
  let webhook: http.Server | undefined;
  let load: ClosedLoopLoad | undefined;
  let light: ClosedLoopLoad | undefined;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const notifications: Notification[] = [];
  // Set by afterAll: a test body still running after its timeout starts no new load.
  let aborted = false;
  const shipped = loadYaml(ALERT_RULES) as RuleDoc;
  const latencyRule = shipped.groups.flatMap((g) => g.rules).find((r) => r.alert === 'HighAPILatency')!;
  // The rule's own quantile, without its threshold: what the alert compares with 1.
  const p95Expr = latencyRule.expr.trim().replace(/\s*>\s*1\s*$/, '');

  beforeAll(async () => {
    prometheusBin.get();
    alertmanagerBin.get();
    // The webhook receiver Alertmanager delivers to.
    webhook = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          notifications.push({ path: req.url ?? '', at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          res.writeHead(200).end('ok');
        } catch (err) {
          res.writeHead(400).end(String(err));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      webhook!.once('error', reject);
      webhook!.listen(0, '127.0.0.1', () => resolve());
    });
    const hookPort = (webhook.address() as AddressInfo).port;

    // Alertmanager: the shipped config, webhooks pointed at the test's server, 1 s grouping.
    const amConfig = loadYaml(ALERTMANAGER_CONFIG);
    for (const r of amConfig.receivers) {
      for (const w of r.webhook_configs ?? []) {
        expect(w.send_resolved, `${r.name} sends resolved`).toBe(true);
        w.url = w.url.replace(/^https?:\/\/[^/]+/, `http://127.0.0.1:${hookPort}`);
      }
    }
    for (const route of [amConfig.route, ...(amConfig.route.routes ?? [])]) {
      route.group_wait = '1s';
      route.group_interval = '1s';
    }
    am = await startAlertmanager({ config: JSON.stringify(amConfig, null, 2) });

    // One worker and room for big batches: requests queue behind each other instead of failing.
    // The model is a deliberately heavy MLP (4,096 hidden units, written by the project's own ONNX
    // writer) so that the ramp below passes a P95 of 1 s well before its last level even on a
    // machine several times faster than this one.
    heavyDir = mkdtempSync(path.join(tmpdir(), 'tradeflow-heavy-'));
    const heavyModel = path.join(heavyDir, 'heavy.onnx');
    writeFileSync(heavyModel, heavyMlp(4096));
    engine = await startTestEngine({
      MODEL_PATH: heavyModel,
      WORKERS: '1',
      MAX_REQUEST_ROWS: String(MAX_ROWS),
      MAX_BODY_BYTES: String(2 * MAX_ROWS * ROW_BYTES),
      MAX_QUEUE_ROWS: String(2 * MAX_ROWS * LOAD_LEVELS[LOAD_LEVELS.length - 1]![1]),
      REQUEST_TIMEOUT_MS: '120000',
    });

    // The rules with only the for: durations shortened.
    const rules = JSON.parse(JSON.stringify(shipped)) as RuleDoc;
    for (const g of rules.groups) for (const r of g.rules) if (r.for !== undefined && !/^0[smh]?$/.test(r.for)) r.for = SHORT_FOR;
    prom = await startPrometheus({
      config: prometheusConfigFor(engine.port, am.port),
      files: { 'alert_rules.yml': JSON.stringify(rules, null, 2), 'recording_rules.yml': readFileSync(RECORDING_RULES, 'utf8') },
    });
    await waitForTargetUp(prom);
  }, 90_000);

  afterAll(async () => {
    aborted = true;
    await cleanUp([
      ['load', () => load?.stop()],
      ['light load', () => light?.stop()],
      ['agent', () => keepAlive.destroy()],
      ['prometheus', () => prom?.stop()],
      ['alertmanager', () => am?.stop()],
      ['engine', () => engine?.shutdown('test end')],
      ['webhook', () => new Promise<void>((r) => (webhook ? webhook.close(() => r()) : r()))],
      ['heavy model', () => (heavyDir ? rmSync(heavyDir, { recursive: true, force: true }) : undefined)],
    ]);
  }, 60_000);

  it('fires, is delivered to the warning webhook, and resolves after the load stops', async () => {
    const port = engine!.port;
    const promUrl = prom!.url;
    const instance = `127.0.0.1:${port}`;
    const t0 = Date.now();
    const secs = (t: number) => `${((t - t0) / 1000).toFixed(1)} s`;
    const p95Now = () => scalarOf(promUrl, p95Expr);
    const promCount = () => scalarOf(promUrl, 'sum(api_request_duration_seconds_count{endpoint="/predict"})');
    const activeAlerts = async () => (await getJson<{ data: { alerts: PromAlert[] } }>(`${promUrl}/api/v1/alerts`)).data.alerts;
    const seenAlerts = new Set<string>();

    // The test copy differs from the shipped rules in for: only.
    const loaded = await getJson<{ data: { groups: Array<{ rules: Array<{ name: string; query: string; duration: number }> }> } }>(`${promUrl}/api/v1/rules?type=alert`);
    const loadedLatency = loaded.data.groups.flatMap((g) => g.rules).find((r) => r.name === 'HighAPILatency')!;
    expect(loadedLatency.duration).toBe(2);
    expect(loadedLatency.query.replace(/\s+/g, '')).toBe(latencyRule.expr.replace(/\s+/g, ''));

    // --- Load, grown until Prometheus' P95 is above 1 s --------------------------------------
    const rows = makeRows(MAX_ROWS, F, 7);
    const buffer = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
    load = new ClosedLoopLoad(port, buffer, { maxRequests: 4000, deadline: t0 + 75_000, requestTimeoutMs: 30_000 });
    let reached: { rows: number; concurrency: number; p95: number; clientP50: number; at: number } | undefined;
    const levelLog: string[] = [];
    for (const [levelRows, concurrency] of LOAD_LEVELS) {
      if (aborted) return;
      load.setLevel(levelRows, concurrency);
      const hold = Math.max(2 * concurrency, 8);
      await poll(() => load!.answeredAtLevel >= hold || load!.finished, `${hold} answers at ${levelRows} rows × ${concurrency}`, 45_000, 20, () => load!.summary());
      if (load.answeredAtLevel < hold) break;
      const clientLatencies = [...load.levelLatencies].sort((a, b) => a - b);
      const answered = load.answered;
      await poll(async () => (await promCount()) >= answered, 'Prometheus to scrape the level', 20_000, 100);
      const p95 = await p95Now();
      levelLog.push(
        `${levelRows} rows × ${concurrency} in flight: client p50 ${quantile(clientLatencies, 0.5).toFixed(0)} ms, p95 ${quantile(clientLatencies, 0.95).toFixed(0)} ms; Prometheus P95 (5m) ${p95.toFixed(3)} s at ${secs(Date.now())}`,
      );
      // A margin above the rule's 1 s: at a P95 hovering near it the alert could flap between
      // pending and inactive and never fire.
      if (p95 > P95_TARGET) {
        reached = { rows: levelRows, concurrency, p95, clientP50: quantile(clientLatencies, 0.5), at: Date.now() };
        break;
      }
    }
    console.log(`monitoring e2e: load levels\n  ${levelLog.join('\n  ')}`);
    if (!reached) throw new Error(`P95 never passed ${P95_TARGET} s up to the last load level: ${load.summary()}\n${levelLog.join('\n')}`);

    // --- Firing in Prometheus, in Alertmanager, at the webhook (the load goes on) ------------
    const firing = await poll(
      async () => {
        const alerts = await activeAlerts();
        for (const a of alerts) seenAlerts.add(`${a.labels.alertname} ${a.state}`);
        return alerts.find((a) => a.labels.alertname === 'HighAPILatency' && a.state === 'firing');
      },
      'HighAPILatency firing in Prometheus',
      45_000,
      200,
      () => `${load!.summary()}; alerts seen: ${[...seenAlerts].join(', ')}`,
    );
    const tFiring = Date.now();
    const amAlert = await poll(
      async () => {
        const alerts = await getJson<Array<{ labels: Record<string, string>; status: { state: string }; receivers: Array<{ name: string }> }>>(
          `${am!.url}/api/v2/alerts?filter=${encodeURIComponent('alertname="HighAPILatency"')}`,
        );
        return alerts.find((a) => a.status.state === 'active');
      },
      'HighAPILatency active in Alertmanager',
      30_000,
    );
    expect(amAlert.receivers.map((r) => r.name)).toEqual(['warning']);
    const delivered = await poll(
      () => notifications.find((n) => n.body.status === 'firing' && n.body.alerts.some((a) => a.labels.alertname === 'HighAPILatency')),
      'the firing notification at the webhook',
      30_000,
      100,
      () => `${notifications.length} notifications: ${JSON.stringify(notifications.map((n) => [n.path, n.body.status]))}\n${am!.logs()}`,
    );
    const tDelivered = Date.now();
    await load.stop();
    const tStopped = Date.now();
    const loadSummary = load.summary();
    console.log(`monitoring e2e: load stopped at ${secs(tStopped)}: ${loadSummary}`);

    expect(firing.labels).toMatchObject({ alertname: 'HighAPILatency', severity: 'warning', job: 'ml-api', instance });
    expect(Number(firing.value)).toBeGreaterThan(1);
    expect(delivered.path).toBe('/alerts/warning');
    expect(delivered.body.receiver).toBe('warning');
    const sent = delivered.body.alerts.find((a) => a.labels.alertname === 'HighAPILatency')!;
    expect(sent.status).toBe('firing');
    expect(sent.labels).toEqual({ alertname: 'HighAPILatency', severity: 'warning', job: 'ml-api', instance, monitor: 'tradeflow' });
    expect(sent.annotations.summary).toBe(`High API latency on ${instance}`);
    expect(sent.annotations.description.startsWith(`P95 API request latency of ${instance} is `), sent.annotations.description).toBe(true);
    expect(sent.annotations.description).toMatch(/ is \d+(\.\d+)?s over the last 5 minutes \(threshold 1s\)\.$/);
    expect(Number(/is (\d+(?:\.\d+)?)s/.exec(sent.annotations.description)![1])).toBeGreaterThan(1);
    // Every answer was a prediction: the load is slow, not failing.
    expect([...load.statuses.keys()], loadSummary).toEqual([200]);

    // --- Recovery: light traffic until the 5-minute P95 is back under 1 s --------------------
    // The shipped rule looks at 5 minutes: with no traffic at all its P95 stays above 1 s until
    // the slow requests leave the window. Normal traffic resuming after the overload is what
    // brings it down sooner: the slow requests must become less than 5 % of the window. The
    // engine timed each at most as long as the client did, so the client's count of answers over
    // 1 s bounds theirs: the first round of light requests (16 rows, one worker batch each) makes
    // the window 25 times that count, then rounds of 2000 follow if needed.
    const lightRows = makeRows(16, F, 9);
    const lightBody = Buffer.from(lightRows.buffer, lightRows.byteOffset, lightRows.byteLength);
    let lightSent = 0;
    const lightCap = 40_000;
    let round = Math.min(lightCap, Math.max(500, 25 * load.over1s - load.answered));
    let p95After = NaN;
    for (;;) {
      if (aborted) return;
      light = new ClosedLoopLoad(port, lightBody, { maxRequests: round, deadline: Date.now() + 30_000, requestTimeoutMs: 10_000 }, keepAlive);
      light.setLevel(16, 8);
      await light.done();
      lightSent += light.answered;
      expect([...light.statuses.keys()], light.summary()).toEqual([200]);
      const want = load.answered + lightSent;
      await poll(async () => (await promCount()) >= want, 'Prometheus to scrape the light traffic', 20_000, 100);
      p95After = await p95Now();
      if (!(p95After > 1)) break;
      if (lightSent >= lightCap) throw new Error(`P95 still ${p95After} s after ${lightSent} light requests`);
      round = Math.min(2000, lightCap - lightSent);
    }
    const tRecovered = Date.now();
    console.log(`monitoring e2e: ${lightSent} light requests brought the P95 (5m) to ${p95After.toFixed(3)} s at ${secs(tRecovered)}`);

    // --- Resolved in Prometheus and at the webhook ---------------------------------------------
    await poll(
      async () => {
        const r = await getJson<{ data: { groups: Array<{ rules: Array<{ name: string; state: string }> }> } }>(`${promUrl}/api/v1/rules?type=alert`);
        const rule = r.data.groups.flatMap((g) => g.rules).find((x) => x.name === 'HighAPILatency');
        const alerts = await activeAlerts();
        for (const a of alerts) seenAlerts.add(`${a.labels.alertname} ${a.state}`);
        return rule?.state === 'inactive' && !alerts.some((a) => a.labels.alertname === 'HighAPILatency');
      },
      'HighAPILatency inactive in Prometheus',
      30_000,
    );
    const tInactive = Date.now();
    const resolved = await poll(
      () => notifications.find((n) => n.body.status === 'resolved' && n.body.alerts.some((a) => a.labels.alertname === 'HighAPILatency' && a.status === 'resolved')),
      'the resolved notification at the webhook',
      30_000,
      100,
      () => `${notifications.length} notifications: ${JSON.stringify(notifications.map((n) => [n.path, n.body.status]))}\n${am!.logs()}`,
    );
    const tResolved = Date.now();
    expect(resolved.path).toBe('/alerts/warning');
    expect(resolved.body.receiver).toBe('warning');
    expect(resolved.body.alerts.find((a) => a.labels.alertname === 'HighAPILatency')!.labels).toEqual(sent.labels);

    // Scrapes under load: how many Prometheus missed (the metrics endpoint shares the main thread).
    const scrapes = await scalarOf(promUrl, 'count_over_time(up{job="ml-api"}[5m])');
    const scrapesUp = await scalarOf(promUrl, 'sum_over_time(up{job="ml-api"}[5m])');
    console.log(
      `monitoring e2e: P95 passed 1 s (Prometheus ${reached.p95.toFixed(3)} s) at ${reached.rows} rows × ${reached.concurrency} in flight ` +
        `(client p50 ${reached.clientP50.toFixed(0)} ms), ${secs(reached.at)} after the load started; firing in Prometheus ${((tFiring - reached.at) / 1000).toFixed(1)} s later ` +
        `(activeAt ${firing.activeAt}), at the webhook ${((tDelivered - reached.at) / 1000).toFixed(1)} s later; load stopped at ${secs(tStopped)}; ` +
        `inactive in Prometheus ${((tInactive - tRecovered) / 1000).toFixed(1)} s after the P95 recovered (${((tInactive - tStopped) / 1000).toFixed(1)} s after the load stopped), ` +
        `resolved at the webhook ${((tResolved - tStopped) / 1000).toFixed(1)} s after the load stopped; ${scrapesUp}/${scrapes} scrapes succeeded; ` +
        `alerts seen in Prometheus: ${[...seenAlerts].join(', ')}; webhook notifications: ${notifications.map((n) => `${n.path} ${n.body.status} ${n.body.alerts.map((a) => a.labels.alertname).join('+')}`).join(', ')}; total ${secs(Date.now())}`,
    );
    // Only the latency alert took part: nothing critical (which would also inhibit it) was sent.
    expect(notifications.filter((n) => n.path !== '/alerts/warning')).toEqual([]);
    expect([...seenAlerts].filter((a) => !a.startsWith('HighAPILatency '))).toEqual([]);
  }, 120_000);

  // The load tester's job in one command: tradeflow load drives the engine and checks the alert
  // (--expect-alert), here against the Prometheus above with its 2 s for: and 1 s evaluations.
  it('tradeflow load --expect-alert: 0 when HighAPILatency fires under its load, 3 when it does not', async () => {
    const port = engine!.port;
    const base = ['--url', `http://127.0.0.1:${port}`, '--prometheus', prom!.url, '--json'];
    const light = [...base, '--rate', '10', '--duration', '1s'];
    const t0 = Date.now();

    // Light load on a resolved alert: it does not fire within for: + 2 evaluations after the run.
    const quiet = await runLoadCli([...light, '--expect-alert', 'HighAPILatency=firing'], 60_000);
    expect(quiet.code, quiet.stderr).toBe(3);
    const quietAlert = JSON.parse(quiet.stdout).alert;
    expect(quietAlert).toMatchObject({ ok: false, state: 'inactive', forS: 2, intervalS: 1, expected: { name: 'HighAPILatency', state: 'firing' } });
    const tQuiet = Date.now();

    // Heavy load, in a closed loop so that how much waits in the engine's queue does not depend
    // on this machine's speed: first 2 s of 4096-row requests over 16 connections measure what
    // one costs here; then 64 connections of requests sized so that the queue holds about 2.5 s
    // of work (every answer well over the rule's 1 s), for long enough that slow answers are
    // more than 7 % of what the alert's 5-minute window holds (it needs 5 %).
    const calibrate = ['--shape', 'binary', '--rows', '4096', '--closed', '--connections', '16', '--duration', '2s', '--timeout', '60s'];
    const measured = JSON.parse((await runLoadCli([...base, ...calibrate], 60_000)).stdout);
    const msPerRow = measured.latencyMs.p50 / 16 / 4096;
    const connections = 64;
    const rows = Math.min(MAX_ROWS, Math.max(256, Math.round(2500 / connections / msPerRow / 256) * 256));
    const answersPerS = 1000 / (rows * msPerRow);
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/monitoring/metrics`)).text()).samples;
    const windowCount = metrics.filter((x) => x.name === 'api_request_duration_seconds_count' && x.labels.endpoint !== '/train').reduce((n, x) => n + x.value, 0);
    const durationS = Math.min(30, Math.ceil((0.07 * windowCount + 10) / answersPerS + 2500 / 1000 + 1));
    const heavy = ['--shape', 'binary', '--rows', String(rows), '--closed', '--connections', String(connections), '--duration', `${durationS}s`, '--timeout', '60s'];
    const fired = await runLoadCli([...base, ...heavy, '--expect-alert', 'HighAPILatency=firing'], 120_000);
    expect(fired.code, fired.stderr).toBe(0);
    const run = JSON.parse(fired.stdout);
    expect(run.alert).toMatchObject({ ok: true, state: 'firing', reason: 'firing', labels: { alertname: 'HighAPILatency', instance: `127.0.0.1:${port}` } });
    const states = run.alert.transitions.map((t: { state: string }) => t.state);
    expect(states[0]).toBe('inactive');
    expect(states[states.length - 1]).toBe('firing');
    expect(run.checks).toEqual({ alert: true });
    expect([...Object.keys(run.byStatus)]).toEqual(['200']);
    const fromProm = run.server.find((v: { source: string }) => v.source === 'prometheus');
    expect(fromProm).toMatchObject({ error: null, requests: run.answered });
    const tFired = Date.now();

    // While it fires, expecting it inactive fails.
    const firing = await runLoadCli([...light, '--expect-alert', 'HighAPILatency=inactive'], 60_000);
    expect(firing.code, firing.stderr).toBe(3);
    expect(JSON.parse(firing.stdout).alert).toMatchObject({ ok: false, state: 'firing', expected: { state: 'inactive' } });
    console.log(
      `monitoring e2e: tradeflow load --expect-alert: light load =firing exit 3 in ${((tQuiet - t0) / 1000).toFixed(1)} s; ` +
        `calibration ${measured.latencyMs.p50} ms p50 at 4096 rows × 16, then ${rows} rows × ${connections} connections closed loop for ${durationS} s (window ${windowCount} requests): ${run.answered} answers, p50 ${run.latencyMs.p50} ms, ` +
        `Prometheus P95 ${fromProm.p95S} s, alert ${states.join(' → ')}, exit 0 in ${((tFired - tQuiet) / 1000).toFixed(1)} s; =inactive while firing exit 3 in ${((Date.now() - tFired) / 1000).toFixed(1)} s`,
    );
  }, 180_000);
});
