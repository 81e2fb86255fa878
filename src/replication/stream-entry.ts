/**
 * The feedback stream's entries, and what applies them: the extension point for new kinds.
 *
 * An entry is a Redis stream entry with these fields (binary-safe values):
 *
 *   k  the record kind, e.g. `learning` (a feedback, drift outcome or drift reset record, its `d`
 *      the bytes of src/learning/feedback-record.ts) or, for other modules, `model`
 *   o  origin: an opaque token the appending replica chose, so it knows which applied entry
 *      answers which of its requests (absent on entries nobody waits for)
 *   n  its ordinal: entries the stream had ever taken, itself included (written by the append
 *      script in feedback-stream.ts; how a reader sees that entries were trimmed away)
 *   d  the payload; a kind may add fields of its own (one letter or a word, never `k`, `o` or `n`)
 *
 * Every replica applies every entry, in stream order, with the handler registered for its kind:
 * `dispatch.handle(kind, handler)`. What a handler returns (or resolves with) is handed to the
 * request on the appending replica that waits for that entry (read your writes), e.g. the drift
 * monitor's update. A handler may return a promise: the next entry is applied only once it
 * settles, so every replica passes each entry at the same position (a model announcement swaps
 * the model before the feedback after it is applied). A handler must be deterministic in the
 * entry alone: it runs on every replica, its own entries included, and again after a restart from
 * a checkpoint older than the entry. A handler that throws stops nothing: the error is logged and
 * counted, and the entry counts as applied (every replica fails the same way on the same entry).
 *
 * An entry of a kind no handler is registered for (written by a newer engine) is skipped, logged
 * and counted, so an older replica keeps its place in the stream; that is the one way replicas can
 * differ, and `unknown_kinds` in the stream's stats says so.
 */

export const FIELD_KIND = 'k';
export const FIELD_ORIGIN = 'o';
export const FIELD_DATA = 'd';
/** Written by the append script (feedback-stream.ts), never by a kind. */
export const FIELD_ORDINAL = 'n';

/** The kind whose payload is a learning record (feedback-record.ts). */
export const KIND_LEARNING = 'learning';

export interface StreamEntry {
  /** The stream entry id, `<ms>-<seq>`. */
  readonly id: string;
  readonly kind: string;
  readonly origin: string | null;
  /** Every field of the entry, `k` and `o` included. */
  readonly fields: ReadonlyMap<string, Buffer>;
}

/** Applies one entry; see the module comment for what it may and must not do. */
export type EntryHandler = (entry: StreamEntry) => unknown;

/** What an entry to append holds besides its kind and origin. */
export type EntryFields = Record<string, string | Buffer | Uint8Array>;

export class EntryDispatch {
  private readonly handlers = new Map<string, EntryHandler>();

  /** Registers the handler of a kind; one per kind, registered before the stream is read. */
  handle(kind: string, handler: EntryHandler): this {
    if (kind === '' || this.handlers.has(kind)) throw new Error(`stream entry kind "${kind}" is already handled or empty`);
    this.handlers.set(kind, handler);
    return this;
  }

  handlerOf(kind: string): EntryHandler | undefined {
    return this.handlers.get(kind);
  }

  get kinds(): string[] {
    return [...this.handlers.keys()];
  }
}

/** The XADD arguments after `XADD key *`: kind, origin, then the kind's fields. */
export function entryArgs(kind: string, origin: string | null, fields: EntryFields): Array<string | Buffer> {
  const args: Array<string | Buffer> = [FIELD_KIND, kind];
  if (origin !== null) args.push(FIELD_ORIGIN, origin);
  for (const [name, v] of Object.entries(fields)) {
    if (name === FIELD_KIND || name === FIELD_ORIGIN || name === FIELD_ORDINAL) throw new Error(`stream entry field "${name}" is reserved`);
    args.push(name, typeof v === 'string' || Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  return args;
}

/** One entry as XREAD/XRANGE return it with Buffer replies: [id, [field, value, ...]]. */
export function parseEntry(raw: unknown): StreamEntry {
  const [idRaw, flat] = raw as [Buffer | string, Array<Buffer | string>];
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const v = flat[i + 1]!;
    fields.set(String(flat[i]), Buffer.isBuffer(v) ? v : Buffer.from(v));
  }
  const kind = fields.get(FIELD_KIND)?.toString('utf8') ?? '';
  const origin = fields.get(FIELD_ORIGIN)?.toString('utf8') ?? null;
  return { id: String(idRaw), kind, origin, fields };
}
