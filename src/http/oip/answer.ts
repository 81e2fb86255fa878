/**
 * The answer of an infer request: `model_name`, `model_version`, `id` (echoed when given) and
 * the outputs asked for, `probabilities` (FP32 [N, 2]) and `label` (INT64 [N], the class index),
 * as JSON `data` or, per output, binary after the JSON header (binary tensor data extension:
 * `Inference-Header-Content-Length` names the header's bytes).
 */
import type { ServedModel } from '../../models/registry';
import { BINARY_TYPE, JSON_TYPE, type Exchange, type Responder } from '../respond';
import type { RowAnswer } from '../rows';
import { corkedOipError } from './errors';
import { OUTPUT_PROBABILITIES, type RequestedOutput } from './request';

export const HEADER_LENGTH = 'Inference-Header-Content-Length';

export class InferAnswer implements RowAnswer {
  constructor(
    readonly x: Exchange,
    readonly model: ServedModel,
    private readonly id: string | undefined,
    private readonly outputs: RequestedOutput[],
    private readonly r: Responder,
  ) {}

  write(probs: Float32Array, labels: Int32Array, first: number, rows: number, served: string): void {
    let head = '{"model_name":"' + this.model.name + '","model_version":"' + served + '"';
    if (this.id !== undefined) head += ',"id":' + JSON.stringify(this.id);
    head += ',"outputs":[';
    const blobs: Uint8Array[] = [];
    for (let o = 0; o < this.outputs.length; o++) {
      const out = this.outputs[o]!;
      if (o > 0) head += ',';
      const isProbs = out.name === OUTPUT_PROBABILITIES;
      head += isProbs ? '{"name":"probabilities","datatype":"FP32","shape":[' + rows + ',2]' : '{"name":"label","datatype":"INT64","shape":[' + rows + ']';
      if (out.binary) {
        const blob = isProbs ? probsBytes(probs, first, rows) : labelBytes(labels, first, rows);
        blobs.push(blob);
        head += ',"parameters":{"binary_data_size":' + blob.length + '}}';
      } else {
        head += ',"data":[' + (isProbs ? probsText(probs, first, rows) : labelText(labels, first, rows)) + ']}';
      }
    }
    head += ']}';
    const x = this.x;
    const r = this.r;
    if (blobs.length === 0) {
      r.corked(x, () => r.send(x, 200, JSON_TYPE, head));
      return;
    }
    const headBytes = Buffer.from(head, 'utf8');
    const body = Buffer.concat([headBytes, ...blobs]);
    r.corked(x, () => r.send(x, 200, BINARY_TYPE, body, { [HEADER_LENGTH]: String(headBytes.length) }));
  }

  fail(err: unknown): void {
    corkedOipError(this.r, this.x, err);
  }
}

function probsText(p: Float32Array, first: number, rows: number): string {
  let s = '';
  for (let i = 2 * first, end = 2 * (first + rows); i < end; i++) {
    if (i !== 2 * first) s += ',';
    s += '' + p[i]!;
  }
  return s;
}

function labelText(l: Int32Array, first: number, rows: number): string {
  let s = '';
  for (let i = first; i < first + rows; i++) {
    if (i !== first) s += ',';
    s += l[i]!;
  }
  return s;
}

function probsBytes(p: Float32Array, first: number, rows: number): Uint8Array {
  const out = new Float32Array(2 * rows);
  out.set(p.subarray(2 * first, 2 * (first + rows)));
  return new Uint8Array(out.buffer);
}

function labelBytes(l: Int32Array, first: number, rows: number): Uint8Array {
  const out = new BigInt64Array(rows);
  for (let r = 0; r < rows; r++) out[r] = BigInt(l[first + r]!);
  return new Uint8Array(out.buffer);
}
