/**
 * Serving during a training run (issue 7: "p99 of /predict during a training run vs without, in
 * the same benchmark"). One engine (TRAIN_MARGIN=1, so every candidate is promoted through the hot
 * swap; REPLAY_BUFFER_ROWS=50000; CACHE_CAPACITY=0 so no answer comes from the prediction cache).
 *
 *  1. Fill the replay buffer with 40,000 labelled rows through POST /learn (64-row requests, 8
 *     at a time; every answer must be 202).
 *  2. Measure POST /predict (JSON, 1 row, 16 connections, wrk) in fixed windows, alternating
 *       idle     no training run in progress (checked before the window),
 *       training a training run in progress for the whole window: POST /train just before wrk
 *                starts, GET /train/{id} polled every 100 ms, and when a run ends before the
 *                window does, the next one is started at once; after the window the last run is
 *                waited for (not measured) so that the next idle window is idle.
 *     A warm-up window of each kind is discarded; then rounds idle training, training idle, ...
 *
 *   npx tsc -p tsconfig.json && node dist/bench/training-impact.js [--rounds 5] [--duration 10] [--warmup 4] [--out file.md]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { UsageError, numberFlag, type FlagSpec } from './lib/args';
import { makeBodies } from './lib/bodies';
import {
  commandLine,
  engineConfig,
  fmtCount,
  fmtMs,
  fmtRatio,
  getJson,
  loadLine,
  logProblems,
  machineLine,
  sourceLine,
  makeLearnBodies,
  measured,
  median,
  otherList,
  pairedRatios,
  quietPairs,
  postJson,
  ratioList,
  runLine,
  runScript,
  sleep,
  startEngine,
  stopEngine,
  summarize,
  WRK_PATH,
  type EngineProc,
  type Measured,
} from './lib/engine-proc';
import { request } from './lib/request';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds (one idle and one training window each; default 5)' },
  { name: 'duration', help: 'seconds per measured window (default 10)' },
  { name: 'warmup', help: 'seconds of the discarded warm-up window of each kind (default 4)' },
  { name: 'fill-rows', help: 'labelled rows sent through /learn before measuring (default 40000)' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

const LEARN_ROWS = 64;
const CONNECTIONS = 16;
const POLL_MS = 100;

interface TrainRecord {
  id: string;
  status: string;
  duration_seconds: number | null;
  rows: number;
  train_rows: number | null;
  promoted_version: string | null;
  reason: string | null;
}

interface RunSpan {
  id: string;
  /** performance.now() when POST /train was answered 202, and when the poll saw it end. */
  start: number;
  end: number | null;
  record: TrainRecord | null;
}

/** Keeps a training run in progress until stop() is called; stop() then waits for the last one. */
class Trainer {
  readonly spans: RunSpan[] = [];
  readonly problems: string[] = [];
  private stopping = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly e: EngineProc) {}

  /** Resolves once the first run has been started (POST /train answered 202). */
  async start(): Promise<void> {
    const first = await this.startRun();
    this.loop = this.run(first);
  }

  private async startRun(): Promise<RunSpan> {
    for (let attempt = 0; ; attempt++) {
      const a = await postJson(this.e.port, '/train', '{}');
      if (a.status === 202) {
        const span: RunSpan = { id: (a.json as { id: string }).id, start: performance.now(), end: null, record: null };
        this.spans.push(span);
        return span;
      }
      if (a.status === 409 && attempt < 100) {
        await sleep(POLL_MS);
        continue;
      }
      throw new Error(`POST /train answered ${a.status} ${JSON.stringify(a.json).slice(0, 300)}`);
    }
  }

  private async run(first: RunSpan): Promise<void> {
    let span = first;
    for (;;) {
      const rec = await getJson<TrainRecord>(this.e.port, `/train/${span.id}`);
      if (rec.status === 'running') {
        await sleep(POLL_MS);
        continue;
      }
      span.end = performance.now();
      span.record = rec;
      if (rec.status !== 'promoted') this.problems.push(`run ${rec.id}: ${rec.status} (${rec.reason ?? ''})`);
      if (this.stopping) return;
      span = await this.startRun();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** Share of [from, to] (performance.now() ms) during which a run was in progress (after stop()). */
  coverage(from: number, to: number): number {
    let covered = 0;
    for (const s of this.spans) {
      const a = Math.max(from, s.start);
      // The run's own duration, not when the poll noticed its end (up to POLL_MS later).
      const end = s.record?.duration_seconds != null ? s.start + s.record.duration_seconds * 1000 : s.end ?? to;
      const b = Math.min(to, end);
      if (b > a) covered += b - a;
    }
    return covered / (to - from);
  }
}

interface Window extends Measured {
  kind: 'idle' | 'training';
  /** Runs in progress at some point of the window, their durations (s) and the share of the window covered. */
  runs: number;
  runSeconds: number[];
  coverage: number;
}

async function fill(e: EngineProc, rows: number): Promise<{ seconds: number; statuses: Record<string, number> }> {
  const requests = Math.ceil(rows / LEARN_ROWS);
  const bodies = makeLearnBodies(LEARN_ROWS, 16, requests, 701);
  const statuses: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const body = bodies[next++]!;
      const a = await request(e.port, 'POST', '/learn', body, { 'content-type': 'application/json' }, 30_000);
      statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { seconds: (performance.now() - t0) / 1000, statuses };
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 5, 1, 20);
  const durationS = numberFlag(flags, 'duration', 10, 2, 60);
  const warmupS = numberFlag(flags, 'warmup', 4, 0, 30);
  const fillRows = numberFlag(flags, 'fill-rows', 40_000, 1000, 50_000);
  const budgetS = (2 * warmupS + 2 * rounds * durationS) * 1.3 + rounds * 10 + 90;
  if (budgetS > 290) throw new UsageError(`these settings would take about ${Math.round(budgetS)} s; keep them under 290 s`);
  setBudget(budgetS + 60);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-training-impact-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const source = sourceLine();
  process.stdout.write(`work dir ${workDir}; load average ${loadAtStart}\n`);
  const e = await startEngine('train-impact', { TRAIN_MARGIN: '1', REPLAY_BUFFER_ROWS: '50000', CACHE_CAPACITY: '0' }, workDir);
  const cfg = await engineConfig(e);
  const servedAtStart = (await getJson<{ version: string }>(e.port, '/models/ensemble')).version;

  const filled = await fill(e, fillRows);
  const learning = (await getJson<{ learning: { replay_buffer_rows: number; examples_learned: number } }>(e.port, '/monitoring/system/info')).learning;
  process.stdout.write(`fill: ${JSON.stringify(filled.statuses)} in ${filled.seconds.toFixed(2)} s; replay buffer ${learning.replay_buffer_rows} rows\n`);
  const non202Fill = Object.entries(filled.statuses).filter(([k]) => k !== '202').reduce((s, [, v]) => s + v, 0);
  if (non202Fill > 0) throw new Error(`filling the buffer: ${non202Fill} answers were not 202: ${JSON.stringify(filled.statuses)}`);

  const set = makeBodies('features', 1, 16, 65536, 702);
  const check = await request(e.port, 'POST', '/predict', set.bodies[0]!, { 'content-type': 'application/json' });
  if (check.status !== 200) throw new Error(`/predict check: ${check.status} ${check.body.toString('utf8').slice(0, 300)}`);

  let cursor = 1;
  const allRuns: TrainRecord[] = [];
  const trainerProblems: string[] = [];
  const windowOf = async (kind: 'idle' | 'training', secs: number): Promise<Window> => {
    if (kind === 'idle') {
      const recent = await getJson<{ runs: TrainRecord[] }>(e.port, '/train');
      if (recent.runs.some((r) => r.status === 'running')) throw new Error('a training run is in progress before an idle window');
    }
    const trainer = kind === 'training' ? new Trainer(e) : null;
    if (trainer) await trainer.start();
    const t0 = performance.now();
    const m = await measured(e, {
      port: e.port, path: '/predict', connections: CONNECTIONS, durationS: secs, bodies: set.bodies, contentType: set.contentType,
      startIndex: cursor, workDir, id: 'predict-1',
    });
    const t1 = t0 + m.run.durationS * 1000;
    cursor = (cursor + m.run.responses) % set.bodies.length;
    let runs = 0;
    let runSeconds: number[] = [];
    let coverage = 0;
    if (trainer) {
      await trainer.stop();
      coverage = trainer.coverage(t0, t1);
      runs = trainer.spans.filter((s) => s.start < t1).length;
      runSeconds = trainer.spans.map((s) => s.record?.duration_seconds ?? NaN);
      for (const s of trainer.spans) if (s.record) allRuns.push(s.record);
      trainerProblems.push(...trainer.problems);
    }
    await sleep(500);
    return { ...m, kind, runs, runSeconds, coverage };
  };
  const line = (label: string, w: Window): string =>
    runLine(label, w, 1) + (w.kind === 'training' ? `      ${w.runs} training run(s) in the window, ${(w.coverage * 100).toFixed(0)}% of it covered; run durations ${w.runSeconds.map((s) => s.toFixed(2)).join(', ')} s\n` : '');

  if (warmupS > 0) {
    for (const kind of ['idle', 'training'] as const) process.stdout.write(line(`warm-up ${kind}`, await windowOf(kind, warmupS)));
  }
  const windows: Record<'idle' | 'training', Window[]> = { idle: [], training: [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (['idle', 'training'] as const) : (['training', 'idle'] as const);
    for (const kind of order) {
      const w = await windowOf(kind, durationS);
      windows[kind].push(w);
      process.stdout.write(line(`round ${round + 1} ${kind}`, w));
    }
  }
  const servedAtEnd = (await getJson<{ version: string }>(e.port, '/models/ensemble')).version;
  const logLines = logProblems(e).filter((l) => !l.includes('no ADMIN_TOKEN'));
  await stopEngine(e);
  const loadAtEnd = loadLine();

  // ---- report
  const sI = summarize(windows.idle, 1);
  const sT = summarize(windows.training, 1);
  const L: string[] = [];
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`- Command: \`${commandLine('training-impact.js')}\``);
  L.push(`- Source: ${source}`);
  L.push(`- Machine: ${machineLine()}; load average (1 / 5 / 15 min) ${loadAtStart} at the start, ${loadAtEnd} at the end`);
  L.push(`- Engine: one, \`TRAIN_MARGIN=1\` (every candidate is promoted and hot-swapped in), \`REPLAY_BUFFER_ROWS=50000\`, \`CACHE_CAPACITY=0\` (no answer from the prediction cache), otherwise defaults (WORKERS=${cfg.WORKERS}, TRAIN_HOLDOUT=${cfg.TRAIN_HOLDOUT}, TRAIN_INTERVAL=${cfg.TRAIN_INTERVAL} ms so no scheduled run, MAX_BATCH_ROWS=${cfg.MAX_BATCH_ROWS}), model models/ensemble.onnx (${servedAtStart}) at the start`);
  L.push(`- Buffer: ${Math.ceil(fillRows / LEARN_ROWS)} POST /learn requests of ${LEARN_ROWS} seeded labelled rows, 8 at a time (${Object.entries(filled.statuses).map(([k, v]) => `${k}: ${v}`).join(', ')}) in ${filled.seconds.toFixed(1)} s; replay buffer ${learning.replay_buffer_rows} rows`);
  L.push(`- Load: wrk (${WRK_PATH}, 1 thread), 127.0.0.1, POST /predict JSON 1 row, ${CONNECTIONS} connections, 65,536 distinct seeded bodies rotated; ${durationS} s windows, a ${warmupS} s warm-up window of each kind discarded, ${rounds} rounds interleaved (idle training, training idle, ...)`);
  L.push(`- Training windows: POST /train right before wrk starts, GET /train/{id} every ${POLL_MS} ms, and as soon as a run is seen to end (status ≠ \`running\`) the next is started, so a run is in progress for the whole window; after the window the last run is waited for, outside any measurement. A run here takes about ${fmtCount(median(allRuns.map((r) => r.duration_seconds ?? NaN)) * 1000)} ms (${allRuns.length} runs in all, each on ${allRuns[0]?.rows ?? '?'} rows), so each window holds several back-to-back runs, each ending in a promotion and a hot swap`);
  L.push('');
  L.push('| window | req/s | p50 ms | p95 ms | p99 ms | non-2xx / socket err | engine CPU | other CPU | load avg (1 min) | training runs per window | window covered by a run | req/s per round | p99 ms per round | other CPU per round |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |');
  for (const kind of ['idle', 'training'] as const) {
    const s = kind === 'idle' ? sI : sT;
    const ws = windows[kind];
    const errs = s.non2xx + s.socketErrors > 0 ? `**${s.non2xx} / ${s.socketErrors}** ⚠` : `${s.non2xx} / ${s.socketErrors}`;
    L.push(
      `| ${kind === 'idle' ? 'idle (no run)' : 'during training'} | ${fmtCount(s.reqPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${errs} | ${s.serverCpuPct.toFixed(0)}% | ${s.otherCpuPct.toFixed(0)}% | ${s.load1.toFixed(2)} | ${kind === 'training' ? ws.map((w) => w.runs).join(' / ') : '0'} | ${kind === 'training' ? ws.map((w) => (w.coverage * 100).toFixed(0) + '%').join(' / ') : '—'} | ${s.perRound.map(fmtCount).join(' / ')} | ${ws.map((w) => fmtMs(w.run.p99Us)).join(' / ')} | ${otherList(ws)} |`,
    );
  }
  const pP99 = pairedRatios(windows.idle, windows.training, (m) => m.run.p99Us);
  const pP50 = pairedRatios(windows.idle, windows.training, (m) => m.run.p50Us);
  const pRps = pairedRatios(windows.idle, windows.training, (m) => m.run.okPerS);
  L.push('');
  L.push('Training ÷ idle:');
  L.push('');
  L.push('| statistic | of the medians | per round (paired) | median of the paired ratios |');
  L.push('| --- | ---: | --- | ---: |');
  L.push(`| p50 | ${fmtRatio(sT.p50Us / sI.p50Us)} | ${ratioList(pP50)} | ${fmtRatio(median(pP50))} |`);
  L.push(`| p95 | ${fmtRatio(sT.p95Us / sI.p95Us)} | ${ratioList(pairedRatios(windows.idle, windows.training, (m) => m.run.p95Us))} | ${fmtRatio(median(pairedRatios(windows.idle, windows.training, (m) => m.run.p95Us)))} |`);
  L.push(`| **p99** | **${fmtRatio(sT.p99Us / sI.p99Us)}** | ${ratioList(pP99)} | ${fmtRatio(median(pP99))} |`);
  L.push(`| req/s | ${fmtRatio(sT.reqPerS / sI.reqPerS)} | ${ratioList(pRps)} | ${fmtRatio(median(pRps))} |`);
  const quiet = quietPairs(windows.idle, windows.training, 35);
  L.push('');
  L.push(`Rounds where other processes used < 35% of a core during both windows: ${quiet.length ? `${quiet.length}; p99 training ÷ idle there ${ratioList(quiet.map((i) => pP99[i]!))}, req/s ${ratioList(quiet.map((i) => pRps[i]!))}` : 'none'}.`);
  L.push('');
  L.push('CPU is a percentage of one core (2 cores in all); the engine\'s includes its training worker thread; "other" is everything else on the machine (other jobs, VM steal). req/s counts 2xx answers.');
  L.push('');
  L.push('Checks:');
  L.push('');
  const statusCount = new Map<string, number>();
  for (const r of allRuns) statusCount.set(r.status, (statusCount.get(r.status) ?? 0) + 1);
  L.push(`- training runs (warm-up included): ${[...statusCount].map(([k, v]) => `${v} ${k}`).join(', ')}; durations min / median / max ${[Math.min(...allRuns.map((r) => r.duration_seconds ?? NaN)), median(allRuns.map((r) => r.duration_seconds ?? NaN)), Math.max(...allRuns.map((r) => r.duration_seconds ?? NaN))].map((v) => v.toFixed(2)).join(' / ')} s; promoted versions ${[...new Set(allRuns.map((r) => r.promoted_version ?? 'none'))].join(', ')} (the buffer does not change during the benchmark, and training is deterministic, so every run yields the same bytes; the swap still runs in full each time: a new session in every worker, then the flip); served ensemble version ${servedAtStart} at the start, ${servedAtEnd} at the end`);
  if (trainerProblems.length) L.push(`- runs that were not promoted: ${trainerProblems.slice(0, 5).join('; ')}`);
  L.push(`- engine log lines at warn or above (besides the no-ADMIN_TOKEN notice): ${logLines.length}${logLines.length ? ': ' + logLines.slice(0, 5).join('; ') : ''}`);
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
