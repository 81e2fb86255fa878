/**
 * Prequential (test-then-train) evaluation of SgdLearner on Elec2 for a grid of settings:
 * every row is predicted with the model learned from the rows before it, then learned from.
 * Prints a markdown table (accuracy, precision/recall/F1 of UP, min/median/max accuracy over
 * consecutive 1,000-row windows) and the "previous label" baseline on the same stream.
 * In-process: no HTTP, so it isolates the learner's quality from the server's.
 *
 *   npx tsc -p tsconfig.json && node dist/scripts/elec2-sweep.js [--csv PATH] [--grid full|small] [--market]
 *
 * --market adds a check that the defaults are not tuned to Elec2 alone: a few settings on the
 * project's own synthetic market stream (src/training/market-sim.ts, the ensemble's 16
 * features), which is noisy and weakly predictable where Elec2 is strongly autocorrelated.
 *
 * The data is read from ../shared/data/elec2.csv (never copied into the repository).
 */
import * as path from 'node:path';
import { parseFlags, UsageError } from '../src/cli/flags';
import { readLabelledCsv } from '../src/io/csv';
import { DEFAULT_SGD_OPTIONS, SgdLearner, type SgdOptions } from '../src/learning/sgd';
import { projectRoot } from '../src/paths';
import { buildDataset } from '../src/training/features';
import { simulateMarket } from '../src/training/market-sim';

export interface PrequentialResult {
  rows: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** Mean prequential log loss of the predicted probabilities (NaN when none were given). */
  logLoss: number;
  /** Accuracy over consecutive full windows (a last partial window is left out). */
  windowMin: number;
  windowMedian: number;
  windowMax: number;
  windows: number;
}

/** Accumulates predicted/actual pairs into the metrics the issue asks for. */
export class PrequentialScore {
  private tp = 0;
  private fp = 0;
  private fn = 0;
  private tn = 0;
  private inWindow = 0;
  private correctInWindow = 0;
  private readonly windowAcc: number[] = [];
  private logLossSum = 0;
  private probas = 0;

  constructor(readonly window = 1000) {}

  /** `proba`, p(class 1), also scores the probabilities (log loss), not only the class. */
  add(predicted: number, actual: number, proba?: number): void {
    if (proba !== undefined) {
      const q = actual === 1 ? proba : 1 - proba;
      this.logLossSum -= Math.log(Math.max(q, 1e-15)); // sklearn's log_loss clips at 1e-15 too
      this.probas++;
    }
    if (predicted === 1) {
      if (actual === 1) this.tp++;
      else this.fp++;
    } else if (actual === 1) this.fn++;
    else this.tn++;
    if (predicted === actual) this.correctInWindow++;
    if (++this.inWindow === this.window) {
      this.windowAcc.push(this.correctInWindow / this.window);
      this.inWindow = 0;
      this.correctInWindow = 0;
    }
  }

  result(): PrequentialResult {
    const n = this.tp + this.fp + this.fn + this.tn;
    const precision = this.tp + this.fp > 0 ? this.tp / (this.tp + this.fp) : 0;
    const recall = this.tp + this.fn > 0 ? this.tp / (this.tp + this.fn) : 0;
    const sorted = [...this.windowAcc].sort((a, b) => a - b);
    const median = sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    return {
      rows: n,
      accuracy: n > 0 ? (this.tp + this.tn) / n : NaN,
      precision,
      recall,
      f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0,
      logLoss: this.probas > 0 ? this.logLossSum / this.probas : NaN,
      windowMin: sorted.length ? sorted[0]! : NaN,
      windowMedian: median,
      windowMax: sorted.length ? sorted[sorted.length - 1]! : NaN,
      windows: sorted.length,
    };
  }
}

/** Test-then-train over the whole stream. Predicted class: p(UP) > 0.5 (sklearn's margin > 0). */
export function prequentialSgd(opts: SgdOptions, rows: Float64Array, labels: Uint8Array, window = 1000): PrequentialResult {
  const learner = new SgdLearner(opts);
  const score = new PrequentialScore(window);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i] as 0 | 1;
    const p = learner.learn(rows, i, y);
    score.add(p > 0.5 ? 1 : 0, y, p);
  }
  return score.result();
}

/** "Predict the previous row's label" (the first row is predicted DOWN, as a fresh model does). */
export function previousLabelBaseline(labels: Uint8Array, window = 1000): PrequentialResult {
  const score = new PrequentialScore(window);
  let prev = 0;
  for (let i = 0; i < labels.length; i++) {
    score.add(prev, labels[i]!);
    prev = labels[i]!;
  }
  return score.result();
}

type Setting = Omit<SgdOptions, 'features'>;

function grid(kind: string): Setting[] {
  const out: Setting[] = [];
  const base = { eta0: 0.01, powerT: 0.5 };
  const std = [false, true];
  if (kind === 'small') {
    for (const standardize of std) out.push({ ...base, learningRate: 'optimal', alpha: 1e-4, standardize });
    out.push({ ...DEFAULT_SGD_OPTIONS });
    return out;
  }
  for (const standardize of std) {
    for (const alpha of [1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2]) out.push({ ...base, learningRate: 'optimal', alpha, standardize });
    for (const alpha of [0, 1e-5, 1e-4, 1e-3, 1e-2]) {
      for (const eta0 of [0.01, 0.1, 0.3, 1, 3, 10]) out.push({ ...base, learningRate: 'constant', alpha, eta0, standardize });
    }
    for (const eta0 of [0.1, 1, 3, 10]) {
      for (const powerT of [0.1, 0.25, 0.5]) out.push({ ...base, learningRate: 'invscaling', alpha: 1e-4, eta0, powerT, standardize });
    }
  }
  return out;
}

function describe(s: Setting): string {
  const parts = [s.learningRate, `alpha=${s.alpha}`];
  if (s.learningRate !== 'optimal') parts.push(`eta0=${s.eta0}`);
  if (s.learningRate === 'invscaling') parts.push(`powerT=${s.powerT}`);
  parts.push(s.standardize ? 'standardized' : 'raw');
  return parts.join(', ');
}

const f3 = (v: number) => v.toFixed(3);
const f4 = (v: number) => v.toFixed(4);

export function formatRow(name: string, r: PrequentialResult): string {
  const ll = Number.isNaN(r.logLoss) ? '' : f3(r.logLoss);
  return `| ${name} | ${f4(r.accuracy)} | ${f3(r.precision)} | ${f3(r.recall)} | ${f3(r.f1)} | ${f3(r.windowMin)} / ${f3(r.windowMedian)} / ${f3(r.windowMax)} | ${ll} |`;
}

const HEADER =
  '| setting | accuracy | precision UP | recall UP | F1 UP | 1,000-row windows min / median / max | log loss |\n' +
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n';

function isDefault(s: Setting): boolean {
  const d = DEFAULT_SGD_OPTIONS;
  return s.learningRate === d.learningRate && s.alpha === d.alpha && s.standardize === d.standardize && (s.learningRate === 'optimal' || s.eta0 === d.eta0) && (s.learningRate !== 'invscaling' || s.powerT === d.powerT);
}

const USAGE = 'Usage: node dist/scripts/elec2-sweep.js [--csv PATH] [--grid full|small] [--market]\n';

const FLAGS = {
  csv: { type: 'string' },
  grid: { type: 'string', default: 'full' },
  market: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h' },
} as const;

async function main(argv: string[]): Promise<void> {
  const { values } = parseFlags({ args: argv, options: FLAGS });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const csv = values.csv ?? path.join(projectRoot(), '..', 'shared', 'data', 'elec2.csv');
  const kind = values.grid;
  const market = values.market;
  if (kind !== 'full' && kind !== 'small') throw new UsageError(`--grid must be full or small, got "${kind}"`);
  const data = await readLabelledCsv(csv, { labelColumn: 'class', positive: 'UP', dropColumns: ['date'] });
  const F = data.features.length;
  process.stdout.write(`${csv}: ${data.rowCount} rows, features ${data.features.join(',')}, label class (positive UP)\n\n`);
  process.stdout.write(HEADER);
  const results: { s: Setting; r: PrequentialResult }[] = [];
  for (const s of grid(kind)) {
    const r = prequentialSgd({ features: F, ...s }, data.rows, data.labels);
    results.push({ s, r });
    const sklearnEquivalent = s.learningRate === 'optimal' && s.alpha === 1e-4 && !s.standardize;
    const mark = isDefault(s) ? ' **(default)**' : sklearnEquivalent ? ' (sklearn SGDClassifier defaults)' : '';
    process.stdout.write(formatRow(describe(s) + mark, r) + '\n');
  }
  process.stdout.write(formatRow('previous label (baseline)', previousLabelBaseline(data.labels)) + '\n');
  const best = results.reduce((a, b) => (b.r.accuracy > a.r.accuracy ? b : a));
  process.stdout.write(`\nbest: ${describe(best.s)} → ${best.r.accuracy.toFixed(5)}\n`);
  const t0 = process.hrtime.bigint();
  const def = prequentialSgd({ features: F, ...DEFAULT_SGD_OPTIONS }, data.rows, data.labels);
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`default (${describe(DEFAULT_SGD_OPTIONS)}) → ${def.accuracy.toFixed(5)}; ${Math.round(data.rowCount / sec).toLocaleString('en-US')} rows/s in-process\n`);
  // Through HTTP the rows arrive as float32: the default must not hinge on the last digits.
  const f32 = prequentialSgd({ features: F, ...DEFAULT_SGD_OPTIONS }, Float64Array.from(Float32Array.from(data.rows)), data.labels);
  process.stdout.write(`default on float32-rounded rows → ${f4(f32.accuracy)}\n`);
  if (market) marketCheck();
}

function marketCheck(): void {
  const seeds = [1, 2, 3];
  const streams = seeds.map((seed) => buildDataset(simulateMarket({ seed, periods: 40_000 })));
  process.stdout.write(
    `\nsynthetic market (src/training/market-sim.ts, seeds ${seeds.join(', ')}, ${streams[0]!.rows} rows of ${streams[0]!.features} features each; ` +
      'mean over the seeds)\n\n| setting | accuracy | log loss |\n| --- | ---: | ---: |\n',
  );
  const settings: Setting[] = [
    { ...DEFAULT_SGD_OPTIONS },
    ...[0.01, 0.1, 0.3, 1].map((eta0) => ({ learningRate: 'constant' as const, alpha: 1e-4, eta0, powerT: 0.5, standardize: true })),
    { learningRate: 'optimal', alpha: 1e-4, eta0: 0.01, powerT: 0.5, standardize: false },
    { learningRate: 'optimal', alpha: 1e-3, eta0: 0.01, powerT: 0.5, standardize: true },
  ];
  const seen = new Set<string>();
  for (const s of settings) {
    if (seen.has(describe(s))) continue;
    seen.add(describe(s));
    const rs = streams.map((d) => prequentialSgd({ features: d.features, ...s }, d.x, d.y));
    const mean = (k: 'accuracy' | 'logLoss') => rs.reduce((a, r) => a + r[k], 0) / rs.length;
    process.stdout.write(`| ${describe(s)}${isDefault(s) ? ' **(default)**' : ''} | ${f4(mean('accuracy'))} | ${f3(mean('logLoss'))} |\n`);
  }
  const prev = streams.map((d) => previousLabelBaseline(d.y).accuracy);
  process.stdout.write(`| previous label (baseline) | ${f4(prev.reduce((a, b) => a + b) / prev.length)} | |\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    if (err instanceof UsageError) process.stderr.write(USAGE);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  });
}
