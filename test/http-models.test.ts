/**
 * The model admin routes refuse what an admin request must not make the engine do, and the
 * version that serves keeps serving each time: a load by path outside MODEL_DIR (absolute, `..`,
 * a symbolic link; 403), a model over MODEL_UPLOAD_MAX_BYTES, uploaded with or without a
 * Content-Length or named by path (413), and a model whose tensors are in external data files,
 * uploaded or by path (422).
 */
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/app';
import { FEATURE_NAMES } from '../src/training/features';
import { writeEnsembleOnnx } from '../src/training/onnx-writer';
import { DEFAULT_MODEL_PATH, makeRows, postJson, request, startTestEngine, type Reply } from './helpers/engine';
import { requirePythonOnnx } from './helpers/requirements';

const F = 16;
const LIMIT = 100_000;
const pythonOnnx = requirePythonOnnx();

let root: string;
let modelDir: string;
let engine: Engine | null = null;

/** A small valid ensemble; the seed makes it a distinct version. */
function variant(seed: number): Uint8Array {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: { mean: new Float64Array(F), std: new Float64Array(F).fill(1) },
    logreg: { weights: Float64Array.from({ length: F }, rnd), bias: rnd() },
  });
}

/** `variant` with its logistic-regression weights moved to an external file (onnx's own layout). */
function withExternalWeights(bytes: Uint8Array, location: string): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const w = m.graph!.initializer!.find((t) => t.name === 'logreg_weights')!;
  w.rawData = new Uint8Array(0);
  w.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
  w.externalData = [onnx.StringStringEntryProto.create({ key: 'location', value: location }), onnx.StringStringEntryProto.create({ key: 'length', value: String(F * 4) })];
  return onnx.ModelProto.encode(m).finish();
}

function upload(port: number, bytes: Uint8Array): Promise<Reply> {
  return request(port, 'POST', '/models/ensemble/load', Buffer.from(bytes), { 'content-type': 'application/octet-stream' });
}

function loadPath(port: number, p: string): Promise<Reply> {
  return request(port, 'POST', '/models/ensemble/load', JSON.stringify({ path: p }), { 'content-type': 'application/json' });
}

/** An upload with no Content-Length: the body arrives in chunks and is counted as it comes. */
function uploadChunked(port: number, bytes: Uint8Array, chunk = 16_384): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/models/ensemble/load', agent: false, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const body = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
        });
      },
    );
    // The engine may answer 413 and close before the last chunk; the answer is what counts.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    for (let at = 0; at < bytes.length; at += chunk) req.write(Buffer.from(bytes.subarray(at, at + chunk)));
    req.end();
  });
}

/** The refusal has this status and code, and the version that served before still answers. */
async function expectRefused(e: Engine, reply: Promise<Reply>, status: number, code: string, message: RegExp): Promise<void> {
  const before = e.models.get('ensemble').version;
  const r = await reply;
  expect(r.status, r.body.toString()).toBe(status);
  expect(r.json().error.code).toBe(code);
  expect(r.json().error.message).toMatch(message);
  expect(e.models.get('ensemble').version).toBe(before);
  const p = await postJson(e.port, { features: Array.from(makeRows(1, F, 5)) });
  expect(p.status).toBe(200);
  expect(p.json().version).toBe(before);
}

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tradeflow-http-models-'));
  modelDir = path.join(root, 'models');
  mkdirSync(path.join(modelDir, 'nested'), { recursive: true });
  writeFileSync(path.join(modelDir, 'nested', 'v1.onnx'), variant(1));
  writeFileSync(path.join(root, 'outside.onnx'), variant(2));
  symlinkSync(path.join(root, 'outside.onnx'), path.join(modelDir, 'link.onnx'));
  symlinkSync(root, path.join(modelDir, 'up'));
  writeFileSync(path.join(modelDir, 'big.onnx'), Buffer.alloc(LIMIT + 1));
  writeFileSync(path.join(modelDir, 'external.onnx'), withExternalWeights(variant(3), 'weights.bin'));
  writeFileSync(path.join(modelDir, 'weights.bin'), Buffer.alloc(F * 4));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

afterEach(async () => {
  if (engine) await engine.shutdown('test end');
  engine = null;
});

describe('POST /models/{name}/load by path', () => {
  it('loads files under MODEL_DIR, by absolute or relative path', async () => {
    engine = await startTestEngine({ MODEL_DIR: modelDir });
    const r = await loadPath(engine.port, 'nested/v1.onnx');
    expect(r.status, r.body.toString()).toBe(200);
    const again = await loadPath(engine.port, path.join(modelDir, 'nested', 'v1.onnx'));
    expect(again.status).toBe(200);
    expect(again.json().version).toBe(r.json().version);
    expect(engine.models.get('ensemble').version).toBe(r.json().version);
  });

  it('refuses a path outside MODEL_DIR with 403 MODEL_PATH_FORBIDDEN: absolute, through .., through a symbolic link', async () => {
    engine = await startTestEngine({ MODEL_DIR: modelDir });
    const e = engine;
    await expectRefused(e, loadPath(e.port, path.join(root, 'outside.onnx')), 403, 'MODEL_PATH_FORBIDDEN', /outside MODEL_DIR/);
    await expectRefused(e, loadPath(e.port, '/etc/passwd'), 403, 'MODEL_PATH_FORBIDDEN', /outside MODEL_DIR/);
    await expectRefused(e, loadPath(e.port, '../outside.onnx'), 403, 'MODEL_PATH_FORBIDDEN', /outside MODEL_DIR/);
    await expectRefused(e, loadPath(e.port, path.join(modelDir, 'nested', '..', '..', 'outside.onnx')), 403, 'MODEL_PATH_FORBIDDEN', /outside MODEL_DIR/);
    await expectRefused(e, loadPath(e.port, 'link.onnx'), 403, 'MODEL_PATH_FORBIDDEN', /symbolic link/);
    await expectRefused(e, loadPath(e.port, 'up/outside.onnx'), 403, 'MODEL_PATH_FORBIDDEN', /symbolic link/);
    // Inside, but not there: the model is refused as unreadable.
    await expectRefused(e, loadPath(e.port, 'nested/missing.onnx'), 422, 'MODEL_REJECTED', /ENOENT/);
  });

  it('takes MODEL_PATH\'s directory (the bundled models/) as MODEL_DIR by default', async () => {
    engine = await startTestEngine();
    expect(engine.config.modelDir).toBe(path.dirname(DEFAULT_MODEL_PATH));
    const r = await loadPath(engine.port, 'ensemble.onnx');
    expect(r.status, r.body.toString()).toBe(200);
    await expectRefused(engine, loadPath(engine.port, path.join(modelDir, 'nested', 'v1.onnx')), 403, 'MODEL_PATH_FORBIDDEN', /outside MODEL_DIR/);
  });
});

describe('POST /models/{name}/load size limit (MODEL_UPLOAD_MAX_BYTES)', () => {
  it('refuses a model over the limit with 413, uploaded with a Content-Length, without one, or by path', async () => {
    engine = await startTestEngine({ MODEL_DIR: modelDir, MODEL_UPLOAD_MAX_BYTES: String(LIMIT) });
    const e = engine;
    const tooBig = new Uint8Array(LIMIT + 1);
    await expectRefused(e, upload(e.port, tooBig), 413, 'BODY_TOO_LARGE', new RegExp(`${LIMIT + 1} bytes exceeds the limit of ${LIMIT}`));
    await expectRefused(e, uploadChunked(e.port, tooBig), 413, 'BODY_TOO_LARGE', new RegExp(`exceeds the limit of ${LIMIT}`));
    await expectRefused(e, loadPath(e.port, 'big.onnx'), 413, 'MODEL_TOO_LARGE', new RegExp(`${LIMIT + 1} bytes, over the limit of ${LIMIT}`));
    // Under the limit, a chunked upload is a model like any other.
    const ok = await uploadChunked(e.port, variant(4), 100);
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(e.models.get('ensemble').version).toBe(ok.json().version);
  });
});

describe('POST /models/{name}/load of a model with external data', () => {
  it('refuses it with 422 MODEL_REJECTED naming the tensor and the file, uploaded or by path next to its data', async () => {
    engine = await startTestEngine({ MODEL_DIR: modelDir });
    const e = engine;
    const external = withExternalWeights(variant(5), '../../../../etc/passwd');
    await expectRefused(e, upload(e.port, external), 422, 'MODEL_REJECTED', /external files \(graph initializer 'logreg_weights' at "..\/..\/..\/..\/etc\/passwd"\)/);
    await expectRefused(e, loadPath(e.port, 'external.onnx'), 422, 'MODEL_REJECTED', /external files .*"weights\.bin"/);
  });

  it.skipIf(pythonOnnx.skip)('refuses a model python3-onnx saved with save_as_external_data', async () => {
    const python = pythonOnnx.get();
    const dir = path.join(modelDir, 'py');
    mkdirSync(dir, { recursive: true });
    copyFileSync(DEFAULT_MODEL_PATH, path.join(dir, 'inline.onnx'));
    const py = spawnSync(python, ['-c', `
import onnx, sys
m = onnx.load(sys.argv[1])
onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True, location='tensors.bin', size_threshold=0)
`, path.join(dir, 'inline.onnx'), path.join(dir, 'external.onnx')], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    engine = await startTestEngine({ MODEL_DIR: modelDir });
    const e = engine;
    await expectRefused(e, loadPath(e.port, 'py/external.onnx'), 422, 'MODEL_REJECTED', /external files .*"tensors\.bin".*save_as_external_data=False/);
    await expectRefused(e, upload(e.port, readFileSync(path.join(dir, 'external.onnx'))), 422, 'MODEL_REJECTED', /external files/);
  });
});
