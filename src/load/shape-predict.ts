/**
 * The engine's own request shapes, POST /predict (README "Requests"): JSON with one row as
 * `{"features":[...]}` or several as `{"instances":[[...],...]}`, and the binary variant of
 * little-endian float32 rows. The model, when named, goes where the engine reads it: the body's
 * `model` for JSON, the `X-Model` header for binary.
 */
import type { RequestShape, ShapeTarget } from './request-shape';

function jsonRow(rows: Float64Array, row: number, f: number): string {
  let s = '[';
  for (let k = 0; k < f; k++) s += (k ? ',' : '') + String(rows[row * f + k]);
  return s + ']';
}

export const PREDICT_JSON: RequestShape = {
  name: 'json',
  summary: 'POST /predict, {"features":[...]} for one row, {"instances":[[...],...]} for --rows N',
  endpoint: '/predict',
  path: () => '/predict',
  headers: () => ({ 'Content-Type': 'application/json' }),
  body(rows: Float64Array, first: number, t: ShapeTarget): Buffer {
    const model = t.model === null ? '' : `,"model":${JSON.stringify(t.model)}`;
    if (t.rows === 1) return Buffer.from(`{"features":${jsonRow(rows, first, t.features)}${model}}`);
    const parts: string[] = [];
    for (let r = 0; r < t.rows; r++) parts.push(jsonRow(rows, first + r, t.features));
    return Buffer.from(`{"instances":[${parts.join(',')}]${model}}`);
  },
};

export const PREDICT_BINARY: RequestShape = {
  name: 'binary',
  summary: 'POST /predict, application/octet-stream: --rows N rows of F little-endian float32',
  endpoint: '/predict',
  path: () => '/predict',
  headers: (t) => ({ 'Content-Type': 'application/octet-stream', ...(t.model === null ? {} : { 'X-Model': t.model }) }),
  body(rows: Float64Array, first: number, t: ShapeTarget): Buffer {
    const values = Float32Array.from(rows.subarray(first * t.features, (first + t.rows) * t.features));
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  },
};
