/**
 * POST /predict: JSON (`features` / `instances`) or raw little-endian float32 rows in, class
 * probabilities out. Rows are decoded from the request bytes into one reusable staging buffer and
 * handed to the batcher, which copies them into its shared slab; the answer is written when the
 * batch comes back.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Batcher, BatchClient } from '../batching/batcher';
import { TradeflowError } from '../errors';
import { DEFAULT_MODEL, type ModelRegistry, type ServedModel } from '../models/registry';
import type { SlabViews } from '../pool/slab';
import { parseContentLength, readBody, tooLarge } from './body';
import { decodeJsonBody } from './json-body';
import { BINARY_TYPE, JSON_TYPE, type Exchange, type Responder } from './respond';

export interface PredictOptions {
  maxBodyBytes: number;
  maxRequestRows: number;
  requestTimeoutMs: number;
}

export interface PredictDeps {
  batcher: Batcher;
  models: ModelRegistry;
  responder: Responder;
  isDraining(): boolean;
  options: PredictOptions;
}

type Format = 'features' | 'instances' | 'binary';

/** Largest per-request deadline a client may ask for, in ms. */
const MAX_TIMEOUT_MS = 3_600_000;

function mediaType(header: string): 'json' | 'binary' | null {
  const semi = header.indexOf(';');
  const t = (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
  if (t === '' || t === JSON_TYPE) return 'json';
  if (t === BINARY_TYPE) return 'binary';
  return null;
}

export function parseTimeoutHeader(value: string, fallback: number): number {
  if (value === '') return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > MAX_TIMEOUT_MS) {
    throw new TradeflowError('INVALID_HEADER', `X-Request-Timeout-Ms must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got "${value}"`);
  }
  return Number(value);
}

/** One request waiting in a batch. Writes its own answer when the batch returns. */
class PredictCall implements BatchClient {
  offset = 0;
  dead = false;

  constructor(
    private readonly x: Exchange,
    private readonly responder: Responder,
    readonly rows: number,
    readonly deadline: number,
    private readonly format: Format,
    private readonly model: ServedModel,
    private readonly id: string | undefined,
    private readonly scratch: Scratch,
  ) {}

  complete(slab: SlabViews, slot: number): void {
    if (this.dead) return;
    this.dead = true;
    const probs = slab.probabilities[slot]!;
    const labels = slab.labels[slot]!;
    const first = this.offset;
    const end = first + this.rows;
    for (let r = first; r < end; r++) {
      const p0 = probs[2 * r]!;
      const p1 = probs[2 * r + 1]!;
      if (!(p0 >= 0 && p0 <= 1 && p1 >= 0 && p1 <= 1)) {
        const err = new TradeflowError('INVALID_MODEL_OUTPUT', `model ${this.model.name} ${this.model.version} produced an invalid probability for row ${r - first} (${p0}, ${p1})`);
        this.responder.corked(this.x, () => this.responder.error(this.x, err));
        return;
      }
    }
    const x = this.x;
    const m = this.model;
    if (this.format === 'binary') {
      const out = this.scratch.ensure(this.rows);
      for (let r = 0; r < this.rows; r++) out[r] = probs[2 * (first + r) + 1]!;
      const body = out.subarray(0, this.rows);
      this.responder.corked(x, () =>
        this.responder.send(x, 200, BINARY_TYPE, body, { 'X-Model-Name': m.name, 'X-Model-Version': m.version, 'X-Rows': String(this.rows) }),
      );
      return;
    }
    let body = '{"model":"' + m.name + '","version":"' + m.version + '"';
    if (this.id !== undefined) body += ',"id":' + JSON.stringify(this.id);
    if (this.format === 'features') {
      body += ',' + rowJson(m, probs[2 * first]!, probs[2 * first + 1]!, labels[first]!) + '}';
    } else {
      body += ',"predictions":[';
      for (let r = first; r < end; r++) {
        if (r !== first) body += ',';
        body += '{' + rowJson(m, probs[2 * r]!, probs[2 * r + 1]!, labels[r]!) + '}';
      }
      body += ']}';
    }
    this.responder.corked(x, () => this.responder.send(x, 200, JSON_TYPE, body));
  }

  fail(err: TradeflowError): void {
    if (this.x.answered) return;
    this.dead = true;
    this.responder.corked(this.x, () => this.responder.error(this.x, err));
  }
}

function rowJson(m: ServedModel, p0: number, p1: number, cls: number): string {
  return (
    '"label":"' + m.classLabels[cls] + '","class":' + cls +
    ',"confidence":' + (cls === 1 ? p1 : p0) +
    ',"probabilities":[' + p0 + ',' + p1 + ']'
  );
}

/** A reusable Float32Array that only grows: binary answers are copied out by uWS at once. */
class Scratch {
  private buf = new Float32Array(1024);
  ensure(n: number): Float32Array {
    if (this.buf.length < n) this.buf = new Float32Array(Math.max(n, this.buf.length * 2));
    return this.buf;
  }
}

export function createPredictHandler(deps: PredictDeps) {
  const { batcher, models, responder, options } = deps;
  const F = models.features;
  const staging = new Float32Array(options.maxRequestRows * F);
  const answerScratch = new Scratch();

  function decodeBinary(bytes: Uint8Array): number {
    const rowBytes = 4 * F;
    if (bytes.length === 0 || bytes.length % rowBytes !== 0) {
      throw new TradeflowError('INVALID_BINARY_BODY', `binary body must be whole rows of ${F} little-endian float32 values (${rowBytes} bytes per row), got ${bytes.length} bytes`);
    }
    const rows = bytes.length / rowBytes;
    if (rows > options.maxRequestRows) {
      throw new TradeflowError('TOO_MANY_ROWS', `request has ${rows} rows, the limit is ${options.maxRequestRows}`);
    }
    const n = rows * F;
    // x86 and arm64 are little-endian; an aligned body is read in place, anything else copied.
    const src = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer, 0, n);
    for (let i = 0; i < n; i++) {
      const v = src[i]!;
      if (v - v !== 0) {
        throw new TradeflowError('NON_FINITE_FEATURE', `row ${Math.floor(i / F)}, column ${i % F} is ${v}: features must be finite`);
      }
    }
    staging.set(src);
    return rows;
  }

  return function predict(x: Exchange, req: HttpRequest): void {
    const kind = mediaType(req.getHeader('content-type'));
    const contentLength = parseContentLength(req.getHeader('content-length'));
    const timeoutHeader = req.getHeader('x-request-timeout-ms');
    const modelHeader = req.getHeader('x-model');
    let call: PredictCall | null = null;
    x.onAbort = () => {
      if (call) batcher.clientGone(call);
    };
    // Early refusals come before the body is read, so the connection is closed behind them.
    if (deps.isDraining()) {
      responder.error(x, new TradeflowError('DRAINING', 'the engine is shutting down and takes no new predictions', { 'Retry-After': '1' }), true);
      return;
    }
    if (kind === null) {
      responder.error(x, new TradeflowError('UNSUPPORTED_MEDIA_TYPE', `Content-Type "${req.getHeader('content-type')}" is not supported; use ${JSON_TYPE} or ${BINARY_TYPE}`), true);
      return;
    }
    if (Number.isNaN(contentLength)) {
      responder.error(x, new TradeflowError('INVALID_HEADER', 'Content-Length is not a number'), true);
      return;
    }
    if (contentLength > options.maxBodyBytes) {
      responder.error(x, tooLarge(options.maxBodyBytes, contentLength), true);
      return;
    }
    let timeoutMs: number;
    try {
      timeoutMs = parseTimeoutHeader(timeoutHeader, options.requestTimeoutMs);
    } catch (err) {
      responder.error(x, err, true);
      return;
    }
    const deadline = x.startedAt + timeoutMs;

    readBody(
      x.res,
      contentLength,
      options.maxBodyBytes,
      (bytes) => {
        if (x.aborted) return;
        try {
          let rows: number;
          let format: Format;
          let modelName: string;
          let id: string | undefined;
          if (kind === 'json') {
            const d = decodeJsonBody(bytes, F, staging, options.maxRequestRows);
            if (d.shape === 'none') throw new TradeflowError('INVALID_BODY', 'body needs "features" (one row) or "instances" (a list of rows)');
            rows = d.rows;
            format = d.shape;
            modelName = d.model ?? (modelHeader || DEFAULT_MODEL);
            id = d.id;
          } else {
            rows = decodeBinary(bytes);
            format = 'binary';
            modelName = modelHeader || DEFAULT_MODEL;
          }
          const model = models.get(modelName);
          call = new PredictCall(x, responder, rows, deadline, format, model, id, answerScratch);
          batcher.enqueue(model.index, staging, rows, call);
        } catch (err) {
          if (call) call.dead = true;
          responder.corked(x, () => responder.error(x, err));
        }
      },
      (err) => responder.corked(x, () => responder.error(x, err, true)),
    );
  };
}
