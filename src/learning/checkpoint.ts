/**
 * Atomic checkpoints of the learning state.
 *
 * File format (`<dir>/<name>`), version 2: one header line of JSON, then the state, its numbers in
 * bulk stored as raw arrays rather than as JSON text:
 *
 *   {"format":"tradeflow-checkpoint","version":2,"bytes":N,"crc32":"1a2b3c4d","writtenAt":"...",
 *    "json":J,"arrays":[{"type":"f32","length":800000},{"type":"u8","length":50000}]}\n
 *   <N bytes: J bytes of JSON (UTF-8), then each array's bytes in header order, little-endian>
 *
 * In the JSON each typed array of the state (Float64Array, Float32Array, Int32Array, Uint32Array,
 * Uint8Array) stands as `{"$array":i}`, i its index in `arrays`. Version 1 was the whole state as
 * JSON (`{"format":...,"version":1,"bytes":N,"crc32":...}\n<N bytes of JSON>`, the replay buffer as
 * base64 strings in it); it is still read, so that a state directory written by an older engine
 * starts. Why version 2: the replay buffer (50,000 rows of F float32 by default) as JSON was
 * megabytes of base64 escaped and copied on the main thread at every checkpoint, a visible pause in
 * /learn; as raw arrays it is a copy, and the encoding runs in the checkpoint writer's thread
 * (checkpoint-writer.ts).
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
import * as os from 'node:os';
import * as path from 'node:path';
import { tfError, type TradeflowError } from '../errors';
import { crc32 } from '../io/crc32';
import { isTempName, removeLeftoverTemps, writeFileAtomic } from '../io/durable-file';

export const CHECKPOINT_FORMAT = 'tradeflow-checkpoint';
export const CHECKPOINT_VERSION = 2;
/** A header longer than this is not ours; bounds the search for its newline. */
const MAX_HEADER_BYTES = 65536;
const ARRAY_KEY = '$array';

const ARRAY_TYPES = {
  f64: Float64Array,
  f32: Float32Array,
  i32: Int32Array,
  u32: Uint32Array,
  u8: Uint8Array,
} as const;
type ArrayType = keyof typeof ARRAY_TYPES;
type NumericArray = InstanceType<(typeof ARRAY_TYPES)[ArrayType]>;

interface ArrayEntry {
  type: ArrayType;
  length: number;
}

interface CheckpointHeader {
  format: string;
  version: number;
  bytes: number;
  crc32: string;
  writtenAt?: string;
  /** Version 2: bytes of JSON at the start of the state, and the arrays after it. */
  json?: number;
  arrays?: ArrayEntry[];
}

function checkName(name: string): void {
  if (name.length === 0 || name !== path.basename(name) || name.startsWith('.') || isTempName(name)) {
    throw tfError('INTERNAL', `checkpoint name "${name}" must be a plain file name (no directory, no leading dot, no ".tmp-")`);
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function nonFinite(key: string, value: number): TradeflowError {
  return tfError('CHECKPOINT_FAILED', `checkpoint state has a non-finite number (${value}) at key "${key}"; refusing to write it`);
}

function arrayType(value: ArrayBufferView): ArrayType | null {
  for (const [type, ctor] of Object.entries(ARRAY_TYPES)) if (value instanceof ctor) return type as ArrayType;
  return null;
}

/** The JSON part and the arrays lifted out of it, with the checks a checkpoint needs. */
function splitState(state: unknown): { json: Buffer; arrays: NumericArray[]; entries: ArrayEntry[] } {
  const arrays: NumericArray[] = [];
  const entries: ArrayEntry[] = [];
  // A NaN or infinite number would be written as `null` by JSON.stringify and come back as
  // something else entirely; refusing to write it keeps a diverged model from being checkpointed
  // as if healthy. Typed arrays are checked the same way, element by element.
  const replacer = function (this: unknown, key: string, value: unknown): unknown {
    if (typeof value === 'number' && !Number.isFinite(value)) throw nonFinite(key, value);
    if (value === null || typeof value !== 'object') return value;
    if (ArrayBuffer.isView(value)) {
      const type = arrayType(value);
      if (type === null) throw tfError('INTERNAL', `checkpoint state has an unsupported binary value at key "${key}" (${value.constructor.name})`);
      const a = value as NumericArray;
      if (type === 'f64' || type === 'f32') {
        for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw nonFinite(`${key}[${i}]`, a[i]!);
      }
      arrays.push(a);
      entries.push({ type, length: a.length });
      return { [ARRAY_KEY]: arrays.length - 1 };
    }
    if (Object.prototype.hasOwnProperty.call(value, ARRAY_KEY)) throw tfError('INTERNAL', `checkpoint state uses the reserved key "${ARRAY_KEY}" (at "${key}")`);
    return value;
  };
  const text = JSON.stringify(state, replacer);
  if (text === undefined) throw tfError('INTERNAL', 'checkpoint state is not JSON-serialisable (undefined, a function or a symbol)');
  return { json: Buffer.from(text, 'utf8'), arrays, entries };
}

function checkLittleEndian(): void {
  // Arrays are written as the machine holds them; every platform Node ships for is little-endian,
  // and a file written elsewhere must not be read as garbage.
  if (os.endianness() !== 'LE') throw tfError('INTERNAL', 'checkpoints are written little-endian and this machine is big-endian');
}

/**
 * Serialises a checkpoint into its on-disk bytes (version 2). Typed arrays in `state` are stored as
 * raw arrays; everything else as JSON (NaN and infinities refused, -0 written as 0).
 */
export function encodeCheckpoint(state: unknown, writtenAt = new Date()): Buffer {
  checkLittleEndian();
  const { json, arrays, entries } = splitState(state);
  const parts: Uint8Array[] = [json];
  for (const a of arrays) parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const body = Buffer.concat(parts);
  const header: CheckpointHeader = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    bytes: body.length,
    crc32: hex8(crc32(body)),
    writtenAt: writtenAt.toISOString(),
    json: json.length,
    arrays: entries,
  };
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n', 'utf8'), body]);
}

type Corrupt = (what: string) => TradeflowError;

/** The header line, checked against the format; the state bytes after it are checked too. */
function readHeader(bytes: Buffer, corrupt: Corrupt): { header: CheckpointHeader; body: Buffer } {
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
  return { header, body };
}

/** Version 2's arrays, copied out of the file (aligned, and independent of the file's buffer). */
function readArrays(header: CheckpointHeader, body: Buffer, corrupt: Corrupt): NumericArray[] {
  const entries = header.arrays;
  if (!Number.isInteger(header.json) || header.json! < 0 || !Array.isArray(entries)) throw corrupt('the header lacks the sizes of its JSON and arrays');
  checkLittleEndian();
  const out: NumericArray[] = [];
  let o = header.json!;
  for (const [i, e] of entries.entries()) {
    const ctor = e !== null && typeof e === 'object' && Object.prototype.hasOwnProperty.call(ARRAY_TYPES, e.type) ? ARRAY_TYPES[e.type] : null;
    if (ctor === null || !Number.isSafeInteger(e.length) || e.length < 0) throw corrupt(`array ${i} of the header has a bad type or length`);
    const n = e.length * ctor.BYTES_PER_ELEMENT;
    if (o + n > body.length) throw corrupt(`array ${i} runs past the end of the state`);
    const a = new ctor(e.length);
    new Uint8Array(a.buffer).set(body.subarray(o, o + n));
    out.push(a);
    o += n;
  }
  if (o !== body.length) throw corrupt(`the header's JSON and arrays take ${o} bytes but the state holds ${body.length}`);
  return out;
}

/** Parses checkpoint bytes (version 1 or 2); throws a TradeflowError that names `file` and what is wrong. */
export function decodeCheckpoint<T>(bytes: Buffer, file: string): T {
  const corrupt: Corrupt = (what) =>
    tfError(
      'CHECKPOINT_CORRUPT',
      `checkpoint ${file} is unusable: ${what}. The engine will not start from a state it cannot verify; ` +
        `restore the file from a backup, or move it aside to start without it.`,
    );
  const { header, body } = readHeader(bytes, corrupt);
  const arrays = header.version >= 2 ? readArrays(header, body, corrupt) : [];
  const json = header.version >= 2 ? body.subarray(0, header.json!) : body;
  const used = new Set<number>();
  const reviver = (_key: string, value: unknown): unknown => {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, ARRAY_KEY)) return value;
    const i = (value as Record<string, unknown>)[ARRAY_KEY];
    if (header.version < 2 || typeof i !== 'number' || arrays[i] === undefined || used.has(i)) throw corrupt(`a reference to array ${String(i)} that the header does not have`);
    used.add(i);
    return arrays[i];
  };
  try {
    return JSON.parse(json.toString('utf8'), reviver) as T;
  } catch (err) {
    if ((err as TradeflowError).code === 'CHECKPOINT_CORRUPT') throw err;
    throw corrupt(`the state is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Atomically replaces `<dir>/<name>` with `state` (see {@link encodeCheckpoint}). Resolves once the
 * new checkpoint is durable; a failure leaves the previous checkpoint as it was. Serialisation runs
 * on the calling thread (the engine calls this in the checkpoint writer's thread); the I/O does not
 * block the event loop. One writer per name at a time (the caller serialises checkpoints).
 */
export async function writeCheckpoint(dir: string, name: string, state: unknown): Promise<void> {
  checkName(name);
  const bytes = encodeCheckpoint(state);
  try {
    await writeFileAtomic(dir, name, bytes);
  } catch (err) {
    throw tfError('CHECKPOINT_FAILED', `could not write checkpoint ${path.join(dir, name)}: ${(err as Error).message}; the previous checkpoint is kept`);
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
