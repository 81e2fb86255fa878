/**
 * Feedback log throughput: appends/s and records per fsync with 1, 8 and 64 concurrent appenders,
 * durable (one write + fdatasync per group) against `durable: false` (write only), in a temp dir on
 * the same filesystem as os.tmpdir(). Each appender is a closed loop (`await append()` then the next),
 * which is what a client waiting for its 202 does, so the group size is bounded by the appenders.
 * Not tinybench: the quantity is the throughput of many concurrent loops, not one function's time.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/feedback-log.bench.js [--time 2000] [--bytes 100]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FeedbackLog } from '../src/learning/feedback-log';
import { numberFlag, programFlags, type FlagSpec } from './lib/args';

export interface FeedbackLogBenchRow {
  durable: boolean;
  appenders: number;
  appends: number;
  seconds: number;
  appendsPerSec: number;
  fsyncs: number;
  groups: number;
  recordsPerFsync: number | null;
  recordsPerGroup: number;
  p50Us: number;
  p99Us: number;
  /** p99 of the event loop's delay while appending: the log must not block it. */
  loopDelayP99Us: number;
}

export interface FeedbackLogBenchResult {
  name: 'feedback-log';
  payloadBytes: number;
  timeMs: number;
  dir: string;
  rows: FeedbackLogBenchRow[];
  /** Event-loop delay p99 with nothing running, same duration: what the machine alone costs. */
  idleLoopDelayP99Us: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function measure(durable: boolean, appenders: number, timeMs: number, payload: Uint8Array): Promise<FeedbackLogBenchRow> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-bench-feedback-'));
  const log = await FeedbackLog.open(dir, { durable });
  const latencies: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let stop = false;
  const appender = async (): Promise<void> => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      await log.append(payload);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  };
  const timer = setTimeout(() => (stop = true), timeMs);
  loop.enable();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: appenders }, appender));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  loop.disable();
  clearTimeout(timer);
  const s = log.stats();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  return {
    durable,
    appenders,
    appends: s.appended,
    seconds,
    appendsPerSec: s.appended / seconds,
    fsyncs: s.fsyncs,
    groups: s.groups,
    recordsPerFsync: s.fsyncs > 0 ? s.appended / s.fsyncs : null,
    recordsPerGroup: s.appended / s.groups,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
    loopDelayP99Us: loop.percentile(99) / 1000,
  };
}

async function idleLoopDelay(timeMs: number): Promise<number> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  await new Promise((r) => setTimeout(r, timeMs));
  loop.disable();
  return loop.percentile(99) / 1000;
}

/** Runs the benchmark, prints its report (unless quiet) and returns the numbers. */
export async function run(opts: { time?: number; payloadBytes?: number; quiet?: boolean } = {}): Promise<FeedbackLogBenchResult> {
  const timeMs = opts.time ?? 2000;
  const payloadBytes = opts.payloadBytes ?? 100;
  const payload = new Uint8Array(payloadBytes).map((_, i) => (i * 31 + 7) & 0xff);
  // Warm-up: JIT, the threadpool, and the filesystem's first allocations.
  await measure(true, 8, Math.min(300, timeMs), payload);
  const rows: FeedbackLogBenchRow[] = [];
  for (const durable of [true, false]) {
    for (const appenders of [1, 8, 64]) rows.push(await measure(durable, appenders, timeMs, payload));
  }
  const idleLoopDelayP99Us = await idleLoopDelay(timeMs);
  const result: FeedbackLogBenchResult = { name: 'feedback-log', payloadBytes, timeMs, dir: os.tmpdir(), rows, idleLoopDelayP99Us };
  if (opts.quiet !== true) console.log(formatReport(result));
  return result;
}

export function formatReport(result: FeedbackLogBenchResult): string {
  return [
    `feedback log, ${result.payloadBytes}-byte payloads, ${result.timeMs} ms per row, in ${result.dir} (node ${process.version})`,
    '',
    formatTable(result),
    '',
    `event-loop delay p99 with the process idle for as long: ${(result.idleLoopDelayP99Us / 1000).toFixed(2)} ms (load average ${os.loadavg()[0]!.toFixed(2)})`,
  ].join('\n');
}

export function formatTable(result: FeedbackLogBenchResult): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const us = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(1)} ms` : `${x.toFixed(0)} µs`);
  const lines = [
    '| mode | appenders | appends/s | records per fsync | records per group | append p50 | append p99 | event-loop delay p99 |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of result.rows) {
    lines.push(
      `| ${r.durable ? 'durable (fdatasync)' : 'durable: false'} | ${r.appenders} | ${n(r.appendsPerSec)} | ` +
        `${r.recordsPerFsync === null ? '— (no fsync)' : r.recordsPerFsync.toFixed(1)} | ${r.recordsPerGroup.toFixed(1)} | ` +
        `${us(r.p50Us)} | ${us(r.p99Us)} | ${us(r.loopDelayP99Us)} |`,
    );
  }
  return lines.join('\n');
}

const FLAGS: FlagSpec[] = [
  { name: 'time', help: 'milliseconds per mode and appender count (default 2000)' },
  { name: 'bytes', help: 'payload bytes per record (default 100)' },
];

if (require.main === module) {
  const opts = programFlags('feedback-log.bench', 'Usage: node dist/bench/feedback-log.bench.js [options]', FLAGS, (flags) => ({
    time: flags.has('time') ? numberFlag(flags, 'time', 0, 1, 600_000) : undefined,
    payloadBytes: flags.has('bytes') ? numberFlag(flags, 'bytes', 0, 1, 1 << 20) : undefined,
  }));
  run(opts).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
