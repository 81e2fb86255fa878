/**
 * A uWebSockets.js server that answers every POST with the same small JSON body once it has read
 * the request's body, and GET /monitoring/health/readiness with 200: the cheapest server a load
 * generator can be pointed at, so what limits a run against it is the generator
 * (bench/load-ceiling.ts). `holdMs` delays answers (test/helpers/stall-server.ts makes it stall).
 *
 *   node dist/bench/baselines/constant-server.js --port 8200
 *
 * Prints `listening <port>` once the socket is open.
 */
import * as uWS from 'uWebSockets.js';
import { numberFlag, programFlags, type FlagSpec } from '../lib/args';

export const CONSTANT_ANSWER = '{"model":"constant","version":"0","label":"UP","class":1,"confidence":1,"probabilities":[0,1]}';

export interface ConstantServer {
  port: number;
  /** Requests answered (not counting aborted ones). */
  readonly answered: number;
  close(): void;
}

export interface ConstantOptions {
  host?: string;
  port?: number;
  /** Milliseconds to hold the answer of a request that has just been read; 0 answers at once. */
  holdMs?: () => number;
}

export async function startConstantServer(options: ConstantOptions = {}): Promise<ConstantServer> {
  const holdMs = options.holdMs ?? (() => 0);
  const app = uWS.App();
  if (typeof (app as unknown as { close?: unknown }).close !== 'function') {
    throw new Error('uWebSockets.js native binary did not load (pure-JS fallback)');
  }
  const state = { answered: 0 };
  const answer = (res: uWS.HttpResponse, aborted: { v: boolean }): void => {
    if (aborted.v) return;
    res.cork(() => res.writeHeader('Content-Type', 'application/json').end(CONSTANT_ANSWER));
    state.answered++;
  };
  app.post('/*', (res) => {
    const aborted = { v: false };
    res.onAborted(() => (aborted.v = true));
    // The body is read to its end (and dropped) before answering, as a real server must.
    res.onData((_chunk, isLast) => {
      if (!isLast) return;
      const hold = holdMs();
      if (hold > 0) setTimeout(() => answer(res, aborted), hold);
      else answer(res, aborted);
    });
  });
  app.get('/monitoring/health/readiness', (res) => void res.writeHeader('Content-Type', 'application/json').end('{"status":"ready"}'));
  app.any('/*', (res) => void res.writeStatus('404 Not Found').end('{"error":{"code":"NOT_FOUND","message":"no such path"}}'));
  const socket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(options.host ?? '127.0.0.1', options.port ?? 0, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on port ${options.port ?? 0}`))));
  });
  return {
    port: uWS.us_socket_local_port(socket as unknown as uWS.us_socket),
    get answered() {
      return state.answered;
    },
    close() {
      uWS.us_listen_socket_close(socket);
      (app as unknown as { close(): void }).close();
    },
  };
}

const FLAGS: FlagSpec[] = [
  { name: 'port', help: 'port to listen on (0 picks a free one; default 8200)' },
  { name: 'host', help: 'address to listen on (default 127.0.0.1)' },
  { name: 'exit-with-parent', switch: true, help: 'exit when the process that started it is gone' },
];

async function main(): Promise<void> {
  const o = programFlags('constant-server', 'Usage: node dist/bench/baselines/constant-server.js [options]', FLAGS, (f) => ({
    port: numberFlag(f, 'port', 8200, 0, 65535),
    host: f.get('host') ?? '127.0.0.1',
    exitWithParent: f.has('exit-with-parent'),
  }));
  const server = await startConstantServer({ host: o.host, port: o.port });
  process.stdout.write(`listening ${server.port}\n`);
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (o.exitWithParent) {
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && stop(), 1000).unref();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`constant-server: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
