/**
 * The JSON-parse ceiling for `npm run bench:http`: uWebSockets.js, `JSON.parse` of the body, a
 * fake score (a logistic of the row's mean, no model), and `JSON.stringify` of an answer of the
 * engine's shape. No batching, no worker, no inference: what a uWS server that parses and
 * answers JSON can do on this machine, the ceiling a JSON engine on one thread is measured
 * against. Binary bodies (little-endian float32 rows) get one float32 per row, as the engine's.
 *
 *   node dist/bench/baselines/parse-ceiling.js --port 8101 --features 32 [--model models/ensemble.onnx]
 *
 * The model file is only hashed, so that "version" is the one the other servers report. Prints
 * `listening <port>` once the socket is open.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as uWS from 'uWebSockets.js';
import { numberFlag, programFlags, UsageError, type FlagSpec } from '../lib/args';

const FLAGS: FlagSpec[] = [
  { name: 'port', help: 'port to listen on (0 picks a free one; default 8101)' },
  { name: 'host', help: 'address to listen on (default 127.0.0.1)' },
  { name: 'features', help: 'features per row (required)' },
  { name: 'model', help: 'model file whose hash is the answers\' "version" (default models/ensemble.onnx)' },
  { name: 'name', help: 'model name in answers (default ensemble)' },
  { name: 'exit-with-parent', switch: true, help: 'exit when the process that started it is gone' },
  { name: 'help', switch: true, help: 'show this help' },
];

interface Options {
  port: number;
  host: string;
  features: number;
  modelPath: string;
  name: string;
  exitWithParent: boolean;
}

function readOptions(flags: Map<string, string>): Options {
  if (!flags.has('features')) throw new UsageError('--features is required');
  return {
    port: numberFlag(flags, 'port', 8101, 0, 65535),
    host: flags.get('host') ?? '127.0.0.1',
    features: numberFlag(flags, 'features', 0, 1, 65536),
    modelPath: path.resolve(flags.get('model') ?? path.join(__dirname, '..', '..', '..', 'models', 'ensemble.onnx')),
    name: flags.get('name') ?? 'ensemble',
    exitWithParent: flags.has('exit-with-parent'),
  };
}

class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A fake probability of class 1: a logistic of the row's mean, so the answer depends on the row. */
function fakeP1(row: ArrayLike<number>, start: number, F: number): number {
  let s = 0;
  for (let c = 0; c < F; c++) s += row[start + c]!;
  return Math.fround(1 / (1 + Math.exp(-s / F)));
}

function rowAnswer(p1: number): { label: string; class: number; confidence: number; probabilities: [number, number] } {
  const p0 = Math.fround(1 - p1);
  const cls = p1 > p0 ? 1 : 0;
  return { label: cls === 1 ? 'UP' : 'DOWN', class: cls, confidence: cls === 1 ? p1 : p0, probabilities: [p0, p1] };
}

function answerJson(body: Buffer, F: number, model: string, version: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BadRequest('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`);
  }
  const o = (typeof doc === 'object' && doc !== null ? doc : {}) as { features?: unknown; instances?: unknown };
  const checkRow = (row: unknown): number[] => {
    if (!Array.isArray(row) || row.length !== F) throw new BadRequest('FEATURE_COUNT_MISMATCH', `a row must be an array of ${F} numbers`);
    return row as number[];
  };
  if (Array.isArray(o.features)) return JSON.stringify({ model, version, ...rowAnswer(fakeP1(checkRow(o.features), 0, F)) });
  if (!Array.isArray(o.instances) || o.instances.length === 0) throw new BadRequest('INVALID_BODY', 'body needs "features" or "instances"');
  return JSON.stringify({ model, version, predictions: o.instances.map((r: unknown) => rowAnswer(fakeP1(checkRow(r), 0, F))) });
}

function answerBinary(body: Buffer, F: number): Buffer {
  if (body.length === 0 || body.length % (4 * F) !== 0) throw new BadRequest('INVALID_BINARY_BODY', `binary body must be whole rows of ${F} float32`);
  const rows = body.length / (4 * F);
  const data = new Float32Array(body.length / 4);
  new Uint8Array(data.buffer).set(body);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = fakeP1(data, r * F, F);
  return Buffer.from(out.buffer);
}

async function main(): Promise<void> {
  const o = programFlags('parse-ceiling', 'Usage: node dist/bench/baselines/parse-ceiling.js --features F [options]', FLAGS, readOptions);
  const version = createHash('sha256').update(fs.readFileSync(o.modelPath)).digest('hex').slice(0, 12);
  const F = o.features;
  const app = uWS.App();
  app.post('/predict', (res, req) => {
    const binary = req.getHeader('content-type').split(';')[0]!.trim().toLowerCase() === 'application/octet-stream';
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const chunks: Buffer[] = [];
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(chunk.slice(0))); // uWS neuters the chunk after this callback
      if (!isLast || aborted) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      let status = '200 OK';
      let payload: string | Buffer;
      try {
        payload = binary ? answerBinary(body, F) : answerJson(body, F, o.name, version);
      } catch (err) {
        const e = err instanceof BadRequest ? err : new BadRequest('INTERNAL', (err as Error).message);
        status = '400 Bad Request';
        payload = JSON.stringify({ error: { code: e.code, message: e.message } });
      }
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', binary && status === '200 OK' ? 'application/octet-stream' : 'application/json');
        if (binary) res.writeHeader('X-Model-Name', o.name).writeHeader('X-Model-Version', version);
        res.end(payload);
      });
    });
  });
  app.get('/monitoring/health/readiness', (res) => {
    res.writeHeader('Content-Type', 'application/json').end('{"status":"ready"}');
  });
  app.get('/info', (res) => {
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ name: o.name, version, features: F, pid: process.pid }));
  });
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end('{"error":{"code":"NOT_FOUND","message":"no such route"}}');
  });
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(o.host, o.port, (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${o.host}:${o.port}`))));
  });
  process.stdout.write(`listening ${uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket)}\n`);
  const stop = (): void => {
    uWS.us_listen_socket_close(listenSocket);
    (app as unknown as { close(): void }).close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (o.exitWithParent) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop();
    }, 1000).unref();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`parse-ceiling: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
