/**
 * `tradeflow load`: a load test that is honest about latency (open loop, latency from each
 * request's due time), with the engine's own histogram beside the client's and, for the load
 * tester, a check of a Prometheus alert in the same command. The work is src/load/load-test.ts;
 * this file is its command line.
 */
import { TradeflowError } from '../errors';
import { parseExpectation } from '../load/alert-watch';
import { DEFAULT_P95_UNDER_MS, runLoadTest, type LoadTestOptions } from '../load/load-test';
import { SHAPES } from '../load/shapes';
import { parseSweep } from '../load/sweep';
import { parseDuration, parsePositive } from '../load/units';
import { listFlag, parseFlags, UsageError, wholeNumber } from './flags';

const shapeLines = SHAPES.map((s) => `                          ${s.name.padEnd(11)}${s.summary}`).join('\n');

export const LOAD_USAGE = `Usage: tradeflow load [options]

Sends prediction requests to an engine at a constant rate and reports the latency its clients
see, the engine's own view of the same window, and, with --expect-alert, whether a Prometheus
alert (HighAPILatency) reached the state it should.

Open loop (the default): request i is due at start + i/rate, whether or not earlier ones were
answered, over a fixed number of keep-alive connections (a due request waits for a free one).
Latency counts from the time each request was due, so a stall of the server is charged to every
request due during it (no coordinated omission). The report says when the tool itself fell
behind its schedule (requests issued more than 1 ms late): the tool, not the engine, is then
the limit. Requests may go out up to 1 ms early (timer granularity); those count from their send.

Target:
  --url URL               engine base URL (default http://127.0.0.1:8000)
  --model NAME            model to ask (default: none named, the engine's default)
  --features F            features per row, for a target without GET /models (default: the
                          served model's F, from GET /models)
  --no-engine-metrics     do not read the target's GET /monitoring/metrics (a target that is not the engine)

Load:
  --rate R                requests per second, open loop (default 100)
  --connections N         keep-alive connections (default 8)
  --closed                closed loop instead: each connection sends its next request when the
                          previous one is answered, latency from each send; said so in the report
                          (a stall then hides: the requests it holds back are never counted); no --rate
  --duration D            measured time (default 10s; D is 10s, 500ms, 250us, 2m; a bare number is seconds)
  --warmup D              load at the same rate before the measurement, not recorded (default 0)
  --timeout D             a request with no answer this long after its send fails (default 30s)

Requests:
  --shape NAME            request shape (default json):
${shapeLines}
  --rows N                rows per request (default 1)
  --csv FILE              features from this CSV's rows, cycled (e.g. Elec2); default: 20,000 generated rows,
                          more than the engine's default cache holds, so 1-row requests are not cache hits
  --label-column NAME     with --csv: its label column (not sent)
  --drop-columns a,b      with --csv: other columns that are not features (e.g. date)
  --seed N                seed of the generated rows (default: a new one each run, shown in the report, so
                          one run's rows are not in the engine's cache from the last)

Report (latencies from an HdrHistogram: p50, p90, p95, p99, p99.9, max):
  --json                  print one JSON object instead of the report
  --hgrm                  print HdrHistogram's percentile distribution (.hgrm, ms) on stdout, the report on stderr
  --plot FILE.svg         write the latency percentile distribution (log scale of the nines) and the
                          latency over time
  --sweep LIST            one measured run per rate: 100,200,400 or 100:1000:100 (start:end:step); or per
                          connection count: connections=1,2,4,8. Stops after the first step that is not
                          sustained; prints a table and the knee
  --p95-under D           the sweep's threshold: the knee is the highest rate whose p95 stays under D with at
                          most 1 % errors and 95 % of the rate achieved (default ${DEFAULT_P95_UNDER_MS / 1000}s, HighAPILatency's);
                          in a single run, exit 3 unless the client p95 is under D
  A progress line (rate, p95 so far, errors) is printed each second when stderr is a terminal.

Server side and alerts:
  After the run the engine's api_request_duration_seconds for the same window (GET /monitoring/metrics,
  and Prometheus with --prometheus) is printed beside the client's P95, with the bucket bounds that
  bracket it, and a disagreement wider than that bucket is pointed out.
  --prometheus URL        Prometheus base URL (e.g. http://127.0.0.1:9090)
  --instance NAME         the engine's instance label there (default: the one naming --url's host:port,
                          else the only one)
  --expect-alert NAME[=firing|inactive]
                          watch the alert during the run and for its for: plus two evaluation intervals
                          after it; report when it went pending, firing and resolved. firing (the default)
                          passes once it fires; inactive fails if it starts firing and passes if it is
                          neither pending nor firing at the end of that window. Needs --prometheus

  --help                  show this help

Exit status: 0 done (and every check passed), 1 the run failed, 2 a bad command line or setting,
3 a check failed (--expect-alert, --p95-under in a single run, a sweep with no sustained step).`;

const LOAD_FLAGS = {
  url: { type: 'string', default: 'http://127.0.0.1:8000' },
  model: { type: 'string' },
  features: { type: 'string' },
  'no-engine-metrics': { type: 'boolean', default: false },
  rate: { type: 'string' },
  connections: { type: 'string' },
  closed: { type: 'boolean', default: false },
  duration: { type: 'string', default: '10s' },
  warmup: { type: 'string', default: '0' },
  timeout: { type: 'string', default: '30s' },
  shape: { type: 'string', default: 'json' },
  rows: { type: 'string' },
  csv: { type: 'string' },
  'label-column': { type: 'string' },
  'drop-columns': { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean', default: false },
  hgrm: { type: 'boolean', default: false },
  plot: { type: 'string' },
  sweep: { type: 'string' },
  'p95-under': { type: 'string' },
  prometheus: { type: 'string' },
  instance: { type: 'string' },
  'expect-alert': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flags, for the test that --help documents every one. */
export const LOAD_FLAG_NAMES = Object.keys(LOAD_FLAGS);

/** Throws UsageError (or CONFIG_INVALID) on anything wrong with the command line. */
export function parseLoadArgs(argv: string[]): LoadTestOptions {
  const { values: v } = parseFlags({ args: argv, options: LOAD_FLAGS });
  const closed = v.closed;
  if (closed && v.rate !== undefined) throw new UsageError('--closed sends each request when the previous one is answered: --rate does not apply');
  const sweep = v.sweep === undefined ? null : parseSweep(v.sweep);
  if (closed && sweep?.by === 'rate') throw new UsageError('--closed has no rate to sweep: sweep connections=1,2,4,...');
  if (v.hgrm && (v.json || sweep)) throw new UsageError('--hgrm prints one run\'s distribution: not with --json or --sweep');
  if (v['expect-alert'] !== undefined && v.prometheus === undefined) throw new UsageError('--expect-alert needs --prometheus URL');
  if (v.instance !== undefined && v.prometheus === undefined) throw new UsageError('--instance names an instance in --prometheus');
  if (v.csv === undefined && (v['label-column'] !== undefined || v['drop-columns'] !== undefined)) throw new UsageError('--label-column and --drop-columns go with --csv');
  if (v.csv !== undefined && v['label-column'] === undefined) throw new UsageError('--csv needs --label-column NAME (the column that is not sent)');
  return {
    url: v.url.replace(/\/+$/, ''),
    model: v.model ?? null,
    features: v.features === undefined ? null : wholeNumber('--features', v.features, 1, 1 << 20),
    engineMetrics: !v['no-engine-metrics'],
    mode: closed ? 'closed' : 'open',
    rate: v.rate === undefined ? 100 : parsePositive('--rate', v.rate),
    connections: v.connections === undefined ? 8 : wholeNumber('--connections', v.connections, 1, 10_000),
    durationMs: parseDuration('--duration', v.duration),
    warmupMs: parseDuration('--warmup', v.warmup, true),
    timeoutMs: parseDuration('--timeout', v.timeout),
    shape: v.shape,
    rows: v.rows === undefined ? 1 : wholeNumber('--rows', v.rows, 1, 1 << 24),
    csv: v.csv === undefined ? null : { path: v.csv, labelColumn: v['label-column']!, dropColumns: listFlag(v['drop-columns'] ?? '') },
    seed: v.seed === undefined ? null : wholeNumber('--seed', v.seed, 0, 2 ** 32 - 1),
    json: v.json,
    hgrm: v.hgrm,
    plot: v.plot ?? null,
    sweep,
    p95UnderMs: v['p95-under'] === undefined ? null : parseDuration('--p95-under', v['p95-under']),
    prometheus: v.prometheus === undefined ? null : v.prometheus.replace(/\/+$/, ''),
    instance: v.instance ?? null,
    expectAlert: v['expect-alert'] === undefined ? null : parseExpectation(v['expect-alert']),
  };
}

/** `tradeflow load ...`; answers the exit code (module doc above and the usage's last lines). */
export async function loadCommand(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout.write(LOAD_USAGE + '\n');
    return 0;
  }
  let options: LoadTestOptions;
  try {
    options = parseLoadArgs(argv);
  } catch (err) {
    stderr.write(`tradeflow load: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const r = await runLoadTest(options, stderr);
    if (r.stderr) stderr.write(r.stderr + '\n');
    stdout.write(r.stdout + (r.stdout.endsWith('\n') ? '' : '\n'));
    return r.exitCode;
  } catch (err) {
    stderr.write(`tradeflow load: ${(err as Error).message}\n`);
    // A setting that shows itself wrong only against the target (F, the model, the CSV) is a bad setting too.
    return err instanceof TradeflowError && err.code === 'CONFIG_INVALID' ? 2 : 1;
  }
}
