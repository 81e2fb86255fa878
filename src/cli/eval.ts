/**
 * `tradeflow eval`: prequential (test-then-train) evaluation of a running engine on a labelled
 * CSV. For each batch of rows: predict with an id, score the answer against the labels, then
 * send the labels as feedback for that id. With --in-process the same stream goes through the
 * online learner directly, without HTTP, for comparison.
 */
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { reviveError, type TradeflowError } from '../errors';
import { readLabelledCsv } from '../io/csv';
import { DEFAULT_SGD_OPTIONS, SgdLearner, validateSgdOptions } from '../learning/sgd';
import { runCommand } from './command';
import { CSV_FLAGS, csvSource, type CsvSource } from './csv-flags';
import { parseFlags, UsageError, wholeNumber } from './flags';

export const EVAL_USAGE = `Usage: tradeflow eval --csv FILE --label-column NAME --positive VALUE [options]

Streams a labelled CSV through the engine test-then-train: predict each batch with an id, then
send its labels to /learn. Prints accuracy, precision, recall and F1 of the positive class, the
min/median/max accuracy over consecutive 1,000-row windows, the "previous label" baseline on the
same stream, and rows per second.

Options:
  --url URL              engine base URL (default http://127.0.0.1:8000)
  --csv FILE             the labelled CSV (header line, numeric feature columns)
  --label-column NAME    the label column
  --positive VALUE       the label value of class 1 (e.g. UP)
  --drop-columns a,b     columns that are not features (e.g. date)
  --model NAME           model to predict with (default sgd); "default" names none, so the
                         engine's default route answers (SERVE_POLICY: the champion, or fixed)
  --batch N              rows per request (default 1)
  --skip N               start at row N (e.g. past rows an initial model was trained on)
  --limit N              stop after N rows
  --token TOKEN          bearer token for /learn (or ADMIN_TOKEN)
  --in-process           run the online learner here, without HTTP
  --json                 print the result as one JSON object
  --help                 show this help`;

export interface EvalResult {
  rows: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  windows: { size: number; count: number; min: number; median: number; max: number; accuracies: number[] };
  previousLabelAccuracy: number;
  rowsPerSecond: number;
  seconds: number;
  mode: 'http' | 'in-process';
  model: string;
  /** Rows answered per model, as the answers named it (with --model default, who the route chose). */
  servedBy: Record<string, number>;
  /** The predicted class of every row, in stream order, when asked for (`keepPredictions`). */
  predictions?: Uint8Array;
}

interface EvalArgs extends CsvSource {
  url: string;
  model: string;
  batch: number;
  skip: number;
  limit: number;
  token: string | null;
  inProcess: boolean;
  json: boolean;
  /** Keep every row's predicted class in the result (for a benchmark's own analysis). */
  keepPredictions?: boolean;
}

const WINDOW = 1000;

/** `--model default`: the request names no model, so it measures what the default route serves. */
export const DEFAULT_ROUTE = 'default';

const EVAL_FLAGS = {
  ...CSV_FLAGS,
  url: { type: 'string', default: 'http://127.0.0.1:8000' },
  model: { type: 'string', default: 'sgd' },
  batch: { type: 'string' },
  skip: { type: 'string' },
  limit: { type: 'string' },
  token: { type: 'string' },
  'in-process': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Throws CONFIG_INVALID (UsageError) on anything wrong with the flags. */
export function parseEvalArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): EvalArgs {
  const { values: v } = parseFlags({ args: argv, options: EVAL_FLAGS });
  const a: EvalArgs = {
    ...csvSource(v),
    url: v.url.replace(/\/+$/, ''),
    model: v.model,
    batch: v.batch === undefined ? 1 : wholeNumber('--batch', v.batch),
    skip: v.skip === undefined ? 0 : wholeNumber('--skip', v.skip),
    limit: v.limit === undefined ? Infinity : wholeNumber('--limit', v.limit),
    token: v.token ?? (env.ADMIN_TOKEN || null),
    inProcess: v['in-process'],
    json: v.json,
  };
  if (a.inProcess && a.model !== 'sgd') throw new UsageError('--in-process runs the online sgd model only');
  return a;
}

/** Accumulates the prequential figures as rows are scored. */
export class PrequentialScore {
  private tp = 0;
  private fp = 0;
  private fn = 0;
  private tn = 0;
  private windowCorrect = 0;
  private windowRows = 0;
  private readonly windowAccuracies: number[] = [];
  private prevLabel = -1;
  private prevCorrect = 0;
  private prevRows = 0;

  add(predicted: number, actual: number): void {
    if (predicted === 1 && actual === 1) this.tp++;
    else if (predicted === 1) this.fp++;
    else if (actual === 1) this.fn++;
    else this.tn++;
    this.windowCorrect += predicted === actual ? 1 : 0;
    if (++this.windowRows === WINDOW) {
      this.windowAccuracies.push(this.windowCorrect / WINDOW);
      this.windowCorrect = this.windowRows = 0;
    }
    // "Previous label": predict that this row's label equals the last one's.
    if (this.prevLabel !== -1) {
      this.prevRows++;
      if (this.prevLabel === actual) this.prevCorrect++;
    }
    this.prevLabel = actual;
  }

  result(seconds: number, mode: EvalResult['mode'], model: string, servedBy: Record<string, number> = {}): EvalResult {
    const rows = this.tp + this.fp + this.fn + this.tn;
    const precision = this.tp + this.fp > 0 ? this.tp / (this.tp + this.fp) : 0;
    const recall = this.tp + this.fn > 0 ? this.tp / (this.tp + this.fn) : 0;
    const sorted = [...this.windowAccuracies].sort((x, y) => x - y);
    const median = sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    return {
      rows,
      accuracy: rows > 0 ? (this.tp + this.tn) / rows : 0,
      precision,
      recall,
      f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0,
      windows: { size: WINDOW, count: sorted.length, min: sorted[0] ?? NaN, median, max: sorted[sorted.length - 1] ?? NaN, accuracies: [...this.windowAccuracies] },
      previousLabelAccuracy: this.prevRows > 0 ? this.prevCorrect / this.prevRows : 0,
      rowsPerSecond: seconds > 0 ? rows / seconds : 0,
      seconds,
      mode,
      model,
      servedBy,
    };
  }
}

function post(agent: http.Agent, url: URL, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: url.hostname, port: url.port || 80, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function runEval(a: EvalArgs): Promise<EvalResult> {
  const data = await readLabelledCsv(a.csv, { labelColumn: a.labelColumn, positive: a.positive, dropColumns: a.dropColumns });
  const F = data.features.length;
  const first = Math.min(a.skip, data.rowCount);
  const n = Math.min(data.rowCount, first + a.limit);
  const score = new PrequentialScore();
  const started = performance.now();
  if (a.inProcess) {
    const learner = new SgdLearner(validateSgdOptions({ features: F, ...DEFAULT_SGD_OPTIONS }));
    for (let i = first; i < n; i++) {
      const y = data.labels[i]! as 0 | 1;
      const p = learner.learn(data.rows, i, y);
      score.add(p > 0.5 ? 1 : 0, y);
    }
    return score.result((performance.now() - started) / 1000, 'in-process', 'sgd', { sgd: n - first });
  }
  const url = new URL(a.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const auth: Record<string, string> = a.token ? { authorization: `Bearer ${a.token}` } : {};
  const run = `eval-${process.pid}-${Date.now().toString(36)}`;
  const servedBy: Record<string, number> = {};
  const kept = a.keepPredictions ? new Uint8Array(n - first) : null;
  try {
    for (let start = first, k = 0; start < n; start += a.batch, k++) {
      const end = Math.min(n, start + a.batch);
      const rows: number[][] = [];
      for (let i = start; i < end; i++) rows.push(Array.from(data.rows.subarray(i * F, (i + 1) * F)));
      const id = `${run}-${k}`;
      const p = await post(agent, url, '/predict', JSON.stringify(a.model === DEFAULT_ROUTE ? { instances: rows, id } : { instances: rows, id, model: a.model }), {});
      if (p.status !== 200) throw engineError('/predict', p, start, end);
      const answer = JSON.parse(p.text) as { model: string; predictions: Array<{ class: number }> };
      servedBy[answer.model] = (servedBy[answer.model] ?? 0) + (end - start);
      const predictions = answer.predictions;
      const labels: number[] = [];
      for (let i = start; i < end; i++) {
        if (kept) kept[i - first] = predictions[i - start]!.class;
        score.add(predictions[i - start]!.class, data.labels[i]!);
        labels.push(data.labels[i]!);
      }
      const l = await post(agent, url, '/learn', JSON.stringify({ id, labels }), auth);
      if (l.status !== 202) throw engineError('/learn', l, start, end);
    }
  } finally {
    agent.destroy();
  }
  const result = score.result((performance.now() - started) / 1000, 'http', a.model, servedBy);
  if (kept) result.predictions = kept;
  return result;
}

export function formatEval(r: EvalResult): string {
  const pct = (v: number) => (Number.isNaN(v) ? 'n/a' : v.toFixed(4));
  return [
    `rows            ${r.rows} (${r.mode}, model ${r.model})`,
    `accuracy        ${pct(r.accuracy)}`,
    `precision       ${pct(r.precision)}`,
    `recall          ${pct(r.recall)}`,
    `f1              ${pct(r.f1)}`,
    `window accuracy min ${pct(r.windows.min)} / median ${pct(r.windows.median)} / max ${pct(r.windows.max)} over ${r.windows.count} windows of ${r.windows.size} rows`,
    `previous label  ${pct(r.previousLabelAccuracy)}`,
    `served by       ${Object.entries(r.servedBy).map(([m, n]) => `${m} ${n}`).join(', ') || 'n/a'}`,
    `rows/s          ${r.rowsPerSecond.toFixed(0)} (${r.seconds.toFixed(1)} s)`,
  ].join('\n');
}

/** `tradeflow eval ...`; answers the exit code (2: bad arguments, 1: the run failed). */
export function evalCommand(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  return runCommand('tradeflow eval', EVAL_USAGE, argv, { stdout, stderr }, parseEvalArgs, async (args) => {
    const r = await runEval(args);
    return args.json ? JSON.stringify(r) : formatEval(r);
  });
}

/** The engine refused a request: report its own code (the tool did nothing wrong). */
function engineError(route: string, r: { status: number; text: string }, start: number, end: number): TradeflowError {
  let code: unknown;
  try {
    code = (JSON.parse(r.text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    // not our error body: reported as INTERNAL below, with the text
  }
  return reviveError(code, `${route} answered ${r.status} for rows ${start}..${end - 1}: ${r.text}`);
}
