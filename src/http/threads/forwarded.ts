/**
 * Routes a front-end thread does not serve itself (control, monitoring, admin, /learn, the Open
 * Inference Protocol) are forwarded whole to the main thread: the thread reads the body (within
 * the largest limit of any route), posts the request, and replays the answer it gets back. On the
 * main thread the request runs through the same HttpServer and router as with HTTP_THREADS=1,
 * against a stand-in for uWS's request and response that records the answer. One path for every
 * such route means none of them has a second implementation to keep in step.
 */
import type { HttpRequest, HttpResponse, RecognizedString } from 'uWebSockets.js';
import type { MessagePort } from 'node:worker_threads';
import { tfError } from '../../errors';
import { readBody } from '../body';
import { JSON_TYPE, statusLine, type Exchange } from '../respond';
import { hasBody } from '../server';
import type { ToMain, ToThread } from './protocol';

type ForwardRequest = Extract<ToMain, { t: 'fwd' }>;
type ForwardAnswer = Extract<ToThread, { t: 'fwd-res' }>;

/** The thread's side: forwards a request and writes the answer when it comes back. */
export class Forwarder {
  private nextId = 1;
  private readonly open = new Map<number, { res: HttpResponse; aborted: boolean }>();

  constructor(
    private readonly port: MessagePort,
    private readonly maxBytes: number,
  ) {}

  readonly forward = (res: HttpResponse, req: HttpRequest): void => {
    const id = this.nextId++;
    const entry = { res, aborted: false };
    this.open.set(id, entry);
    res.onAborted(() => {
      entry.aborted = true;
      if (this.open.delete(id)) this.port.postMessage({ t: 'fwd-gone', id } satisfies ToMain);
    });
    const headers: [string, string][] = [];
    req.forEach((k, v) => headers.push([k, v]));
    const head = { t: 'fwd' as const, id, method: req.getMethod(), url: req.getUrl(), query: req.getQuery() ?? '', headers, remote: Buffer.from(res.getRemoteAddressAsText()).toString() };
    if (!hasBody(req)) {
      this.post({ ...head, body: null });
      return;
    }
    const cl = req.getHeader('content-length');
    readBody(
      res,
      cl === '' ? -1 : Number(cl),
      this.maxBytes,
      (bytes) => this.post({ ...head, body: bytes.slice() }),
      (err) => {
        // Over every route's limit: answered here, the connection closed behind the answer.
        if (!this.open.delete(id) || entry.aborted) return;
        res.cork(() => res.writeStatus(statusLine(err.status)).writeHeader('Content-Type', JSON_TYPE).end(JSON.stringify(err.toJSON()), true));
      },
    );
  };

  /** A request this thread decoded itself, answered by the main thread (POST /learn). */
  forwardDecoded(x: Exchange, send: (id: number, remote: string) => ToMain): void {
    const id = this.nextId++;
    const entry = { res: x.res, aborted: false };
    this.open.set(id, entry);
    x.onAbort = () => {
      entry.aborted = true;
      if (this.open.delete(id)) this.port.postMessage({ t: 'fwd-gone', id } satisfies ToMain);
    };
    this.port.postMessage(send(id, Buffer.from(x.res.getRemoteAddressAsText()).toString()));
  }

  private post(m: ForwardRequest): void {
    this.port.postMessage(m);
  }

  onAnswer(m: ForwardAnswer): void {
    const entry = this.open.get(m.id);
    if (entry === undefined) return;
    this.open.delete(m.id);
    if (entry.aborted) return;
    const res = entry.res;
    res.cork(() => {
      if (m.end === 'close') {
        res.close();
        return;
      }
      res.writeStatus(m.status);
      for (const [k, v] of m.headers) res.writeHeader(k, v);
      if (m.end === 'no-body') res.endWithoutBody();
      else if (m.end === 'no-body-close') res.endWithoutBody(Number(m.body), true);
      else res.end(m.body, m.end === 'close-after');
    });
  }

  /** Answers every forwarded request still open (the thread is going away). */
  failAll(): void {
    const err = tfError('INTERNAL', 'internal error: the front-end thread handling this request failed; it is being replaced');
    for (const { res, aborted } of this.open.values()) {
      if (!aborted) res.cork(() => res.writeStatus(statusLine(500)).writeHeader('Content-Type', JSON_TYPE).end(JSON.stringify(err.toJSON()), true));
    }
    this.open.clear();
  }
}

function text(s: RecognizedString): string | Uint8Array {
  if (typeof s === 'string') return s;
  if (s instanceof ArrayBuffer || s instanceof SharedArrayBuffer) return new Uint8Array(s.slice(0));
  return new Uint8Array(s.buffer.slice(s.byteOffset, s.byteOffset + s.byteLength));
}

function asString(s: RecognizedString): string {
  return typeof s === 'string' ? s : Buffer.from(text(s) as Uint8Array).toString();
}

/** The main thread's stand-in for uWS's request: what the router and the handlers read. */
export function forwardedRequest(m: ForwardRequest): HttpRequest {
  const headers = new Map(m.headers);
  const req = {
    getUrl: () => m.url,
    getMethod: () => m.method,
    getQuery: (key?: string) => (key === undefined ? m.query : (new URLSearchParams(m.query).get(key) ?? undefined)),
    getHeader: (name: RecognizedString) => headers.get(asString(name).toLowerCase()) ?? '',
    forEach: (cb: (k: string, v: string) => void) => headers.forEach((v, k) => cb(k, v)),
    getParameter: () => undefined,
    setYield: () => req,
  };
  return req as unknown as HttpRequest;
}

/**
 * The main thread's stand-in for uWS's response: records the answer and sends it to the thread.
 * The body arrives whole (the thread read it), so nothing here waits for the client: a write is
 * always taken in full.
 */
export function forwardedResponse(m: ForwardRequest, send: (a: ForwardAnswer) => void): { res: HttpResponse; abort(): void } {
  let status = statusLine(200);
  const headers: [string, string][] = [];
  let done = false;
  let onAborted: (() => void) | null = null;
  const finish = (body: RecognizedString | undefined, end: ForwardAnswer['end']): void => {
    if (done) return;
    done = true;
    send({ t: 'fwd-res', id: m.id, status, headers, body: body === undefined ? '' : text(body), end });
  };
  const res = {
    onAborted: (cb: () => void) => {
      onAborted = cb;
      return res;
    },
    onData: (cb: (chunk: ArrayBuffer, last: boolean) => void) => {
      const body = m.body;
      queueMicrotask(() => {
        if (done) return;
        const ab = body === null ? new ArrayBuffer(0) : body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
        cb(ab as ArrayBuffer, true);
      });
      return res;
    },
    onWritable: () => res,
    cork: (cb: () => void) => {
      cb();
      return res;
    },
    writeStatus: (s: RecognizedString) => {
      status = asString(s);
      return res;
    },
    writeHeader: (k: RecognizedString, v: RecognizedString) => {
      headers.push([asString(k), asString(v)]);
      return res;
    },
    tryEnd: (body: RecognizedString) => {
      finish(body, 'end');
      return [true, true];
    },
    end: (body?: RecognizedString, closeConnection?: boolean) => {
      finish(body, closeConnection ? 'close-after' : 'end');
      return res;
    },
    endWithoutBody: (length?: number, closeConnection?: boolean) => {
      // Closing: the length is uWS's to write (see Responder.endLingering); else it is a header already.
      finish(closeConnection ? String(length ?? 0) : undefined, closeConnection ? 'no-body-close' : 'no-body');
      return res;
    },
    close: () => {
      finish(undefined, 'close');
      return res;
    },
    getWriteOffset: () => 0,
    getRemoteAddressAsText: () => Buffer.from(m.remote),
    getRemoteAddress: () => new ArrayBuffer(0),
  };
  return {
    res: res as unknown as HttpResponse,
    abort() {
      if (done) return;
      done = true;
      onAborted?.();
    },
  };
}
