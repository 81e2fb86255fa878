/**
 * Writes checkpoints from a thread of their own (dist/workers/checkpoint.js), so that a checkpoint
 * costs the event loop that answers /learn and /predict only the snapshot: copies of the learning
 * state, the replay buffer's rows as two block copies. The encoding (the JSON of the small part,
 * the CRC-32, assembling megabytes of bytes) and the atomic write-fsync-rename run in the writer's
 * thread (checkpoint.ts's writeCheckpoint, the same code a test or a tool calls directly). The
 * snapshot's typed arrays are transferred to the thread, not copied, and are unusable afterwards.
 *
 * One thread, started at the first checkpoint and kept: checkpoints come every
 * CHECKPOINT_INTERVAL_S, and a thread's start costs tens of milliseconds of CPU on a 2-core machine
 * each time. It is unref'd while idle, so that it never keeps the process alive, and ref'd while a
 * write is in flight, so that a final checkpoint at shutdown is not cut off by the process exiting
 * under it. If the thread dies, the write in flight fails (CHECKPOINT_FAILED) and the next one
 * starts a new thread. Disk faults injected by tests (src/io/disk-faults.ts) reach the thread: it
 * inherits the environment and reads the same control file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { reviveError, tfError, type ErrorCode, type TradeflowError } from '../errors';
import { projectRoot } from '../paths';

export interface CheckpointRequest {
  id: number;
  dir: string;
  name: string;
  state: unknown;
}

export type CheckpointReply = { id: number; ok: true } | { id: number; ok: false; code: ErrorCode; message: string };

/** The compiled thread: under dist/ whether we run from dist/ or from sources (tests). */
export function checkpointWorkerFile(): string {
  const file = path.join(projectRoot(), 'dist', 'workers', 'checkpoint.js');
  if (!fs.existsSync(file)) throw tfError('INTERNAL', `checkpoint writer not built: ${file} is missing (run npm run build)`);
  return file;
}

/** Every typed array's buffer in `state` (a small tree: the arrays themselves are not walked). */
function transferables(state: unknown, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (state === null || typeof state !== 'object') return out;
  if (ArrayBuffer.isView(state)) {
    const buffer = state.buffer;
    // A view of a shared or partly used buffer cannot be handed over whole: it is copied instead.
    if (buffer instanceof ArrayBuffer && state.byteOffset === 0 && state.byteLength === buffer.byteLength && !out.includes(buffer)) out.push(buffer);
    return out;
  }
  for (const v of Object.values(state)) transferables(v, out);
  return out;
}

export class CheckpointWriter {
  private worker: Worker | null = null;
  private readonly calls = new Map<number, { resolve: () => void; reject: (err: TradeflowError) => void }>();
  private nextId = 1;

  /**
   * Atomically replaces `<dir>/<name>` with `state` (see checkpoint.ts), in the writer's thread.
   * The typed arrays in `state` are transferred: pass copies.
   */
  write(dir: string, name: string, state: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let worker: Worker;
      try {
        worker = this.thread();
      } catch (err) {
        reject(err);
        return;
      }
      const id = this.nextId++;
      this.calls.set(id, { resolve, reject });
      worker.ref();
      const request: CheckpointRequest = { id, dir, name, state };
      worker.postMessage(request, transferables(state));
    });
  }

  /** Ends the thread (after the caller has awaited its last write). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
    this.failAll(tfError('INTERNAL', 'the checkpoint writer was closed with a write in flight'));
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(checkpointWorkerFile());
    w.unref();
    w.on('message', (reply: CheckpointReply) => this.settle(reply));
    w.on('error', (err: Error) => this.lost(w, `the checkpoint writer's thread failed: ${err.message}`));
    w.on('exit', (code) => this.lost(w, `the checkpoint writer's thread exited (code ${code})`));
    this.worker = w;
    return w;
  }

  private settle(reply: CheckpointReply): void {
    const call = this.calls.get(reply.id);
    if (!call) return;
    this.calls.delete(reply.id);
    if (this.calls.size === 0) this.worker?.unref();
    if (reply.ok) call.resolve();
    else call.reject(reviveError(reply.code, reply.message));
  }

  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = null;
    this.failAll(tfError('CHECKPOINT_FAILED', `${why}; the previous checkpoint is kept`));
  }

  private failAll(err: TradeflowError): void {
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) c.reject(err);
  }
}
