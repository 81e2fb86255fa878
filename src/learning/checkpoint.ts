/**
 * Atomic checkpoints of the learning state.
 *
 * File format (`<dir>/<name>`): one header line of JSON, then the state as JSON:
 *
 *   {"format":"tradeflow-checkpoint","version":1,"bytes":N,"crc32":"1a2b3c4d","writtenAt":"..."}\n
 *   <N bytes: JSON.stringify(state), UTF-8>
 *
 * `crc32` covers the N state bytes. The header is a line of its own so that an operator can read it
 * with `head -1` and so that the checksum is over the exact bytes on disk (no re-serialisation).
 *
 * Written with src/io/durable-file.ts's atomic replace: a crash leaves the old checkpoint or the new
 * one, never a mix, and `readCheckpoint` clears the temp files a crash left.
 *
 * A checkpoint that is present but unreadable (bad header, wrong length, checksum mismatch, bad JSON,
 * a newer format version) is an error, never treated as absent: starting from scratch would silently
 * drop everything it held, and the feedback log before it has been truncated.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfError, type TradeflowError } from '../errors';
import { crc32 } from '../io/crc32';
import { isTempName, removeLeftoverTemps, writeFileAtomic } from '../io/durable-file';

export const CHECKPOINT_FORMAT = 'tradeflow-checkpoint';
export const CHECKPOINT_VERSION = 1;
/** A header longer than this is not ours; bounds the search for its newline. */
const MAX_HEADER_BYTES = 4096;

interface CheckpointHeader {
  format: string;
  version: number;
  bytes: number;
  crc32: string;
  writtenAt?: string;
}

function checkName(name: string): void {
  if (name.length === 0 || name !== path.basename(name) || name.startsWith('.') || isTempName(name)) {
    throw tfError('INTERNAL', `checkpoint name "${name}" must be a plain file name (no directory, no leading dot, no ".tmp-")`);
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * A NaN or infinite number would be written as `null` by JSON.stringify and come back as something
 * else entirely; refusing to write it keeps a diverged model from being checkpointed as if healthy.
 */
function finiteOnly(key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw tfError('CHECKPOINT_FAILED', `checkpoint state has a non-finite number (${value}) at key "${key}"; refusing to write it`);
  }
  return value;
}

/** Serialises a checkpoint into its on-disk bytes (exported for tests and tools). */
export function encodeCheckpoint(state: unknown, writtenAt = new Date()): Buffer {
  const json = JSON.stringify(state, finiteOnly);
  if (json === undefined) throw tfError('INTERNAL', 'checkpoint state is not JSON-serialisable (undefined, a function or a symbol)');
  const body = Buffer.from(json, 'utf8');
  const header: CheckpointHeader = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    bytes: body.length,
    crc32: hex8(crc32(body)),
    writtenAt: writtenAt.toISOString(),
  };
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n', 'utf8'), body]);
}

/** Parses checkpoint bytes; throws a TradeflowError that names `file` and what is wrong. */
export function decodeCheckpoint<T>(bytes: Buffer, file: string): T {
  const corrupt = (what: string): TradeflowError =>
    tfError(
      'CHECKPOINT_CORRUPT',
      `checkpoint ${file} is unusable: ${what}. The engine will not start from a state it cannot verify; ` +
        `restore the file from a backup, or move it aside to start without it.`,
    );
  const nl = bytes.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (nl < 0) throw corrupt('no header line (not a tradeflow checkpoint, or truncated)');
  let header: CheckpointHeader;
  try {
    header = JSON.parse(bytes.subarray(0, nl).toString('utf8')) as CheckpointHeader;
  } catch {
    throw corrupt('the header line is not JSON');
  }
  if (header === null || typeof header !== 'object' || header.format !== CHECKPOINT_FORMAT) throw corrupt('the header does not name the tradeflow checkpoint format');
  if (!Number.isInteger(header.version) || header.version < 1) throw corrupt(`bad format version ${String(header.version)}`);
  if (header.version > CHECKPOINT_VERSION) {
    throw corrupt(`format version ${header.version} is newer than this engine reads (${CHECKPOINT_VERSION}); it was written by a newer tradeflow`);
  }
  const body = bytes.subarray(nl + 1);
  if (!Number.isInteger(header.bytes) || body.length !== header.bytes) {
    throw corrupt(`the header says ${String(header.bytes)} state bytes but the file holds ${body.length}`);
  }
  const actual = hex8(crc32(body));
  if (actual !== header.crc32) throw corrupt(`checksum mismatch (header crc32 ${String(header.crc32)}, contents ${actual})`);
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw corrupt(`the state is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Atomically replaces `<dir>/<name>` with `state` (JSON-serialisable; NaN/Infinity refused, -0 is
 * written as 0, typed arrays must be converted by the caller). Resolves once the new checkpoint is
 * durable. Serialisation runs on the calling thread; the I/O does not block the event loop.
 * One writer per name at a time (the caller serialises checkpoints).
 */
export async function writeCheckpoint(dir: string, name: string, state: unknown): Promise<void> {
  checkName(name);
  const bytes = encodeCheckpoint(state);
  try {
    await writeFileAtomic(dir, name, bytes);
  } catch (err) {
    throw tfError('CHECKPOINT_FAILED', `could not write checkpoint ${path.join(dir, name)}: ${(err as Error).message}`);
  }
}

/**
 * Reads `<dir>/<name>` (synchronously: meant for start-up). Null when there is no checkpoint;
 * throws a TradeflowError naming the file when it is present but unusable. Temp files left by a
 * crash in the middle of `writeCheckpoint` are removed first: they never replaced the target, so
 * the previous checkpoint (or none) is the state that was last made durable.
 */
export function readCheckpoint<T>(dir: string, name: string): T | null {
  checkName(name);
  removeLeftoverTemps(dir, name);
  const file = path.join(dir, name);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw tfError('CHECKPOINT_FAILED', `could not read checkpoint ${file}: ${(err as Error).message}`);
  }
  return decodeCheckpoint<T>(bytes, file);
}
