/**
 * Reading a request body from uWS with a size limit enforced from `content-length` up front and
 * while counting chunks (uWS has no limit of its own). A body that arrives in one chunk is handed
 * over without a copy: the bytes are valid only during the callback, which is where the decoders
 * run. Chunks of a longer body are copied (uWS neuters them after each callback).
 */
import type { HttpResponse } from 'uWebSockets.js';
import { tfError, type TradeflowError } from '../errors';
import { underReader, type Linger } from './linger';
import type { Exchange, Responder } from './respond';

export type BodyHandler = (body: Uint8Array) => void;
export type BodyErrorHandler = (err: TradeflowError) => void;
/** Makes the buffer a body is gathered in (zero-filled, `bytes` long). */
export type BodyAllocator = (bytes: number) => Uint8Array;

const plainBuffer: BodyAllocator = (bytes) => new Uint8Array(bytes);

/**
 * For bodies that must end up in shared memory (model uploads): gathered there from the start,
 * so that a large body is never copied again on the main thread.
 */
export const sharedBuffer: BodyAllocator = (bytes) => new Uint8Array(new SharedArrayBuffer(bytes));

/** `content-length` as a number; -1 when absent; NaN when malformed. */
export function parseContentLength(header: string): number {
  if (header === '') return -1;
  if (!/^\d{1,15}$/.test(header)) return NaN;
  return Number(header);
}

/** The media type of a Content-Type header, lower-cased, without parameters ('' when absent). */
export function mediaTypeOf(header: string): string {
  const semi = header.indexOf(';');
  return (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
}

/** Refuses a malformed or oversized declared `content-length` before any byte is read. */
export function checkDeclaredLength(contentLength: number, limit: number): void {
  if (Number.isNaN(contentLength)) throw tfError('INVALID_HEADER', 'Content-Length is not a number');
  if (contentLength > limit) throw tooLarge(limit, contentLength);
}

export function tooLarge(limit: number, got: number | null): TradeflowError {
  return tfError('BODY_TOO_LARGE', got === null ? `request body exceeds the limit of ${limit} bytes` : `request body of ${got} bytes exceeds the limit of ${limit} bytes`);
}

/**
 * Calls `onBody` exactly once with the whole body, or `onError` once if it grows past `limit`.
 * The caller has already checked a declared `content-length` against the limit. With `alloc`,
 * the body is always gathered in a buffer `alloc` made (whose byte length is the body's when
 * `content-length` was declared), even when it arrives in one chunk. When `onError` answers
 * with a lingering close, this reader goes on feeding the rest of the body to it.
 */
export function readBody(res: HttpResponse, contentLength: number, limit: number, onBody: BodyHandler, onError: BodyErrorHandler, alloc?: BodyAllocator): void {
  const make = alloc ?? plainBuffer;
  let buf: Uint8Array | null = null;
  let len = 0;
  let done = false;
  let linger: Linger | null = null;
  res.onData((chunk, isLast) => {
    if (done) {
      if (linger !== null) linger.discard(chunk.byteLength, isLast);
      return;
    }
    const bytes = new Uint8Array(chunk);
    if (len + bytes.length > limit) {
      done = true;
      linger = underReader(res, () => onError(tooLarge(limit, null)));
      if (linger !== null) linger.discard(bytes.length, isLast);
      return;
    }
    if (isLast && buf === null && alloc === undefined) {
      done = true;
      onBody(bytes);
      return;
    }
    if (buf === null) buf = make(contentLength >= 0 ? Math.max(contentLength, bytes.length) : Math.max(bytes.length * 2, 1024));
    if (len + bytes.length > buf.length) {
      const grown = make(Math.min(limit, Math.max(buf.length * 2, len + bytes.length)));
      grown.set(buf.subarray(0, len));
      buf = grown;
    }
    buf.set(bytes, len);
    len += bytes.length;
    if (isLast) {
      done = true;
      onBody(buf.subarray(0, len));
    }
  });
}

/** Limit of the small JSON bodies control endpoints take (train, rollback, drift). */
export const CONTROL_BODY_LIMIT = 65536;

/** Reads a control endpoint's (optional, small) body; a body over the limit is answered 413. */
export function readControlBody(x: Exchange, r: Responder, onBody: BodyHandler): void {
  readBody(x.res, -1, CONTROL_BODY_LIMIT, onBody, (err) => r.corked(x, () => r.error(x, err, true)));
}
