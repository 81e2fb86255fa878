/**
 * Model versions on disk, so a restart serves the version that served before it and a rollback
 * has somewhere to go back to.
 *
 *   STATE_DIR/models/<name>/<version>.onnx        the model bytes
 *   STATE_DIR/models/<name>/<version>.card.json   its card (source, metrics, trainer settings…)
 *   STATE_DIR/models/<name>/serving.json          which version serves, and the history of swaps
 *
 * Every file is replaced atomically (src/io/durable-file.ts); temp files a crash left behind are
 * removed when the store is opened. Every failure to read or write the store is MODEL_STORE_FAILED
 * naming the file: model loads and rollbacks answer it to the client, and a raw errno would say
 * neither which file nor that it is the store's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTradeflowError, tfError, type TradeflowError } from '../errors';
import { removeLeftoverTemps, writeFileAtomic } from '../io/durable-file';

function storeFailed(what: string, err: unknown): TradeflowError {
  if (isTradeflowError(err)) return err;
  return tfError('MODEL_STORE_FAILED', `model version store: cannot ${what}: ${(err as Error).message}`);
}

/** Runs a store operation, naming what it was doing if it fails. */
async function storeOp<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw storeFailed(what, err);
  }
}

export interface ServingRecord {
  version: string;
  /** The version this one replaced; a rollback returns to it. */
  previous: string | null;
  at: string;
  reason: 'initial' | 'configured' | 'load' | 'train' | 'rollback' | 'restore';
  source: string;
}

interface ServingFile {
  serving: string | null;
  history: ServingRecord[];
  /** The MODEL_PATH file last deployed: a different file there takes over at the next start. */
  configured?: { path: string; sha256: string } | null;
}

export class VersionStore {
  constructor(
    readonly root: string,
    /** Versions kept on disk per model (the serving one always is). */
    readonly keep: number,
  ) {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(root, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storeFailed(`open ${root}`, err);
    }
    try {
      for (const e of entries) if (e.isDirectory()) removeLeftoverTemps(path.join(root, e.name));
    } catch (err) {
      throw storeFailed(`remove the temp files a crash left in ${root}`, err);
    }
  }

  private dir(name: string): string {
    return path.join(this.root, name);
  }

  private readServing(name: string): ServingFile {
    const file = path.join(this.dir(name), 'serving.json');
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as ServingFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { serving: null, history: [] };
      throw storeFailed(`read ${file}`, err);
    }
  }

  /** The version that served last, with its bytes, or null (first start, or its file is gone). */
  servingVersion(name: string): { version: string; bytes: Uint8Array; file: string } | null {
    const s = this.readServing(name);
    if (s.serving === null) return null;
    const file = path.join(this.dir(name), `${s.serving}.onnx`);
    if (!fs.existsSync(file)) return null;
    return { version: s.serving, bytes: this.readBytes(file), file };
  }

  has(name: string, version: string): boolean {
    return fs.existsSync(path.join(this.dir(name), `${version}.onnx`));
  }

  /** A kept version's bytes, read without blocking: a rollback reads them while the engine serves. */
  async bytes(name: string, version: string): Promise<Uint8Array> {
    const file = path.join(this.dir(name), `${version}.onnx`);
    return storeOp(`read ${file}`, () => fs.promises.readFile(file));
  }

  private readBytes(file: string): Uint8Array {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw storeFailed(`read ${file}`, err);
    }
  }

  /** Stores a version's bytes and card (before it serves: a crash then leaves a spare file, not a gap). */
  async save(name: string, version: string, bytes: Uint8Array, card: Record<string, unknown>): Promise<void> {
    const dir = this.dir(name);
    await storeOp(`save ${name} version ${version} in ${dir}`, async () => {
      if (!this.has(name, version)) await writeFileAtomic(dir, `${version}.onnx`, bytes);
      await writeFileAtomic(dir, `${version}.card.json`, JSON.stringify(card, null, 2) + '\n');
    });
  }

  card(name: string, version: string): Record<string, unknown> | null {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(name), `${version}.card.json`), 'utf8')) as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  configured(name: string): { path: string; sha256: string } | null {
    return this.readServing(name).configured ?? null;
  }

  /** Records that `version` serves now, then drops versions beyond `keep`. */
  async setServing(name: string, record: ServingRecord, configured?: { path: string; sha256: string }): Promise<void> {
    const s = this.readServing(name);
    if (configured) s.configured = configured;
    s.serving = record.version;
    s.history.push(record);
    if (s.history.length > 1000) s.history.splice(0, s.history.length - 1000);
    const dir = this.dir(name);
    await storeOp(`record that ${name} ${record.version} serves, in ${dir}`, () => writeFileAtomic(dir, 'serving.json', JSON.stringify(s, null, 2) + '\n'));
    await storeOp(`drop old versions of ${name} from ${dir}`, () => this.prune(name, s));
  }

  /** The record under which the serving version serves. */
  current(name: string): ServingRecord | null {
    const s = this.readServing(name);
    for (let i = s.history.length - 1; i >= 0; i--) if (s.history[i]!.version === s.serving) return s.history[i]!;
    return null;
  }

  /** Where a rollback goes: the version the serving one replaced, and what that one replaced. */
  rollbackTarget(name: string): { version: string; previous: string | null } | null {
    const cur = this.current(name);
    if (!cur || cur.previous === null) return null;
    const s = this.readServing(name);
    // The record under which the target served before: its own `previous` is the next step back.
    let previous: string | null = null;
    for (let i = s.history.length - 1; i >= 0; i--) {
      const h = s.history[i]!;
      if (h.version === cur.previous && h !== cur) {
        previous = h.previous;
        break;
      }
    }
    return { version: cur.previous, previous };
  }

  /** Versions known on disk, newest first, with their cards. */
  list(name: string): Array<{ version: string; serving: boolean; lastServedAt: string | null; reason: string | null; card: Record<string, unknown> | null }> {
    const s = this.readServing(name);
    const dir = this.dir(name);
    let files: string[] = [];
    try {
      files = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx'));
    } catch {
      return [];
    }
    const last = new Map<string, ServingRecord>();
    for (const h of s.history) last.set(h.version, h);
    return files
      .map((f) => f.slice(0, -'.onnx'.length))
      .map((version) => ({
        version,
        serving: version === s.serving,
        lastServedAt: last.get(version)?.at ?? null,
        reason: last.get(version)?.reason ?? null,
        card: this.card(name, version),
      }))
      .sort((a, b) => (b.lastServedAt ?? '').localeCompare(a.lastServedAt ?? ''));
  }

  private async prune(name: string, s: ServingFile): Promise<void> {
    // Keep the serving version and the most recently served others, up to `keep`.
    const order: string[] = [];
    for (let i = s.history.length - 1; i >= 0 && order.length < this.keep; i--) {
      const v = s.history[i]!.version;
      if (!order.includes(v)) order.push(v);
    }
    if (s.serving !== null && !order.includes(s.serving)) order.push(s.serving);
    const dir = this.dir(name);
    for (const f of fs.readdirSync(dir)) {
      const m = /^(.+)\.(onnx|card\.json)$/.exec(f);
      if (m && !order.includes(m[1]!)) await fs.promises.rm(path.join(dir, f), { force: true });
    }
  }
}
