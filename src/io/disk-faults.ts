/**
 * Disk faults for tests: makes chosen file operations on chosen paths fail with a chosen errno
 * (ENOSPC, EIO, ...), as a full or failing disk would, so that the feedback log and the checkpoint
 * are tested against them with real files, a real engine and its worker threads. A loop-mounted
 * tmpfs gives a real ENOSPC (test/chaos/disk-faults.test.ts uses one too), but nothing on these
 * machines gives a real EIO, and only injection can fail one chosen fsync or rename.
 *
 * Off unless the environment variable TRADEFLOW_TEST_DISK_FAULTS names a control file. The file is
 * read at every operation, so a test turns faults on and off while the engine runs, from the same
 * process or another one, and the checkpoint writer's thread sees them as the main thread does:
 *
 *   {"faults":[{"op":"fsync","path":"/feedback/","errno":"EIO"},
 *              {"op":"write","path":"/feedback/","errno":"ENOSPC","partialBytes":100}]}
 *
 * A rule matches an operation when `op` is the operation and `path` (optional) is a substring of
 * the file's path. `partialBytes` (writes only, where the caller supports it) writes that many bytes
 * before failing, as a disk that fills up in the middle of a write does. No control file, or one
 * that is empty: no faults. Every injected fault appends one line (`op errno path`) to
 * `<control file>.hits`, so that a test can count and report them.
 *
 * In production the variable is unset and each check is one property read.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const DISK_FAULTS_ENV = 'TRADEFLOW_TEST_DISK_FAULTS';

export type DiskOp = 'open' | 'write' | 'fsync' | 'truncate' | 'rename' | 'unlink';

export interface DiskFaultRule {
  op: DiskOp;
  path?: string;
  errno: string;
  partialBytes?: number;
}

const MESSAGES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EIO: 'i/o error',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
};

function rules(control: string): DiskFaultRule[] {
  let text: string;
  try {
    text = fs.readFileSync(control, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  if (text.trim() === '') return [];
  // A test writes the file whole (write to a temp name, rename), so a parse error is the test's bug.
  const parsed = JSON.parse(text) as { faults?: DiskFaultRule[] };
  return Array.isArray(parsed.faults) ? parsed.faults : [];
}

/** The rule that makes `op` on `file` fail now, or null (always null without the variable). */
export function diskFault(op: DiskOp, file: string): DiskFaultRule | null {
  const control = process.env[DISK_FAULTS_ENV];
  if (control === undefined || control === '') return null;
  const rule = rules(control).find((r) => r.op === op && (r.path === undefined || file.includes(r.path)));
  if (!rule) return null;
  fs.appendFileSync(control + '.hits', `${op} ${rule.errno} ${file}\n`);
  return rule;
}

/** The error Node would give for `errno` on `syscall` (code, errno, syscall, path, message). */
export function faultError(rule: DiskFaultRule, syscall: string, file: string): NodeJS.ErrnoException {
  const number = (os.constants.errno as Record<string, number>)[rule.errno];
  const err = new Error(`${rule.errno}: ${MESSAGES[rule.errno] ?? 'injected fault'}, ${syscall} '${file}' (injected by ${DISK_FAULTS_ENV})`) as NodeJS.ErrnoException;
  err.code = rule.errno;
  if (number !== undefined) err.errno = -number;
  err.syscall = syscall;
  err.path = file;
  return err;
}

/** Throws the injected error when a rule makes `op` on `file` fail; for operations without partial effects. */
export function checkDiskFault(op: DiskOp, file: string, syscall: string = op): void {
  const rule = diskFault(op, file);
  if (rule) throw faultError(rule, syscall, file);
}
