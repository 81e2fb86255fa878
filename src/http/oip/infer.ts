/**
 * POST /v2/models/{name}[/versions/{version}]/infer: the request's tensor decoded into float32
 * rows (JSON through ./scan.ts, binary by ./tensors.ts) and handed to the same row queue as
 * /predict (src/http/rows.ts): same batches, deadline header, cache rules and metrics.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { BatchClient } from '../../batching/batcher';
import { tfError } from '../../errors';
import type { ModelRegistry, ServedModel } from '../../models/registry';
import { checkDeclaredLength, parseContentLength, readBody } from '../body';
import type { Exchange, Responder } from '../respond';
import { parseTimeoutHeader, type RowQueue } from '../rows';
import { HEADER_LENGTH, InferAnswer } from './answer';
import { HeaderCache } from './header-cache';
import { corkedOipError } from './errors';
import { findModel, inputNameOf, inputSpec } from './models';
import { checkCount, checkHeader, flattenData, parseJsonText, type InferHeader, type InputSpec } from './request';
import { decodeInfer } from './scan';
import { binaryTensor } from './tensors';

export interface InferDeps {
  models: ModelRegistry;
  queue: RowQueue;
  responder: Responder;
  isDraining(): boolean;
  options: { maxBodyBytes: number; maxRequestRows: number; requestTimeoutMs: number };
}

export class InferHandler {
  private readonly staging: Float32Array;
  /** Per model index, what its input takes (one object per model: the header caches key on it). */
  private readonly specs: InputSpec[] = [];
  private readonly binaryHeaders = new HeaderCache();

  constructor(private readonly deps: InferDeps) {
    this.staging = new Float32Array(deps.options.maxRequestRows * deps.models.features);
  }

  private specOf(model: ServedModel): InputSpec {
    const s = this.specs[model.index];
    // The input's name can change with a hot swap of the ONNX model.
    if (s !== undefined && s.inputName === inputNameOf(model)) return s;
    return (this.specs[model.index] = inputSpec(model, this.deps.options.maxRequestRows));
  }

  accept(x: Exchange, req: HttpRequest, params: Record<string, string>): void {
    const { options, responder: r } = this.deps;
    const model = findModel(this.deps.models, params);
    if (this.deps.isDraining()) throw tfError('DRAINING', { refusing: 'predictions' });
    const contentLength = parseContentLength(req.getHeader('content-length'));
    const headerLength = parseHeaderLength(req.getHeader(HEADER_LENGTH.toLowerCase()));
    const deadline = x.startedAt + parseTimeoutHeader(req.getHeader('x-request-timeout-ms'), options.requestTimeoutMs);
    checkDeclaredLength(contentLength, options.maxBodyBytes);
    let call: BatchClient | null = null;
    x.onAbort = () => {
      if (call) this.deps.queue.batcherGone(call);
    };
    readBody(
      x.res,
      contentLength,
      options.maxBodyBytes,
      (bytes) => {
        if (x.aborted) return;
        try {
          call = this.dispatch(x, model, bytes, headerLength, deadline);
        } catch (err) {
          corkedOipError(r, x, err);
        }
      },
      (err) => corkedOipError(r, x, err, true),
    );
  }

  private dispatch(x: Exchange, model: ServedModel, bytes: Uint8Array, headerLength: number, deadline: number): BatchClient | null {
    const spec = this.specOf(model);
    let h: InferHeader;
    let src: Float32Array = this.staging;
    if (headerLength < 0) {
      h = decodeInfer(bytes, spec, this.staging);
    } else {
      if (headerLength > bytes.length) throw tfError('INVALID_TENSOR', `${HEADER_LENGTH} is ${headerLength} but the body has ${bytes.length} bytes`);
      const kept = this.binaryHeaders.get(spec, bytes, 0, headerLength, 0, 0);
      let doc: unknown = null;
      if (kept === null) {
        doc = parseJsonText(bytes.subarray(0, headerLength));
        h = checkHeader(doc, spec);
        // Kept only when its tensor is binary: a JSON tensor's data is inside the header.
        if (h.binarySize >= 0) this.binaryHeaders.set(spec, bytes, 0, headerLength, 0, 0, h);
      } else h = kept;
      const size = h.binarySize < 0 ? 0 : h.binarySize;
      if (bytes.length !== headerLength + size) {
        throw tfError('INVALID_TENSOR', `the body has ${bytes.length - headerLength} bytes after the ${headerLength}-byte JSON header but inputs[0] declares ${size} (parameters.binary_data_size)`);
      }
      if (h.binarySize >= 0) {
        src = binaryTensor(bytes.subarray(headerLength), h.datatype, h.rows * spec.features, spec.features, this.staging, 'inputs[0] binary data');
      } else {
        const data = ((doc as { inputs: Array<{ data: unknown[] }> }).inputs[0]!).data;
        checkCount(flattenData(data, h.datatype, this.staging, spec.features, h.rows * spec.features), h, spec.features);
      }
    }
    return this.deps.queue.submit(new InferAnswer(x, model, h.id, h.outputs, this.deps.responder), src, h.rows, deadline);
  }
}

function parseHeaderLength(v: string): number {
  if (v === '') return -1;
  if (!/^\d{1,10}$/.test(v)) throw tfError('INVALID_HEADER', `${HEADER_LENGTH} must be a whole number of bytes, got "${v}"`);
  return Number(v);
}
