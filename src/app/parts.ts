/**
 * The engine is a stack of parts started in order (observability, models, learning, serving,
 * training, HTTP). Each part that holds something (threads, files, sockets, timers) says how to
 * let it go, in one place, so that both a full shutdown and a start that fails half-way release
 * everything that had started, in reverse order.
 */
import type { Logger } from '../telemetry/logger';

export interface Part {
  readonly name: string;
  /** Lets work in flight finish (shutdown only); a part without in-flight work has none. */
  drain?(): Promise<void>;
  /** Releases what the part holds. Called once, after every part has drained. */
  stop(): Promise<void> | void;
}

export class PartStack {
  private readonly parts: Part[] = [];
  private stopping: Promise<void> | null = null;

  constructor(private readonly logger: Logger) {}

  add(part: Part): void {
    this.parts.push(part);
  }

  /**
   * Drains, then stops, every part in reverse start order. A part that fails to drain or stop is
   * logged and the rest still run: one stuck part must not keep threads or files of the others.
   */
  stopAll(drain: boolean): Promise<void> {
    if (!this.stopping) this.stopping = this.run(drain);
    return this.stopping;
  }

  private async run(drain: boolean): Promise<void> {
    const reversed = [...this.parts].reverse();
    if (drain) for (const p of reversed) if (p.drain) await this.guard(p, 'drain', () => p.drain!());
    for (const p of reversed) await this.guard(p, 'stop', () => p.stop());
  }

  private async guard(p: Part, phase: string, fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.logger.error({ part: p.name, err: (err as Error).message }, `engine part failed to ${phase}`);
    }
  }
}
