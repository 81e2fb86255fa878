/**
 * Clients for the transport tests: Node's fetch (undici) and http module posting large bodies,
 * and raw `net` sockets for what no HTTP client sends (broken request lines, floods of headers,
 * trickled bytes, pipelined garbage). Traffic goes to 127.0.0.1 only; every call is bounded by
 * a timeout that fails it, never by a measured speed.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';

export interface Answered {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** POST with fetch; `body` may be a stream (sent chunked). Rejects with the client's error. */
export async function fetchPost(port: number, path: string, body: Uint8Array | ReadableStream<Uint8Array>, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<Answered> {
  const init: RequestInit & { duplex?: 'half' } = { method: 'POST', body: body as unknown as RequestInit['body'], headers, signal: AbortSignal.timeout(timeoutMs) };
  if (!(body instanceof Uint8Array)) init.duplex = 'half';
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers), text };
}

/**
 * POST with the http module on a fresh connection (it sends `Connection: close`). With
 * `chunks`, the body is written as that many pieces without Content-Length (chunked). Resolves
 * once the answer has been read, whatever happens to the rest of the upload after that.
 */
export function httpPost(port: number, path: string, body: Buffer, headers: Record<string, string> = {}, opts: { chunks?: number; timeoutMs?: number } = {}): Promise<Answered> {
  return new Promise((resolve, reject) => {
    const chunked = opts.chunks !== undefined;
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: chunked ? headers : { ...headers, 'content-length': String(body.length) }, timeout: opts.timeoutMs ?? 60_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    if (!chunked) {
      req.end(body);
      return;
    }
    const n = opts.chunks!;
    const size = Math.ceil(body.length / n);
    for (let i = 0; i < n; i++) req.write(body.subarray(i * size, Math.min(body.length, (i + 1) * size)));
    req.end();
  });
}

/** The error object of a JSON error answer, or null when the text is not one. */
export function errorOf(text: string): { code: string; message: string } | null {
  try {
    const v = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (v && typeof v.error === 'object' && v.error && typeof v.error.code === 'string' && typeof v.error.message === 'string') {
      return { code: v.error.code, message: v.error.message };
    }
  } catch {
    // not JSON
  }
  return null;
}

export interface RawResult {
  /** Everything the server sent. */
  bytes: Buffer;
  /** The server closed (FIN or reset) before our timeout. */
  closed: boolean;
  /** The socket error, if the close was a reset. */
  error: string | null;
  /** Our bound ran out with the connection still open. */
  timedOut: boolean;
}

/**
 * Opens a raw connection, runs `drive` (which writes), and collects what the server sends until
 * it closes, `doneWhen` says the answer is complete (then we close), or `timeoutMs` passes.
 */
export function rawExchange(
  port: number,
  drive: (s: net.Socket) => void | Promise<void>,
  opts: { timeoutMs: number; doneWhen?: (received: Buffer) => boolean },
): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let error: string | null = null;
    let settled = false;
    const finish = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: Buffer.concat(parts), closed, error, timedOut });
    };
    const timer = setTimeout(() => finish(false, true), opts.timeoutMs);
    s.on('data', (d: Buffer) => {
      parts.push(d);
      if (opts.doneWhen && opts.doneWhen(Buffer.concat(parts))) finish(false, false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.on('close', () => finish(true, false));
    s.on('connect', () => {
      Promise.resolve(drive(s)).catch((e: Error) => {
        error = error ?? e.message;
      });
    });
  });
}

export interface ParsedAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Bytes after this answer (a pipelined answer, or garbage). */
  rest: Buffer;
}

/**
 * Parses one HTTP/1.1 answer at the start of `buf` (Content-Length or chunked body). Null when
 * the bytes are not (yet) a whole, well-formed answer.
 */
export function parseAnswer(buf: Buffer): ParsedAnswer | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3}) [^\r\n]*$/.exec(head[0] ?? '');
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let at = end + 4;
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return null;
      const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isFinite(size)) return null;
      at = eol + 2;
      if (size === 0) {
        if (buf.length < at + 2) return null;
        at += 2;
        break;
      }
      if (buf.length < at + size + 2) return null;
      parts.push(buf.subarray(at, at + size));
      at += size + 2;
    }
    return { status: Number(m[1]), headers, body: Buffer.concat(parts), rest: buf.subarray(at) };
  }
  const length = Number(headers['content-length'] ?? '0');
  if (!Number.isInteger(length) || buf.length < at + length) return null;
  return { status: Number(m[1]), headers, body: buf.subarray(at, at + length), rest: buf.subarray(at + length) };
}

/**
 * Whether the kernel still has the connection from `localPort` to `remotePort` on 127.0.0.1
 * established. A socket that is never read from (paused) does not notice the peer's close, since
 * nothing polls it for reading; the kernel knows.
 */
export function established(localPort: number, remotePort: number): boolean {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    if (f[1]!.endsWith(':' + hex(localPort)) && f[2]!.endsWith(':' + hex(remotePort))) return f[3] === '01';
  }
  return false;
}
