import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TradeflowError } from '../src/errors';
import { crc32 } from '../src/io/crc32';
import { DISK_FAULTS_ENV, type DiskFaultRule } from '../src/io/disk-faults';
import { FRAME_HEADER_BYTES, FeedbackLog, SEGMENT_HEADER_BYTES, segmentName, type FeedbackLogOptions } from '../src/learning/feedback-log';

const ROOT = path.resolve(__dirname, '..');
const dirs: string[] = [];
const logs: FeedbackLog[] = [];

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-feedback-'));
  dirs.push(d);
  return d;
}

async function openLog(dir: string, opts?: FeedbackLogOptions): Promise<FeedbackLog> {
  const log = await FeedbackLog.open(dir, opts);
  logs.push(log);
  return log;
}

afterEach(async () => {
  delete process.env[DISK_FAULTS_ENV];
  for (const log of logs.splice(0)) await log.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (i: number): string => `record ${i} ${'.'.repeat(i % 7)}`;

async function readAll(log: FeedbackLog, afterSeq = 0): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  await log.replay(afterSeq, (seq, payload) => out.push([seq, dec.decode(payload)]));
  return out;
}

/** A closed log in a fresh directory holding records 1..n (text(i)); returns the dir. */
async function logWith(n: number, opts?: FeedbackLogOptions): Promise<string> {
  const dir = tempDir();
  const log = await FeedbackLog.open(dir, opts);
  for (let i = 1; i <= n; i++) await log.append(enc.encode(text(i)));
  await log.close();
  return dir;
}

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /^\d{20}\.log$/.test(f)).sort();
}

/**
 * Makes the log's next write fail as a failing disk would (EBADF), by swapping its descriptor for
 * a read-only one on the same file. Not by closing it: the number could be reused by another open.
 */
function breakWrites(log: FeedbackLog): void {
  const inner = log as unknown as { fd: number };
  const writable = inner.fd;
  inner.fd = fs.openSync(path.join(log.dir, segmentFiles(log.dir).at(-1)!), 'r');
  fs.closeSync(writable);
}

/** Offsets of the frames in one segment file (assumes it is intact). */
function frameOffsets(file: string): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  for (let o = SEGMENT_HEADER_BYTES; o < buf.length; o += FRAME_HEADER_BYTES + buf.readUInt32LE(o)) out.push(o);
  return out;
}

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('crc32', () => {
  it('matches the standard check value and continues across pieces', () => {
    const check = enc.encode('123456789');
    expect(crc32(check)).toBe(0xcbf43926);
    const data = enc.encode('the quick brown fox jumps over the lazy dog'.repeat(37));
    expect(crc32(data.subarray(100), crc32(data.subarray(0, 100)))).toBe(crc32(data));
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('FeedbackLog: appends and replay', () => {
  it('numbers records from 1 and replays them exactly, across a reopen', async () => {
    const dir = tempDir();
    const log = await openLog(dir);
    expect(log.lastSeq).toBe(0);
    const payloads = [enc.encode('first'), new Uint8Array(0), Uint8Array.from([0, 255, 1, 254]), enc.encode('x'.repeat(10_000))];
    const seqs: number[] = [];
    for (const p of payloads) seqs.push(await log.append(p));
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(log.lastSeq).toBe(4);
    const got: Array<[number, Uint8Array]> = [];
    expect(await log.replay(0, (seq, payload) => got.push([seq, Uint8Array.from(payload)]))).toBe(4);
    expect(got).toEqual(payloads.map((p, i) => [i + 1, p]));
    expect((await readAll(log, 2)).map(([s]) => s)).toEqual([3, 4]);
    expect(await log.replay(4, () => expect.unreachable())).toBe(0);
    await log.close();

    const again = await openLog(dir);
    expect(again.lastSeq).toBe(4);
    expect(again.recovery).toMatchObject({ segments: 1, records: 4, firstSeq: 1, lastSeq: 4, truncated: null });
    const replayed: Uint8Array[] = [];
    await again.replay(0, (_seq, p) => replayed.push(Uint8Array.from(p)));
    expect(replayed).toEqual(payloads);
    expect(await again.append(enc.encode('fifth'))).toBe(5);
  });

  it('copies the payload at append, so the caller may reuse its buffer', async () => {
    const log = await openLog(tempDir());
    const buf = enc.encode('original');
    const done = log.append(buf);
    buf.fill(0x21);
    await done;
    expect(await readAll(log)).toEqual([[1, 'original']]);
  });

  it('gives seqs in call order and resolves each append only after an fsync that followed it', async () => {
    const log = await openLog(tempDir());
    const writers = 16;
    const perWriter = 25;
    const resolvedOrder: number[] = [];
    let violations = 0;
    const writer = async (w: number): Promise<number[]> => {
      const seqs: number[] = [];
      for (let n = 0; n < perWriter; n++) {
        const fsyncsBefore = log.stats().fsyncs;
        const seq = await log.append(enc.encode(`w${w} n${n}`));
        // An fsync completed between this append and its acknowledgement, and covered it.
        if (!(log.stats().fsyncs > fsyncsBefore && log.lastSeq >= seq)) violations++;
        resolvedOrder.push(seq);
        seqs.push(seq);
      }
      return seqs;
    };
    const all = await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
    const total = writers * perWriter;
    expect(violations).toBe(0);
    expect(all.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    for (const seqs of all) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // Continuations ran in seq order: that is what lets the server apply feedback in log order.
    expect(resolvedOrder).toEqual([...resolvedOrder].sort((a, b) => a - b));
    const s = log.stats();
    expect(s.appended).toBe(total);
    expect(s.fsyncs).toBe(s.groups);
    expect(s.fsyncs).toBeLessThan(total);
    expect(s.maxGroupRecords).toBeGreaterThan(1);
    expect(s.pendingRecords).toBe(0);
    expect(s.pendingBytes).toBe(0);
    const replayed = await readAll(log);
    expect(replayed.length).toBe(total);
  });

  it('puts everything that arrives during an fsync into the one group after it', async () => {
    const log = await openLog(tempDir());
    let firstDone = false;
    const first = log.append(enc.encode('a')).then((seq) => {
      firstDone = true;
      return seq;
    });
    const during: Array<Promise<number>> = [];
    // One append per event-loop turn until the first group is acknowledged.
    while (!firstDone) {
      await nextTick();
      if (!firstDone) during.push(log.append(enc.encode(`b${during.length}`)));
    }
    expect(await first).toBe(1);
    const seqs = await Promise.all(during);
    expect(seqs).toEqual(during.map((_, i) => i + 2));
    const s = log.stats();
    expect(s.groups).toBe(during.length > 0 ? 2 : 1);
    expect(s.fsyncs).toBe(s.groups);
  });

  it('holds a group for commitIntervalMs, and flush() commits it at once', async () => {
    const log = await openLog(tempDir(), { commitIntervalMs: 60_000 });
    const a = log.append(enc.encode('a'));
    await nextTick();
    await nextTick();
    const b = log.append(enc.encode('b'));
    await nextTick();
    const c = log.append(enc.encode('c'));
    expect(log.stats()).toMatchObject({ pendingRecords: 3, groups: 0, fsyncs: 0 });
    await log.flush();
    expect(await Promise.all([a, b, c])).toEqual([1, 2, 3]);
    expect(log.stats()).toMatchObject({ pendingRecords: 0, groups: 1, fsyncs: 1, appended: 3 });
  });

  it('commits a held group when its interval ends', async () => {
    const log = await openLog(tempDir(), { commitIntervalMs: 5 });
    const seqs = await Promise.all([log.append(enc.encode('a')), log.append(enc.encode('b'))]);
    expect(seqs).toEqual([1, 2]);
    expect(log.stats().groups).toBe(1);
  });

  it('skips fsync when durable is false', async () => {
    const dir = tempDir();
    const log = await openLog(dir, { durable: false });
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(enc.encode(text(i + 1)))));
    expect(log.stats()).toMatchObject({ appended: 50, fsyncs: 0 });
    await log.close();
    expect((await readAll(await openLog(dir))).length).toBe(50);
  });

  it('rejects at once with FEEDBACK_BACKLOG above maxPendingBytes, and accepts again once drained', async () => {
    const log = await openLog(tempDir(), { maxPendingBytes: 4096, commitIntervalMs: 60_000 });
    const payload = new Uint8Array(1000);
    const accepted = [1, 2, 3, 4].map(() => log.append(payload)); // 4 × 1016 bytes fit in 4096
    const refused = await log.append(payload).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(TradeflowError);
    expect(refused).toMatchObject({ code: 'FEEDBACK_BACKLOG', status: 503, headers: { 'Retry-After': '1' } });
    expect((refused as Error).message).toMatch(/4064 bytes waiting.*limit 4096/);
    expect(log.stats()).toMatchObject({ rejected: 1, pendingRecords: 4, pendingBytes: 4064 });
    await log.flush();
    expect(await Promise.all(accepted)).toEqual([1, 2, 3, 4]);
    const late = log.append(payload);
    await log.flush();
    expect(await late).toBe(5);
    await expect(log.append(new Uint8Array(5000))).rejects.toMatchObject({ code: 'FEEDBACK_TOO_LARGE', status: 413, message: /5000 bytes .* limit of 4080/ });
  });

  it('close() makes every accepted append durable, then refuses new ones', async () => {
    const dir = tempDir();
    const log = await FeedbackLog.open(dir, { commitIntervalMs: 60_000 });
    const pending = [1, 2, 3].map((i) => log.append(enc.encode(text(i))));
    await log.close();
    expect(await Promise.all(pending)).toEqual([1, 2, 3]);
    // The engine refuses feedback (DRAINING) before it closes the log: a later append is a caller's bug.
    await expect(log.append(enc.encode('late'))).rejects.toMatchObject({ code: 'INTERNAL', message: /is closed/ });
    await expect(log.rotate()).rejects.toMatchObject({ code: 'INTERNAL', message: /is closed/ });
    await log.close(); // idempotent
    expect(await readAll(await openLog(dir))).toEqual([1, 2, 3].map((i) => [i, text(i)]));
  });

  it('after a failed write, refuses that group with FEEDBACK_LOG_UNAVAILABLE and rolls over to a fresh segment for the next', async () => {
    const dir = tempDir();
    const log = await openLog(dir, { commitIntervalMs: 60_000 });
    const first = log.append(enc.encode(text(1)));
    await log.flush();
    expect(await first).toBe(1);
    breakWrites(log);
    const failed = [2, 3].map((i) => log.append(enc.encode(text(i))).then(() => null, (err: unknown) => err));
    await log.flush();
    for (const err of await Promise.all(failed)) {
      expect(err).toBeInstanceOf(TradeflowError);
      expect(err).toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE', status: 503, headers: { 'Retry-After': '1' }, message: /feedback log in .* could not write or fsync \(EBADF.*not acknowledged/ });
    }
    expect(log.stats()).toMatchObject({ appended: 1, lastSeq: 1, pendingRecords: 0, state: 'unavailable', faults: 1, rollovers: 0 });
    // The next group rolls over first (the descriptor that failed is never written again) and takes
    // the next seq: the refused records never had one.
    const after = log.append(enc.encode('after'));
    await log.flush();
    expect(await after).toBe(2);
    expect(log.stats()).toMatchObject({ state: 'ok', fault: null, rollovers: 1, segments: 2 });
    expect(segmentFiles(dir)).toEqual([segmentName(1), segmentName(2)]);
    await log.close();
    expect(await readAll(await openLog(dir))).toEqual([[1, text(1)], [2, 'after']]);
  });

  it('validates its options', async () => {
    await expect(FeedbackLog.open(tempDir(), { maxPendingBytes: 10 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(FeedbackLog.open(tempDir(), { commitIntervalMs: -1 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

/** Turns the given disk faults on (none: off) for this process; returns the hits so far. */
function faults(control: string, rules: Array<Omit<DiskFaultRule, 'errno'> & { errno?: string }>): number {
  process.env[DISK_FAULTS_ENV] = control;
  fs.writeFileSync(control + '.new', JSON.stringify({ faults: rules.map((r) => ({ errno: 'EIO', ...r })) }));
  fs.renameSync(control + '.new', control);
  return fs.existsSync(control + '.hits') ? fs.readFileSync(control + '.hits', 'utf8').trim().split('\n').length : 0;
}

const refusal = (p: Promise<number>): Promise<unknown> => p.then((seq) => ({ seq }), (err: unknown) => err);

describe('FeedbackLog: disk faults (injected, src/io/disk-faults.ts)', () => {
  it('ENOSPC part-way through a write: the group is refused, its bytes are cut at once, and a restart finds only what was acknowledged', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir);
    for (let i = 1; i <= 3; i++) expect(await log.append(enc.encode(text(i)))).toBe(i);
    const file = path.join(dir, segmentName(1));
    const acknowledged = fs.statSync(file).size;
    faults(control, [{ op: 'write', path: '/feedback-', errno: 'ENOSPC', partialBytes: 20 }].map((r) => ({ ...r, path: dir })));
    const err = await refusal(log.append(enc.encode('refused')));
    expect(err).toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE', status: 503, message: /ENOSPC: no space left on device, write/ });
    // 20 bytes reached the file, and were cut before the refusal was answered.
    expect(fs.statSync(file).size).toBe(acknowledged);
    // A kill -9 now: a new process opening the directory sees records 1..3 only.
    const other = await openLog(dir);
    expect(await readAll(other)).toEqual([1, 2, 3].map((i) => [i, text(i)]));
    await other.close();
    faults(control, []);
    expect(await log.append(enc.encode('four'))).toBe(4);
    await log.close();
    expect(await readAll(await openLog(dir))).toEqual([[1, text(1)], [2, text(2)], [3, text(3)], [4, 'four']]);
  });

  it('EIO on fdatasync: refused while it lasts (each group retries the roll-over), taken again without a restart once it clears', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir);
    expect(await log.append(enc.encode(text(1)))).toBe(1);
    faults(control, [{ op: 'fsync', path: dir }]);
    for (let i = 0; i < 3; i++) expect(await refusal(log.append(enc.encode(`refused ${i}`)))).toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE', message: /EIO/ });
    expect(log.stats()).toMatchObject({ state: 'unavailable', appended: 1, lastSeq: 1, fault: expect.stringMatching(/EIO/) });
    // The records were written before the fsync failed; the cut removed them, or the roll-over will.
    const hits = faults(control, []);
    expect(hits).toBeGreaterThanOrEqual(3);
    expect(await log.append(enc.encode(text(2)))).toBe(2);
    expect(log.stats()).toMatchObject({ state: 'ok', appended: 2, rollovers: 1, faults: expect.any(Number) });
    await log.close();
    const again = await openLog(dir);
    expect(await readAll(again)).toEqual([[1, text(1)], [2, text(2)]]);
    expect(segmentFiles(dir)).toEqual([segmentName(1), segmentName(2)]);
  });

  it('a roll-over that cannot create its segment (ENOSPC on open, EIO on the directory fsync) is retried by the next group', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir);
    expect(await log.append(enc.encode(text(1)))).toBe(1);
    faults(control, [{ op: 'write', path: dir }]);
    await expect(log.append(enc.encode('x'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    faults(control, [{ op: 'open', path: dir, errno: 'ENOSPC' }]);
    await expect(log.append(enc.encode('y'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE', message: /roll over .*ENOSPC/ });
    faults(control, [{ op: 'fsync', path: dir }]);
    await expect(log.append(enc.encode('z'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    // A checkpoint's rotation meanwhile fails with the fault too, and deletes nothing.
    await expect(log.rotate()).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    expect(segmentFiles(dir)).toEqual([segmentName(1)]);
    faults(control, []);
    expect(await log.append(enc.encode(text(2)))).toBe(2);
    await log.close();
    expect(await readAll(await openLog(dir))).toEqual([[1, text(1)], [2, text(2)]]);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a fault right after a rotation replaces the empty segment instead of adding one', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir);
    expect(await log.append(enc.encode(text(1)))).toBe(1);
    await log.rotate();
    faults(control, [{ op: 'write', path: segmentName(2) }]);
    await expect(log.append(enc.encode('x'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    faults(control, []);
    expect(await log.append(enc.encode(text(2)))).toBe(2);
    expect(segmentFiles(dir)).toEqual([segmentName(1), segmentName(2)]);
    await log.close();
    expect(await readAll(await openLog(dir))).toEqual([[1, text(1)], [2, text(2)]]);
  });

  it('the segment being full when its rotation fails: the group stays acknowledged, the next one rolls over', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir, { segmentBytes: 256 });
    faults(control, [{ op: 'open', path: dir, errno: 'ENOSPC' }]);
    const seqs: number[] = [];
    for (let i = 1; log.stats().state === 'ok'; i++) {
      seqs.push(await log.append(enc.encode(text(i))));
      await log.flush(); // after the rotation that follows the group
    }
    expect(log.stats()).toMatchObject({ state: 'unavailable', segments: 1, appended: seqs.length });
    await expect(log.append(enc.encode('waits'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    faults(control, []);
    expect(await log.append(enc.encode('next'))).toBe(seqs.length + 1);
    await log.close();
    expect((await readAll(await openLog(dir))).map(([s]) => s)).toEqual([...seqs, seqs.length + 1]);
  });

  it('acknowledged records found damaged when the roll-over reads them back: FEEDBACK_LOG_FAILED until a restart, which refuses to start', async () => {
    const dir = tempDir();
    const control = path.join(tempDir(), 'faults.json');
    const log = await openLog(dir);
    for (let i = 1; i <= 3; i++) await log.append(enc.encode(text(i)));
    faults(control, [{ op: 'write', path: dir }]);
    await expect(log.append(enc.encode('x'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_UNAVAILABLE' });
    const file = path.join(dir, segmentName(1));
    const bytes = fs.readFileSync(file);
    bytes[frameOffsets(file)[1]! + FRAME_HEADER_BYTES]! ^= 0x10;
    fs.writeFileSync(file, bytes);
    faults(control, []);
    await expect(log.append(enc.encode('y'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_FAILED', status: 500, message: /read back differs .*checksum mismatch/ });
    await expect(log.append(enc.encode('z'))).rejects.toMatchObject({ code: 'FEEDBACK_LOG_FAILED' });
    expect(log.stats()).toMatchObject({ state: 'failed' });
    await log.close();
    await expect(FeedbackLog.open(dir)).rejects.toMatchObject({ code: 'FEEDBACK_LOG_CORRUPT' });
  });
});

describe('FeedbackLog: recovery', () => {
  it('drops a torn last frame wherever it was cut, and appends cleanly after', async () => {
    const src = await logWith(4);
    const file = path.join(src, segmentName(1));
    const whole = fs.readFileSync(file);
    const lastFrame = frameOffsets(file)[3]!;
    for (let keep = lastFrame + 1; keep < whole.length; keep++) {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, segmentName(1)), whole.subarray(0, keep));
      const log = await openLog(dir);
      expect(log.lastSeq).toBe(3);
      expect(log.recovery.truncated).toMatchObject({ segment: segmentName(1), offset: lastFrame, discardedBytes: keep - lastFrame, sealed: false });
      expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(lastFrame);
      expect(await readAll(log)).toEqual([1, 2, 3].map((i) => [i, text(i)]));
      expect(await log.append(enc.encode('after'))).toBe(4);
      await log.close();
      const again = await openLog(dir);
      expect(again.recovery.truncated).toBeNull();
      expect(await readAll(again)).toEqual([[1, text(1)], [2, text(2)], [3, text(3)], [4, 'after']]);
      await again.close();
    }
  });

  it('drops garbage and zeros after the last good frame', async () => {
    for (const tail of [Buffer.from('garbage that is not a frame at all, 0123456789abcdef'), Buffer.alloc(4096), Buffer.from([7])]) {
      const dir = await logWith(5);
      const file = path.join(dir, segmentName(1));
      const good = fs.statSync(file).size;
      fs.appendFileSync(file, tail);
      const log = await openLog(dir);
      expect(log.recovery.truncated).toMatchObject({ offset: good, discardedBytes: tail.length });
      expect(await readAll(log)).toEqual([1, 2, 3, 4, 5].map((i) => [i, text(i)]));
      expect(await log.append(enc.encode('six'))).toBe(6);
      expect((await readAll(log, 5))).toEqual([[6, 'six']]);
    }
  });

  it('refuses a bad frame in the last segment that intact frames follow (damage, not a torn write), naming the segment and the byte; repair keeps the records before it', async () => {
    const dir = await logWith(5);
    const file = path.join(dir, segmentName(1));
    const offsets = frameOffsets(file);
    const third = offsets[2]!;
    const bytes = fs.readFileSync(file);
    bytes[third + FRAME_HEADER_BYTES + 3]! ^= 0x01;
    fs.writeFileSync(file, bytes);
    const err = await FeedbackLog.open(dir).then(
      () => null,
      (e: unknown) => e as TradeflowError,
    );
    expect(err).toMatchObject({ code: 'FEEDBACK_LOG_CORRUPT' });
    expect(err!.message).toContain(file);
    expect(err!.message).toContain(`checksum mismatch in the frame expected to hold seq 3 at byte ${third}, and an intact record follows it (seq 4 at byte ${offsets[3]})`);
    expect(err!.message).toMatch(/FEEDBACK_REPAIR=true \(--feedback-repair\) to keep the 2 records before it \(seqs 1..2\)/);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true); // refused: nothing touched

    const log = await openLog(dir, { repair: true });
    expect(log.recovery.truncated).toMatchObject({ segment: segmentName(1), offset: third, sealed: false, acknowledged: true, copiedTo: `${segmentName(1)}.discarded` });
    expect(log.recovery.truncated!.reason).toMatch(/checksum mismatch.*seq 3/);
    expect(fs.readFileSync(path.join(dir, `${segmentName(1)}.discarded`)).equals(bytes)).toBe(true);
    expect(log.lastSeq).toBe(2);
    expect(await readAll(log)).toEqual([[1, text(1)], [2, text(2)]]);
    expect(await log.append(enc.encode('new third'))).toBe(3);
    await log.close();
    const again = await openLog(dir);
    expect(again.recovery.truncated).toBeNull();
    expect(await readAll(again)).toEqual([[1, text(1)], [2, text(2)], [3, 'new third']]);
  });

  it('finds intact frames after damage to a length field, and takes a zero-filled or cut tail for a torn write', async () => {
    const dir = await logWith(6);
    const file = path.join(dir, segmentName(1));
    const offsets = frameOffsets(file);
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(0xfffffff0, offsets[1]!); // frame 2's length: the scan cannot step over it
    fs.writeFileSync(file, bytes);
    await expect(FeedbackLog.open(dir)).rejects.toThrow(new RegExp(`length field .* at byte ${offsets[1]}, and an intact record follows it \\(seq 3 at byte ${offsets[2]}\\)`));

    // Zeros over the last two frames (pages a crash never wrote): torn, cut without a flag.
    const torn = await logWith(6);
    const tornFile = path.join(torn, segmentName(1));
    const t = fs.readFileSync(tornFile);
    const at = frameOffsets(tornFile)[4]!;
    t.fill(0, at);
    fs.writeFileSync(tornFile, t);
    const log = await openLog(torn);
    expect(log.recovery.truncated).toMatchObject({ offset: at, acknowledged: false, copiedTo: null });
    expect(log.lastSeq).toBe(4);
  });

  it('refuses damage in a sealed segment, and with repair keeps what precedes it', async () => {
    const dir = await logWith(20, { segmentBytes: 256 }); // 40-odd-byte frames: several segments
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    const sealed = path.join(dir, files[1]!);
    const firstSeqOfSealed = Number(files[1]!.slice(0, 20));
    const bytes = fs.readFileSync(sealed);
    bytes[SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES]! ^= 0x40; // first payload byte of the segment
    fs.writeFileSync(sealed, bytes);

    const err = await FeedbackLog.open(dir).then(
      () => null,
      (e: unknown) => e as TradeflowError,
    );
    expect(err).toBeInstanceOf(TradeflowError);
    expect(err!.message).toContain(files[1]!);
    expect(err!.message).toMatch(new RegExp(`checksum mismatch .* at byte ${SEGMENT_HEADER_BYTES}, in a sealed segment: .*FEEDBACK_REPAIR=true`));
    expect(segmentFiles(dir)).toEqual(files); // refused: nothing touched

    const log = await openLog(dir, { repair: true });
    expect(log.recovery.truncated).toMatchObject({ segment: files[1], offset: SEGMENT_HEADER_BYTES, sealed: true, acknowledged: true, copiedTo: `${files[1]}.discarded` });
    expect(fs.readFileSync(path.join(dir, `${files[1]}.discarded`)).equals(bytes)).toBe(true);
    expect(log.recovery.discardedSegments).toEqual(files.slice(2).map((f) => `${f}.discarded`));
    expect(segmentFiles(dir)).toEqual(files.slice(0, 2));
    expect(log.lastSeq).toBe(firstSeqOfSealed - 1);
    expect((await readAll(log)).map(([s]) => s)).toEqual(Array.from({ length: firstSeqOfSealed - 1 }, (_, i) => i + 1));
    expect(await log.append(enc.encode('continues'))).toBe(firstSeqOfSealed);
  });

  it('refuses a missing middle segment, a foreign file and a header that disagrees with its name', async () => {
    const dir = await logWith(20, { segmentBytes: 256 });
    const files = segmentFiles(dir);
    fs.rmSync(path.join(dir, files[1]!));
    await expect(FeedbackLog.open(dir)).rejects.toThrow(/a segment is missing/);

    const foreign = tempDir();
    fs.writeFileSync(path.join(foreign, segmentName(1)), 'hello, I am not a log file at all');
    await expect(FeedbackLog.open(foreign)).rejects.toThrow(/bad magic/);

    const renamed = await logWith(2);
    fs.renameSync(path.join(renamed, segmentName(1)), path.join(renamed, segmentName(7)));
    await expect(FeedbackLog.open(renamed)).rejects.toThrow(/header says first seq 1 but its name says 7/);
  });

  it('re-initialises a last segment whose header was cut short', async () => {
    const dir = await logWith(3);
    const log0 = await openLog(dir);
    await log0.rotate();
    await log0.close();
    fs.truncateSync(path.join(dir, segmentName(4)), 5);
    const log = await openLog(dir);
    expect(log.recovery.truncated).toMatchObject({ segment: segmentName(4), offset: 0 });
    expect(log.lastSeq).toBe(3);
    expect(await log.append(enc.encode('four'))).toBe(4);
    await log.close();
    expect((await readAll(await openLog(dir))).map(([s]) => s)).toEqual([1, 2, 3, 4]);
  });
});

describe('FeedbackLog: segments', () => {
  it('starts a new segment past segmentBytes and replays across segments', async () => {
    const dir = tempDir();
    const log = await openLog(dir, { segmentBytes: 256 });
    for (let i = 1; i <= 40; i++) await log.append(enc.encode(text(i)));
    const s = log.stats();
    expect(s.segments).toBeGreaterThan(3);
    expect(segmentFiles(dir).length).toBe(s.segments);
    await log.close();
    const again = await openLog(dir, { segmentBytes: 256 });
    expect(await readAll(again)).toEqual(Array.from({ length: 40 }, (_, i) => [i + 1, text(i + 1)]));
    expect((await readAll(again, 33)).map(([seq]) => seq)).toEqual([34, 35, 36, 37, 38, 39, 40]);
  });

  it('rotate + truncateThrough keep exactly the records after the checkpoint', async () => {
    const dir = tempDir();
    const log = await openLog(dir);
    const add = async (from: number, to: number): Promise<void> => {
      for (let i = from; i <= to; i++) expect(await log.append(enc.encode(text(i)))).toBe(i);
    };
    await add(1, 10);
    await log.rotate();
    await log.rotate(); // empty active segment: no-op
    await add(11, 20);
    await log.rotate();
    await add(21, 25);
    expect(segmentFiles(dir)).toEqual([segmentName(1), segmentName(11), segmentName(21)]);

    expect(await log.truncateThrough(15)).toBe(1); // 11..20 still holds 16..20
    expect(segmentFiles(dir)).toEqual([segmentName(11), segmentName(21)]);
    expect((await readAll(log, 15)).map(([s]) => s)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);

    expect(await log.truncateThrough(25)).toBe(1); // the active segment stays
    expect(segmentFiles(dir)).toEqual([segmentName(21)]);
    expect(await readAll(log, 20)).toEqual([21, 22, 23, 24, 25].map((i) => [i, text(i)]));
    await expect(log.replay(3, () => undefined)).rejects.toThrow(/starts at seq 21 but the checkpoint covers seqs up to 3 only/);
    await add(26, 27);
    await log.close();

    const again = await openLog(dir);
    expect(again.recovery).toMatchObject({ firstSeq: 21, lastSeq: 27, records: 7 });
    expect((await readAll(again, 20)).map(([s]) => s)).toEqual([21, 22, 23, 24, 25, 26, 27]);
  });

  it('continues after the checkpoint when the log ends before it', async () => {
    const dir = await logWith(3);
    const log = await openLog(dir);
    expect(await log.replay(500, () => expect.unreachable())).toBe(0);
    expect(log.lastSeq).toBe(500);
    expect(segmentFiles(dir)).toEqual([segmentName(501)]);
    expect(await log.append(enc.encode('after the checkpoint'))).toBe(501);
    await log.close();
    const again = await openLog(dir);
    expect(await readAll(again, 500)).toEqual([[501, 'after the checkpoint']]);
  });
});

describe('FeedbackLog: kill -9', () => {
  const writerScript = path.join(ROOT, 'test', 'fixtures', 'feedback-writer.js');
  const built = path.join(ROOT, 'dist', 'src', 'learning', 'feedback-log.js');

  /** Runs the writer until it has acknowledged `atLeast` records, then SIGKILLs it; returns the acknowledged records. */
  function runAndKill(dir: string, atLeast: number): Promise<Map<number, string>> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [writerScript, dir, '16'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const acked = new Map<number, string>();
      let partial = '';
      let stderr = '';
      let killed = false;
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.on('data', (c: Buffer) => {
        const lines = (partial + c.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          if (line === 'ready') continue;
          const space = line.indexOf(' ');
          acked.set(Number(line.slice(0, space)), line.slice(space + 1));
        }
        if (!killed && acked.size >= atLeast) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        if (signal === 'SIGKILL' && killed) resolve(acked);
        else reject(new Error(`feedback writer exited (code ${code}, signal ${signal}) before being killed: ${stderr}`));
      });
    });
  }

  // kill -9 loses what the process had not handed to the kernel; it cannot lose the page cache, so
  // this checks the protocol (acknowledge only after the write, recover a torn tail, never reuse an
  // acknowledged seq), not the fsync itself, which only a power cut would exercise.
  it('keeps every acknowledged record, with its exact payload, through repeated kill -9s', async () => {
    // The child runs the compiled module: make sure it is the code under test (npm test builds first).
    if (!fs.existsSync(built)) throw new Error(`${built} is missing: build first (npx tsc -p tsconfig.json)`);
    const source = path.join(ROOT, 'src', 'learning', 'feedback-log.ts');
    if (fs.statSync(source).mtimeMs > fs.statSync(built).mtimeMs) throw new Error(`${built} is older than ${source}: rebuild (npx tsc -p tsconfig.json)`);
    const dir = tempDir();
    const acked = new Map<number, string>();
    for (let round = 0; round < 4; round++) {
      for (const [seq, payload] of await runAndKill(dir, 1000)) {
        expect(acked.has(seq)).toBe(false); // a seq is never handed out twice
        acked.set(seq, payload);
      }
      const log = await FeedbackLog.open(dir);
      const stored = new Map<number, string>();
      let expected = 1;
      await log.replay(0, (seq, payload) => {
        expect(seq).toBe(expected++);
        stored.set(seq, dec.decode(payload));
      });
      await log.close();
      let missing = 0;
      for (const [seq, payload] of acked) if (stored.get(seq) !== payload) missing++;
      expect(missing).toBe(0);
      expect(log.lastSeq).toBeGreaterThanOrEqual(Math.max(...acked.keys()));
    }
    expect(segmentFiles(dir).length).toBeGreaterThan(2); // 32 KiB segments: the crashes crossed rotations
  });
});
