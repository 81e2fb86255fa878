/**
 * Model files named by path over the admin API (POST /models/{name}/load {"path": ...}). Only
 * files under one configured directory (MODEL_DIR) may be read: an admin request must not be a
 * way to read any file the engine's user can, nor to make the engine load hundreds of megabytes.
 *
 * The path is checked twice: lexically (after `..` is resolved) before the filesystem is touched,
 * so a path outside the directory is refused without saying whether it exists; then the file
 * actually opened is checked, by its real path (symlinks resolved) and by identity (device and
 * inode of the open descriptor against those of the real path), so a symlink inside the
 * directory that leads out of it, or one swapped in between the checks and the read, is refused
 * too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfError } from '../errors';

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel);
}

function forbidden(requested: string, dir: string, how: string): Error {
  return tfError('MODEL_PATH_FORBIDDEN', `${JSON.stringify(requested)} ${how} MODEL_DIR (${dir}); only model files under MODEL_DIR can be loaded by path`);
}

function unreadable(requested: string, err: unknown): Error {
  return tfError('MODEL_REJECTED', `cannot read ${requested}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
}

/**
 * The bytes of the model file `requested` (relative paths are taken from `dir`), in a
 * SharedArrayBuffer of their own (what a served version keeps; see describeOnnxModel).
 * MODEL_PATH_FORBIDDEN (403) outside `dir`, MODEL_TOO_LARGE (413) over `maxBytes`,
 * MODEL_REJECTED (422) when it cannot be read or is not a regular file.
 */
export async function readModelFileWithin(dir: string, requested: string, maxBytes: number): Promise<Uint8Array> {
  const lexicalRoot = path.resolve(dir);
  const wanted = path.resolve(lexicalRoot, requested);
  if (!inside(lexicalRoot, wanted)) throw forbidden(requested, lexicalRoot, 'is outside');
  let root: string;
  try {
    root = await fs.promises.realpath(lexicalRoot);
  } catch (err) {
    throw tfError('MODEL_REJECTED', `MODEL_DIR ${lexicalRoot} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let fh: fs.promises.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a file.
    fh = await fs.promises.open(wanted, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw unreadable(requested, err);
  }
  try {
    const opened = await fh.stat();
    let real: string;
    let named: fs.Stats;
    try {
      real = await fs.promises.realpath(wanted);
      named = await fs.promises.stat(real);
    } catch (err) {
      throw unreadable(requested, err);
    }
    if (!inside(root, real)) throw forbidden(requested, lexicalRoot, 'leads (through a symbolic link) outside');
    if (named.dev !== opened.dev || named.ino !== opened.ino) throw forbidden(requested, lexicalRoot, 'was replaced while being opened; it may lead outside');
    if (!opened.isFile()) throw tfError('MODEL_REJECTED', `${requested} is not a regular file`);
    if (opened.size > maxBytes) {
      throw tfError('MODEL_TOO_LARGE', `${requested} is ${opened.size} bytes, over the limit of ${maxBytes} (MODEL_UPLOAD_MAX_BYTES)`);
    }
    return await readWhole(fh, opened.size, requested);
  } finally {
    await fh.close();
  }
}

async function readWhole(fh: fs.promises.FileHandle, size: number, requested: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(new SharedArrayBuffer(size));
  let at = 0;
  try {
    while (at < size) {
      const { bytesRead } = await fh.read(bytes, at, Math.min(size - at, 1 << 22), at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
  } catch (err) {
    throw unreadable(requested, err);
  }
  if (at !== size) throw tfError('MODEL_REJECTED', `${requested} changed while it was read (${at} of ${size} bytes)`);
  return bytes;
}
