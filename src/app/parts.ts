/**
 * The engine is a stack of parts started in order (observability, models, learning, serving,
 * training, HTTP). Each part that holds something (threads, files, sockets, timers) says how to
 * let it go, in one place, so that both a full shutdown and a start that fails half-way release
 * everything that had started, in reverse order.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../telemetry/logger';

export interface Part {
  readonly name: string;
  /**
   * Lets work in flight finish (shutdown only); a part without in-flight work has none.
   * `deadline` (performance.now() time) is when the stack stops waiting for it.
   */
  drain?(deadline: number): Promise<void>;
  /** Releases what the part holds. Called once, after every part has drained or run out of time. */
  stop(): Promise<void> | void;
}

/** Of a shutdown's time, what is kept for the stops after the drains (at most this much). */
const STOP_RESERVE_MS = 1000;

export class PartStack {
  private readonly parts: Part[] = [];
  private stopping: Promise<boolean> | null = null;

  constructor(private readonly logger: Logger) {}

  add(part: Part): void {
    this.parts.push(part);
  }

  /**
   * Drains (when `drain`), then stops, every part in reverse start order, all within `timeoutMs`:
   * a drain still running when its share of the time is up is no longer waited for, nor is a stop
   * past the whole bound. Resolves true when every drain finished in time. A part that fails to
   * drain or stop is logged and the rest still run: one stuck part must not keep threads or files
   * of the others.
   */
  stopAll(drain: boolean, timeoutMs: number): Promise<boolean> {
    if (!this.stopping) this.stopping = this.run(drain, timeoutMs);
    return this.stopping;
  }

  private async run(drain: boolean, timeoutMs: number): Promise<boolean> {
    const start = performance.now();
    const end = start + timeoutMs;
    const drainEnd = end - Math.min(STOP_RESERVE_MS, timeoutMs / 5);
    const reversed = [...this.parts].reverse();
    let drained = true;
    if (drain) {
      for (const p of reversed) {
        if (p.drain && !(await this.guard(p, 'drain', () => p.drain!(drainEnd), drainEnd))) drained = false;
      }
    }
    for (const p of reversed) await this.guard(p, 'stop', () => p.stop(), end);
    return drained;
  }

  /** Runs `fn` until it settles or `deadline` passes; true when it finished without an error in time. */
  private async guard(p: Part, phase: string, fn: () => Promise<void> | void, deadline: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), Math.max(0, deadline - performance.now()));
      });
      const outcome = await Promise.race([Promise.resolve().then(fn), timedOut]);
      if (outcome !== 'late') return true;
      this.logger.warn({ part: p.name }, `engine part did not ${phase} within the shutdown bound; going on without it`);
      return false;
    } catch (err) {
      this.logger.error({ part: p.name, err: (err as Error).message }, `engine part failed to ${phase}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
