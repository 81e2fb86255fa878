/**
 * `tradeflow load` as users run it (the built CLI, a child process) against a server whose
 * latency the test controls (test/helpers/stall-server.ts) and against a real engine.
 *
 * No threshold depends on this machine's speed: the stall test compares the open and the closed
 * loop on the same stall (its timing is the server's, not the machine's); the rate test allows
 * 3 % (the run's last answer can land after the end of its window, nothing else moves the count);
 * counts are compared exactly with the engine's own counter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Engine } from '../src/app';
import { LOAD_FLAG_NAMES, LOAD_USAGE } from '../src/cli/load';
import { parsePrometheusText } from '../src/telemetry/prometheus-text';
import { startTestEngine } from './helpers/engine';
import { runLoadCli, type CliResult } from './helpers/load-cli';
import { startStallServer, type StallServer } from './helpers/stall-server';

function parseJson(r: CliResult): any {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-load-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tradeflow load against a server that stalls', () => {
  let server: StallServer;
  beforeAll(async () => {
    server = await startStallServer();
  });
  afterAll(() => server.close());
  const target = () => ['--url', `http://127.0.0.1:${server.port}`, '--features', '16', '--no-engine-metrics', '--connections', '4', '--duration', '3s', '--json'];
  // One second, one second into the run, with every answer held 200 ms.
  const STALL = { afterMs: 1000, forMs: 1000, holdMs: 200 };

  it('open loop charges the stall to every request due in it; the closed loop hides it', async () => {
    const openStall = server.arm(STALL);
    const open = parseJson(await runLoadCli([...target(), '--rate', '500']));
    await openStall;
    const closedStall = server.arm(STALL);
    const closed = parseJson(await runLoadCli([...target(), '--closed']));
    await closedStall;
    const o = open.latencyMs;
    const c = closed.latencyMs;
    console.log(`load stall: open ${JSON.stringify(o)} (${open.answered} answers); closed ${JSON.stringify(c)} (${closed.answered} answers)`);
    expect(open.mode).toBe('open');
    expect(closed.mode).toBe('closed');
    expect(open.answered).toBe(1500);
    expect(open.errors).toBe(0);
    expect(closed.errors).toBe(0);
    // Open: a third of the requests were due during the stall and each waited for it, so the
    // stall holds more than 10 % of the answers (p90) and the slowest waited most of its second.
    expect(o.p90).toBeGreaterThanOrEqual(STALL.holdMs);
    expect(o.p99).toBeGreaterThanOrEqual(STALL.holdMs);
    expect(o.max).toBeGreaterThanOrEqual(STALL.forMs / 2);
    // Closed: it saw the stall (answers held 200 ms) but sent only 4 connections × ~6 requests
    // during it, so the slow answers are a sliver: under 10 % whatever the machine's speed.
    expect(c.max).toBeGreaterThanOrEqual(STALL.holdMs);
    expect(c.p90).toBeLessThan(STALL.holdMs);
    expect(o.p99).toBeGreaterThan(c.p99);
    expect(o.max).toBeGreaterThan(c.max);
    expect(open.schedule.waitedForConnection).toBeGreaterThan(0);
  }, 60_000);

  it('sweeps rates into a table and finds the knee; a threshold nothing meets exits 3', async () => {
    const ok = parseJson(await runLoadCli([...target(), '--duration', '1s', '--sweep', '100,200', '--p95-under', '1s']));
    expect(ok.sweep.steps.map((s: any) => [s.value, s.ok])).toEqual([[100, true], [200, true]]);
    expect(ok.sweep.knee).toBe(200);
    expect(ok.sweep.steps[1].answered).toBe(200);
    const none = await runLoadCli([...target(), '--duration', '1s', '--sweep', '100,200', '--p95-under', '1us']);
    expect(none.code, none.stderr).toBe(3);
    const j = JSON.parse(none.stdout);
    expect(j.sweep.steps).toHaveLength(1); // it stops after the first step that is not sustained
    expect(j.sweep.knee).toBeNull();
    expect(j.sweep.steps[0].why).toMatch(/p95 not under/);
  }, 60_000);

  it('writes the percentile distribution (--hgrm) and the plot (--plot)', async () => {
    const svg = path.join(dir, 'run.svg');
    const args = ['--url', `http://127.0.0.1:${server.port}`, '--features', '16', '--no-engine-metrics', '--rate', '200', '--duration', '1s'];
    const r = await runLoadCli([...args, '--hgrm', '--plot', svg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\s+Value\s+Percentile\s+TotalCount 1\/\(1-Percentile\)/);
    expect(r.stdout).toMatch(/#\[Max\s+=\s+[\d.]+, Total count\s+=\s+200\]/);
    expect(r.stderr).toMatch(/^tradeflow load: open loop at 200\/s over 8 connections/);
    expect(r.stderr).toMatch(/latency\s+p50 .* p99\.9 .* max /);
    const text = readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg')).toBe(true);
    expect(text).toContain('Latency by percentile');
    expect(text).toContain('Latency over time');
    expect((text.match(/<polyline/g) ?? []).length).toBe(4); // the distribution, then max, p99 and p50 over time
  }, 60_000);
});

describe('tradeflow load against a real engine', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await startTestEngine({ WORKERS: '1' });
  });
  afterAll(() => engine.shutdown('test end'));

  /** api_requests_total{endpoint} by status, from the engine's own metrics. */
  async function endpointCounts(endpoint: string): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${engine.port}/monitoring/metrics`)).text();
    const out: Record<string, number> = {};
    for (const s of parsePrometheusText(text).samples) {
      if (s.name === 'api_requests_total' && s.labels.endpoint === endpoint) out[s.labels.status!] = (out[s.labels.status!] ?? 0) + s.value;
    }
    return out;
  }
  const predictCounts = () => endpointCounts('/predict');

  it('achieves the asked rate within 3 %, and its counts are the engine\'s api_requests_total increase', async () => {
    const before = await predictCounts();
    const rate = 400;
    const j = parseJson(await runLoadCli(['--url', `http://127.0.0.1:${engine.port}`, '--rate', String(rate), '--connections', '4', '--duration', '3s', '--json']));
    const after = await predictCounts();
    const increase = Object.fromEntries(Object.entries(after).map(([s, n]) => [s, n - (before[s] ?? 0)]).filter(([, n]) => n !== 0));
    console.log(`load rate: asked ${rate}/s, achieved ${j.achievedRate.toFixed(1)}/s, p50 ${j.latencyMs.p50} ms, p99 ${j.latencyMs.p99} ms, late ${j.schedule.late}; engine counted ${JSON.stringify(increase)}`);
    expect(j.target).toMatchObject({ model: 'ensemble', features: 16, shape: 'json', rows: 1 });
    expect(Math.abs(j.achievedRate - rate) / rate).toBeLessThanOrEqual(0.03);
    expect(j.sent).toBe(3 * rate);
    expect(j.byStatus).toEqual(increase);
    expect(j.answered).toBe(3 * rate);
    // The tool's own reading of the engine's metrics agrees.
    const engineView = j.server.find((s: any) => s.source === 'engine');
    expect(engineView.requests).toBe(3 * rate);
    expect(engineView.byStatus).toEqual(increase);
    expect(engineView.cacheHits).toBe(0);
    expect(engineView.p95S).toBeGreaterThan(0);
    expect(engineView.bucketS[0]).toBeLessThanOrEqual(engineView.p95S);
    expect(engineView.bucketS[1]).toBeGreaterThanOrEqual(engineView.p95S);
  }, 60_000);

  it('speaks the Open Inference Protocol, JSON and binary, counted under its own route', async () => {
    for (const shape of ['oip-json', 'oip-binary']) {
      const before = await endpointCounts('/v2/models/{name}/infer');
      const j = parseJson(await runLoadCli(['--url', `http://127.0.0.1:${engine.port}`, '--shape', shape, '--rows', '8', '--rate', '100', '--duration', '1s', '--json']));
      const after = await endpointCounts('/v2/models/{name}/infer');
      expect(j.target, shape).toMatchObject({ path: '/v2/models/ensemble/infer', shape, rows: 8 });
      expect(j.byStatus, shape).toEqual({ '200': 100 });
      expect((after['200'] ?? 0) - (before['200'] ?? 0), shape).toBe(100);
      expect(j.server[0], shape).toMatchObject({ source: 'engine', requests: 100, byStatus: { '200': 100 } });
    }
  }, 60_000);

  it('sends binary rows and reports the engine\'s server-side P95 beside the client\'s', async () => {
    const r = await runLoadCli(['--url', `http://127.0.0.1:${engine.port}`, '--shape', 'binary', '--rows', '64', '--rate', '100', '--duration', '1s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/target\s+POST http:\/\/127\.0\.0\.1:\d+\/predict: binary 64 rows per request, model ensemble \(F 16\)/);
    expect(r.stdout).toMatch(/answers\s+100 answered of 100 sent: 200 ×100/);
    expect(r.stdout).toMatch(/server\s+engine .*: 100 answers, api_request_duration_seconds P95 \S+ \S+ in the bucket \(\S+ \S+, \S+ \S+\]; (agrees|DISAGREES)/);
  }, 60_000);
});

describe('tradeflow load command line', () => {
  it('--help documents every flag', () => {
    for (const name of LOAD_FLAG_NAMES) expect(LOAD_USAGE, name).toContain(`--${name}`);
  });

  it('refuses contradictory flags and shapes the engine does not serve yet (exit 2)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--closed', '--rate', '5'], /--rate does not apply/],
      [['--shape', 'grpc'], /--shape must be one of json, binary, oip-json, oip-binary, got "grpc"/],
      [['--expect-alert', 'HighAPILatency'], /needs --prometheus/],
      [['--expect-alert', 'HighAPILatency=on', '--prometheus', 'http://127.0.0.1:1'], /NAME=firing or NAME=inactive/],
      [['--duration', '10 minutes'], /--duration must be a duration/],
      [['--sweep', '10:5:1'], /end ≥ start/],
      [['--hgrm', '--json'], /not with --json/],
    ];
    for (const [args, message] of cases) {
      const r = await runLoadCli(args, 20_000);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  }, 60_000);

  it('fails (exit 1) when nothing listens at --url', async () => {
    const r = await runLoadCli(['--url', 'http://127.0.0.1:1', '--features', '4', '--no-engine-metrics', '--duration', '1s'], 20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot connect to 127\.0\.0\.1:1/);
  }, 30_000);
});
