/**
 * Lingering close, as nginx's lingering_time / lingering_timeout: an early refusal (413, 415,
 * 401/403, 404/405, 503 while draining) of a request whose body is still arriving is answered at
 * once with `Connection: close`, then the rest of the body is read and thrown away for at most
 * LINGER_MS and LINGER_MAX_BYTES before the connection is closed.
 *
 * Closing right behind the answer (uWS's `end(body, true)`) leaves the client's unsent body
 * unread, and closing a socket with unread bytes makes the kernel send a reset: a client that
 * writes its whole body before it reads (Node's fetch and http both do) then gets EPIPE instead
 * of the answer. Reading to the end of the body first makes the close an orderly one.
 */
import type { HttpResponse } from 'uWebSockets.js';

export interface LingerOptions {
  /** Longest time, from the answer, that the rest of a refused body is read (0: close at once). */
  readonly ms: number;
  /** Most bytes of a refused body read and discarded before the connection is closed anyway. */
  readonly maxBytes: number;
}

/**
 * 30 s is nginx's lingering_time. 64 MiB lets a client finish a body far over MAX_BODY_BYTES (a
 * whole file posted by mistake) and read why it was refused; past either bound the client is
 * sending on regardless of the answer, and reading on would only cost the engine.
 */
export const DEFAULT_LINGER: LingerOptions = { ms: 30_000, maxBytes: 64 * 1024 * 1024 };

/** One refused request's remaining body being read and dropped. */
export class Linger {
  private bytes = 0;
  private open = true;
  private readonly timer: NodeJS.Timeout;
  private closing: NodeJS.Immediate | null = null;

  constructor(
    private readonly res: HttpResponse,
    private readonly opts: LingerOptions,
  ) {
    this.timer = setTimeout(() => this.close(), opts.ms);
    // A refused client must not keep the engine alive at shutdown (the server closes it anyway).
    this.timer.unref();
  }

  /** Counts `n` dropped bytes; the end of the body, or too many bytes, ends the linger. */
  discard(n: number, last: boolean): void {
    if (!this.open) return;
    this.bytes += n;
    if (last || this.bytes > this.opts.maxBytes) this.closeSoon();
  }

  /** The connection is gone (client, uWS's idle timeout, shutdown): `res` must not be used. */
  gone(): void {
    this.open = false;
    clearTimeout(this.timer);
    if (this.closing !== null) clearImmediate(this.closing);
  }

  /**
   * Deferred to the next turn: inside a uWS data callback the answer may still sit in the cork
   * buffer, which uWS flushes only after the callback returns and drops if the socket is closed.
   */
  private closeSoon(): void {
    if (this.closing === null) this.closing = setImmediate(() => this.close());
  }

  private close(): void {
    if (!this.open) return;
    this.gone();
    // res.close() runs onAborted synchronously, which calls gone() again: harmless.
    this.res.close();
  }
}

/** The response whose body reader is running its error callback right now (see `underReader`). */
let readerRes: HttpResponse | null = null;
let handedOver: Linger | null = null;

/**
 * Runs a body reader's error callback. A linger started inside it is fed by that reader rather
 * than by a new `onData`: replacing uWS's data handler from inside that handler is not safe.
 * Returns the linger the callback started, if any.
 */
export function underReader(res: HttpResponse, onError: () => void): Linger | null {
  readerRes = res;
  handedOver = null;
  try {
    onError();
  } finally {
    readerRes = null;
  }
  const l = handedOver;
  handedOver = null;
  return l;
}

/** Starts reading and dropping the rest of `res`'s body; its answer is already written. */
export function startLinger(res: HttpResponse, opts: LingerOptions): Linger {
  const l = new Linger(res, opts);
  if (readerRes === res) handedOver = l;
  else res.onData((chunk, last) => l.discard(chunk.byteLength, last));
  return l;
}

/**
 * The body of a request whose handler takes none (a GET with a body): read and dropped, and the
 * answer held until its end. uWS closes the connection of a `Connection: close` request as soon as
 * its answer is out, and with the body's rest still unread that close is a reset which can
 * destroy the answer before the client reads it. Past LINGER_MAX_BYTES or LINGER_MS the
 * connection is closed.
 */
export class UnreadBody {
  private bytes = 0;
  private ended = false;
  private held: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly res: HttpResponse,
    private readonly opts: LingerOptions,
  ) {
    this.timer = setTimeout(() => this.close(), opts.ms);
    this.timer.unref();
    res.onData((chunk, last) => this.chunk(chunk.byteLength, last));
  }

  /** True when `write` has to wait for the end of the body (it is then called there). */
  hold(write: () => void): boolean {
    if (this.ended) return false;
    // The first answer wins, as with an answer written at once.
    if (this.held === null) this.held = write;
    return true;
  }

  gone(): void {
    this.ended = true;
    this.held = null;
    clearTimeout(this.timer);
  }

  private chunk(n: number, last: boolean): void {
    this.bytes += n;
    if (last) {
      const write = this.held;
      this.gone();
      if (write) this.res.cork(write);
    } else if (this.bytes > this.opts.maxBytes) this.close();
  }

  private close(): void {
    if (this.ended) return;
    this.gone();
    this.res.close();
  }
}
