/**
 * Files that survive a crash or a power loss: the one place where the checkpoint, the feedback
 * log and the model version store get their fsync and atomic-replace rules.
 *
 * Atomic replace: write a temp file beside the target (`<name>.tmp-<pid>-<n>`, created
 * exclusively), fsync it, rename it over the target, fsync the directory. A crash at any point
 * leaves either the old file or the new one under `<name>`, never a mix; at worst a temp file is
 * left behind, which {@link removeLeftoverTemps} clears at the next start. A failure at any step
 * (a full disk, an I/O error: tests inject them through ./disk-faults.ts) leaves the old file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDiskFault } from './disk-faults';

const TEMP_MARK = '.tmp-';
let tempCounter = 0;

/** True for the name of a temp file this module writes (for any target, or for `name`). */
export function isTempName(entry: string, name?: string): boolean {
  return name === undefined ? entry.includes(TEMP_MARK) : entry.startsWith(name + TEMP_MARK);
}

function ignorable(err: unknown): boolean {
  // Some filesystems (FUSE, some network mounts) cannot sync a directory; there is nothing
  // stronger to do there, and failing every write would be worse.
  return (err as NodeJS.ErrnoException).code === 'EINVAL';
}

/**
 * fsync a directory so that entries created, renamed or removed in it survive a power loss;
 * fsync of a file covers its contents only, not its name.
 */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    checkDiskFault('fsync', dir);
    await fh.sync();
  } catch (err) {
    if (!ignorable(err)) throw err;
  } finally {
    await fh.close();
  }
}

/** Start-up/recovery variant of {@link fsyncDirectory}. */
export function fsyncDirectorySync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    checkDiskFault('fsync', dir);
    fs.fsyncSync(fd);
  } catch (err) {
    if (!ignorable(err)) throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** mkdir -p, and when that created the directory, makes its entry in the parent durable too. */
export async function ensureDirectory(dir: string): Promise<void> {
  const created = await fs.promises.mkdir(dir, { recursive: true });
  if (created !== undefined) await fsyncDirectory(path.dirname(path.resolve(dir)));
}

/**
 * Atomically replaces `<dir>/<name>` with `data`; resolves once the new contents and the rename
 * are durable. Errors are the file system's own (the caller names what it was writing); the temp
 * file is removed on failure. One writer per target at a time (callers serialise their writes).
 */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array | string): Promise<void> {
  await ensureDirectory(dir);
  const target = path.join(dir, name);
  const temp = path.join(dir, `${name}${TEMP_MARK}${process.pid}-${++tempCounter}`);
  try {
    checkDiskFault('open', temp);
    const fh = await fs.promises.open(temp, 'wx');
    try {
      checkDiskFault('write', temp);
      await fh.writeFile(data);
      checkDiskFault('fsync', temp);
      await fh.sync();
    } finally {
      await fh.close();
    }
    checkDiskFault('rename', target);
    await fs.promises.rename(temp, target);
  } catch (err) {
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  // Without this the rename may be lost on power failure, leaving the old file in place while
  // the caller goes on as if the new one were there (a checkpoint's caller truncates its log).
  await fsyncDirectory(dir);
}

/**
 * Removes temp files a crash left in `dir` (for target `name`, or for every target). They never
 * replaced their target, so the target (or its absence) is what was last made durable.
 * Synchronous: meant for start-up. A missing directory has nothing to clear.
 */
export function removeLeftoverTemps(dir: string, name?: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) if (isTempName(entry, name)) fs.rmSync(path.join(dir, entry), { force: true });
}
