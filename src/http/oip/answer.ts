/**
 * The answer of an infer request: `model_name`, `model_version`, `id` (echoed when given) and
 * the outputs asked for, `probabilities` (FP32 [N, 2]) and `label` (INT64 [N], the class index),
 * as JSON `data` or, per output, binary after the JSON header (binary tensor data extension:
 * `Inference-Header-Content-Length` names the header's bytes). FP32 data is printed with the
 * shortest digits that read back to the same float32 (./float32-text.ts), and the whole answer
 * is written as bytes into one reused buffer (./answer-bytes.ts; the responder copies what the
 * socket does not take at once).
 */
import type { ServedModel } from '../../models/registry';
import { BINARY_TYPE, JSON_TYPE, type Exchange, type Responder } from '../respond';
import type { RowAnswer } from '../rows';
import { answerBytes, COMMA } from './answer-bytes';
import { corkedOipError } from './errors';
import { FLOAT32_TEXT_MAX } from '../float32-text';
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
    const w = answerBytes;
    let head = '{"model_name":"' + this.model.name + '","model_version":"' + served + '"';
    if (this.id !== undefined) head += ',"id":' + JSON.stringify(this.id);
    w.start(head.length * 3 + this.outputs.length * (96 + rows * (2 * FLOAT32_TEXT_MAX + 24)));
    w.text(head + ',"outputs":[');
    let binaryBytes = 0;
    for (let o = 0; o < this.outputs.length; o++) {
      const out = this.outputs[o]!;
      if (o > 0) w.byte(COMMA);
      const isProbs = out.name === OUTPUT_PROBABILITIES;
      w.ascii(isProbs ? '{"name":"probabilities","datatype":"FP32","shape":[' + rows + ',2]' : '{"name":"label","datatype":"INT64","shape":[' + rows + ']');
      if (out.binary) {
        // Both outputs are 8 bytes a row: two float32, or one int64.
        binaryBytes += 8 * rows;
        w.ascii(',"parameters":{"binary_data_size":' + 8 * rows + '}}');
      } else {
        w.ascii(',"data":[');
        if (isProbs) w.floats(probs, 2 * first, 2 * (first + rows));
        else w.ints(labels, first, first + rows);
        w.ascii(']}');
      }
    }
    w.ascii(']}');
    const x = this.x;
    const r = this.r;
    if (binaryBytes === 0) {
      r.corked(x, () => r.send(x, 200, JSON_TYPE, w.view()));
      return;
    }
    const headBytes = w.at;
    w.reserve(binaryBytes);
    for (const out of this.outputs) {
      if (!out.binary) continue;
      w.at = out.name === OUTPUT_PROBABILITIES ? putProbs(w.buf, w.at, probs, first, rows) : putLabels(w.buf, w.at, labels, first, rows);
    }
    r.corked(x, () => r.send(x, 200, BINARY_TYPE, w.view(), { [HEADER_LENGTH]: String(headBytes) }));
  }

  fail(err: unknown): void {
    corkedOipError(this.r, this.x, err);
  }
}

/** Little-endian float32 pairs (x86 and arm64 are little-endian: the slab's bytes as they are). */
function putProbs(body: Buffer, at: number, p: Float32Array, first: number, rows: number): number {
  body.set(new Uint8Array(p.buffer, p.byteOffset + 8 * first, 8 * rows), at);
  return at + 8 * rows;
}

/** Little-endian int64: the class index, then its sign extension. */
function putLabels(body: Buffer, at: number, l: Int32Array, first: number, rows: number): number {
  for (let r = 0; r < rows; r++) {
    const v = l[first + r]!;
    body.writeInt32LE(v, at);
    body.writeInt32LE(v < 0 ? -1 : 0, at + 4);
    at += 8;
  }
  return at;
}
