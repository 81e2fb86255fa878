/**
 * Reads HTTP/1.1 responses off a keep-alive socket, a chunk at a time, for the load generator.
 * node:http's client costs more CPU per request than the server under test on a small machine,
 * and that would make the tool the limit; this reader does only what a load generator needs:
 * the status, where the body ends (Content-Length, chunked, or the connection closing), whether
 * the server closes the connection, and the start of an error body (its `code` is reported).
 */

/** A whole response. `body` is the start of the body of a response with status >= 300, else ''. */
export interface ParsedResponse {
  status: number;
  body: string;
  /** The server closes the connection after this response. */
  close: boolean;
}

export class HttpParseError extends Error {}

const MAX_HEAD_BYTES = 64 * 1024;
const KEPT_BODY_BYTES = 1024;

type State = 'head' | 'body' | 'until-close' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailer';

export class ResponseReader {
  private state: State = 'head';
  private partialHead: Buffer | null = null;
  private line = '';
  private remaining = 0;
  private status = 0;
  private close = false;
  private kept: Buffer[] = [];
  private keptBytes = 0;

  constructor(private readonly onResponse: (r: ParsedResponse) => void) {}

  /** True between responses: a connection closing now loses nothing. */
  get idle(): boolean {
    return this.state === 'head' && this.partialHead === null;
  }

  /** Throws HttpParseError on bytes that are not an HTTP/1.x response. */
  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'head') at = this.readHead(chunk, at);
      else if (this.state === 'body' || this.state === 'chunk-data') at = this.readData(chunk, at);
      else if (this.state === 'until-close') at = this.keep(chunk, at, chunk.length - at);
      else at = this.readLine(chunk, at);
    }
  }

  /** The server closed the connection: ends a body delimited by the close; false if a response was cut. */
  end(): boolean {
    if (this.state === 'until-close') {
      this.finish();
      return true;
    }
    return this.idle;
  }

  private readHead(chunk: Buffer, at: number): number {
    const carried = this.partialHead?.length ?? 0;
    const buf = this.partialHead ? Buffer.concat([this.partialHead, chunk.subarray(at)]) : chunk.subarray(at);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new HttpParseError(`response head longer than ${MAX_HEAD_BYTES} bytes`);
      this.partialHead = Buffer.from(buf); // the socket's chunk may be reused: keep a copy
      return chunk.length;
    }
    this.partialHead = null;
    this.startResponse(buf.toString('latin1', 0, end));
    return at + end + 4 - carried;
  }

  private startResponse(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]!);
    if (!m) throw new HttpParseError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[2]);
    let length = -1;
    let chunked = false;
    let close = m[1] === '0';
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i]!.indexOf(':');
      const name = lines[i]!.slice(0, colon).trim().toLowerCase();
      const value = lines[i]!.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.split(',').some((v) => v.trim() === 'chunked');
      else if (name === 'connection') close = value.includes('close') || (m[1] === '0' && !value.includes('keep-alive'));
    }
    if (status < 200) return; // 100 Continue and friends: the real answer follows
    this.status = status;
    this.close = close;
    if (status === 204 || status === 304) this.finish();
    else if (chunked) this.state = 'chunk-size';
    else if (length >= 0 && Number.isSafeInteger(length)) this.startData('body', length);
    else if (length === -1) this.state = 'until-close';
    else throw new HttpParseError(`bad Content-Length in ${JSON.stringify(head.slice(0, 200))}`);
  }

  private startData(state: 'body' | 'chunk-data', length: number): void {
    this.remaining = length;
    this.state = state;
    if (length === 0 && state === 'body') this.finish();
  }

  private readData(chunk: Buffer, at: number): number {
    const take = Math.min(this.remaining, chunk.length - at);
    this.keep(chunk, at, take);
    this.remaining -= take;
    if (this.remaining === 0) {
      if (this.state === 'body') this.finish();
      else this.state = 'chunk-end';
    }
    return at + take;
  }

  private keep(chunk: Buffer, at: number, n: number): number {
    if (this.status >= 300 && this.keptBytes < KEPT_BODY_BYTES && n > 0) {
      const part = Buffer.from(chunk.subarray(at, at + Math.min(n, KEPT_BODY_BYTES - this.keptBytes)));
      this.kept.push(part);
      this.keptBytes += part.length;
    }
    return at + n;
  }

  /** Chunk sizes, the CRLF after a chunk and trailers are lines; a line may span socket chunks. */
  private readLine(chunk: Buffer, at: number): number {
    const nl = chunk.indexOf(0x0a, at);
    if (nl < 0) {
      this.line += chunk.toString('latin1', at);
      if (this.line.length > MAX_HEAD_BYTES) throw new HttpParseError('chunked body line too long');
      return chunk.length;
    }
    const line = (this.line + chunk.toString('latin1', at, nl)).replace(/\r$/, '');
    this.line = '';
    this.onLine(line);
    return nl + 1;
  }

  private onLine(line: string): void {
    if (this.state === 'chunk-size') {
      const size = parseInt(line.split(';')[0]!.trim(), 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new HttpParseError(`bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
      if (size === 0) this.state = 'trailer';
      else this.startData('chunk-data', size);
    } else if (this.state === 'chunk-end') {
      if (line !== '') throw new HttpParseError('chunk data longer than its size');
      this.state = 'chunk-size';
    } else if (line === '') {
      this.finish(); // the empty line that ends the trailers
    }
  }

  private finish(): void {
    const body = this.kept.length === 0 ? '' : Buffer.concat(this.kept).toString('utf8');
    const r: ParsedResponse = { status: this.status, body, close: this.close };
    this.state = 'head';
    this.kept = [];
    this.keptBytes = 0;
    this.remaining = 0;
    this.onResponse(r);
  }
}
