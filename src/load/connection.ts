/**
 * One keep-alive connection of the load generator: raw TCP, Nagle off, one request at a time
 * (no pipelining: a pipelined request would wait behind the one before it on the server, and
 * its latency would be the server's head-of-line blocking, not its answer time).
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ResponseReader, type ParsedResponse } from './http-response';

export interface Target {
  host: string;
  port: number;
}

/** `answer` null: the request failed before an answer (`reason` says how). */
export type AnswerCallback = (answer: ParsedResponse | null, reason: string, at: number) => void;

export class Connection {
  private socket: net.Socket | null = null;
  private reader: ResponseReader | null = null;
  private callback: AnswerCallback | null = null;
  private opening: Promise<void> | null = null;
  private closed = false;
  /** performance.now() when the request in flight was written. */
  sentAt = 0;
  /** Connections opened after the first (the server closed one, or a request failed). */
  reconnects = 0;

  constructor(
    private readonly target: Target,
    /** Called when the connection can take a request again (after a failure and a reconnect). */
    private readonly onReady: (c: Connection) => void = () => {},
  ) {}

  get busy(): boolean {
    return this.callback !== null;
  }

  get open(): boolean {
    return this.socket !== null && this.opening === null;
  }

  /** Resolves once connected; rejects with the connect error. */
  connect(): Promise<void> {
    if (this.opening) return this.opening;
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const socket = net.connect({ host: this.target.host, port: this.target.port });
    socket.setNoDelay(true);
    const reader = new ResponseReader((r) => this.answered(socket, r));
    this.socket = socket;
    this.reader = reader;
    this.opening = new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        this.opening = null;
        resolve();
      });
      socket.on('data', (chunk: Buffer) => this.data(socket, reader, chunk));
      socket.on('error', (err) => {
        if (this.opening && this.socket === socket) {
          this.opening = null;
          this.socket = null;
          reject(err);
        } else this.broken(socket, err.message);
      });
      socket.on('close', () => this.broken(socket, reader.end() ? '' : 'connection closed by the server mid-answer'));
    });
    return this.opening;
  }

  /** Writes one whole request (head and body); `done` is called once, with the answer or a failure. */
  send(request: Buffer, done: AnswerCallback): void {
    if (this.callback || !this.open) throw new Error('connection busy or not open');
    this.callback = done;
    this.sentAt = performance.now();
    this.socket!.write(request);
  }

  /** Fails the request in flight (a timeout) and replaces the socket. */
  abort(reason: string): void {
    if (this.socket) this.broken(this.socket, reason);
  }

  close(): void {
    this.closed = true;
    const s = this.socket;
    this.socket = null;
    this.callback = null;
    s?.destroy();
  }

  private data(socket: net.Socket, reader: ResponseReader, chunk: Buffer): void {
    try {
      reader.feed(chunk);
    } catch (err) {
      this.broken(socket, `unreadable answer: ${(err as Error).message}`);
    }
  }

  private answered(socket: net.Socket, r: ParsedResponse): void {
    if (socket !== this.socket) return;
    const done = this.callback;
    this.callback = null;
    if (r.close) this.replace(socket);
    done?.(r, '', performance.now());
  }

  private broken(socket: net.Socket, reason: string): void {
    if (socket !== this.socket) return;
    const done = this.callback;
    this.callback = null;
    this.replace(socket);
    if (done) done(null, reason || 'connection closed by the server', performance.now());
  }

  /** A socket that failed or that the server closes is dropped and a new one opened at once. */
  private replace(socket: net.Socket): void {
    socket.destroy();
    if (this.socket !== socket) return;
    this.socket = null;
    this.reconnect();
  }

  private reconnect(): void {
    if (this.closed) return;
    this.reconnects++;
    this.connect().then(
      () => this.onReady(this),
      () => setTimeout(() => this.reconnect(), 100).unref(),
    );
  }
}
