/**
 * What the main thread and a front-end thread (HTTP_THREADS ≥ 2) say to each other. A front-end
 * thread runs its own uWS app on the shared port, decodes /predict bodies itself and writes the
 * rows into a segment of shared memory it owns; only a small descriptor per request crosses to
 * the main thread, which feeds the one batcher (and so the one Piscina pool) from every thread.
 * Results come back the same way: the main thread copies the request's probabilities and classes
 * into the same segment and posts `[id, version]`. /learn bodies are decoded in the thread too
 * and the decoded feedback posted (`learn`): the main thread stays the one writer of the learning
 * state. Everything else (control, monitoring, admin, the Open Inference Protocol) is forwarded
 * whole to the main thread.
 *
 * Descriptors travel in flat number arrays, one message per event-loop pass and direction, not one
 * object per request: a structured clone costs per object, and batching the messages cuts the
 * wake-ups of the receiving thread to one per pass (bench/RESULTS.md, "front-end threads").
 */
import type { MessagePort } from 'node:worker_threads';
import type { LearnInput } from '../learn';
import type { ServedModel } from '../../models/registry';

/** Segment slots of one chunk; a chunk is one SharedArrayBuffer, announced once. */
export const SLOTS_PER_CHUNK = 256;
/** Rows a pooled segment holds; a request with more gets a chunk of one segment, kept for reuse by size. */
export const POOLED_SEGMENT_ROWS = 64;

/**
 * 4-byte words a segment of `rows` rows takes: its input rows (rows × F float32), later overwritten
 * by the answer (rows × 2 probabilities, then rows int32 classes), which needs 3 words a row.
 */
export function segmentWords(rows: number, features: number): number {
  return rows * Math.max(features, 3);
}

/** Fields of one request descriptor in a `submit` message, in order. */
export const DESC_FIELDS = 7;
/** [id, chunk, slot, rows, model, deadline (ms since the epoch, slab clock), startedAt (same clock)] */

export interface ThreadModel {
  index: number;
  name: string;
  kind: ServedModel['kind'];
  features: number;
  classLabels: [string, string];
}

/** Index of the control word holding the default route's model index + 1 (SERVE_POLICY=champion). */
export const DEFAULT_ROUTE_WORD = 1;

export interface FrontEndData {
  host: string;
  port: number;
  /** Index of this thread (0…HTTP_THREADS-1): its name in logs and metrics of the threads. */
  index: number;
  features: number;
  models: ThreadModel[];
  options: { maxBodyBytes: number; maxRequestRows: number; requestTimeoutMs: number; forwardMaxBytes: number };
  linger: { ms: number; maxBytes: number };
  /** Int32[0]: 1 once the engine drains (new predictions are refused with 503 at once). */
  control: SharedArrayBuffer;
  /** Where this thread's request metrics live (src/telemetry/shared-series.ts). */
  metrics: SharedArrayBuffer | null;
  /** ADMIN_TOKEN: /learn's caller is checked in the thread, before its body is read. */
  adminToken: string | null;
  /** Test hook: a /predict whose `id` is this makes the thread fail once it is queued (src/pool/testing-hooks.ts). */
  crashOnId: string | null;
  port2: MessagePort;
}

/** thread → main */
export type ToMain =
  | { t: 'listening'; port: number }
  | { t: 'listen-failed'; message: string }
  /** Segments of `cap` rows each, as many as fit: SLOTS_PER_CHUNK pooled ones, or one for a large request. */
  | { t: 'chunk'; chunk: number; buffer: SharedArrayBuffer; cap: number }
  /** A large request's chunk the thread no longer keeps. */
  | { t: 'forget'; chunk: number }
  /** `d`: DESC_FIELDS numbers per request; `ids`: prediction ids (null when none) */
  | { t: 'submit'; d: number[]; ids: (string | null)[] }
  /** Clients that went away: their rows are dropped if not yet dispatched. */
  | { t: 'gone'; ids: number[] }
  | { t: 'series'; kind: 'counter' | 'histogram'; family: string; attributes: Record<string, string>; offset: number }
  /** Answers written by the thread since the last message, for the API health window: status, seconds, … */
  | { t: 'recent'; s: number[] }
  | { t: 'fwd'; id: number; method: string; url: string; query: string; headers: [string, string][]; remote: string; body: Uint8Array | null }
  | { t: 'fwd-gone'; id: number }
  /** A /learn body this thread decoded; answered like a forwarded request (`fwd-res`). */
  | { t: 'learn'; id: number; remote: string; input: LearnInput }
  | { t: 'pong'; n: number }
  | { t: 'crashed'; message: string };

/** main → thread */
export type ToThread =
  /**
   * `ok`: [id, version index in `v`] pairs; `l`: each version's two class names; `err`: [id, code,
   * message] triples; `rel`: ids released without an answer (the client left)
   */
  | { t: 'done'; ok: number[]; v: string[]; l: string[]; err: (number | string)[]; rel: number[] }
  | { t: 'fwd-res'; id: number; status: string; headers: [string, string][]; body: string | Uint8Array; end: 'end' | 'close-after' | 'no-body' | 'no-body-close' | 'close' }
  | { t: 'ping'; n: number }
  | { t: 'close' };
