/**
 * What one log record holds: everything needed to re-apply it after a crash and get the same
 * state, so nothing in it may depend on when it is replayed. Binary, little-endian:
 *
 *   u8 kind (1 feedback, 2 drift outcome, 3 drift reset)
 *   feedback:  u8 flags (bit 0: served prediction present, bit 1: other models' predictions
 *              present) | u32 rows | u8 name length | name | f32 features[rows*F] | u8 labels[rows]
 *              | [u8 classes[rows] | f32 p1[rows]]
 *              | [u8 count | count × (u8 name length | name | u8 classes[rows] | f32 p1[rows])]
 *   (records without bit 1, as engines before it wrote them, read the same as before)
 *   drift:     u8 prediction | u8 actual | f64 proba (NaN: none)
 */
import { tfError } from '../errors';

export interface ServedPrediction {
  /** The model whose answer this is (`ensemble` or `sgd`). */
  model: string;
  classes: Uint8Array;
  p1: Float32Array;
}

export interface FeedbackExample {
  kind: 'feedback';
  rows: number;
  features: Float32Array;
  labels: Uint8Array;
  served: ServedPrediction | null;
  /**
   * What the other ONNX models said about the rows when the feedback arrived, for their quality
   * windows: feedback by id on a prediction another model answered (the champion, say) still
   * scores every model, so a challenger can win back. Absent: none.
   */
  others?: ServedPrediction[];
}

export interface DriftOutcomeRecord {
  kind: 'drift';
  prediction: number;
  actual: number;
  proba: number | null;
}

export interface DriftResetRecord {
  kind: 'drift-reset';
}

export type LearningRecord = FeedbackExample | DriftOutcomeRecord | DriftResetRecord;

const KIND_FEEDBACK = 1;
const KIND_DRIFT = 2;
const KIND_DRIFT_RESET = 3;

export function encodeRecord(r: LearningRecord, features: number): Uint8Array {
  if (r.kind === 'drift-reset') return Uint8Array.of(KIND_DRIFT_RESET);
  if (r.kind === 'drift') {
    const b = Buffer.alloc(1 + 1 + 1 + 8);
    b[0] = KIND_DRIFT;
    b[1] = r.prediction;
    b[2] = r.actual;
    b.writeDoubleLE(r.proba === null ? NaN : r.proba, 3);
    return b;
  }
  const name = Buffer.from(r.served?.model ?? '', 'utf8');
  const n = r.rows;
  const others = r.others ?? [];
  const otherNames = others.map((p) => Buffer.from(p.model, 'utf8'));
  let size = 1 + 1 + 4 + 1 + name.length + n * features * 4 + n + (r.served ? n + n * 4 : 0);
  if (others.length > 0) size += 1 + otherNames.reduce((t, nm) => t + 1 + nm.length + n * 5, 0);
  const b = Buffer.alloc(size);
  let o = 0;
  b[o++] = KIND_FEEDBACK;
  b[o++] = (r.served ? 1 : 0) | (others.length > 0 ? 2 : 0);
  b.writeUInt32LE(n, o);
  o += 4;
  b[o++] = name.length;
  name.copy(b, o);
  o += name.length;
  Buffer.from(r.features.buffer, r.features.byteOffset, n * features * 4).copy(b, o);
  o += n * features * 4;
  b.set(r.labels.subarray(0, n), o);
  o += n;
  if (r.served) o = writePrediction(b, o, r.served, n);
  if (others.length > 0) {
    b[o++] = others.length;
    for (let k = 0; k < others.length; k++) {
      b[o++] = otherNames[k]!.length;
      otherNames[k]!.copy(b, o);
      o += otherNames[k]!.length;
      o = writePrediction(b, o, others[k]!, n);
    }
  }
  return b;
}

function writePrediction(b: Buffer, o: number, p: ServedPrediction, n: number): number {
  b.set(p.classes.subarray(0, n), o);
  o += n;
  Buffer.from(p.p1.buffer, p.p1.byteOffset, n * 4).copy(b, o);
  return o + n * 4;
}

function readPrediction(b: Buffer, o: number, model: string, n: number): ServedPrediction {
  const classes = Uint8Array.from(b.subarray(o, o + n));
  const p1 = new Float32Array(n);
  new Uint8Array(p1.buffer).set(b.subarray(o + n, o + n * 5));
  return { model, classes, p1 };
}

export function decodeRecord(bytes: Uint8Array, features: number): LearningRecord {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string): never => {
    throw tfError('FEEDBACK_LOG_CORRUPT', `feedback log record is malformed: ${why}`);
  };
  switch (b[0]) {
    case KIND_DRIFT_RESET:
      return { kind: 'drift-reset' };
    case KIND_DRIFT: {
      if (b.length !== 11) bad(`drift record of ${b.length} bytes`);
      const proba = b.readDoubleLE(3);
      return { kind: 'drift', prediction: b[1]!, actual: b[2]!, proba: Number.isNaN(proba) ? null : proba };
    }
    case KIND_FEEDBACK: {
      const hasServed = (b[1]! & 1) === 1;
      const hasOthers = (b[1]! & 2) === 2;
      const n = b.readUInt32LE(2);
      const nameLen = b[6]!;
      let o = 7;
      const model = b.toString('utf8', o, o + nameLen);
      o += nameLen;
      const expected = o + n * features * 4 + n + (hasServed ? n * 5 : 0);
      if (hasOthers ? b.length < expected + 1 : b.length !== expected) bad(`expected ${expected} bytes for ${n} rows of ${features} features, got ${b.length} (was FEATURES changed?)`);
      // Copies: the log's buffer is reused, and float32 reads need 4-byte alignment.
      const feats = new Float32Array(n * features);
      new Uint8Array(feats.buffer).set(b.subarray(o, o + n * features * 4));
      o += n * features * 4;
      const labels = Uint8Array.from(b.subarray(o, o + n));
      o += n;
      let served: ServedPrediction | null = null;
      if (hasServed) {
        served = readPrediction(b, o, model, n);
        o += n * 5;
      }
      if (!hasOthers) return { kind: 'feedback', rows: n, features: feats, labels, served };
      const others: ServedPrediction[] = [];
      const count = b[o++]!;
      for (let k = 0; k < count; k++) {
        const len = b[o] ?? 0;
        if (o + 1 + len + n * 5 > b.length) bad(`the prediction of model ${k + 1} of ${count} runs past the record's ${b.length} bytes`);
        const name = b.toString('utf8', o + 1, o + 1 + len);
        o += 1 + len;
        others.push(readPrediction(b, o, name, n));
        o += n * 5;
      }
      if (o !== b.length) bad(`${b.length - o} bytes after the last model's prediction`);
      return { kind: 'feedback', rows: n, features: feats, labels, served, others };
    }
    default:
      return bad(`unknown kind ${b[0]}`);
  }
}
