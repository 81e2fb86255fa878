/**
 * `tradeflow train`: trains the ensemble offline from a labelled CSV exactly as a training run
 * in the engine does (src/training/train-run.ts, time-ordered holdout, no serving model to
 * compare with), then writes the ONNX file and its model card. The card is the sidecar
 * `<out without .onnx>.card.json` (model.onnx → model.card.json), the naming of the bundled
 * models/ensemble.onnx + ensemble.card.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readLabelledCsv } from '../io/csv';
import { resolveTrainSettings, trainRun, type HoldoutMetrics, type TrainSettings } from '../training/train-run';
import { withCreatedAt } from '../training/model-card';
import { runCommand } from './command';
import { CSV_FLAGS, csvSource, type CsvSource } from './csv-flags';
import { parseFlags, UsageError, wholeNumber } from './flags';

export const TRAIN_USAGE = `Usage: tradeflow train --csv FILE --label-column NAME --positive VALUE --out model.onnx [options]

Trains the ensemble (logistic regression + MLP on standardized features) from a labelled CSV,
the same way the engine retrains: the last rows (in file order) are the holdout, the rest train.
Writes the ONNX model (input "input" float32 [N,F]; outputs "label", "probabilities") and its
model card next to it (model.onnx -> model.card.json), and prints the holdout metrics.

Options:
  --csv FILE             the labelled CSV (header line, numeric feature columns), oldest row first
  --label-column NAME    the label column
  --positive VALUE       the label value of class 1 (UP); every other value is class 0 (DOWN)
  --drop-columns a,b     columns that are not features (e.g. date)
  --out FILE             where to write the ONNX model (directories are created)
  --holdout FRACTION     share of the rows held out, from the end (default 0.2)
  --seed N               seed of the trainers (default ${resolveTrainSettings().seed})
  --limit N              use only the first N rows of the file
  --min-rows N           refuse to train on fewer rows (default ${resolveTrainSettings().minRows})
  --mlp-hidden N         hidden units of the MLP (default ${resolveTrainSettings().mlpHidden})
  --mlp-epochs N         MLP epochs (default ${resolveTrainSettings().mlpEpochs})
  --logreg-epochs N      logistic regression steps (default ${resolveTrainSettings().logregEpochs})
  --help                 show this help`;

export interface TrainArgs extends CsvSource {
  out: string;
  limit: number;
  settings: Partial<TrainSettings>;
}

const TRAIN_FLAGS = {
  ...CSV_FLAGS,
  out: { type: 'string' },
  holdout: { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  'min-rows': { type: 'string' },
  'mlp-hidden': { type: 'string' },
  'mlp-epochs': { type: 'string' },
  'logreg-epochs': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Throws CONFIG_INVALID on anything wrong with the flags, the training settings included. */
export function parseTrainArgs(argv: string[]): TrainArgs {
  const { values: v } = parseFlags({ args: argv, options: TRAIN_FLAGS });
  const source = csvSource(v);
  if (!v.out) throw new UsageError('--out FILE is required');
  const settings: Partial<TrainSettings> = {};
  if (v.holdout !== undefined) settings.holdoutFraction = fraction('--holdout', v.holdout);
  if (v.seed !== undefined) settings.seed = wholeNumber('--seed', v.seed, 0, 0xffffffff);
  if (v['min-rows'] !== undefined) settings.minRows = wholeNumber('--min-rows', v['min-rows']);
  if (v['mlp-hidden'] !== undefined) settings.mlpHidden = wholeNumber('--mlp-hidden', v['mlp-hidden']);
  if (v['mlp-epochs'] !== undefined) settings.mlpEpochs = wholeNumber('--mlp-epochs', v['mlp-epochs']);
  if (v['logreg-epochs'] !== undefined) settings.logregEpochs = wholeNumber('--logreg-epochs', v['logreg-epochs']);
  resolveTrainSettings(settings);
  return { ...source, out: v.out, limit: v.limit === undefined ? Infinity : wholeNumber('--limit', v.limit), settings };
}

function fraction(flag: string, raw: string): number {
  const f = Number(raw);
  if (raw.trim() === '' || !(f > 0 && f < 1)) throw new UsageError(`${flag} must be a fraction in (0, 1), got "${raw}"`);
  return f;
}

/** The card next to an ONNX file: model.onnx → model.card.json, other names get .card.json appended. */
export function cardPathFor(onnxPath: string): string {
  return onnxPath.replace(/\.onnx$/i, '') + '.card.json';
}

export interface TrainCliResult {
  onnxPath: string;
  cardPath: string;
  rows: number;
  trainRows: number;
  holdoutRows: number;
  features: string[];
  metrics: HoldoutMetrics;
  majorityBaseline: { class: string; accuracy: number };
  sha256: string;
  seconds: number;
}

export async function runTrain(a: TrainArgs, now: () => Date = () => new Date()): Promise<TrainCliResult> {
  const started = performance.now();
  const data = await readLabelledCsv(a.csv, { labelColumn: a.labelColumn, positive: a.positive, dropColumns: a.dropColumns });
  const F = data.features.length;
  const rows = Math.min(data.rowCount, a.limit);
  // Served rows are float32, so the model is trained on the CSV's values as float32 too.
  const x = Float32Array.from(data.rows.subarray(0, rows * F));
  const y = data.labels.slice(0, rows);
  const names = data.features.every((n) => n.length > 0 && !n.includes(',')) ? data.features : undefined;
  const outcome = trainRun(x, y, rows, F, a.settings, null, names);
  const card = withCreatedAt(outcome.card, now().toISOString());

  const onnxPath = path.resolve(a.out);
  const cardPath = cardPathFor(onnxPath);
  fs.mkdirSync(path.dirname(onnxPath), { recursive: true });
  writeAtomically(onnxPath, outcome.candidate);
  writeAtomically(cardPath, JSON.stringify(card, null, 2) + '\n');
  return {
    onnxPath,
    cardPath,
    rows,
    trainRows: outcome.trainRows,
    holdoutRows: outcome.holdoutRows,
    features: data.features,
    metrics: outcome.candidateMetrics,
    majorityBaseline: card.metrics.holdout.majority_baseline,
    sha256: card.onnx.sha256,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A reader never sees half a model: write beside it, then rename over it. */
function writeAtomically(file: string, content: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export function formatTrain(r: TrainCliResult): string {
  const m = r.metrics;
  return [
    `rows            ${r.rows} (${r.trainRows} train, ${r.holdoutRows} holdout: the last rows)`,
    `features        ${r.features.length} (${r.features.join(', ')})`,
    `holdout         accuracy ${m.accuracy.toFixed(4)}  precision ${m.precision.toFixed(4)}  recall ${m.recall.toFixed(4)}  f1 ${m.f1.toFixed(4)}`,
    `majority class  ${r.majorityBaseline.class} accuracy ${r.majorityBaseline.accuracy.toFixed(4)}`,
    `model           ${r.onnxPath} (sha256 ${r.sha256})`,
    `card            ${r.cardPath}`,
    `time            ${r.seconds.toFixed(1)} s`,
  ].join('\n');
}

/** `tradeflow train ...`; answers the exit code (2: bad arguments, 1: the run failed). */
export function trainCommand(argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  return runCommand('tradeflow train', TRAIN_USAGE, argv, { stdout, stderr }, parseTrainArgs, async (args) => formatTrain(await runTrain(args)));
}
