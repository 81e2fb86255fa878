/**
 * What one log record holds: everything needed to re-apply it after a crash and get the same
 * state, so nothing in it may depend on when it is replayed. Binary, little-endian:
 *
 *   u8 kind (1 feedback, 2 drift outcome, 3 drift reset)
 *   feedback:  u8 flags (bit 0: served prediction present) | u32 rows | u8 name length | name
 *              | f32 features[rows*F] | u8 labels[rows] | [u8 classes[rows] | f32 p1[rows]]
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
  const size = 1 + 1 + 4 + 1 + name.length + n * features * 4 + n + (r.served ? n + n * 4 : 0);
  const b = Buffer.alloc(size);
  let o = 0;
  b[o++] = KIND_FEEDBACK;
  b[o++] = r.served ? 1 : 0;
  b.writeUInt32LE(n, o);
  o += 4;
  b[o++] = name.length;
  name.copy(b, o);
  o += name.length;
  Buffer.from(r.features.buffer, r.features.byteOffset, n * features * 4).copy(b, o);
  o += n * features * 4;
  b.set(r.labels.subarray(0, n), o);
  o += n;
  if (r.served) {
    b.set(r.served.classes.subarray(0, n), o);
    o += n;
    Buffer.from(r.served.p1.buffer, r.served.p1.byteOffset, n * 4).copy(b, o);
  }
  return b;
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
      const n = b.readUInt32LE(2);
      const nameLen = b[6]!;
      let o = 7;
      const model = b.toString('utf8', o, o + nameLen);
      o += nameLen;
      const expected = o + n * features * 4 + n + (hasServed ? n * 5 : 0);
      if (b.length !== expected) bad(`expected ${expected} bytes for ${n} rows of ${features} features, got ${b.length} (was FEATURES changed?)`);
      // Copies: the log's buffer is reused, and float32 reads need 4-byte alignment.
      const feats = new Float32Array(n * features);
      new Uint8Array(feats.buffer).set(b.subarray(o, o + n * features * 4));
      o += n * features * 4;
      const labels = Uint8Array.from(b.subarray(o, o + n));
      o += n;
      let served: ServedPrediction | null = null;
      if (hasServed) {
        const classes = Uint8Array.from(b.subarray(o, o + n));
        o += n;
        const p1 = new Float32Array(n);
        new Uint8Array(p1.buffer).set(b.subarray(o, o + n * 4));
        served = { model, classes, p1 };
      }
      return { kind: 'feedback', rows: n, features: feats, labels, served };
    }
    default:
      return bad(`unknown kind ${b[0]}`);
  }
}
