/**
 * Append-only log of labelled feedback with group commit: `append` resolves only once its record
 * is on disk (written and fdatasync'ed), and every append that arrives while an fsync is running
 * shares the next single write + fsync.
 *
 * Layout of the log directory (`STATE_DIR/feedback/`):
 *
 *   00000000000000000001.log    segment whose first record has seq 1 (sealed)
 *   00000000000000004097.log    next segment, first seq 4097 (the active one: the highest name)
 *
 * A segment is named by the seq of its first record, zero-padded to 20 digits so that name order is
 * seq order, so the seqs a sealed segment holds are known without reading it: [its name, next
 * segment's name - 1]. Appends go to the last segment only. A new segment starts when the active
 * one reaches `segmentBytes` (after the group that crossed it) or on `rotate()`; `truncateThrough(seq)`
 * deletes sealed segments whose every record is <= seq. Names ending in `.discarded` are segments set
 * aside by a repair (see below) and are never read again.
 *
 * Segment file: a 16-byte header, then frames. All integers little-endian.
 *
 *   header: "TFLG" | u32 format version (1) | u64 first seq (must equal the name)
 *   frame:  u32 payload length | u32 crc32 | u64 seq | payload
 *
 * The crc32 (IEEE) covers the 8 seq bytes and the payload. Seqs are consecutive: a segment's first
 * frame has the seq of its name and each next frame the seq before it + 1; the log's first record
 * ever is seq 1, so seq 0 means "nothing" (a checkpoint taken before any feedback).
 *
 * Recovery (`open`) reads every segment and stops at the first frame that is cut short, has a length
 * over the limit, a checksum mismatch or an unexpected seq:
 * - in the last segment, when no intact frame follows it, it is a torn write from a crash (no record
 *   at or after it was acknowledged, because acknowledgement waits for fsync, and the write after an
 *   fsync starts no earlier than the fsync's end): the file is truncated there, so the log ends at
 *   the last good frame and later appends are clean. `recovery` says what was cut so that the engine
 *   can log it.
 * - in the last segment with an intact frame after it (a valid checksum and a later seq), or in a
 *   sealed segment (sealed segments were fsynced before the next began), it cannot be a crash of the
 *   process: acknowledged feedback is damaged, and `open` refuses with an error naming the file and
 *   the byte offset, unless opened with `repair: true` (FEEDBACK_REPAIR), which copies the damaged
 *   segment to `<name>.discarded`, truncates it there and renames every later segment to
 *   `<name>.discarded`. Frames after a bad one are never applied even when they look intact: the
 *   learner is order dependent, so applying records around a hole would build a state no run ever
 *   had. (A power loss during a write can leave the last, unacknowledged group with a hole and intact
 *   frames after it, since pages reach the disk in any order; that is refused too, as it cannot be
 *   told from damage, and the repair then drops only what was never acknowledged.)
 * A last segment whose header is cut short or zero-filled (crash while creating it) is re-initialised.
 * A bad header anywhere else, a header that disagrees with its name, or a gap between segments is an
 * error (no repair: those are not crash artefacts).
 *
 * Disk faults (ENOSPC, EIO) on a write, an fsync or a new segment: the group that failed and nothing
 * else is refused, with FEEDBACK_LOG_UNAVAILABLE (503, Retry-After); nothing in it was acknowledged.
 * The log then rolls over before it writes again, because after a failed fsync the kernel may have
 * dropped the dirty pages, or marked them clean, so writing on into the same file could acknowledge
 * data that never reaches the disk:
 *   1. cut: the active segment is truncated back to the end of its last acknowledged frame (through
 *      a new descriptor) and fdatasync'ed, so that a restart does not find the refused records,
 *      which a client may send again (done at once on the failure, and retried here if it failed);
 *   2. verify: the segment is read back and must hold exactly the frames acknowledged in it, every
 *      checksum and seq right, and nothing after; if not, acknowledged records are damaged and the
 *      log refuses every append with FEEDBACK_LOG_FAILED (500) until a restart, whose recovery
 *      checks the files;
 *   3. roll: a fresh segment starts at the next seq (its name made durable by a directory fsync),
 *      and appends go there. The old segment is sealed as it is on disk.
 * Until a roll-over succeeds every group tries it first and is refused if it fails, so the log
 * takes feedback again as soon as the disk does, without a restart, and with no seq lost or given
 * twice: refused records never got one. A crash after a failed fsync and before the cut succeeded
 * may leave refused records for the next start to find (at most the groups that failed meanwhile).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { tfError, type TradeflowError } from '../errors';
import { fsyncDirectory, fsyncDirectorySync, removeLeftoverTemps } from '../io/durable-file';
import { crc32 } from '../io/crc32';
import { checkDiskFault, diskFault, faultError } from '../io/disk-faults';

export const SEGMENT_HEADER_BYTES = 16;
export const FRAME_HEADER_BYTES = 16;
export const SEGMENT_FORMAT_VERSION = 1;
/** Format limit on one payload; a length field above it is damage, not a record. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
const MAGIC = 'TFLG';
const SEGMENT_RE = /^(\d{20})\.log$/;
const TWO_32 = 2 ** 32;
const INITIAL_GROUP_BYTES = 64 * 1024;
/** A group buffer that grew past this during a burst is dropped instead of kept as the spare. */
const KEEP_GROUP_BYTES = 1024 * 1024;

export interface FeedbackLogOptions {
  /** A group waits at least this long after its first record before its write (default 0: as soon as the previous fsync ends). */
  commitIntervalMs?: number;
  /** false skips every fsync: for benchmarks only, records may be lost on a crash. Default true. */
  durable?: boolean;
  /** Bytes (frames) waiting to be durable above which `append` rejects at once with FEEDBACK_BACKLOG. Default 32 MiB. */
  maxPendingBytes?: number;
  /** A new segment starts after the group that takes the active one to this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Truncate at damaged acknowledged records instead of refusing to open (FEEDBACK_REPAIR; see the module comment). */
  repair?: boolean;
}

export type FeedbackLogStats = {
  /** Records acknowledged (durable) since open. */
  appended: number;
  /** Groups committed: one write (and one fsync when durable) each. */
  groups: number;
  /** fdatasync calls on segment files (directory fsyncs not included). */
  fsyncs: number;
  /** Frame bytes written since open. */
  bytes: number;
  /** Records and frame bytes appended but not yet acknowledged. */
  pendingRecords: number;
  pendingBytes: number;
  /** Appends refused because `maxPendingBytes` was reached. */
  rejected: number;
  /** Largest group so far, in records. */
  maxGroupRecords: number;
  /** Seq of the last acknowledged record (0: none yet). */
  lastSeq: number;
  segments: number;
  rotations: number;
  /** Writes, fsyncs and segment starts that failed (disk faults), and roll-overs after them. */
  faults: number;
  rollovers: number;
  /** 'unavailable' between a disk fault and the roll-over after it; 'failed' once acknowledged records were found damaged. */
  state: 'ok' | 'unavailable' | 'failed';
  /** The last disk fault, while it lasts. */
  fault: string | null;
};

export interface RecoveryReport {
  /** Segment files found at open. */
  segments: number;
  /** Good records found at open, and their seq range (firstSeq > lastSeq when there are none). */
  records: number;
  firstSeq: number;
  lastSeq: number;
  /** Where the log was cut, if it was. */
  truncated: null | {
    segment: string;
    offset: number;
    discardedBytes: number;
    reason: string;
    sealed: boolean;
    /** True when what was cut had been acknowledged (damage, cut only with repair); false for a torn tail. */
    acknowledged: boolean;
    /** With repair, where the damaged segment was copied before the cut. */
    copiedTo: string | null;
  };
  /** Segments renamed to `.discarded` by a repair. */
  discardedSegments: string[];
}

interface Segment {
  name: string;
  firstSeq: number;
}

interface ResolvedOptions {
  commitIntervalMs: number;
  durable: boolean;
  maxPendingBytes: number;
  segmentBytes: number;
  repair: boolean;
}

function resolveOptions(opts: FeedbackLogOptions): ResolvedOptions {
  const o: ResolvedOptions = {
    commitIntervalMs: opts.commitIntervalMs ?? 0,
    durable: opts.durable ?? true,
    maxPendingBytes: opts.maxPendingBytes ?? 32 * 1024 * 1024,
    segmentBytes: opts.segmentBytes ?? 64 * 1024 * 1024,
    repair: opts.repair ?? false,
  };
  const bad = (what: string): never => {
    throw tfError('CONFIG_INVALID', `feedback log: ${what}`);
  };
  if (!(Number.isFinite(o.commitIntervalMs) && o.commitIntervalMs >= 0)) bad(`commitIntervalMs must be a number >= 0, got ${o.commitIntervalMs}`);
  if (!(Number.isSafeInteger(o.maxPendingBytes) && o.maxPendingBytes >= 1024)) bad(`maxPendingBytes must be an integer >= 1024, got ${o.maxPendingBytes}`);
  if (!(Number.isSafeInteger(o.segmentBytes) && o.segmentBytes >= 256)) bad(`segmentBytes must be an integer >= 256, got ${o.segmentBytes}`);
  return o;
}

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.log`;
}

function segmentHeader(firstSeq: number): Buffer {
  const h = Buffer.alloc(SEGMENT_HEADER_BYTES);
  h.write(MAGIC, 0, 'latin1');
  h.writeUInt32LE(SEGMENT_FORMAT_VERSION, 4);
  writeSeq(h, 8, firstSeq);
  return h;
}

// Two u32 halves instead of writeBigUInt64LE: no BigInt per record, and seqs stay below 2^53.
function writeSeq(buf: Buffer, offset: number, seq: number): void {
  buf.writeUInt32LE(seq >>> 0, offset);
  buf.writeUInt32LE(Math.floor(seq / TWO_32), offset + 4);
}

function readSeq(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32;
}

/** 'ok', 'torn' (cut short or zero-filled: a crash while the segment was being created) or what is wrong. */
function checkHeader(buf: Buffer, firstSeq: number): string {
  if (buf.length < SEGMENT_HEADER_BYTES) return 'torn';
  const head = buf.subarray(0, SEGMENT_HEADER_BYTES);
  if (head.every((b) => b === 0)) return 'torn';
  if (head.toString('latin1', 0, 4) !== MAGIC) return 'it is not a tradeflow feedback segment (bad magic)';
  const version = head.readUInt32LE(4);
  if (version !== SEGMENT_FORMAT_VERSION) {
    return version > SEGMENT_FORMAT_VERSION ? `format version ${version} is newer than this engine reads (${SEGMENT_FORMAT_VERSION})` : `unknown format version ${version}`;
  }
  const headerSeq = readSeq(head, 8);
  if (headerSeq !== firstSeq) return `its header says first seq ${headerSeq} but its name says ${firstSeq}`;
  return 'ok';
}

interface Scan {
  /** Offset just past the last good frame. */
  end: number;
  records: number;
  /** Why the scan stopped before the end of the buffer, if it did. */
  problem?: string;
}

/** Walks frames from `start`, expecting consecutive seqs from `firstSeq`; stops at the first bad one. */
function scanFrames(buf: Buffer, start: number, firstSeq: number, onRecord?: (seq: number, payload: Buffer) => void): Scan {
  let o = start;
  let seq = firstSeq;
  const stop = (problem: string): Scan => ({ end: o, records: seq - firstSeq, problem });
  while (o < buf.length) {
    if (buf.length - o < FRAME_HEADER_BYTES) return stop(`a frame header cut short (${buf.length - o} of ${FRAME_HEADER_BYTES} bytes)`);
    const len = buf.readUInt32LE(o);
    if (len > MAX_RECORD_BYTES) return stop(`a length field of ${len} bytes, over the ${MAX_RECORD_BYTES}-byte limit`);
    const end = o + FRAME_HEADER_BYTES + len;
    if (end > buf.length) return stop(`a frame cut short (${buf.length - o - FRAME_HEADER_BYTES} of ${len} payload bytes)`);
    if (crc32(buf.subarray(o + 8, end)) !== buf.readUInt32LE(o + 4)) return stop(`a checksum mismatch in the frame expected to hold seq ${seq}`);
    const got = readSeq(buf, o + 8);
    if (got !== seq) return stop(`seq ${got} where seq ${seq} was expected`);
    if (onRecord) onRecord(seq, buf.subarray(o + FRAME_HEADER_BYTES, end));
    seq++;
    o = end;
  }
  return { end: o, records: seq - firstSeq };
}

/**
 * The frames of one group, laid out back to back in one buffer so that a group is one write.
 * Seqs and checksums are filled in at commit, not at append: a seq is then only ever given to a
 * record in the order it reaches the disk.
 */
class Group {
  buf: Buffer;
  used = 0;
  count = 0;
  firstAt = 0;
  resolves: Array<(seq: number) => void> = [];
  rejects: Array<(err: Error) => void> = [];

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  add(payload: Uint8Array, resolve: (seq: number) => void, reject: (err: Error) => void): void {
    const need = this.used + FRAME_HEADER_BYTES + payload.length;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    this.buf.writeUInt32LE(payload.length, this.used);
    // Copied now, so the caller may reuse its buffer as soon as append returns.
    this.buf.set(payload, this.used + FRAME_HEADER_BYTES);
    this.used = need;
    this.count++;
    this.resolves.push(resolve);
    this.rejects.push(reject);
  }

  seal(firstSeq: number): void {
    let o = 0;
    for (let seq = firstSeq; o < this.used; seq++) {
      const end = o + FRAME_HEADER_BYTES + this.buf.readUInt32LE(o);
      writeSeq(this.buf, o + 8, seq);
      this.buf.writeUInt32LE(crc32(this.buf.subarray(o + 8, end)), o + 4);
      o = end;
    }
  }

  reset(): void {
    this.used = 0;
    this.count = 0;
    this.resolves = [];
    this.rejects = [];
  }
}

/** `length` bytes of `buf` at `position` of `file` (open as `fd`), however many writes it takes. */
function writeAll(fd: number, buf: Buffer, length: number, position: number, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // A disk that fills up part-way writes some bytes, then fails: an injected fault may do the same.
    const fault = diskFault('write', file);
    const limit = fault ? Math.min(length, fault.partialBytes ?? 0) : length;
    let done = 0;
    const step = (): void => {
      if (done >= limit) return fault ? reject(faultError(fault, 'write', file)) : resolve();
      fs.write(fd, buf, done, limit - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(new Error(`write of ${length - done} bytes wrote nothing`));
        done += n;
        step();
      });
    };
    step();
  });
}

function fdatasync(fd: number, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      checkDiskFault('fsync', file, 'fdatasync');
    } catch (err) {
      reject(err);
      return;
    }
    fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()));
  });
}

// Raw descriptors rather than FileHandles: a FileHandle that is garbage-collected closes its fd
// behind our back, and the callback API is the cheapest path to the threadpool.
function openFd(file: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) => {
    try {
      // Only opens that create a file can meet a full disk.
      if (flags.includes('w') || flags.includes('x')) checkDiskFault('open', file);
    } catch (err) {
      reject(err);
      return;
    }
    fs.open(file, flags, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

function corrupt(file: string, what: string): TradeflowError {
  return tfError('FEEDBACK_LOG_CORRUPT', `feedback log segment ${file} is damaged: ${what}`);
}

/** A name for `name` set aside that no earlier discarded copy has. */
function asideName(dir: string, name: string): string {
  let target = `${name}.discarded`;
  for (let n = 1; fs.existsSync(path.join(dir, target)); n++) target = `${name}.discarded-${n}`;
  return target;
}

/** Renames `name` aside without overwriting an earlier discarded copy. */
function setAside(dir: string, name: string): string {
  const target = asideName(dir, name);
  fs.renameSync(path.join(dir, name), path.join(dir, target));
  return target;
}

/**
 * The first intact frame at or after `from` whose seq is `seq` or later: what follows a bad frame,
 * if anything does. A byte-by-byte search (the bad frame's length field may be the damage), run
 * only on a damaged segment at start-up; a false match needs a plausible length, a plausible seq
 * and a 32-bit checksum to agree by chance.
 */
function findIntactFrame(buf: Buffer, from: number, seq: number): { offset: number; seq: number } | null {
  const maxSeq = seq + Math.floor((buf.length - from) / FRAME_HEADER_BYTES);
  for (let o = from; o + FRAME_HEADER_BYTES <= buf.length; o++) {
    const len = buf.readUInt32LE(o);
    if (len > buf.length - o - FRAME_HEADER_BYTES) continue;
    const got = readSeq(buf, o + 8);
    if (got < seq || got > maxSeq) continue;
    if (crc32(buf.subarray(o + 8, o + FRAME_HEADER_BYTES + len)) === buf.readUInt32LE(o + 4)) return { offset: o, seq: got };
  }
  return null;
}

/** Writes (or rewrites, with flags 'r+') `file` as a segment holding no records yet. */
function writeEmptySegment(file: string, firstSeq: number, flags: 'wx' | 'r+', durable: boolean): void {
  const fd = fs.openSync(file, flags);
  try {
    if (flags === 'r+') fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, segmentHeader(firstSeq), 0, SEGMENT_HEADER_BYTES, 0);
    if (durable) fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function truncateSync(file: string, end: number, durable: boolean): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.ftruncateSync(fd, end);
    if (durable) fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

interface Recovered {
  kept: Segment[];
  /** Bytes and records of the last kept segment (the active one). */
  size: number;
  records: number;
  report: RecoveryReport;
}

/** Validates the segments in `dir` in seq order, cutting a torn tail; throws on damage it may not cut. */
function recoverSegments(dir: string, opts: ResolvedOptions): Recovered {
  const names = fs.readdirSync(dir).filter((n) => SEGMENT_RE.test(n)).sort();
  const out: Recovered = {
    kept: [],
    size: SEGMENT_HEADER_BYTES,
    records: 0,
    report: { segments: names.length, records: 0, firstSeq: 1, lastSeq: 0, truncated: null, discardedSegments: [] },
  };
  for (let i = 0; i < names.length; i++) {
    if (recoverSegment(dir, names, i, opts, out) === 'stop') break;
  }
  return out;
}

/** One segment of {@link recoverSegments}: 'stop' once the log ends in it. */
function recoverSegment(dir: string, names: readonly string[], i: number, opts: ResolvedOptions, out: Recovered): 'next' | 'stop' {
  const name = names[i]!;
  const file = path.join(dir, name);
  const last = i === names.length - 1;
  const firstSeq = Number(name.slice(0, 20));
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw corrupt(file, 'its name is not a valid first seq');
  if (out.kept.length > 0) {
    const expected = out.kept[out.kept.length - 1]!.firstSeq + out.records;
    if (firstSeq !== expected) {
      throw corrupt(file, `it starts at seq ${firstSeq} but the segment before it ends at seq ${expected - 1}: a segment is missing, or was renamed`);
    }
  } else {
    out.report.firstSeq = firstSeq;
  }
  const buf = fs.readFileSync(file);
  const head = checkHeader(buf, firstSeq);
  out.kept.push({ name, firstSeq });
  if (head === 'torn' && last) {
    // Crash while the segment was being created: nothing in it was ever acknowledged.
    writeEmptySegment(file, firstSeq, 'r+', opts.durable);
    out.report.truncated = { segment: name, offset: 0, discardedBytes: buf.length, reason: 'a segment header cut short or zero-filled', sealed: false, acknowledged: false, copiedTo: null };
    out.size = SEGMENT_HEADER_BYTES;
    out.records = 0;
    return 'stop';
  }
  if (head !== 'ok') throw corrupt(file, head === 'torn' ? 'its header is cut short or zero-filled, and it is not the last segment' : head);
  const scan = scanFrames(buf, SEGMENT_HEADER_BYTES, firstSeq);
  out.size = scan.end;
  out.records = scan.records;
  out.report.records += scan.records;
  if (scan.problem === undefined) return 'next';
  cutDamage(dir, names, i, { ...scan, problem: scan.problem }, buf, opts, out);
  return 'stop';
}

/**
 * Where {@link recoverSegment} found a bad frame: a torn tail is cut; damage to acknowledged records
 * (a sealed segment, or intact frames after the bad one) is refused, or with repair set aside and cut.
 */
function cutDamage(dir: string, names: readonly string[], i: number, scan: Scan & { problem: string }, buf: Buffer, opts: ResolvedOptions, out: Recovered): void {
  const name = names[i]!;
  const file = path.join(dir, name);
  const last = i === names.length - 1;
  const firstSeq = out.kept[out.kept.length - 1]!.firstSeq;
  const intact = last ? findIntactFrame(buf, scan.end + 1, firstSeq + scan.records) : null;
  const acknowledged = !last || intact !== null;
  if (acknowledged && !opts.repair) {
    const where = last ? `and an intact record follows it (seq ${intact!.seq} at byte ${intact!.offset})` : 'in a sealed segment';
    const kept = out.report.records === 0 ? 'no record' : `the ${out.report.records} records before it (seqs ${out.report.firstSeq}..${firstSeq + scan.records - 1})`;
    throw corrupt(
      file,
      `${scan.problem} at byte ${scan.end}, ${where}: records that were acknowledged are damaged (this is not a torn write). ` +
        `Restore the state directory from a backup, or start with FEEDBACK_REPAIR=true (--feedback-repair) to keep ${kept} ` +
        `and set the rest aside: this segment is copied to ${name}.discarded and cut at byte ${scan.end}, later segments are renamed to *.discarded`,
    );
  }
  // Set aside before cutting, so that a repair never destroys the only copy of what it drops.
  const copiedTo = acknowledged ? asideName(dir, name) : null;
  if (copiedTo !== null) fs.copyFileSync(file, path.join(dir, copiedTo));
  truncateSync(file, scan.end, opts.durable);
  out.report.truncated = { segment: name, offset: scan.end, discardedBytes: buf.length - scan.end, reason: scan.problem, sealed: !last, acknowledged, copiedTo };
  for (const later of names.slice(i + 1)) out.report.discardedSegments.push(setAside(dir, later));
  if (acknowledged && opts.durable) fsyncDirectorySync(dir);
}

export class FeedbackLog {

  private gather: Group;
  private spare: Group | null = null;
  private inflight: Group | null = null;
  private chain: Promise<void> = Promise.resolve();
  private commitQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closing = false;
  private closed: Promise<void> | null = null;
  /** Acknowledged records found damaged: every append is refused until a restart. */
  private failure: TradeflowError | null = null;
  /** A disk fault since the last roll-over: the next group rolls over first (see the module comment). */
  private fault: { error: TradeflowError; verified: boolean } | null = null;
  private nextSeq: number;
  private durableSeq: number;
  private readonly maxRecordBytes: number;
  private readonly counters = { appended: 0, groups: 0, fsyncs: 0, bytes: 0, rejected: 0, maxGroupRecords: 0, rotations: 0, faults: 0, rollovers: 0 };

  private constructor(
    readonly dir: string,
    private readonly opts: ResolvedOptions,
    private readonly segments: Segment[],
    private fd: number,
    private size: number,
    private activeRecords: number,
    /** What `open` found and cut; log it at start. */
    readonly recovery: RecoveryReport,
  ) {
    this.nextSeq = segments[segments.length - 1]!.firstSeq + activeRecords;
    this.durableSeq = this.nextSeq - 1;
    this.gather = new Group(INITIAL_GROUP_BYTES);
    this.maxRecordBytes = Math.min(MAX_RECORD_BYTES, opts.maxPendingBytes - FRAME_HEADER_BYTES);
  }

  /**
   * Opens (creating if needed) the log in `dir`, validating every segment and cutting a torn tail
   * (see the module comment). Synchronous I/O inside: it runs at start-up, before serving.
   */
  static async open(dir: string, options: FeedbackLogOptions = {}): Promise<FeedbackLog> {
    const opts = resolveOptions(options);
    const made = fs.mkdirSync(dir, { recursive: true });
    if (made !== undefined && opts.durable) fsyncDirectorySync(path.dirname(path.resolve(dir)));
    // A roll-over that replaced an empty segment and crashed before its rename left a temp file.
    removeLeftoverTemps(dir);
    const found = recoverSegments(dir, opts);
    if (found.kept.length === 0) {
      const name = segmentName(1);
      writeEmptySegment(path.join(dir, name), 1, 'wx', opts.durable);
      if (opts.durable) fsyncDirectorySync(dir);
      found.kept.push({ name, firstSeq: 1 });
    }
    const active = found.kept[found.kept.length - 1]!;
    found.report.lastSeq = active.firstSeq + found.records - 1;
    const fd = fs.openSync(path.join(dir, active.name), 'r+');
    return new FeedbackLog(dir, opts, found.kept, fd, found.size, found.records, found.report);
  }

  /** Seq of the last acknowledged record (0 when the log has never held one). */
  get lastSeq(): number {
    return this.durableSeq;
  }

  /**
   * Appends one record; resolves with its seq once it is durable. Records get seqs in the order of
   * their `append` calls, and the promises of a group resolve in seq order, so work chained on them
   * runs in log order. Rejects at once with FEEDBACK_BACKLOG (503, Retry-After) when `maxPendingBytes`
   * are already waiting, FEEDBACK_TOO_LARGE for a payload that could never fit, FEEDBACK_LOG_FAILED
   * once acknowledged records were found damaged, and INTERNAL after `close()`; rejects later with
   * FEEDBACK_LOG_UNAVAILABLE (503, Retry-After) when its group meets a disk fault (module comment).
   * The payload is copied before this returns.
   */
  append(payload: Uint8Array): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(this.closedError());
    if (payload.length > this.maxRecordBytes) {
      return Promise.reject(tfError('FEEDBACK_TOO_LARGE', { bytes: payload.length, limit: this.maxRecordBytes }));
    }
    const frame = FRAME_HEADER_BYTES + payload.length;
    const pending = this.pendingBytes();
    if (pending + frame > this.opts.maxPendingBytes) {
      this.counters.rejected++;
      return Promise.reject(tfError('FEEDBACK_BACKLOG', { pendingBytes: pending, limit: this.opts.maxPendingBytes }));
    }
    const g = this.gather;
    if (g.count === 0) g.firstAt = performance.now();
    const done = new Promise<number>((resolve, reject) => g.add(payload, resolve, reject));
    this.kick();
    return done;
  }

  /** Resolves once every record appended before the call is durable (or has failed), ignoring `commitIntervalMs`. */
  flush(): Promise<void> {
    this.cancelTimers();
    return this.exclusive(() => this.commitGroup());
  }

  /**
   * Calls `onRecord` (synchronously, in seq order) for every record with seq > afterSeq; resolves
   * with how many. `payload` is a view of the segment just read: copy it to keep it.
   * `afterSeq` is the seq the caller's checkpoint covers. If the log no longer reaches back to
   * afterSeq + 1, that is an error (records are missing). If the log ends before afterSeq (it was
   * deleted or lost while the checkpoint survived), its old records are all covered by the
   * checkpoint: they are removed and the log continues at afterSeq + 1, so that new seqs never fall
   * inside the checkpoint's range.
   */
  replay(afterSeq: number, onRecord: (seq: number, payload: Uint8Array) => void): Promise<number> {
    return this.exclusive(async () => {
      this.throwIfUnusable();
      if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw tfError('INTERNAL', `replay: afterSeq must be an integer >= 0, got ${afterSeq}`);
      const first = this.segments[0]!.firstSeq;
      if (afterSeq < first - 1) {
        throw tfError(
          'FEEDBACK_LOG_CORRUPT',
          `the feedback log in ${this.dir} starts at seq ${first} but the checkpoint covers seqs up to ${afterSeq} only: ` +
            `records ${afterSeq + 1}..${first - 1} are missing (an older checkpoint restored after the log was truncated?). ` +
            `Restore the matching checkpoint, or move the checkpoint and the feedback directory aside to start from scratch`,
        );
      }
      if (afterSeq > this.durableSeq) {
        try {
          await this.restartAt(afterSeq + 1);
        } catch (err) {
          this.fail(err as Error);
          throw this.failure;
        }
        return 0;
      }
      let delivered = 0;
      for (let i = 0; i < this.segments.length; i++) {
        const seg = this.segments[i]!;
        const active = i === this.segments.length - 1;
        const end = active ? this.nextSeq : this.segments[i + 1]!.firstSeq;
        if (end - 1 <= afterSeq) continue;
        const file = path.join(this.dir, seg.name);
        let buf = await fs.promises.readFile(file);
        if (active) buf = buf.subarray(0, this.size);
        const head = checkHeader(buf, seg.firstSeq);
        if (head !== 'ok') throw corrupt(file, `changed since the log was opened: ${head === 'torn' ? 'header cut short' : head}`);
        const scan = scanFrames(buf, SEGMENT_HEADER_BYTES, seg.firstSeq, (seq, payload) => {
          if (seq <= afterSeq) return;
          onRecord(seq, payload);
          delivered++;
        });
        if (scan.problem !== undefined || seg.firstSeq + scan.records !== end) {
          throw corrupt(file, `changed since the log was opened: ${scan.problem ?? `it holds seqs up to ${seg.firstSeq + scan.records - 1}, not ${end - 1}`}`);
        }
      }
      return delivered;
    });
  }

  /**
   * Seals the active segment and starts a new one (after a checkpoint, so that `truncateThrough`
   * can drop what the checkpoint covers). A no-op when the active segment holds no record.
   */
  rotate(): Promise<void> {
    return this.exclusive(async () => {
      this.throwIfUnusable();
      // After a disk fault the rotation is the roll-over (a checkpoint's rotation retries it).
      if (this.fault) await this.rollOver();
      else if (this.activeRecords > 0) await this.startSegment();
    });
  }

  /**
   * Deletes every sealed segment whose records all have seq <= `seq` (the seq a durable checkpoint
   * covers); resolves with how many. The active segment is never deleted: call `rotate()` first.
   */
  truncateThrough(seq: number): Promise<number> {
    return this.exclusive(async () => {
      this.throwIfUnusable();
      let removed = 0;
      while (this.segments.length > 1 && this.segments[1]!.firstSeq - 1 <= seq) {
        const file = path.join(this.dir, this.segments[0]!.name);
        checkDiskFault('unlink', file);
        await fs.promises.unlink(file);
        this.segments.shift();
        removed++;
      }
      // Oldest first, then one directory fsync: a crash part-way leaves a contiguous suffix of
      // segments, never a hole that `open` would have to refuse.
      if (removed > 0 && this.opts.durable) await fsyncDirectory(this.dir);
      return removed;
    });
  }

  stats(): FeedbackLogStats {
    return {
      ...this.counters,
      pendingRecords: this.gather.count + (this.inflight?.count ?? 0),
      pendingBytes: this.pendingBytes(),
      lastSeq: this.durableSeq,
      segments: this.segments.length,
      state: this.failure ? 'failed' : this.fault ? 'unavailable' : 'ok',
      fault: (this.failure ?? this.fault?.error)?.message ?? null,
    };
  }

  /** Refuses new appends, makes every accepted one durable, then closes the file. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      await this.flush();
      await this.exclusive(() => closeFd(this.fd));
    })();
    return this.closed;
  }

  private pendingBytes(): number {
    return this.gather.used + (this.inflight?.used ?? 0);
  }

  private throwIfUnusable(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw this.closedError();
  }

  // A closed log is only ever used by a caller that forgot it closed it: the engine stops taking
  // feedback (DRAINING) before it closes the log.
  private closedError(): TradeflowError {
    return tfError('INTERNAL', `the feedback log in ${this.dir} is closed`);
  }

  /** Runs file operations one at a time, in call order: commits, rotations, truncations, replay, close. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Schedules the next group unless one is queued or running (it will call back when done). */
  private kick(): void {
    if (this.commitQueued || this.timer !== undefined || this.immediate !== undefined) return;
    if (this.gather.count === 0 || this.failure) return;
    const wait = this.gather.firstAt + this.opts.commitIntervalMs - performance.now();
    // setImmediate rather than committing now: every append made in this turn of the event loop
    // (all the requests read in one poll, the continuations of the group just acknowledged) joins.
    if (wait >= 1) this.timer = setTimeout(this.onTimer, Math.ceil(wait));
    else this.immediate = setImmediate(this.onTimer);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    this.commitQueued = true;
    const done = (): void => {
      this.commitQueued = false;
      this.kick();
    };
    this.exclusive(() => this.commitGroup()).then(done, done);
  };

  private cancelTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  /** One write + one fdatasync for everything gathered so far, then the acknowledgements. */
  private async commitGroup(): Promise<void> {
    const g = this.gather;
    if (g.count === 0 || this.failure) return;
    this.gather = this.spare ?? new Group(INITIAL_GROUP_BYTES);
    this.spare = null;
    if (this.fault) {
      try {
        await this.rollOver();
      } catch (err) {
        return this.refuse(g, err as TradeflowError);
      }
    }
    this.inflight = g;
    const first = this.nextSeq;
    g.seal(first);
    const file = this.activeFile();
    try {
      await writeAll(this.fd, g.buf, g.used, this.size, file);
      if (this.opts.durable) {
        await fdatasync(this.fd, file);
        this.counters.fsyncs++;
      }
    } catch (err) {
      this.inflight = null;
      const fault = this.setFault(err as Error, this.opts.durable ? 'write or fsync' : 'write');
      // Cut the refused records now rather than at the roll-over: a restart must not find them,
      // since their clients are told to send them again. If the cut fails too, the roll-over retries it.
      await this.cutBack().catch(() => undefined);
      return this.refuse(g, fault);
    }
    this.inflight = null;
    this.size += g.used;
    this.activeRecords += g.count;
    this.nextSeq += g.count;
    this.durableSeq = this.nextSeq - 1;
    const c = this.counters;
    c.appended += g.count;
    c.groups++;
    c.bytes += g.used;
    if (g.count > c.maxGroupRecords) c.maxGroupRecords = g.count;
    const resolves = g.resolves;
    for (let i = 0; i < resolves.length; i++) resolves[i]!(first + i);
    this.recycle(g);
    if (this.size >= this.opts.segmentBytes) {
      // The group is acknowledged; only the next one has nowhere to go, and rolls over first.
      await this.startSegment().catch((err: Error) => this.setFault(err, 'start a new segment'));
    }
  }

  private refuse(g: Group, err: TradeflowError): void {
    for (const reject of g.rejects) reject(err);
    this.recycle(g);
  }

  private recycle(g: Group): void {
    g.reset();
    if (g.buf.length <= KEEP_GROUP_BYTES) this.spare = g;
  }

  private activeFile(): string {
    return path.join(this.dir, this.segments[this.segments.length - 1]!.name);
  }

  /** Records a disk fault (the first since the last roll-over is kept); returns the error to refuse with. */
  private setFault(err: Error, what: string): TradeflowError {
    this.counters.faults++;
    const error = tfError(
      'FEEDBACK_LOG_UNAVAILABLE',
      `the feedback log in ${this.dir} could not ${what} (${err.message}): this feedback was not acknowledged and is not kept; ` +
        `send it again (the log takes feedback again once the disk does)`,
    );
    if (!this.fault) this.fault = { error, verified: false };
    else this.fault.error = error;
    return error;
  }

  /**
   * Truncates the active segment back to its last acknowledged frame and makes that durable, through
   * a descriptor of its own (the log's may be what failed).
   */
  private async cutBack(): Promise<void> {
    const file = this.activeFile();
    const fd = await openFd(file, 'r+');
    try {
      checkDiskFault('truncate', file, 'ftruncate');
      await new Promise<void>((resolve, reject) => fs.ftruncate(fd, this.size, (err) => (err ? reject(err) : resolve())));
      if (this.opts.durable) await fdatasync(fd, file);
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
  }

  /** Cut, verify, roll (module comment); throws the fault (or, on damage, the failure) if a step fails. */
  private async rollOver(): Promise<void> {
    const f = this.fault!;
    try {
      if (!f.verified) {
        await this.cutBack();
        await this.verifyActive();
        f.verified = true;
      }
      await this.startSegment();
    } catch (err) {
      if (this.failure) throw this.failure;
      throw this.setFault(err as Error, 'roll over to a new segment after a disk fault');
    }
    this.fault = null;
    this.counters.rollovers++;
  }

  /** The active segment as read back holds exactly what was acknowledged in it; else the log fails. */
  private async verifyActive(): Promise<void> {
    const file = this.activeFile();
    const seg = this.segments[this.segments.length - 1]!;
    const buf = await fs.promises.readFile(file);
    const head = checkHeader(buf, seg.firstSeq);
    const scan = head === 'ok' ? scanFrames(buf, SEGMENT_HEADER_BYTES, seg.firstSeq) : null;
    if (scan && scan.problem === undefined && scan.records === this.activeRecords && scan.end === this.size) return;
    const what = scan === null ? `its header: ${head === 'torn' ? 'cut short' : head}` : scan.problem ?? `${scan.records} records in ${scan.end} bytes where ${this.activeRecords} in ${this.size} were acknowledged`;
    this.fail(new Error(`after a disk fault, ${file} read back differs from what was acknowledged: ${what}`));
    throw this.failure;
  }

  /**
   * Creates the segment for `nextSeq` and makes it the active one. When the active segment holds no
   * record (a roll-over right after a rotation), the new one has its name and replaces it atomically.
   */
  private async startSegment(): Promise<void> {
    const firstSeq = this.nextSeq;
    const name = segmentName(firstSeq);
    const replacing = this.activeRecords === 0;
    const fd = await this.createSegmentFile(name, firstSeq, replacing);
    const old = this.fd;
    this.fd = fd;
    this.size = SEGMENT_HEADER_BYTES;
    this.activeRecords = 0;
    if (!replacing) this.segments.push({ name, firstSeq });
    this.counters.rotations++;
    // An error here can only be an earlier write's, already answered for.
    await closeFd(old).catch(() => undefined);
  }

  private async createSegmentFile(name: string, firstSeq: number, replacing = false): Promise<number> {
    const file = path.join(this.dir, name);
    // Replacing: written under a temp name, made durable, then renamed over the empty segment, so a
    // failure at any step leaves the old one. Otherwise a file of that name can only be the remains
    // of a start that failed after its open (it never held an acknowledged record): it goes.
    const target = replacing ? `${file}.tmp-rollover` : file;
    if (!replacing && this.segments.some((s) => s.name === name)) throw tfError('INTERNAL', `feedback log: segment ${name} already exists`);
    await fs.promises.rm(target, { force: true });
    const fd = await openFd(target, 'wx');
    try {
      await writeAll(fd, segmentHeader(firstSeq), SEGMENT_HEADER_BYTES, 0, target);
      if (replacing) {
        if (this.opts.durable) await fdatasync(fd, target);
        checkDiskFault('rename', file);
        await fs.promises.rename(target, file);
      }
      // The header reaches the disk with the first group's fdatasync; the name must be durable
      // before any record in this file is acknowledged, and fdatasync on the file does not cover it.
      if (this.opts.durable) await fsyncDirectory(this.dir);
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      await fs.promises.rm(target, { force: true }).catch(() => undefined);
      throw err;
    }
    return fd;
  }

  /** The log ends before the checkpoint: drop what it holds (all covered) and continue at `seq`. */
  private async restartAt(seq: number): Promise<void> {
    await closeFd(this.fd);
    // Delete before creating: a crash in between leaves an empty directory (a fresh log that the
    // next replay restarts again), never old segments followed by a gap.
    for (const seg of this.segments) await fs.promises.unlink(path.join(this.dir, seg.name));
    if (this.opts.durable) await fsyncDirectory(this.dir);
    this.segments.length = 0;
    const name = segmentName(seq);
    this.fd = await this.createSegmentFile(name, seq);
    this.segments.push({ name, firstSeq: seq });
    this.size = SEGMENT_HEADER_BYTES;
    this.activeRecords = 0;
    this.nextSeq = seq;
    this.durableSeq = seq - 1;
  }

  /** Acknowledged records are damaged (or the log cannot be made consistent): refuse everything until a restart. */
  private fail(err: Error): void {
    this.failure ??= tfError(
      'FEEDBACK_LOG_FAILED',
      `the feedback log in ${this.dir} cannot go on (${err.message}); feedback is refused until the engine restarts, ` +
        `whose recovery checks the log (and refuses to start on damaged acknowledged records, unless FEEDBACK_REPAIR=true)`,
    );
    this.fault = null;
    for (const reject of this.gather.rejects) reject(this.failure);
    this.gather.reset();
  }
}
