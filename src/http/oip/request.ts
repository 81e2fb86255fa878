/**
 * An inference request's JSON, checked: the one input (name, datatype, shape [N, F]), the
 * outputs asked for, `id`, and whether its tensors are binary. The reference path
 * (`decodeInferReference`, JSON.parse of the whole body) defines behaviour; ./scan.ts is the
 * hot path for the `data` array and hands anything unusual here.
 *
 * Error precedence: the body (INVALID_JSON, INVALID_BODY), `id`, `parameters`, `inputs`, the
 * input's name, datatype, shape (INVALID_TENSOR; rows over the limit TOO_MANY_ROWS), its data
 * or binary size, then `outputs`; then the data's values in order, then their count.
 */
import { tfError } from '../../errors';
import { checkDatatype, elementSize, putValue } from './tensors';

export const OUTPUT_PROBABILITIES = 'probabilities';
export const OUTPUT_LABEL = 'label';
const OUTPUT_NAMES = [OUTPUT_PROBABILITIES, OUTPUT_LABEL];

export interface RequestedOutput {
  name: string;
  binary: boolean;
}

export interface InferHeader {
  id: string | undefined;
  datatype: string;
  rows: number;
  /** Bytes of the input's binary data (`parameters.binary_data_size`), or -1 when its data is JSON. */
  binarySize: number;
  outputs: RequestedOutput[];
}

export interface InputSpec {
  model: string;
  inputName: string;
  features: number;
  maxRows: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseJsonText(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw tfError('INVALID_JSON', 'request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw tfError('INVALID_JSON', `request body is not JSON: ${(err as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks everything but the values of `data`; `doc.inputs[0].data`, if any, is only looked at for its type. */
export function checkHeader(doc: unknown, spec: InputSpec): InferHeader {
  if (!isObject(doc)) throw tfError('INVALID_BODY', 'request body must be a JSON object');
  const id = doc.id;
  if (id !== undefined && typeof id !== 'string') throw tfError('INVALID_BODY', '"id" must be a string');
  const params = doc.parameters;
  if (params !== undefined && !isObject(params)) throw tfError('INVALID_BODY', '"parameters" must be an object');
  const binaryAll = params?.binary_data_output;
  if (binaryAll !== undefined && typeof binaryAll !== 'boolean') throw tfError('INVALID_BODY', '"parameters.binary_data_output" must be a boolean');
  const inputs = doc.inputs;
  if (!Array.isArray(inputs) || inputs.length !== 1) {
    throw tfError('INVALID_TENSOR', `"inputs" must list exactly one tensor: model ${spec.model} takes one input, "${spec.inputName}"`);
  }
  const input = checkInput(inputs[0], spec);
  const outputs = checkOutputs(doc.outputs, binaryAll === true);
  return { id, ...input, outputs };
}

function checkInput(input: unknown, spec: InputSpec): { datatype: string; rows: number; binarySize: number } {
  const where = 'inputs[0]';
  if (!isObject(input)) throw tfError('INVALID_TENSOR', `${where} must be an object`);
  if (input.name !== spec.inputName) {
    throw tfError('INVALID_TENSOR', `${where}.name ${JSON.stringify(input.name)} is not an input of model ${spec.model}; its input is "${spec.inputName}"`);
  }
  const datatype = checkDatatype(input.datatype, where);
  const shape = input.shape;
  const F = spec.features;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0) || shape[1] !== F || shape[0] === 0) {
    throw tfError('INVALID_TENSOR', `${where}.shape ${JSON.stringify(shape)} is not [N, ${F}] with N >= 1: model ${spec.model} takes rows of ${F} features`);
  }
  const rows = shape[0] as number;
  if (rows > spec.maxRows) throw tfError('TOO_MANY_ROWS', `${where}.shape has ${rows} rows, the limit is ${spec.maxRows}`);
  const p = input.parameters;
  if (p !== undefined && !isObject(p)) throw tfError('INVALID_TENSOR', `${where}.parameters must be an object`);
  const size = p?.binary_data_size;
  if (size !== undefined) {
    if (!Number.isInteger(size) || (size as number) < 0) throw tfError('INVALID_TENSOR', `${where}.parameters.binary_data_size must be a whole number of bytes`);
    if (input.data !== undefined) throw tfError('INVALID_TENSOR', `${where} has both "data" and binary data (parameters.binary_data_size): send one`);
    const want = rows * F * elementSize(datatype);
    if (size !== want) throw tfError('INVALID_TENSOR', `${where}.parameters.binary_data_size is ${size} but shape [${rows}, ${F}] of ${datatype} needs ${want} bytes`);
    return { datatype, rows, binarySize: size as number };
  }
  if (!Array.isArray(input.data)) throw tfError('INVALID_TENSOR', `${where}.data must be an array (flat or nested, row-major), or the tensor binary (parameters.binary_data_size)`);
  return { datatype, rows, binarySize: -1 };
}

function checkOutputs(outputs: unknown, binaryAll: boolean): RequestedOutput[] {
  if (outputs === undefined) return OUTPUT_NAMES.map((name) => ({ name, binary: binaryAll }));
  if (!Array.isArray(outputs) || outputs.length === 0) throw tfError('INVALID_TENSOR', `"outputs" must be a non-empty array of {"name": ...}, names among ${OUTPUT_NAMES.join(', ')}`);
  const seen = new Set<string>();
  return outputs.map((o, i) => {
    const where = `outputs[${i}]`;
    if (!isObject(o) || typeof o.name !== 'string' || !OUTPUT_NAMES.includes(o.name)) {
      throw tfError('INVALID_TENSOR', `${where}.name ${JSON.stringify(isObject(o) ? o.name : o)} is not an output; the outputs are ${OUTPUT_NAMES.join(', ')}`);
    }
    if (seen.has(o.name)) throw tfError('INVALID_TENSOR', `${where} asks for "${o.name}" a second time`);
    seen.add(o.name);
    const p = o.parameters;
    if (p !== undefined && !isObject(p)) throw tfError('INVALID_TENSOR', `${where}.parameters must be an object`);
    const b = p?.binary_data;
    if (b !== undefined && typeof b !== 'boolean') throw tfError('INVALID_TENSOR', `${where}.parameters.binary_data must be a boolean`);
    return { name: o.name, binary: b ?? binaryAll };
  });
}

/** Flattens `data` (nested arrays, row-major) into out as float32; its element count. */
export function flattenData(data: unknown[], datatype: string, out: Float32Array, F: number, limit: number): number {
  let k = 0;
  const walk = (a: unknown[]): void => {
    for (const v of a) {
      if (Array.isArray(v)) walk(v);
      else {
        if (k >= limit) {
          k++;
          return;
        }
        putValue(v, datatype, out, k, F, 'inputs[0]');
        k++;
      }
      if (k > limit) return;
    }
  };
  walk(data);
  return k;
}

export function checkCount(count: number, h: InferHeader, F: number): void {
  if (count !== h.rows * F) {
    throw tfError('INVALID_TENSOR', `inputs[0].data holds ${count > h.rows * F ? 'more than ' + h.rows * F : count} values but its shape [${h.rows}, ${F}] needs ${h.rows * F}`);
  }
}

/** The reference decode of a JSON infer body: its header, and its rows in out. */
export function decodeInferReference(body: Uint8Array, spec: InputSpec, out: Float32Array): InferHeader {
  const doc = parseJsonText(body);
  const h = checkHeader(doc, spec);
  if (h.binarySize >= 0) throw tfError('INVALID_TENSOR', 'inputs[0] names binary data (parameters.binary_data_size) but the request has no Inference-Header-Content-Length header');
  const data = ((doc as Record<string, unknown[]>).inputs![0] as Record<string, unknown>).data as unknown[];
  const need = h.rows * spec.features;
  checkCount(flattenData(data, h.datatype, out, spec.features, need), h, spec.features);
  return h;
}
