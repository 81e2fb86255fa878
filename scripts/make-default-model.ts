/**
 * Builds the model bundled in models/: simulate a market from a fixed seed, compute the 16
 * features, train the logistic regression and the MLP on the first 80 % of the periods,
 * score the last 20 %, and write the ONNX file, its model card (JSON) and models/README.md.
 * Everything is a function of the seed, so running it again reproduces the same bytes.
 *
 *   npm run model:default                 # writes models/
 *   node dist/scripts/make-default-model.js --out /tmp/m
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseFlags, UsageError } from '../src/cli/flags';
import { deriveSeed } from '../src/training/rng';
import { DEFAULT_REGIMES, DEFAULT_TREND, simulateMarket } from '../src/training/market-sim';
import { FEATURES, FEATURE_NAMES, WARMUP_PERIODS, buildDataset, splitTimeOrdered, type Dataset } from '../src/training/features';
import { DEFAULT_LOGREG_SETTINGS } from '../src/training/logreg';
import { DEFAULT_MLP_SETTINGS } from '../src/training/mlp';
import { ensembleProba, trainEnsemble, type EnsembleModel, type EnsembleSettings } from '../src/training/ensemble';
import { binaryMetrics, logLoss, majorityBaseline, type BinaryMetrics } from '../src/training/metrics';
import {
  DEFAULT_CLASS_LABELS,
  INPUT_NAME,
  LABEL_OUTPUT,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  PROBABILITIES_OUTPUT,
  WRITER_VERSION,
  writeEnsembleOnnx,
} from '../src/training/onnx-writer';

/** The one number the bundled model depends on; every stream is derived from it. */
export const DEFAULT_MODEL_SEED = 20_240_611;
export const DEFAULT_MODEL_PERIODS = 80_000;
export const HOLDOUT_FRACTION = 0.2;
export const ONNX_FILE = 'ensemble.onnx';
export const CARD_FILE = 'ensemble.card.json';
export const README_FILE = 'README.md';

export const DEFAULT_MODEL_SETTINGS: EnsembleSettings = Object.freeze({
  logreg: { ...DEFAULT_LOGREG_SETTINGS, seed: deriveSeed(DEFAULT_MODEL_SEED, 'logreg') },
  mlp: { ...DEFAULT_MLP_SETTINGS, seed: deriveSeed(DEFAULT_MODEL_SEED, 'mlp') },
});

export interface DefaultModelResult {
  readonly onnxPath: string;
  readonly cardPath: string;
  readonly readmePath: string;
  readonly card: ModelCard;
  /** The trained parameters and the holdout rows, for checks against the written file. */
  readonly model: EnsembleModel;
  readonly holdout: Dataset;
}

type MetricsRecord = Omit<BinaryMetrics, 'rows'>;

export interface ModelCard {
  model_name: string;
  file: string;
  sha256: string;
  bytes: number;
  format: Record<string, unknown>;
  classes: { index: number; label: string; meaning: string }[];
  features: { index: number; name: string; meaning: string }[];
  data: Record<string, unknown>;
  trainers: Record<string, unknown>;
  metrics: {
    holdout: { logreg: MetricsRecord; mlp: MetricsRecord; ensemble: MetricsRecord; majority_baseline: { class: string; accuracy: number }; log_loss: Record<string, number> };
    train: { logreg: MetricsRecord; mlp: MetricsRecord; ensemble: MetricsRecord };
    training_loss: { logreg: { first: number; last: number }; mlp: { first: number; last: number } };
  };
  regenerate: string;
}

/** Trains the default model and writes its three files into `outDir`. */
export function makeDefaultModel(outDir: string): DefaultModelResult {
  const marketSeed = deriveSeed(DEFAULT_MODEL_SEED, 'market');
  const path = simulateMarket({ seed: marketSeed, periods: DEFAULT_MODEL_PERIODS });
  const data = buildDataset(path);
  const { train, holdout } = splitTimeOrdered(data, HOLDOUT_FRACTION);
  const training = trainEnsemble(train.x, train.y, train.rows, train.features, DEFAULT_MODEL_SETTINGS);
  const model = training.model;

  const pHold = ensembleProba(model, holdout.x, holdout.rows);
  const pTrain = ensembleProba(model, train.x, train.rows);
  const metrics = (y: Uint8Array, p: Float64Array): MetricsRecord => {
    const { accuracy, precision, recall, f1 } = binaryMetrics(y, p);
    return { accuracy: round(accuracy), precision: round(precision), recall: round(recall), f1: round(f1) };
  };
  const baseline = majorityBaseline(holdout.y);

  const dataInfo = {
    generator: 'src/training/market-sim.ts (regime-switching random walk with momentum)',
    seed: marketSeed,
    periods: DEFAULT_MODEL_PERIODS,
    warmup_periods: WARMUP_PERIODS,
    rows: data.rows,
    train_rows: train.rows,
    holdout_rows: holdout.rows,
    split: `time-ordered: first ${100 - HOLDOUT_FRACTION * 100} % of rows train, last ${HOLDOUT_FRACTION * 100} % holdout`,
    train_up_rate: round(mean(train.y)),
    holdout_up_rate: round(mean(holdout.y)),
    regimes: DEFAULT_REGIMES,
    trend: DEFAULT_TREND,
  };
  const trainers = {
    standardization: 'z-score, mean and population std of the training rows',
    logreg: { method: 'full-batch gradient descent, cross-entropy + L2', ...DEFAULT_MODEL_SETTINGS.logreg },
    mlp: { method: `${DEFAULT_MODEL_SETTINGS.mlp.hidden} ReLU units, sigmoid output, mini-batch Adam, cross-entropy + L2`, ...DEFAULT_MODEL_SETTINGS.mlp },
    ensemble: 'mean of the two class-1 probabilities',
  };

  const bytes = writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: model.standardizer,
    logreg: model.logreg,
    mlp: model.mlp,
    metadata: {
      producer: 'tradeflow scripts/make-default-model.ts',
      training_seed: String(DEFAULT_MODEL_SEED),
      data: JSON.stringify(dataInfo),
      trainer: JSON.stringify(trainers),
    },
  });
  const sha256 = createHash('sha256').update(bytes).digest('hex');

  const card: ModelCard = {
    model_name: 'ensemble',
    file: ONNX_FILE,
    sha256,
    bytes: bytes.length,
    format: {
      ir_version: ONNX_IR_VERSION,
      opset: ONNX_OPSET,
      writer: `src/training/onnx-writer.ts ${WRITER_VERSION}`,
      input: { name: INPUT_NAME, type: 'float32', shape: ['N', FEATURE_NAMES.length] },
      outputs: [
        { name: LABEL_OUTPUT, type: 'int64', shape: ['N'] },
        { name: PROBABILITIES_OUTPUT, type: 'float32', shape: ['N', 2] },
      ],
    },
    classes: [
      { index: 0, label: DEFAULT_CLASS_LABELS[0], meaning: 'next-period log return <= 0' },
      { index: 1, label: DEFAULT_CLASS_LABELS[1], meaning: 'next-period log return > 0' },
    ],
    features: FEATURES.map((f, index) => ({ index, name: f.name, meaning: f.meaning })),
    data: dataInfo,
    trainers: { training_seed: DEFAULT_MODEL_SEED, ...trainers },
    metrics: {
      holdout: {
        logreg: metrics(holdout.y, pHold.logreg),
        mlp: metrics(holdout.y, pHold.mlp),
        ensemble: metrics(holdout.y, pHold.ensemble),
        majority_baseline: { class: DEFAULT_CLASS_LABELS[baseline.label], accuracy: round(baseline.accuracy) },
        log_loss: {
          logreg: round(logLoss(holdout.y, pHold.logreg)),
          mlp: round(logLoss(holdout.y, pHold.mlp)),
          ensemble: round(logLoss(holdout.y, pHold.ensemble)),
        },
      },
      train: {
        logreg: metrics(train.y, pTrain.logreg),
        mlp: metrics(train.y, pTrain.mlp),
        ensemble: metrics(train.y, pTrain.ensemble),
      },
      training_loss: {
        logreg: { first: round(training.logregLoss[0]!), last: round(training.logregLoss.at(-1)!) },
        mlp: { first: round(training.mlpLoss[0]!), last: round(training.mlpLoss.at(-1)!) },
      },
    },
    regenerate: 'npm run model:default',
  };

  mkdirSync(outDir, { recursive: true });
  const onnxPath = join(outDir, ONNX_FILE);
  const cardPath = join(outDir, CARD_FILE);
  const readmePath = join(outDir, README_FILE);
  writeFileSync(onnxPath, bytes);
  writeFileSync(cardPath, JSON.stringify(card, null, 2) + '\n');
  writeFileSync(readmePath, renderReadme(card));
  return { onnxPath, cardPath, readmePath, card, model, holdout };
}

function renderReadme(card: ModelCard): string {
  const h = card.metrics.holdout;
  const row = (name: string, m: MetricsRecord): string =>
    `| ${name} | ${pct(m.accuracy)} | ${pct(m.precision)} | ${pct(m.recall)} | ${pct(m.f1)} |`;
  const d = card.data as { rows: number; train_rows: number; holdout_rows: number; periods: number };
  return [
    '# Bundled model: `ensemble`',
    '',
    '<!-- Generated by scripts/make-default-model.ts; edit the script, not this file. -->',
    '',
    '`ensemble.onnx` is the model the engine serves on a fresh clone (`MODEL_PATH` defaults to it).',
    'It predicts whether the next period of a price series goes UP (class 1) or DOWN (class 0)',
    `from ${card.features.length} features of the recent prices and volumes.`,
    '',
    '## What it is',
    '',
    `A mean of two classifiers on z-scored features: a logistic regression and a one-hidden-layer`,
    `MLP (${(card.trainers['mlp'] as { hidden: number }).hidden} ReLU units, sigmoid output). Both are trained by the project's own`,
    'TypeScript code (`src/training/`) and written to ONNX by `src/training/onnx-writer.ts`:',
    `IR version ${card.format['ir_version']}, opset ${card.format['opset']}, input \`${INPUT_NAME}\` float32 \`[N, ${card.features.length}]\`,`,
    `outputs \`${LABEL_OUTPUT}\` int64 \`[N]\` and \`${PROBABILITIES_OUTPUT}\` float32 \`[N, 2]\``,
    '(the sklearn-onnx convention with ZipMap off). Metadata: `class_labels` = `DOWN,UP`,',
    '`feature_names`, `model_name` = `ensemble`, the training seed and the data and trainer settings.',
    '',
    '## Data',
    '',
    `The training data is synthetic: \`src/training/market-sim.ts\` simulates ${thousands(d.periods)} periods of one`,
    'instrument whose behaviour switches between four hidden regimes (bull, bear, sideways, high',
    'volatility) with different drift, volatility, volume and return autocorrelation, plus a slow',
    'latent trend. That gives the next move a modest, learnable edge (momentum in trends, mean',
    'reversion in quiet markets); the rest is noise. Rows are split in time order:',
    `${thousands(d.train_rows)} rows train, the last ${thousands(d.holdout_rows)} rows are the holdout.`,
    'Standardisation statistics come from the training rows only.',
    '',
    '## Holdout quality',
    '',
    '| model | accuracy | precision (UP) | recall (UP) | F1 (UP) |',
    '| --- | --- | --- | --- | --- |',
    row('logistic regression', h.logreg),
    row('MLP', h.mlp),
    row('**ensemble (served)**', h.ensemble),
    '',
    `Majority-class baseline (always ${h.majority_baseline.class}): ${pct(h.majority_baseline.accuracy)} accuracy.`,
    'The numbers describe the synthetic market, not any real one: this model exists so that the',
    'engine serves something meaningful out of the box, and it is replaced by retraining on real',
    'feedback (`POST /train`) or by loading another ONNX model.',
    '',
    '## Features (input column order)',
    '',
    'Computed at period t from closes c and volumes up to and including t; the label is',
    'UP when the log return from t to t+1 is > 0.',
    '',
    '| # | name | meaning |',
    '| --- | --- | --- |',
    ...card.features.map((f) => `| ${f.index} | \`${f.name}\` | ${f.meaning.replace(/\|/g, '\\|')} |`),
    '',
    '## Regenerate',
    '',
    '```sh',
    'npm run model:default          # builds, then writes models/ensemble.onnx, ensemble.card.json, README.md',
    'node dist/scripts/make-default-model.js --out /tmp/model   # elsewhere',
    '```',
    '',
    `The output is byte-for-byte reproducible (seed ${DEFAULT_MODEL_SEED}); \`test/default-model.test.ts\``,
    'checks that regenerating gives the committed file. `ensemble.card.json` holds the full',
    'settings and metrics.',
    '',
    `sha256 of \`${card.file}\`: \`${card.sha256}\``,
    '',
  ].join('\n');
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)} %`;
}

/** 80000 -> "80,000", independent of the ICU data Node was built with. */
function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function round(x: number): number {
  return Number(x.toFixed(6));
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return a.length > 0 ? s / a.length : 0;
}

/** The repository root: the nearest directory above this file that holds package.json. */
function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

const USAGE = "usage: make-default-model [--out DIR]   (default: the repository's models/)\n";

function parseArgs(argv: string[]): { outDir: string } {
  let values;
  try {
    ({ values } = parseFlags({ args: argv, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
    if (values.out === '') throw new UsageError('--out needs a directory');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`make-default-model: ${err.message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  return { outDir: values.out ? resolve(values.out) : join(repoRoot(), 'models') };
}

function main(): void {
  const { outDir } = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const { onnxPath, card } = makeDefaultModel(outDir);
  const seconds = (performance.now() - started) / 1000;
  const h = card.metrics.holdout;
  const line = (name: string, m: MetricsRecord): string =>
    `  ${name.padEnd(9)} accuracy ${m.accuracy.toFixed(4)}  precision ${m.precision.toFixed(4)}  recall ${m.recall.toFixed(4)}  f1 ${m.f1.toFixed(4)}`;
  const d = card.data as { train_rows: number; holdout_rows: number };
  process.stdout.write(
    [
      `wrote ${onnxPath} (${card.bytes} bytes, sha256 ${card.sha256})`,
      `data: ${d.train_rows} train rows, ${d.holdout_rows} holdout rows, seed ${DEFAULT_MODEL_SEED}`,
      'holdout:',
      line('logreg', h.logreg),
      line('mlp', h.mlp),
      line('ensemble', h.ensemble),
      `  majority baseline (${h.majority_baseline.class}) accuracy ${h.majority_baseline.accuracy.toFixed(4)}`,
      `done in ${seconds.toFixed(1)} s`,
      '',
    ].join('\n'),
  );
}

// Run only as a program; tests import makeDefaultModel.
if (typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`make-default-model: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
