/**
 * The two ways of sending the load.
 *
 * Open loop (the default): request i is due at t0 + i/rate whatever happens to the ones before
 * it. A timer issues every request that is due (catching up after any delay of its own, so none
 * is skipped); a request finds a free connection or waits in line for one. Its latency counts
 * from its due time, so a server that stalls is charged for every request that was due during
 * the stall, not only for the few that were in flight (coordinated omission, which wrk2 and
 * HdrHistogram exist to avoid). A request may go out up to EARLY_MS before its time (timers
 * here have millisecond granularity); it is then counted from its send, never from before it.
 * How late the tool itself issued requests is recorded, so a tool that cannot keep up says so.
 *
 * Closed loop (--closed): each connection sends its next request when the previous one is
 * answered, and latency counts from the send. A stall then delays requests that are never
 * sent and never counted: the mode is there to show the difference, and to measure throughput.
 */
import { performance } from 'node:perf_hooks';
import { Connection, type Target } from './connection';
import type { ParsedResponse } from './http-response';
import { Recorder } from './recorder';
import type { RequestCycle } from './requests';

/** How far ahead of its time a request may be sent (see above). */
export const EARLY_MS = 1;
const TIMEOUT_SWEEP_MS = 50;

export interface RunSpec {
  target: Target;
  /** Whole HTTP requests, sent in turn. */
  requests: RequestCycle;
  connections: number;
  mode: 'open' | 'closed';
  /** Requests per second (open loop). */
  rate: number;
  warmupMs: number;
  durationMs: number;
  /** A request without an answer this long after its send fails ("timeout"). */
  timeoutMs: number;
  /** Keep each answer's time and latency (for --plot). */
  keepSamples: boolean;
}

export interface RunOutcome {
  spec: RunSpec;
  measured: Recorder;
  warmup: Recorder;
  /** Date.now() when the measured window started and when its schedule ended. */
  wallStart: number;
  wallEnd: number;
  /** Requests due in the window that were never sent (every connection busy until the end + timeout). */
  unsent: number;
  reconnects: number;
}

/** Connections, the two recorders, timeouts and the end of a run; the loops add how requests are issued. */
abstract class LoadRun {
  protected readonly conns: Connection[];
  protected readonly idle = new IdleConnections();
  protected t0 = 0;
  protected measureStart = 0;
  protected scheduleEnd = 0;
  protected warmup!: Recorder;
  protected measured!: Recorder;
  protected wallStart = 0;
  protected unsent = 0;
  private finished: (() => void) | null = null;
  private sweep: NodeJS.Timeout | null = null;

  constructor(protected readonly spec: RunSpec) {
    this.conns = Array.from({ length: spec.connections }, () => new Connection(spec.target, (c) => this.freed(c)));
  }

  /** Opens every connection first: a target that refuses them fails the run before any load. */
  async run(hooks: RunHooks): Promise<RunOutcome> {
    try {
      await Promise.all(this.conns.map((c) => c.connect()));
    } catch (err) {
      this.close();
      throw new Error(`cannot connect to ${this.spec.target.host}:${this.spec.target.port}: ${(err as Error).message}`);
    }
    if (this.spec.warmupMs === 0) await hooks.atMeasureStart?.();
    this.t0 = performance.now();
    this.measureStart = this.t0 + this.spec.warmupMs;
    this.scheduleEnd = this.measureStart + this.spec.durationMs;
    this.warmup = new Recorder(this.t0, false);
    this.measured = new Recorder(this.measureStart, this.spec.keepSamples);
    const wallT0 = Date.now();
    this.wallStart = wallT0 + this.spec.warmupMs;
    const boundary = this.spec.warmupMs > 0 ? setTimeout(() => void hooks.atMeasureStart?.(), this.spec.warmupMs) : undefined;
    hooks.started?.(this.warmup, this.measured);
    const done = new Promise<void>((resolve) => (this.finished = resolve));
    this.sweep = setInterval(() => this.sweepTimeouts(), TIMEOUT_SWEEP_MS);
    for (const c of this.conns) this.idle.push(c);
    this.begin();
    await done;
    clearTimeout(boundary);
    this.close();
    const reconnects = this.conns.reduce((n, c) => n + c.reconnects, 0);
    return { spec: this.spec, measured: this.measured, warmup: this.warmup, wallStart: this.wallStart, wallEnd: this.wallStart + this.spec.durationMs, unsent: this.unsent, reconnects };
  }

  /** The recorder of the window `t` (a due or send time) falls in. */
  protected recorderAt(t: number): Recorder {
    return t < this.measureStart ? this.warmup : this.measured;
  }

  /** Sends one request on `c`; `start` is what its latency counts from (capped at the send). */
  protected send(c: Connection, due: number, rec: Recorder): void {
    const request = this.spec.requests.next();
    c.send(request, (answer: ParsedResponse | null, reason: string, at: number) => {
      if (answer) rec.answer(answer, Math.min(due, c.sentAt), at);
      else rec.failure(reason, at);
      if (c.open) this.freed(c);
    });
  }

  /** A connection can take a request: the loop gives it one or it waits in `idle`. */
  protected abstract freed(c: Connection): void;
  protected abstract begin(): void;
  /** True once nothing more will be sent. */
  protected abstract get exhausted(): boolean;

  protected checkDone(): void {
    if (!this.finished || !this.exhausted) return;
    if (this.conns.some((c) => c.busy)) return;
    const finished = this.finished;
    this.finished = null;
    finished();
  }

  private sweepTimeouts(): void {
    const now = performance.now();
    for (const c of this.conns) if (c.busy && now - c.sentAt > this.spec.timeoutMs) c.abort('timeout');
    if (now > this.scheduleEnd + this.spec.timeoutMs + TIMEOUT_SWEEP_MS) this.giveUp(now);
    this.checkDone();
  }

  /** Past the end and the timeout: what still waits for a connection is never sent. */
  protected giveUp(_now: number): void {}

  private close(): void {
    if (this.sweep) clearInterval(this.sweep);
    for (const c of this.conns) c.close();
  }
}

/** Request i due at t0 + i × 1000 / rate; issued on time or as soon as the tool can, waiting for a connection if none is free. */
class OpenLoop extends LoadRun {
  private next = 0;
  private total = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Due and issue times of requests waiting for a connection, oldest first. */
  private readonly waiting = new DueQueue();

  protected begin(): void {
    this.total = Math.round(((this.spec.warmupMs + this.spec.durationMs) * this.spec.rate) / 1000);
    this.tick();
  }

  protected get exhausted(): boolean {
    return this.next >= this.total && this.waiting.length === 0;
  }

  private due(i: number): number {
    return this.t0 + (i * 1000) / this.spec.rate;
  }

  private tick(): void {
    this.timer = null;
    const now = performance.now();
    for (; this.next < this.total && this.due(this.next) <= now + EARLY_MS; this.next++) this.issue(this.due(this.next), now);
    if (this.next < this.total) this.timer = setTimeout(() => this.tick(), Math.max(0, this.due(this.next) - EARLY_MS - now));
    else this.checkDone();
  }

  private issue(due: number, now: number): void {
    const rec = this.recorderAt(due);
    const c = this.idle.pop();
    if (c === undefined) {
      this.waiting.push(due, now);
      return;
    }
    rec.issued(now - due, 0);
    this.send(c, due, rec);
  }

  protected freed(c: Connection): void {
    if (c.busy) return;
    if (this.waiting.length === 0) {
      this.idle.push(c);
      this.checkDone();
      return;
    }
    const { due, issuedAt } = this.waiting.shift();
    const rec = this.recorderAt(due);
    rec.issued(issuedAt - due, performance.now() - issuedAt);
    this.send(c, due, rec);
  }

  protected override giveUp(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.next = this.total;
    while (this.waiting.length > 0) {
      const { due } = this.waiting.shift();
      const rec = this.recorderAt(due);
      rec.failure('never sent: every connection stayed busy past the end of the run plus --timeout', now);
      if (rec === this.measured) this.unsent++;
    }
  }
}

/** Each connection sends its next request when the previous one is answered, until the end. */
class ClosedLoop extends LoadRun {
  private stopped = false;

  protected begin(): void {
    setTimeout(() => {
      this.stopped = true;
      this.checkDone();
    }, this.scheduleEnd - performance.now());
    const all: Connection[] = [];
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) all.push(c);
    for (const c of all) this.freed(c);
  }

  protected get exhausted(): boolean {
    return this.stopped;
  }

  protected freed(c: Connection): void {
    if (c.busy) return;
    const now = performance.now();
    if (this.stopped || now >= this.scheduleEnd) {
      this.idle.push(c);
      this.checkDone();
      return;
    }
    const rec = this.recorderAt(now);
    rec.sent++;
    this.send(c, now, rec);
  }
}

/**
 * Connections free to send, the most recently used first: at a low rate the same few carry the
 * load and the others idle, so a server's idle timeout closes those (they reconnect in the
 * background) rather than one about to be used. One the server closed while it waited here is
 * skipped; it comes back through onReady once reconnected.
 */
class IdleConnections {
  private readonly stack: Connection[] = [];
  private readonly members = new Set<Connection>();

  push(c: Connection): void {
    if (this.members.has(c)) return;
    this.members.add(c);
    this.stack.push(c);
  }

  pop(): Connection | undefined {
    for (let c = this.stack.pop(); c !== undefined; c = this.stack.pop()) {
      this.members.delete(c);
      if (c.open && !c.busy) return c;
    }
    return undefined;
  }
}

/** A FIFO of (due, issuedAt) pairs in two growable Float64 rings: a long stall queues many. */
class DueQueue {
  private dues = new Float64Array(1024);
  private issued = new Float64Array(1024);
  private head = 0;
  length = 0;

  push(due: number, issuedAt: number): void {
    if (this.length === this.dues.length) this.grow();
    const at = (this.head + this.length) % this.dues.length;
    this.dues[at] = due;
    this.issued[at] = issuedAt;
    this.length++;
  }

  shift(): { due: number; issuedAt: number } {
    const out = { due: this.dues[this.head]!, issuedAt: this.issued[this.head]! };
    this.head = (this.head + 1) % this.dues.length;
    this.length--;
    return out;
  }

  private grow(): void {
    const n = this.dues.length;
    const dues = new Float64Array(n * 2);
    const issued = new Float64Array(n * 2);
    for (let i = 0; i < this.length; i++) {
      dues[i] = this.dues[(this.head + i) % n]!;
      issued[i] = this.issued[(this.head + i) % n]!;
    }
    this.dues = dues;
    this.issued = issued;
    this.head = 0;
  }
}

export interface RunHooks {
  /** When the warm-up ends, alongside the load; without a warm-up, before the first request (and waited for). */
  atMeasureStart?: () => unknown;
  /** When the load starts, with the recorders it fills (for a progress line). */
  started?: (warmup: Recorder, measured: Recorder) => void;
}

export function runLoad(spec: RunSpec, hooks: RunHooks = {}): Promise<RunOutcome> {
  return (spec.mode === 'open' ? new OpenLoop(spec) : new ClosedLoop(spec)).run(hooks);
}
