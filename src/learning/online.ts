/**
 * Online learning from feedback, durable.
 *
 * Every piece of feedback (and every outcome sent to the drift endpoints) becomes a record in
 * the feedback log; the caller is answered only once the record is fsynced (group commit). A
 * record is applied to the in-memory state strictly in log order: the quality windows and the
 * drift monitor get the outcome first (prequential), then the SGD model and the adaptive random
 * forest (`arf`, when enabled) learn the row, each scored on it first, and the new weights and
 * forest are published to the workers. Periodically and on close the whole state is
 * checkpointed atomically with the sequence number it includes, and the log before it is
 * dropped. On start the checkpoint is loaded and the log after it replayed: the state equals the
 * state before a crash, for every acknowledged record.
 *
 * Replicated (REDIS_URL): there is no local log. Records go to the feedback stream that every
 * replica reads whole (src/replication/), and come back through `applyReplicated` in stream order
 * on every replica, this one included; `submit` resolves once this replica has applied its own.
 * The checkpoint records the stream position it includes instead of a log sequence number, and
 * `restoreShared` replaces the whole state with another replica's checkpoint (a new replica, or
 * one whose position was trimmed from the stream).
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DriftEvent, DriftMonitor, MonitorSnapshot, MonitorUpdate, Outcome } from '../drift/monitor';
import { tfError } from '../errors';
import { readCheckpoint } from './checkpoint';
import { CheckpointWriter } from './checkpoint-writer';
import { FeedbackLog, type RecoveryReport } from './feedback-log';
import { decodeRecord, encodeRecord, type FeedbackExample, type LearningRecord, type ServedPrediction } from './feedback-record';
import type { QualityWindow } from './quality-window';
import { AdaptiveRandomForest, type ArfOptions, type ForestSnapshot } from './arf/forest';
import { SharedForest } from './arf/shared-forest';
import { ReplayBuffer, type ReplaySnapshot, type ReplaySnapshotV1 } from './replay-buffer';
import { SgdLearner, type SgdOptions, type SgdSnapshot } from './sgd';
import { SharedWeights } from './shared-weights';

export const CHECKPOINT_NAME = 'learning.checkpoint';
/**
 * 2 added `arf`. A schema-1 checkpoint (an engine without the forest) still loads: the forest then
 * starts empty and learns from the log after the checkpoint, which is all the log there is.
 */
const CHECKPOINT_SCHEMA = 2;
const READABLE_SCHEMAS = [1, 2];
export const ARF_MODEL = 'arf';

export interface OnlineLearningOptions {
  stateDir: string;
  sgd: SgdOptions;
  /** The adaptive random forest's options, or null when it is not served (ARF_ENABLED=false). */
  arf?: ArfOptions | null;
  /** Name of the model whose outcomes feed the drift monitor. */
  primaryModel: string;
  quality: Map<string, QualityWindow>;
  drift: DriftMonitor | null;
  replayCapacity: number;
  commitIntervalMs: number;
  durable: boolean;
  maxPendingBytes: number;
  /** Start even when acknowledged records in the log are damaged, dropping them and what follows (FEEDBACK_REPAIR). */
  repair?: boolean;
  checkpointIntervalMs: number;
  /** Replicated (REDIS_URL): no local log; records come from the stream of this key. */
  replicated?: { key: string };
  /** After each checkpoint written, with its file (replicas publish it, see src/app/replication.ts). */
  onCheckpointWritten?: (file: string, stream: StreamPositionRecord | null) => void;
  onDriftEvent?: (e: DriftEvent) => void;
  onApplied?: (rows: number) => void;
  onCheckpointError?: (err: Error) => void;
}

interface LearningCheckpoint {
  schema: number;
  seq: number;
  features: number;
  sgd: SgdSnapshot;
  /** Schema 2; null when the forest was not enabled. */
  arf?: ForestSnapshot | null;
  quality: Record<string, { outcomes: string }>;
  drift: MonitorSnapshot | null;
  /** Typed arrays in checkpoints of format 2, base64 in format 1 (see checkpoint.ts). */
  replay: ReplaySnapshot | ReplaySnapshotV1;
  counters: { examples: number; records: number };
  /** Replicated: the stream and the last entry the state includes (ordinal: entries up to it ever added). */
  stream?: StreamPositionRecord;
}

export interface StreamPositionRecord {
  key: string;
  id: string;
  ordinal: number;
}

/** With REDIS_URL, where records go: the feedback stream (src/replication/feedback-stream.ts adapts to it). */
export interface ReplicatedLog {
  readonly key: string;
  /** Appends an encoded record; resolves with applyReplicated's result once this replica applied it. */
  append(payload: Uint8Array): Promise<unknown>;
  /** The last entry applied: what a checkpoint taken now includes. */
  position(): { id: string; ordinal: number };
  /** Whether Redis is known to fsync every write before it answers (appendonly yes, appendfsync always). */
  durable(): boolean;
  stats(): unknown;
}

/** What the checkpoints since open did (GET /monitoring/system/info, learning.checkpoints). */
export interface CheckpointStats {
  written: number;
  failed: number;
  /** Seq the last written checkpoint covers. */
  last_seq: number;
  /** Wall-clock start of the last written checkpoint, in ms since the epoch. */
  last_started_at_ms: number | null;
  /** From snapshot to log truncation, of the last written checkpoint. */
  last_duration_ms: number | null;
  /** The part of it that ran on the main thread (the snapshot): what a checkpoint costs the event loop. */
  last_snapshot_ms: number | null;
  last_error: string | null;
}

export interface RecoveryInfo {
  checkpointSeq: number;
  replayed: number;
  lastSeq: number;
  /** What the feedback log's open found and cut (a torn tail; with repair, damaged records). */
  log: RecoveryReport | null;
  /** Replicated: a local checkpoint was there but not of this stream (local-log state), and was not loaded. */
  ignoredLocalCheckpoint?: boolean;
}

export class OnlineLearning {
  private sgd: SgdLearner;
  readonly weights: SharedWeights;
  readonly replay: ReplayBuffer;
  private arf: AdaptiveRandomForest | null;
  readonly sharedForest: SharedForest | null;
  private readonly effective: Float64Array;
  private appliedSeq = 0;
  private readonly waiting = new Map<number, { record: LearningRecord; done: (u: MonitorUpdate | null) => void }>();
  private examples = 0;
  private records = 0;
  private timer: NodeJS.Timeout | null = null;
  private checkpointing: Promise<void> | null = null;
  private readonly writer = new CheckpointWriter();
  private readonly checkpoints: CheckpointStats = {
    written: 0,
    failed: 0,
    last_seq: 0,
    last_started_at_ms: null,
    last_duration_ms: null,
    last_snapshot_ms: null,
    last_error: null,
  };
  private closed = false;
  private stream: ReplicatedLog | null = null;
  /** Replicated: the stream position the restored local checkpoint included, null if none. */
  localStreamPosition: StreamPositionRecord | null = null;
  recovery: RecoveryInfo = { checkpointSeq: 0, replayed: 0, lastSeq: 0, log: null };

  private constructor(
    private readonly opts: OnlineLearningOptions,
    private readonly log: FeedbackLog | null,
    learner: SgdLearner,
    forest: AdaptiveRandomForest | null,
  ) {
    this.sgd = learner;
    this.arf = forest;
    this.sharedForest = forest ? SharedForest.forForest(forest) : null;
    this.weights = SharedWeights.create(opts.sgd.features);
    this.effective = new Float64Array(opts.sgd.features);
    this.replay = new ReplayBuffer(opts.replayCapacity, opts.sgd.features);
  }

  get learner(): SgdLearner {
    return this.sgd;
  }

  get forest(): AdaptiveRandomForest | null {
    return this.arf;
  }

  get features(): number {
    return this.opts.sgd.features;
  }

  /**
   * Whether feedback is fsynced before it is acknowledged (FEEDBACK_FSYNC): what /learn's answer
   * must say. Without it an acknowledged record is in the page cache only, and a power loss or a
   * kernel crash can lose it (a kill -9 of the process cannot).
   */
  get durable(): boolean {
    if (this.opts.replicated) return this.stream?.durable() ?? false;
    return this.opts.durable;
  }

  /** Loads the checkpoint, replays the log after it, and starts periodic checkpoints. */
  static async open(opts: OnlineLearningOptions): Promise<OnlineLearning> {
    const cp = readCheckpoint<LearningCheckpoint>(opts.stateDir, CHECKPOINT_NAME);
    if (cp && cp.features !== opts.sgd.features) {
      throw tfError(
        'CONFIG_INVALID',
        `the learning checkpoint in ${opts.stateDir} is for ${cp.features} features but the engine serves ${opts.sgd.features}; use another STATE_DIR`,
      );
    }
    if (opts.replicated) return OnlineLearning.openReplicated(opts, opts.replicated.key, cp);
    const log = await FeedbackLog.open(path.join(opts.stateDir, 'feedback'), {
      commitIntervalMs: opts.commitIntervalMs,
      durable: opts.durable,
      maxPendingBytes: opts.maxPendingBytes,
      repair: opts.repair ?? false,
    });
    // The learner's options come from the checkpoint when there is one: changing SGD settings
    // mid-stream would make the replayed state differ from the state that was acknowledged.
    const learner = cp ? SgdLearner.restore(cp.sgd) : new SgdLearner(opts.sgd);
    const self = new OnlineLearning(opts, log, learner, OnlineLearning.forestOf(opts, cp));
    if (cp) self.restore(cp);
    const replayed = await log.replay(self.appliedSeq, (seq, payload) => self.apply(seq, decodeRecord(payload, self.features)));
    self.recovery = { checkpointSeq: cp?.seq ?? 0, replayed, lastSeq: self.appliedSeq, log: log.recovery };
    self.publish();
    self.startCheckpoints();
    return self;
  }

  /**
   * Replicated: no local log. A local checkpoint of this stream is loaded (the stream is read on
   * from its position); one of local-log state or of another stream is not: every replica must
   * hold the stream's state, and that state was never in the stream.
   */
  private static openReplicated(opts: OnlineLearningOptions, key: string, cp: LearningCheckpoint | null): OnlineLearning {
    const usable = cp && cp.stream?.key === key ? cp : null;
    const self = new OnlineLearning(opts, null, usable ? SgdLearner.restore(usable.sgd) : new SgdLearner(opts.sgd), OnlineLearning.forestOf(opts, usable));
    if (usable) {
      self.restore(usable);
      self.localStreamPosition = usable.stream!;
    }
    self.recovery = { checkpointSeq: usable?.seq ?? 0, replayed: 0, lastSeq: self.appliedSeq, log: null, ignoredLocalCheckpoint: cp !== null && usable === null };
    self.publish();
    self.startCheckpoints();
    return self;
  }

  /** As for SGD, a checkpointed forest keeps the options it was grown with. */
  private static forestOf(opts: OnlineLearningOptions, cp: LearningCheckpoint | null): AdaptiveRandomForest | null {
    if (!opts.arf) return null;
    return cp?.arf ? AdaptiveRandomForest.restore(cp.arf) : new AdaptiveRandomForest(opts.arf);
  }

  private startCheckpoints(): void {
    if (this.opts.checkpointIntervalMs <= 0) return;
    this.timer = setInterval(() => {
      this.checkpoint().catch((err: Error) => this.opts.onCheckpointError?.(err));
    }, this.opts.checkpointIntervalMs);
    this.timer.unref();
  }

  /** Replicated: where submit sends records from now on. */
  attachStream(stream: ReplicatedLog): void {
    this.stream = stream;
  }

  /** Replicated: applies one record read from the stream (every replica, in stream order). */
  applyReplicated(payload: Uint8Array): MonitorUpdate | null {
    const update = this.apply(this.appliedSeq + 1, decodeRecord(payload, this.features));
    this.publish();
    return update;
  }

  /** Replicated: replaces the whole state with a checkpoint another replica published. */
  restoreShared(state: unknown): void {
    const cp = state as LearningCheckpoint;
    if (cp.features !== this.features) {
      throw tfError('CHECKPOINT_CORRUPT', `the shared learning checkpoint is for ${cp.features} features but the engine serves ${this.features}`);
    }
    const learner = SgdLearner.restore(cp.sgd);
    const forest = OnlineLearning.forestOf(this.opts, cp);
    if (forest && this.arf && !this.sharedForest!.fits(forest)) {
      throw tfError('CHECKPOINT_CORRUPT', 'the shared learning checkpoint holds a forest of another shape than this engine serves (ARF_TREES, ARF_MAX_NODES or the features differ)');
    }
    this.restore(cp);
    this.sgd = learner;
    this.arf = forest;
    this.publish();
  }

  /**
   * Makes the record durable, then applies it in log order. Resolves after both, with the drift
   * monitor's update for drift records.
   */
  async submit(record: LearningRecord): Promise<MonitorUpdate | null> {
    if (this.closed) throw tfError('DRAINING', { refusing: 'feedback' });
    if (this.opts.replicated) {
      if (!this.stream) throw tfError('FEEDBACK_STREAM_UNAVAILABLE', 'the feedback stream is not open yet');
      return (await this.stream.append(encodeRecord(record, this.features))) as MonitorUpdate | null;
    }
    if (!this.log) throw tfError('INTERNAL', 'no feedback log');
    // The log's refusals (FEEDBACK_BACKLOG, FEEDBACK_TOO_LARGE, FEEDBACK_LOG_UNAVAILABLE, FEEDBACK_LOG_FAILED) are the client's answer as they are.
    const seq = await this.log.append(encodeRecord(record, this.features));
    return new Promise((resolve) => {
      this.waiting.set(seq, { record, done: resolve });
      this.drainInOrder();
    });
  }

  private drainInOrder(): void {
    for (;;) {
      const next = this.waiting.get(this.appliedSeq + 1);
      if (!next) return;
      this.waiting.delete(this.appliedSeq + 1);
      const update = this.apply(this.appliedSeq + 1, next.record);
      this.publish();
      next.done(update);
    }
  }

  private apply(seq: number, r: LearningRecord): MonitorUpdate | null {
    this.appliedSeq = seq;
    this.records++;
    switch (r.kind) {
      case 'drift-reset':
        this.opts.drift?.reset();
        return null;
      case 'drift':
        return this.feedDrift({ prediction: r.prediction, actual: r.actual, proba: r.proba });
      case 'feedback':
        this.applyFeedback(r);
        return null;
    }
  }

  private feedDrift(o: Outcome): MonitorUpdate | null {
    const d = this.opts.drift;
    if (!d) return null;
    const u = d.update(o);
    if (this.opts.onDriftEvent) for (const e of u.events) this.opts.onDriftEvent(e);
    return u;
  }

  private applyFeedback(r: FeedbackExample): void {
    const { quality, primaryModel } = this.opts;
    const served = r.served;
    const servedQuality = served ? quality.get(served.model) : undefined;
    const sgdQuality = quality.get('sgd');
    const forest = this.forest;
    const arfQuality = quality.get(ARF_MODEL);
    const F = this.features;
    for (let i = 0; i < r.rows; i++) {
      const y = r.labels[i]! as 0 | 1;
      if (served) {
        servedQuality?.add(served.classes[i]!, y);
        if (served.model === primaryModel) this.feedDrift({ prediction: served.classes[i]!, actual: y, proba: served.p1[i]! });
      }
      // The ONNX models that did not answer, scored when the feedback arrived (feedback by id on an answer of the champion).
      if (r.others) for (const o of r.others) this.scoreOther(o, i, y);
      // Prequential: the online model's prediction for the row is taken before it learns it.
      const p = this.learner.learn(r.features, i, y);
      const cls = p > 0.5 ? 1 : 0;
      if (served?.model !== 'sgd') {
        sgdQuality?.add(cls, y);
        if (primaryModel === 'sgd') this.feedDrift({ prediction: cls, actual: y, proba: p });
      }
      if (forest) {
        const pa = forest.learn(r.features, i * F, y);
        if (served?.model !== ARF_MODEL) arfQuality?.add(pa > 0.5 ? 1 : 0, y);
      }
      this.replay.push(r.features, i, y);
    }
    this.examples += r.rows;
    this.opts.onApplied?.(r.rows);
  }

  private scoreOther(o: ServedPrediction, i: number, y: 0 | 1): void {
    this.opts.quality.get(o.model)?.add(o.classes[i]!, y);
    if (o.model === this.opts.primaryModel) this.feedDrift({ prediction: o.classes[i]!, actual: y, proba: o.p1[i]! });
  }

  private publish(): void {
    const bias = this.learner.effectiveWeights(this.effective);
    this.weights.publish(this.effective, bias, this.learner.updates);
    if (this.forest) this.sharedForest!.publish(this.forest);
  }

  /**
   * Writes the full state atomically, then drops the log it covers. One at a time. Only the
   * snapshot runs here; the encoding and the write run in the checkpoint writer's thread. A failure
   * (the disk full, an I/O error) leaves the previous checkpoint and the whole log as they were.
   */
  checkpoint(): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    const c = this.checkpoints;
    this.checkpointing = (async () => {
      const startedAt = Date.now();
      const t0 = performance.now();
      const state = this.snapshot();
      const snapshotMs = performance.now() - t0;
      await this.log?.rotate();
      await this.writer.write(this.opts.stateDir, CHECKPOINT_NAME, state);
      // Only once the checkpoint is durable: a failed one truncates nothing.
      await this.log?.truncateThrough(state.seq);
      this.opts.onCheckpointWritten?.(path.join(this.opts.stateDir, CHECKPOINT_NAME), state.stream ?? null);
      Object.assign(c, { written: c.written + 1, last_seq: state.seq, last_started_at_ms: startedAt, last_duration_ms: performance.now() - t0, last_snapshot_ms: snapshotMs, last_error: null });
    })()
      .catch((err: Error) => {
        c.failed++;
        c.last_error = err.message;
        throw err;
      })
      .finally(() => {
        this.checkpointing = null;
      });
    return this.checkpointing;
  }

  private snapshot(): LearningCheckpoint {
    const quality: Record<string, { outcomes: string }> = {};
    for (const [name, w] of this.opts.quality) quality[name] = { outcomes: w.snapshot().outcomes };
    return {
      schema: CHECKPOINT_SCHEMA,
      seq: this.appliedSeq,
      features: this.features,
      sgd: this.learner.snapshot(),
      arf: this.forest ? this.forest.snapshot() : null,
      quality,
      drift: this.opts.drift ? this.opts.drift.snapshot() : null,
      replay: this.replay.snapshot(),
      counters: { examples: this.examples, records: this.records },
      ...(this.opts.replicated ? this.streamField(this.opts.replicated.key) : {}),
    };
  }

  private streamField(key: string): { stream?: StreamPositionRecord } {
    if (this.stream) return { stream: { key, ...this.stream.position() } };
    return this.localStreamPosition ? { stream: this.localStreamPosition } : {};
  }

  private restore(cp: LearningCheckpoint): void {
    if (!READABLE_SCHEMAS.includes(cp.schema)) {
      throw tfError('CHECKPOINT_CORRUPT', `learning checkpoint schema ${cp.schema} is not supported (expected one of ${READABLE_SCHEMAS.join(', ')})`);
    }
    this.appliedSeq = cp.seq;
    for (const [name, q] of Object.entries(cp.quality)) this.opts.quality.get(name)?.restore(q);
    if (cp.drift && this.opts.drift) this.opts.drift.restore(cp.drift);
    this.replay.restore(cp.replay);
    this.examples = cp.counters.examples;
    this.records = cp.counters.records;
  }

  stats(): Record<string, unknown> {
    return {
      examples_learned: this.examples,
      records_applied: this.records,
      applied_seq: this.appliedSeq,
      replay_buffer_rows: this.replay.size,
      replay_buffer_capacity: this.replay.capacity,
      arf: this.arfStats(),
      recovery: this.recovery,
      checkpoints: { ...this.checkpoints },
      log: this.log?.stats() ?? null,
      stream: this.stream?.stats() ?? null,
    };
  }

  /** The forest's shape and its adaptations (GET /models/arf, system info), or null when off. */
  arfStats(): Record<string, unknown> | null {
    const f = this.forest;
    if (!f) return null;
    const { nodes, backgrounds } = f.shape();
    return { rows_learned: f.rows, trees: f.members.length, nodes, background_trees: backgrounds, warnings: f.warnings, trees_replaced: f.replaced };
  }

  /** Final checkpoint and close: what was acknowledged is in the checkpoint. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.log?.flush();
    this.drainInOrder();
    try {
      // If it fails, nothing acknowledged is lost: the log (or the stream) still holds it, for the next start.
      await this.checkpoint();
    } finally {
      await this.log?.close();
      await this.writer.close();
    }
  }
}
