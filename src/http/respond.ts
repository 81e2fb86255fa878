/**
 * Writing answers on a uWS response. Every answer goes through `send`, so status codes, the
 * JSON error shape and the per-answer observer (metrics) live in one place.
 *
 * Answers are written with `tryEnd`, never `end`: `end` hands whatever the socket does not take
 * to uWS, which buffers it without limit, so a client that sends requests and never reads its
 * answers grew the engine by every answer (about 0.55 MiB per 4096-row prediction, measured).
 * With `tryEnd` the unwritten rest stays here, the response stays pending until it is written,
 * and uWS closes a connection that sends another request meanwhile, or makes no write progress
 * for 10 s: one unread answer per connection at most.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { isTradeflowError, tfError } from '../errors';
import { DEFAULT_LINGER, startLinger, UnreadBody, type LingerOptions } from './linger';

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  202: '202 Accepted',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  422: '422 Unprocessable Entity',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

export const JSON_TYPE = 'application/json';
export const BINARY_TYPE = 'application/octet-stream';

/** Told about every answer; the telemetry layer plugs in here. */
export interface ResponseObserver {
  onResponse(endpoint: string, method: string, status: number, seconds: number): void;
}

/** Per-request facts the answer needs: where it was routed, when it started, whether it is gone. */
export interface Exchange {
  readonly res: HttpResponse;
  readonly endpoint: string;
  readonly method: string;
  readonly startedAt: number;
  aborted: boolean;
  answered: boolean;
  /** Called once if the client goes away before the answer. */
  onAbort: (() => void) | null;
  /** The body of a request whose handler reads none, while it is still arriving (see `readsNoBody`). */
  unread: UnreadBody | null;
}

export class Responder {
  constructor(
    private observer: ResponseObserver | null = null,
    private readonly linger: LingerOptions = DEFAULT_LINGER,
  ) {}

  /**
   * Writes a complete answer. Call inside res.cork() when not in the handler's first tick.
   * `closeConnection` is for answers given while the request body may still be arriving: the
   * connection is closed behind the answer after a lingering read of the rest (./linger.ts).
   */
  send(
    x: Exchange,
    status: number,
    contentType: string,
    body: string | Uint8Array | Float32Array,
    headers?: Readonly<Record<string, string>>,
    closeConnection = false,
  ): void {
    if (x.aborted || x.answered) return;
    // The body is complete by then: the answer goes out as any other, on a connection kept alive.
    if (x.unread !== null && x.unread.hold(() => this.send(x, status, contentType, body, headers))) return;
    x.answered = true;
    const res = x.res;
    res.writeStatus(statusLine(status));
    res.writeHeader('Content-Type', contentType);
    if (headers) for (const k in headers) res.writeHeader(k, headers[k]!);
    if (closeConnection) this.endLingering(x, body);
    else if (x.method === 'HEAD') endHead(res, body);
    else {
      // totalSize 0: uWS takes this chunk as the whole body, so its UTF-8 length is not computed twice.
      const r = res.tryEnd(body, 0);
      if (!r[0] && !r[1]) writeRest(res, body);
    }
    this.observer?.onResponse(x.endpoint, x.method, status, (performance.now() - x.startedAt) / 1000);
  }

  /**
   * Ends the answer without `end`: uWS invalidates `res` once a response has ended, and the
   * linger needs it to close the connection later. The blank line and the body go out as the tail
   * of the last header; uWS ends every header with CRLF, so those two bytes are counted as the
   * body's last (whitespace after the JSON). A HEAD answer gets the blank line alone.
   */
  private endLingering(x: Exchange, body: string | Uint8Array | Float32Array): void {
    const res = x.res;
    if (this.linger.ms === 0 || typeof body !== 'string') {
      // A HEAD answer has no body, also when the connection closes behind it.
      // (uWS then waits for that many body bytes, which does not matter on a connection it closes.)
      if (x.method === 'HEAD') res.endWithoutBody(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength, true);
      else res.end(body, true);
      return;
    }
    res.writeHeader('Connection', 'close');
    res.writeHeader('Date', new Date().toUTCString());
    res.writeHeader('Content-Length', `${Buffer.byteLength(body) + 2}\r\n${x.method === 'HEAD' ? '' : '\r\n' + body}`);
    const linger = startLinger(res, this.linger);
    const before = x.onAbort;
    x.onAbort = () => {
      linger.gone();
      if (before) before();
    };
  }

  json(x: Exchange, status: number, value: unknown, headers?: Readonly<Record<string, string>>): void {
    this.send(x, status, JSON_TYPE, JSON.stringify(value), headers);
  }

  error(x: Exchange, err: unknown, closeConnection = false): void {
    const e = isTradeflowError(err) ? err : tfError('INTERNAL', `internal error: ${(err as Error)?.message ?? String(err)}`);
    this.send(x, e.status, JSON_TYPE, JSON.stringify(e.toJSON()), e.headers, closeConnection);
  }

  /**
   * For a request whose handler takes no body but that comes with one: the answer waits for the
   * end of the body (`Exchange.unread`), which is read and dropped.
   */
  readsNoBody(x: Exchange): void {
    const unread = new UnreadBody(x.res, this.linger);
    x.unread = unread;
    const before = x.onAbort;
    x.onAbort = () => {
      unread.gone();
      if (before) before();
    };
  }

  /** For answers written after an await: uWS needs them corked. */
  corked(x: Exchange, write: () => void): void {
    if (x.aborted || x.answered) return;
    x.res.cork(write);
  }
}

/**
 * A HEAD answer: no body, and a Content-Length of what the body would have been. Written as a
 * header, since uWS's endWithoutBody(length) leaves the response waiting for that many body bytes,
 * and the connection then refuses the next request.
 */
function endHead(res: HttpResponse, body: string | Uint8Array | Float32Array): void {
  res.writeHeader('Content-Length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength));
  res.endWithoutBody();
}

/**
 * The part of an answer the socket did not take, written as the client reads. Copied: binary
 * answers live in a reused scratch buffer. Only on backpressure, never on the common path.
 */
function writeRest(res: HttpResponse, body: string | Uint8Array | Float32Array): void {
  const base = res.getWriteOffset();
  const rest = typeof body === 'string' ? Buffer.from(body).subarray(base) : new Uint8Array(body.buffer, body.byteOffset + base, body.byteLength - base).slice();
  const total = base + rest.length;
  res.onWritable((offset) => res.tryEnd(rest.subarray(offset - base), total)[0]);
}
