import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { CHECKPOINT_VERSION, decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '../src/learning/checkpoint';
import { crc32 } from '../src/io/crc32';

const dirs: string[] = [];

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-checkpoint-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const NAME = 'learning.ckpt';

interface State {
  logSeq: number;
  weights: number[];
  bias: number;
  note: string;
}

const state = (seq: number): State => ({
  logSeq: seq,
  // Doubles that need all 17 digits: JSON must bring them back bit for bit.
  weights: [0.1 + 0.2, -1 / 3, 5e-324, 1.7976931348623157e308, Math.PI * seq],
  bias: -0.000123456789,
  note: 'ünïcødé ✓',
});

function errorOf(fn: () => unknown): TradeflowError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TradeflowError);
    return err as TradeflowError;
  }
  throw new Error('expected an error');
}

describe('checkpoint', () => {
  it('round-trips the state exactly and records format, version and checksum', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, NAME, state(7));
    expect(readCheckpoint<State>(dir, NAME)).toEqual(state(7));
    const header = JSON.parse(fs.readFileSync(path.join(dir, NAME), 'utf8').split('\n')[0]!) as Record<string, unknown>;
    expect(header).toMatchObject({ format: 'tradeflow-checkpoint', version: CHECKPOINT_VERSION });
    expect(header.crc32).toMatch(/^[0-9a-f]{8}$/);
    expect(fs.readdirSync(dir)).toEqual([NAME]);
  });

  it('is null when absent, including when the directory does not exist', async () => {
    const dir = tempDir();
    expect(readCheckpoint(dir, NAME)).toBeNull();
    expect(readCheckpoint(path.join(dir, 'not-yet'), NAME)).toBeNull();
  });

  it('creates its directory and replaces the previous checkpoint atomically', async () => {
    const dir = path.join(tempDir(), 'state', 'nested');
    await writeCheckpoint(dir, NAME, state(1));
    await writeCheckpoint(dir, NAME, state(2));
    expect(readCheckpoint<State>(dir, NAME)!.logSeq).toBe(2);
    await Promise.all([writeCheckpoint(dir, 'other.ckpt', { a: 1 }), writeCheckpoint(dir, NAME, state(3))]);
    expect(readCheckpoint<State>(dir, NAME)!.logSeq).toBe(3);
    expect(readCheckpoint(dir, 'other.ckpt')).toEqual({ a: 1 });
    expect(fs.readdirSync(dir).sort()).toEqual([NAME, 'other.ckpt']);
  });

  it('never shows a reader a partial checkpoint while it is being replaced', async () => {
    const dir = tempDir();
    const file = path.join(dir, NAME);
    const big = (seq: number): { logSeq: number; rows: number[][] } => ({ logSeq: seq, rows: Array.from({ length: 2000 }, (_, i) => [seq, i, seq * i + 0.5]) });
    await writeCheckpoint(dir, NAME, big(0));
    let writing = true;
    let reads = 0;
    const seen = new Set<number>();
    // Reads the file directly (readCheckpoint would remove the writer's temp file: it is for start-up).
    const reader = (async () => {
      while (writing) {
        const got = decodeCheckpoint<{ logSeq: number; rows: number[][] }>(fs.readFileSync(file), file);
        expect(got.rows.length).toBe(2000);
        expect(got.rows[1999]![0]).toBe(got.logSeq);
        seen.add(got.logSeq);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let seq = 1; seq <= 30; seq++) await writeCheckpoint(dir, NAME, big(seq));
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(30);
    expect(seen.size).toBeGreaterThan(1);
    expect(readCheckpoint<{ logSeq: number }>(dir, NAME)!.logSeq).toBe(30);
  });

  it('ignores and removes temp files left by a crash in the middle of a write', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, NAME, state(4));
    // What a crash leaves: a temp file cut short, and one complete but never renamed.
    const full = encodeCheckpoint(state(5));
    fs.writeFileSync(path.join(dir, `${NAME}.tmp-999-1`), full.subarray(0, full.length >> 1));
    fs.writeFileSync(path.join(dir, `${NAME}.tmp-999-2`), full);
    expect(readCheckpoint<State>(dir, NAME)!.logSeq).toBe(4);
    expect(fs.readdirSync(dir)).toEqual([NAME]);

    const fresh = tempDir();
    fs.writeFileSync(path.join(fresh, `${NAME}.tmp-1-1`), full);
    expect(readCheckpoint(fresh, NAME)).toBeNull();
    expect(fs.readdirSync(fresh)).toEqual([]);
  });

  it('refuses a damaged checkpoint with a message naming the file and the damage', async () => {
    const dir = tempDir();
    const file = path.join(dir, NAME);
    await writeCheckpoint(dir, NAME, state(6));
    const good = fs.readFileSync(file);
    const bodyStart = good.indexOf(0x0a) + 1;

    const flipped = Buffer.from(good);
    flipped[bodyStart + 20]! ^= 0x02;
    fs.writeFileSync(file, flipped);
    let err = errorOf(() => readCheckpoint(dir, NAME));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/checksum mismatch/);
    expect(err.message).toMatch(/restore the file from a backup/);

    fs.writeFileSync(file, good.subarray(0, good.length - 3));
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/header says \d+ state bytes but the file holds \d+/);

    fs.writeFileSync(file, 'not a checkpoint');
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/no header line/);

    fs.writeFileSync(file, '{"format":"something-else"}\n{}');
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/does not name the tradeflow checkpoint format/);

    const newer = Buffer.from(good.toString('utf8').replace(`"version":${CHECKPOINT_VERSION}`, '"version":99'));
    fs.writeFileSync(file, newer);
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/format version 99 is newer/);

    // Checksum right, JSON wrong: only a bug could write this, but it must not load as something.
    const body = Buffer.from('{"logSeq":1,');
    const bad = encodeCheckpoint({}).toString('utf8').split('\n')[0]!;
    const header = JSON.parse(bad) as Record<string, unknown>;
    header.bytes = body.length;
    header.json = body.length;
    header.crc32 = crc32(body).toString(16).padStart(8, '0');
    fs.writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]));
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/not valid JSON/);
  });

  it('refuses to write non-finite numbers and keeps the previous checkpoint', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, NAME, state(8));
    await expect(writeCheckpoint(dir, NAME, { weights: [1, Number.NaN] })).rejects.toThrow(/non-finite number \(NaN\)/);
    await expect(writeCheckpoint(dir, NAME, { bias: Number.POSITIVE_INFINITY })).rejects.toThrow(/at key "bias"/);
    await expect(writeCheckpoint(dir, NAME, undefined)).rejects.toThrow(/not JSON-serialisable/);
    expect(readCheckpoint<State>(dir, NAME)!.logSeq).toBe(8);
    expect(fs.readdirSync(dir)).toEqual([NAME]);
  });

  it('accepts plain file names only', async () => {
    const dir = tempDir();
    await expect(writeCheckpoint(dir, '../escape.ckpt', {})).rejects.toThrow(/plain file name/);
    expect(() => readCheckpoint(dir, 'a/b')).toThrow(/plain file name/);
  });

  it('stores typed arrays as raw arrays (version 2), bit for bit, and refuses non-finite floats in them', async () => {
    const dir = tempDir();
    const f32 = Float32Array.of(0.1, -0, 3.4028234663852886e38, 1.401298464324817e-45);
    const f64 = Float64Array.of(0.1 + 0.2, -1 / 3, 5e-324);
    const st = { seq: 9, nested: { rows: f32, labels: Uint8Array.of(0, 1, 255) }, w: f64, list: [Uint32Array.of(7, 2 ** 32 - 1), Int32Array.of(-5)] };
    await writeCheckpoint(dir, NAME, st);
    const bytes = fs.readFileSync(path.join(dir, NAME));
    const header = JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString('utf8')) as { version: number; json: number; arrays: Array<{ type: string; length: number }> };
    expect(header.version).toBe(2);
    expect(header.arrays).toEqual([
      { type: 'f32', length: 4 },
      { type: 'u8', length: 3 },
      { type: 'f64', length: 3 },
      { type: 'u32', length: 2 },
      { type: 'i32', length: 1 },
    ]);
    // The float32 bytes are in the file as they are in memory: no text between them.
    expect(bytes.indexOf(Buffer.from(f32.buffer))).toBeGreaterThan(0);
    const back = readCheckpoint<typeof st>(dir, NAME)!;
    expect(back.nested.rows).toBeInstanceOf(Float32Array);
    expect(Buffer.from(back.nested.rows.buffer).equals(Buffer.from(f32.buffer))).toBe(true);
    expect(Object.is(back.nested.rows[1], -0)).toBe(true);
    expect(back.nested.labels).toEqual(Uint8Array.of(0, 1, 255));
    expect(back.w).toEqual(f64);
    expect(back.list[0]).toEqual(Uint32Array.of(7, 2 ** 32 - 1));
    expect(back.list[1]).toEqual(Int32Array.of(-5));
    await expect(writeCheckpoint(dir, NAME, { rows: Float32Array.of(1, Number.NaN) })).rejects.toThrow(/non-finite number \(NaN\) at key "rows\[1\]"/);
    await expect(writeCheckpoint(dir, NAME, { a: { $array: 0 } })).rejects.toThrow(/reserved key/);
    expect(readCheckpoint<typeof st>(dir, NAME)!.seq).toBe(9);
  });

  it('reads a version 1 checkpoint (the whole state as JSON), as older engines wrote it', () => {
    const dir = tempDir();
    const body = Buffer.from(JSON.stringify(state(3)), 'utf8');
    const header = { format: 'tradeflow-checkpoint', version: 1, bytes: body.length, crc32: crc32(body).toString(16).padStart(8, '0'), writtenAt: '2026-11-01T00:00:00.000Z' };
    fs.writeFileSync(path.join(dir, NAME), Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]));
    expect(readCheckpoint<State>(dir, NAME)).toEqual(state(3));
    // A version 1 file cannot name arrays: one that does is damaged, not a state.
    const forged = Buffer.from(JSON.stringify({ a: { $array: 0 } }));
    const h2 = { ...header, bytes: forged.length, crc32: crc32(forged).toString(16).padStart(8, '0') };
    fs.writeFileSync(path.join(dir, NAME), Buffer.concat([Buffer.from(JSON.stringify(h2) + '\n'), forged]));
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/reference to array 0 that the header does not have/);
  });

  it('refuses a version 2 checkpoint whose array table does not match its bytes', async () => {
    const dir = tempDir();
    const file = path.join(dir, NAME);
    await writeCheckpoint(dir, NAME, { rows: new Float32Array(8) });
    const good = fs.readFileSync(file);
    const nl = good.indexOf(0x0a);
    const header = JSON.parse(good.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
    const body = good.subarray(nl + 1);
    const rewrite = (h: Record<string, unknown>): void => fs.writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(h) + '\n'), body]));
    rewrite({ ...header, arrays: [{ type: 'f32', length: 9 }] });
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/array 0 runs past the end of the state/);
    rewrite({ ...header, arrays: [{ type: 'f32', length: 7 }] });
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/take \d+ bytes but the state holds \d+/);
    rewrite({ ...header, arrays: [{ type: 'f16', length: 8 }] });
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/array 0 of the header has a bad type or length/);
    rewrite({ ...header, json: undefined });
    expect(errorOf(() => readCheckpoint(dir, NAME)).message).toMatch(/lacks the sizes/);
  });
});
