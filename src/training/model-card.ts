/**
 * The model card of a trained ensemble: a JSON document that travels next to the ONNX file
 * (CLI sidecar, version store, `GET /models/{name}`) and says what the model is, what it was
 * trained on and how well it did on the held-out rows. Keys are snake_case like the bundled
 * card (models/ensemble.card.json) and the HTTP answers.
 *
 * The card names the ONNX file by its sha256, so the card cannot live inside the ONNX bytes;
 * and `created_at` is the only field that is not a function of the rows and the settings,
 * which is why the caller supplies it and it never reaches the ONNX file.
 */
import { createHash } from 'node:crypto';
import {
  DEFAULT_CLASS_LABELS,
  INPUT_NAME,
  LABEL_OUTPUT,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  PROBABILITIES_OUTPUT,
  WRITER_VERSION,
} from './onnx-writer';

/** Bump when a key changes meaning or disappears; readers of stored cards check it. */
export const MODEL_CARD_VERSION = 1;

export interface CardMetrics {
  rows: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface ModelCard {
  card_version: typeof MODEL_CARD_VERSION;
  name: string;
  producer: 'tradeflow';
  /** ISO 8601, supplied by whoever keeps the model; null until then. */
  created_at: string | null;
  onnx: {
    sha256: string;
    bytes: number;
    ir_version: number;
    opset: number;
    writer: string;
    input: { name: string; type: 'float32'; shape: ['N', number] };
    outputs: { name: string; type: string; shape: (string | number)[] }[];
  };
  features: { count: number; names: string[] | null };
  classes: { index: 0 | 1; label: string }[];
  data: {
    /** See `dataSha256`: the training rows only, the rows that determine the model. */
    sha256: string;
    holdout_sha256: string;
    hash: string;
    rows: number;
    train_rows: number;
    holdout_rows: number;
    split: string;
    train_positive_rate: number;
    holdout_positive_rate: number;
  };
  metrics: {
    holdout: {
      candidate: CardMetrics;
      /** The model serving when this one was trained, on the same holdout rows; null if none. */
      serving: CardMetrics | null;
      majority_baseline: { class: string; accuracy: number };
    };
    training_loss: { logreg: { first: number; last: number }; mlp: { first: number; last: number } };
  };
  promotion: { promote: boolean; reason: string; forced: boolean; margin: number };
  trainer: Record<string, unknown>;
  seed: number;
}

export interface ModelCardInput {
  name: string;
  onnx: Uint8Array;
  features: number;
  featureNames: readonly string[] | null;
  classLabels?: readonly [string, string];
  dataSha256: string;
  holdoutSha256: string;
  trainRows: number;
  holdoutRows: number;
  trainPositiveRate: number;
  holdoutPositiveRate: number;
  candidate: CardMetrics;
  serving: CardMetrics | null;
  majorityBaseline: { label: 0 | 1; accuracy: number };
  trainingLoss: ModelCard['metrics']['training_loss'];
  promotion: ModelCard['promotion'];
  trainer: Record<string, unknown>;
  seed: number;
  createdAt?: string | null;
}

export const DATA_HASH_DEFINITION =
  'sha256 over the float32 little-endian bytes of the rows (row-major, features per row), then one byte (0/1) per label';

/**
 * sha256 of rows [from, to): their float32 bytes, then their labels. Anyone holding the same
 * rows (e.g. the CSV read as float32) can recompute it and check what a model was trained on.
 */
export function dataSha256(x: Float32Array, y: Uint8Array, features: number, from: number, to: number): string {
  const rows = x.subarray(from * features, to * features);
  const hash = createHash('sha256');
  // Every platform Node runs on is little-endian, so the in-memory bytes are the documented ones.
  hash.update(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  hash.update(y.subarray(from, to));
  return hash.digest('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function buildModelCard(c: ModelCardInput): ModelCard {
  const labels = c.classLabels ?? DEFAULT_CLASS_LABELS;
  const baselineLabel = labels[c.majorityBaseline.label];
  const holdoutPct = Math.round((100 * c.holdoutRows) / (c.trainRows + c.holdoutRows));
  return {
    card_version: MODEL_CARD_VERSION,
    name: c.name,
    producer: 'tradeflow',
    created_at: c.createdAt ?? null,
    onnx: {
      sha256: sha256Hex(c.onnx),
      bytes: c.onnx.length,
      ir_version: ONNX_IR_VERSION,
      opset: ONNX_OPSET,
      writer: `src/training/onnx-writer.ts ${WRITER_VERSION}`,
      input: { name: INPUT_NAME, type: 'float32', shape: ['N', c.features] },
      outputs: [
        { name: LABEL_OUTPUT, type: 'int64', shape: ['N'] },
        { name: PROBABILITIES_OUTPUT, type: 'float32', shape: ['N', 2] },
      ],
    },
    features: { count: c.features, names: c.featureNames ? [...c.featureNames] : null },
    classes: [
      { index: 0, label: labels[0] },
      { index: 1, label: labels[1] },
    ],
    data: {
      sha256: c.dataSha256,
      holdout_sha256: c.holdoutSha256,
      hash: DATA_HASH_DEFINITION,
      rows: c.trainRows + c.holdoutRows,
      train_rows: c.trainRows,
      holdout_rows: c.holdoutRows,
      split: `time-ordered: the first ${c.trainRows} rows train (and give the standardization), the last ${c.holdoutRows} (~${holdoutPct} %) are the holdout`,
      train_positive_rate: c.trainPositiveRate,
      holdout_positive_rate: c.holdoutPositiveRate,
    },
    metrics: {
      holdout: {
        candidate: { ...c.candidate },
        serving: c.serving ? { ...c.serving } : null,
        majority_baseline: { class: baselineLabel, accuracy: c.majorityBaseline.accuracy },
      },
      training_loss: c.trainingLoss,
    },
    promotion: { ...c.promotion },
    trainer: c.trainer,
    seed: c.seed,
  };
}

/** The same card with its creation time set (the card itself is never mutated). */
export function withCreatedAt(card: ModelCard, createdAt: string): ModelCard {
  return { ...card, created_at: createdAt };
}
