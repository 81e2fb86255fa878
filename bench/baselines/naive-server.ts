/**
 * The naive baseline for `npm run bench:http`: uWebSockets.js and one onnxruntime `session.run`
 * per request on the main thread, `JSON.parse` of the body, no batching, no worker. Same routes
 * and answers as the engine: `POST /predict` with `{"features":[...]}`, `{"instances":[[...]]}`
 * or little-endian float32 rows (`application/octet-stream`), and
 * `GET /monitoring/health/readiness`. `GET /info` describes the model it serves.
 *
 *   node dist/bench/baselines/naive-server.js --port 8100 --model models/ensemble.onnx
 *
 * Prints `listening <port>` once the model is loaded and the socket is open.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as uWS from 'uWebSockets.js';
import { numberFlag, programFlags, type FlagSpec } from '../lib/args';

const FLAGS: FlagSpec[] = [
  { name: 'port', help: 'port to listen on (0 picks a free one; default 8100)' },
  { name: 'host', help: 'address to listen on (default 127.0.0.1)' },
  { name: 'model', help: 'ONNX model file (default models/ensemble.onnx)' },
  { name: 'features', help: 'features per row, when the model does not fix it' },
  { name: 'name', help: 'model name in answers (default ensemble)' },
  { name: 'exit-with-parent', switch: true, help: 'exit when the process that started it is gone' },
  { name: 'help', switch: true, help: 'show this help' },
];

class BadRequest extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Contract {
  name: string;
  version: string;
  features: number;
  inputName: string;
  probabilityOutput: string;
  /** 2 = [p0, p1] per row, 1 = p1 per row; null = find out from the first answer. */
  probabilityWidth: 1 | 2 | null;
}

function contractOf(session: ort.InferenceSession, bytes: Uint8Array, name: string, featuresFlag: number | null): Contract {
  const inputName = session.inputNames[0];
  if (inputName === undefined) throw new Error('the model has no input');
  let features: number | null = null;
  const meta = session.inputMetadata?.[0];
  if (meta && meta.isTensor) {
    const last = meta.shape[meta.shape.length - 1];
    if (typeof last === 'number' && last > 0) features = last;
  }
  if (features === null) features = featuresFlag;
  if (features === null) throw new Error('the model does not fix its feature count: pass --features F');
  const outputs = session.outputNames;
  const outMeta = session.outputMetadata ?? [];
  let probabilityOutput: string | undefined = outputs.find((o) => o === 'probabilities');
  if (probabilityOutput === undefined) {
    const floatOut = outMeta.find((m) => m.isTensor && m.type === 'float32');
    probabilityOutput = floatOut?.name ?? outputs[outputs.length - 1];
  }
  if (probabilityOutput === undefined) throw new Error('the model has no output');
  let probabilityWidth: 1 | 2 | null = null;
  const pm = outMeta.find((m) => m.name === probabilityOutput);
  if (pm && pm.isTensor) {
    const w = pm.shape.length === 1 ? 1 : pm.shape[pm.shape.length - 1];
    if (w === 1 || w === 2) probabilityWidth = w;
  }
  const version = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  return { name, version, features, inputName, probabilityOutput, probabilityWidth };
}

function parseRows(body: Buffer, F: number): { rows: number; data: Float32Array; shape: 'features' | 'instances' } {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new BadRequest(400, 'INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new BadRequest(400, 'INVALID_BODY', 'body must be a JSON object');
  const o = doc as { features?: unknown; instances?: unknown };
  let list: unknown[];
  let shape: 'features' | 'instances';
  if (Array.isArray(o.features)) {
    list = [o.features];
    shape = 'features';
  } else if (Array.isArray(o.instances)) {
    list = o.instances;
    shape = 'instances';
  } else throw new BadRequest(400, 'INVALID_BODY', 'body needs "features" (one row) or "instances" (a list of rows)');
  if (list.length === 0) throw new BadRequest(400, 'INVALID_BODY', '"instances" is empty');
  const data = new Float32Array(list.length * F);
  for (let r = 0; r < list.length; r++) {
    const row = list[r];
    if (!Array.isArray(row) || row.length !== F) {
      throw new BadRequest(400, 'FEATURE_COUNT_MISMATCH', `row ${r} must be an array of ${F} numbers`);
    }
    for (let c = 0; c < F; c++) {
      const v: unknown = row[c];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new BadRequest(400, 'INVALID_FEATURE_VALUE', `row ${r}, column ${c} is not a finite number`);
      data[r * F + c] = v;
    }
  }
  return { rows: list.length, data, shape };
}

function parseBinary(body: Buffer, F: number): { rows: number; data: Float32Array } {
  const rowBytes = 4 * F;
  if (body.length === 0 || body.length % rowBytes !== 0) {
    throw new BadRequest(400, 'INVALID_BINARY_BODY', `binary body must be whole rows of ${F} little-endian float32 values (${rowBytes} bytes per row), got ${body.length} bytes`);
  }
  const data = new Float32Array(body.length / 4);
  new Uint8Array(data.buffer).set(body);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new BadRequest(400, 'NON_FINITE_FEATURE', `row ${Math.floor(i / F)}, column ${i % F} is not finite`);
  }
  return { rows: body.length / rowBytes, data };
}

function rowAnswer(p0: number, p1: number): { label: string; class: number; confidence: number; probabilities: [number, number] } {
  const cls = p1 > p0 ? 1 : 0;
  return { label: cls === 1 ? 'UP' : 'DOWN', class: cls, confidence: cls === 1 ? p1 : p0, probabilities: [p0, p1] };
}

interface Options {
  port: number;
  host: string;
  modelPath: string;
  name: string;
  features: number | null;
  exitWithParent: boolean;
}

function readOptions(flags: Map<string, string>): Options {
  return {
    port: numberFlag(flags, 'port', 8100, 0, 65535),
    host: flags.get('host') ?? '127.0.0.1',
    modelPath: path.resolve(flags.get('model') ?? path.join(__dirname, '..', '..', '..', 'models', 'ensemble.onnx')),
    name: flags.get('name') ?? 'ensemble',
    features: flags.has('features') ? numberFlag(flags, 'features', 0, 1, 65536) : null,
    exitWithParent: flags.has('exit-with-parent'),
  };
}

async function main(): Promise<void> {
  const { port, host, modelPath, name, features: featuresFlag, exitWithParent } = programFlags('naive-server', 'Usage: node dist/bench/baselines/naive-server.js [options]', FLAGS, readOptions);
  const bytes = fs.readFileSync(modelPath);
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const contract = contractOf(session, bytes, name, featuresFlag);
  const F = contract.features;
  const fetches = [contract.probabilityOutput];

  async function score(data: Float32Array, rows: number): Promise<Float32Array> {
    const out = await session.run({ [contract.inputName]: new ort.Tensor('float32', data, [rows, F]) }, fetches);
    const probs = out[contract.probabilityOutput]!.data as Float32Array;
    const width = contract.probabilityWidth ?? (probs.length === 2 * rows ? 2 : 1);
    if (width === 2) return probs;
    const two = new Float32Array(2 * rows);
    for (let r = 0; r < rows; r++) {
      two[2 * r] = Math.fround(1 - probs[r]!);
      two[2 * r + 1] = probs[r]!;
    }
    return two;
  }

  const app = uWS.App();
  if (typeof (app as unknown as { close?: unknown }).close !== 'function') {
    throw new Error('uWebSockets.js native binary did not load (pure-JS fallback); refusing to run a meaningless baseline');
  }

  app.post('/predict', (res, req) => {
    const contentType = req.getHeader('content-type').split(';')[0]!.trim().toLowerCase();
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    const chunks: Buffer[] = [];
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(chunk.slice(0))); // uWS neuters the chunk after this callback
      if (!isLast) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      void answer(res, state, contentType, body);
    });
  });

  async function answer(res: uWS.HttpResponse, state: { aborted: boolean }, contentType: string, body: Buffer): Promise<void> {
    let status = '200 OK';
    let type = 'application/json';
    let payload: string | Buffer;
    let binary = false;
    try {
      if (contentType === 'application/octet-stream') {
        binary = true;
        const { rows, data } = parseBinary(body, F);
        const probs = await score(data, rows);
        const p1 = new Float32Array(rows);
        for (let r = 0; r < rows; r++) p1[r] = probs[2 * r + 1]!;
        payload = Buffer.from(p1.buffer);
        type = 'application/octet-stream';
      } else if (contentType === '' || contentType === 'application/json') {
        const { rows, data, shape } = parseRows(body, F);
        const probs = await score(data, rows);
        if (shape === 'features') {
          payload = JSON.stringify({ model: contract.name, version: contract.version, ...rowAnswer(probs[0]!, probs[1]!) });
        } else {
          const predictions = [];
          for (let r = 0; r < rows; r++) predictions.push(rowAnswer(probs[2 * r]!, probs[2 * r + 1]!));
          payload = JSON.stringify({ model: contract.name, version: contract.version, predictions });
        }
      } else {
        throw new BadRequest(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type "${contentType}" is not supported`);
      }
    } catch (err) {
      binary = false;
      const e = err instanceof BadRequest ? err : new BadRequest(500, 'INTERNAL', (err as Error).message);
      status = `${e.status} Error`;
      type = 'application/json';
      payload = JSON.stringify({ error: { code: e.code, message: e.message } });
    }
    if (state.aborted) return;
    res.cork(() => {
      res.writeStatus(status).writeHeader('Content-Type', type);
      if (binary) res.writeHeader('X-Model-Name', contract.name).writeHeader('X-Model-Version', contract.version);
      res.end(payload);
    });
  }

  app.get('/monitoring/health/readiness', (res) => {
    res.writeHeader('Content-Type', 'application/json').end('{"status":"ready"}');
  });
  app.get('/info', (res) => {
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ ...contract, modelPath, pid: process.pid }));
  });
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no route for ${url}` } }));
  });

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (socket) => (socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port}`))));
  });
  const actualPort = uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  process.stdout.write(`listening ${actualPort}\n`);

  const stop = (): void => {
    uWS.us_listen_socket_close(listenSocket);
    (app as unknown as { close(): void }).close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (exitWithParent) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) stop();
    }, 1000).unref();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`naive-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
