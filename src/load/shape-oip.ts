/**
 * The Open Inference Protocol's infer (KServe V2 REST, README "Open Inference Protocol"), as a
 * Triton or KServe client sends it: POST /v2/models/{name}/infer with the model's one input as an
 * FP32 tensor [N, F] asking for `probabilities`; in JSON (`data` flat, row-major), or with
 * Triton's binary tensor extension (a JSON header of `Inference-Header-Content-Length` bytes,
 * then the rows as little-endian float32, and the output asked for in binary). The input's name
 * is read from the protocol's own model metadata (GET /v2/models/{name}), as those clients do.
 */
import { tfError } from '../errors';
import type { RequestShape, ShapeTarget } from './request-shape';

function modelName(t: ShapeTarget): string {
  const name = t.servedModel ?? t.model;
  if (name === null) throw tfError('CONFIG_INVALID', 'the Open Inference Protocol names the model in its path: pass --model NAME');
  return name;
}

async function readInputName(baseUrl: string, t: ShapeTarget): Promise<ShapeTarget> {
  const url = `${baseUrl}/v2/models/${encodeURIComponent(modelName(t))}`;
  let meta: { inputs?: Array<{ name?: unknown }> };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`answered ${res.status}`);
    meta = (await res.json()) as typeof meta;
  } catch (err) {
    throw new Error(`cannot read the model's metadata from GET ${url} (${(err as Error).message}): does the target serve the Open Inference Protocol?`);
  }
  const name = meta.inputs?.[0]?.name;
  if (typeof name !== 'string') throw new Error(`GET ${url} names no input`);
  return { ...t, inputName: name };
}

function input(t: ShapeTarget): string {
  if (t.inputName === undefined) throw new Error('the Open Inference Protocol shapes need prepare() first');
  return t.inputName;
}

function binaryHeader(t: ShapeTarget): string {
  const bytes = t.rows * t.features * 4;
  return JSON.stringify({
    inputs: [{ name: input(t), datatype: 'FP32', shape: [t.rows, t.features], parameters: { binary_data_size: bytes } }],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  });
}

const path = (t: ShapeTarget): string => `/v2/models/${encodeURIComponent(modelName(t))}/infer`;
const ENDPOINT = '/v2/models/{name}/infer';

export const OIP_JSON: RequestShape = {
  name: 'oip-json',
  summary: 'POST /v2/models/{name}/infer, Open Inference Protocol JSON: one FP32 [N,F] input, probabilities asked for',
  endpoint: ENDPOINT,
  prepare: readInputName,
  path,
  headers: () => ({ 'Content-Type': 'application/json' }),
  body(rows: Float64Array, first: number, t: ShapeTarget): Buffer {
    const data = Array.from(rows.subarray(first * t.features, (first + t.rows) * t.features), String).join(',');
    return Buffer.from(`{"inputs":[{"name":${JSON.stringify(input(t))},"datatype":"FP32","shape":[${t.rows},${t.features}],"data":[${data}]}],"outputs":[{"name":"probabilities"}]}`);
  },
};

export const OIP_BINARY: RequestShape = {
  name: 'oip-binary',
  summary: "POST /v2/models/{name}/infer with Triton's binary tensor extension: JSON header, then float32 rows",
  endpoint: ENDPOINT,
  prepare: readInputName,
  path,
  headers: (t) => ({ 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(Buffer.byteLength(binaryHeader(t))) }),
  body(rows: Float64Array, first: number, t: ShapeTarget): Buffer {
    const values = Float32Array.from(rows.subarray(first * t.features, (first + t.rows) * t.features));
    return Buffer.concat([Buffer.from(binaryHeader(t)), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
  },
};
