/**
 * Model files loaded by path are read only from under MODEL_DIR: `..`, absolute paths elsewhere
 * and symbolic links that lead out are refused before anything is read, as are files over the
 * size limit and things that are not regular files (a FIFO must not hang the read).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { readModelFileWithin } from '../src/models/model-files';

let root: string;
let dir: string;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'tradeflow-model-files-'));
  dir = path.join(root, 'models');
  mkdirSync(path.join(dir, 'sub'), { recursive: true });
  mkdirSync(path.join(root, 'elsewhere'));
  writeFileSync(path.join(dir, 'inside.onnx'), Buffer.from('inside bytes'));
  writeFileSync(path.join(dir, 'sub', 'nested.onnx'), Buffer.from('nested bytes'));
  writeFileSync(path.join(dir, 'big.onnx'), Buffer.alloc(5000));
  writeFileSync(path.join(root, 'outside.onnx'), Buffer.from('outside bytes'));
  writeFileSync(path.join(root, 'elsewhere', 'far.onnx'), Buffer.from('far bytes'));
  symlinkSync(path.join(root, 'outside.onnx'), path.join(dir, 'link-out.onnx'));
  symlinkSync(path.join(root, 'elsewhere'), path.join(dir, 'linked-dir'));
  symlinkSync(path.join(dir, 'sub', 'nested.onnx'), path.join(dir, 'link-in.onnx'));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

async function refusal(requested: string, maxBytes = 1 << 20): Promise<TradeflowError> {
  try {
    await readModelFileWithin(dir, requested, maxBytes);
  } catch (err) {
    expect(err).toBeInstanceOf(TradeflowError);
    return err as TradeflowError;
  }
  throw new Error(`${requested} was read`);
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('readModelFileWithin', () => {
  it('reads files under the directory, by absolute or relative path, into shared memory', async () => {
    const abs = await readModelFileWithin(dir, path.join(dir, 'inside.onnx'), 1 << 20);
    expect(text(abs)).toBe('inside bytes');
    expect(abs.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(text(await readModelFileWithin(dir, 'sub/nested.onnx', 1 << 20))).toBe('nested bytes');
    expect(text(await readModelFileWithin(dir, './sub/../inside.onnx', 1 << 20))).toBe('inside bytes');
    // A link that stays inside is fine.
    expect(text(await readModelFileWithin(dir, 'link-in.onnx', 1 << 20))).toBe('nested bytes');
  });

  it('refuses paths outside it, through .. or absolute, with 403 MODEL_PATH_FORBIDDEN', async () => {
    for (const p of [path.join(root, 'outside.onnx'), '../outside.onnx', 'sub/../../outside.onnx', '/etc/passwd', '/nonexistent/model.onnx', dir, '.']) {
      const err = await refusal(p);
      expect(err.code, p).toBe('MODEL_PATH_FORBIDDEN');
      expect(err.status).toBe(403);
      expect(err.message).toContain(`MODEL_DIR (${dir})`);
    }
  });

  it('refuses symbolic links, of a file or of a directory, that lead outside', async () => {
    for (const p of ['link-out.onnx', 'linked-dir/far.onnx']) {
      const err = await refusal(p);
      expect(err.code, p).toBe('MODEL_PATH_FORBIDDEN');
      expect(err.message).toContain('symbolic link');
      // The link's target is not disclosed.
      expect(err.message).not.toContain('elsewhere');
      expect(err.message).not.toContain('outside.onnx');
    }
  });

  it('refuses a file over the limit with 413 MODEL_TOO_LARGE, and what cannot be read with 422 MODEL_REJECTED', async () => {
    const big = await refusal('big.onnx', 4999);
    expect(big.code).toBe('MODEL_TOO_LARGE');
    expect(big.status).toBe(413);
    expect(big.message).toContain('5000 bytes');
    expect(big.message).toContain('MODEL_UPLOAD_MAX_BYTES');
    expect((await readModelFileWithin(dir, 'big.onnx', 5000)).byteLength).toBe(5000);
    const missing = await refusal('missing.onnx');
    expect(missing.code).toBe('MODEL_REJECTED');
    expect(missing.message).toContain('ENOENT');
    const directory = await refusal('sub');
    expect(directory.code).toBe('MODEL_REJECTED');
    expect(directory.message).toContain('not a regular file');
  });

  it('refuses a FIFO as not a regular file instead of waiting for a writer', async () => {
    const fifo = path.join(dir, 'pipe.onnx');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const err = await refusal('pipe.onnx');
    expect(err.code).toBe('MODEL_REJECTED');
    expect(err.message).toContain('not a regular file');
  });
});
