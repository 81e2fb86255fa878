/**
 * Training runs of the ensemble: from the labelled replay buffer, in a worker thread (serving
 * never stalls), a candidate trained on the whole buffer and one on its most recent rows
 * (TRAIN_RECENT_ROWS), the better of the two on the time-ordered holdout scored against the
 * serving model on that same holdout, promoted
 * through the hot swap only if not worse by more than the margin. One run at a time. Triggered
 * by POST /train, by a schedule, and optionally by a drift detector (then on the rows seen since
 * the drift). Every run is counted, timed, and kept in a short history.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { tfError } from '../errors';
import type { DriftEvent } from '../drift/monitor';
import type { ModelRegistry } from '../models/registry';
import type { ModelChanges } from '../pool/model-swap';
import type { HoldoutMetrics, TrainSettings } from '../training/train-run';
import { runTrainingInWorker } from '../training/training-worker';
import type { Logger } from '../telemetry/logger';
import type { ReplayBuffer } from '../learning/replay-buffer';

export type TrainTrigger = 'api' | 'schedule' | 'drift';
export type RunStatus = 'running' | 'promoted' | 'rejected' | 'failed';

export interface TrainRunRecord {
  id: string;
  trigger: TrainTrigger;
  status: RunStatus;
  force: boolean;
  started_at: string;
  finished_at: string | null;
  duration_seconds: number | null;
  rows: number;
  train_rows: number | null;
  holdout_rows: number | null;
  candidate: { version: string | null; metrics: HoldoutMetrics | null };
  /**
   * Every candidate the run trained, the chosen one first: on the whole training part (`all`)
   * and on its most recent TRAIN_RECENT_ROWS (`recent`), each with its holdout metrics.
   */
  candidates: Array<{ window: 'all' | 'recent'; first_row: number; rows: number; metrics: HoldoutMetrics }>;
  serving: { version: string; metrics: HoldoutMetrics | null };
  promoted_version: string | null;
  reason: string | null;
}

export interface TrainingMetrics {
  runFinished(status: 'success' | 'failure', seconds: number): void;
}

export interface TrainingRunsOptions {
  models: ModelRegistry;
  /** Where a promoted candidate goes: the local hot swap, or the replicas' model history. */
  swapper: Pick<ModelChanges, 'load'>;
  replay: ReplayBuffer;
  logger: Logger;
  metrics: TrainingMetrics;
  settings: Partial<TrainSettings>;
  featureNames?: string[];
  /** 0 disables the schedule. */
  intervalMs: number;
  /** Detector whose drift triggers a run on the rows seen since, or null. */
  driftDetector: string | null;
  driftMinRows: number;
  /** Runs kept for GET /train/{id}. */
  historySize: number;
  /**
   * With several replicas: whether this one may train now (it holds the training lease). The
   * schedule and the drift trigger skip while it says no, and a run that lost it is not promoted.
   * Absent: always.
   */
  mayTrain?: () => boolean;
}

const MODEL = 'ensemble';

export class TrainingRuns {
  private readonly runs = new Map<string, TrainRunRecord>();
  private running: Promise<TrainRunRecord> | null = null;
  /** Aborts the running run's training worker (at shutdown). */
  private abort: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Examples learned since start; the drift trigger counts rows from a drift on. */
  private examples = 0;
  private closed = false;
  private driftAt: number | null = null;

  constructor(private readonly o: TrainingRunsOptions) {
    if (o.intervalMs > 0) {
      this.timer = setInterval(() => this.scheduled(), o.intervalMs);
      this.timer.unref();
    }
  }

  get busy(): boolean {
    return this.running !== null;
  }

  /** Starts a run; throws TRAINING_IN_PROGRESS while one runs. Resolves when it ends. */
  start(trigger: TrainTrigger, force: boolean, rowsFromEnd: number | null = null): { record: TrainRunRecord; done: Promise<TrainRunRecord> } {
    if (this.running) throw tfError('TRAINING_IN_PROGRESS');
    const served = this.o.models.get(MODEL);
    const data = this.o.replay.toArrays();
    let { x, y, rows } = data;
    if (rowsFromEnd !== null && rowsFromEnd < rows) {
      const F = this.o.replay.features;
      x = x.slice((rows - rowsFromEnd) * F);
      y = y.slice(rows - rowsFromEnd);
      rows = rowsFromEnd;
    }
    const record: TrainRunRecord = {
      id: randomUUID(),
      trigger,
      status: 'running',
      force,
      started_at: new Date().toISOString(),
      finished_at: null,
      duration_seconds: null,
      rows,
      train_rows: null,
      holdout_rows: null,
      candidate: { version: null, metrics: null },
      candidates: [],
      serving: { version: served.version, metrics: null },
      promoted_version: null,
      reason: null,
    };
    this.keep(record);
    const started = performance.now();
    const finish = (status: RunStatus, reason: string): TrainRunRecord => {
      const seconds = (performance.now() - started) / 1000;
      record.status = status;
      record.reason = reason;
      record.finished_at = new Date().toISOString();
      record.duration_seconds = seconds;
      this.o.metrics.runFinished(status === 'failed' ? 'failure' : 'success', seconds);
      this.o.logger.info({ run: record }, `training run ${status}`);
      return record;
    };
    const abort = (this.abort = new AbortController());
    const done = (async (): Promise<TrainRunRecord> => {
      try {
        const outcome = await runTrainingInWorker(
          {
            x,
            y,
            rows,
            features: this.o.replay.features,
            settings: { ...this.o.settings, force },
            servingModel: Uint8Array.from(new Uint8Array(served.onnx!.bytes)),
            ...(this.o.featureNames ? { featureNames: this.o.featureNames } : {}),
            createdAt: record.started_at,
          },
          { transferInput: true, signal: abort.signal },
        );
        record.train_rows = outcome.trainRows;
        record.holdout_rows = outcome.holdoutRows;
        record.candidate.metrics = outcome.candidateMetrics;
        record.candidates = outcome.candidates.map((c) => ({ window: c.window, first_row: c.firstRow, rows: c.rows, metrics: c.metrics }));
        record.serving.metrics = outcome.servingMetrics;
        if (!outcome.promote) return finish('rejected', outcome.reason);
        if (this.o.mayTrain && !this.o.mayTrain()) return finish('failed', 'this replica lost the training lease while the run trained; the candidate is not promoted');
        const swapped = await this.o.swapper.load(MODEL, outcome.candidate, `training run ${record.id}`, {
          reason: 'train',
          card: { ...(outcome.card as unknown as Record<string, unknown>), training_run: record.id },
        });
        record.candidate.version = swapped.version;
        record.promoted_version = swapped.version;
        return finish('promoted', outcome.reason);
      } catch (err) {
        return finish('failed', (err as Error).message);
      } finally {
        this.running = null;
        this.abort = null;
      }
    })();
    this.running = done;
    return { record, done };
  }

  get(id: string): TrainRunRecord {
    const r = this.runs.get(id);
    if (!r) throw tfError('TRAINING_RUN_NOT_FOUND', { id, kept: this.o.historySize });
    return r;
  }

  list(): TrainRunRecord[] {
    return [...this.runs.values()].reverse();
  }

  private keep(r: TrainRunRecord): void {
    this.runs.set(r.id, r);
    while (this.runs.size > this.o.historySize) this.runs.delete(this.runs.keys().next().value as string);
  }

  private minRows(): number {
    return this.o.settings.minRows ?? 200;
  }

  private scheduled(): void {
    if (this.o.mayTrain && !this.o.mayTrain()) {
      this.o.logger.debug('scheduled training skipped: another replica holds the training lease');
      return;
    }
    if (this.running) {
      this.o.logger.info('scheduled training skipped: a run is in progress');
      return;
    }
    if (this.o.replay.size < this.minRows()) {
      this.o.logger.info({ rows: this.o.replay.size, needed: this.minRows() }, 'scheduled training skipped: too few labelled rows in the buffer');
      return;
    }
    this.start('schedule', false);
  }

  /** Called with every drift event of the monitor. */
  onDrift(e: DriftEvent): void {
    if (this.o.driftDetector === null || e.detector !== this.o.driftDetector || e.severity !== 'drift') return;
    this.driftAt = this.examples;
    this.o.logger.info({ detector: e.detector, minRows: this.o.driftMinRows }, 'drift: a training run follows once enough rows have arrived');
  }

  /** Called as examples are learned. */
  onExamples(rows: number): void {
    this.examples += rows;
    if (this.driftAt === null || this.running || this.closed) return;
    const since = this.examples - this.driftAt;
    if (since < this.o.driftMinRows) return;
    this.driftAt = null;
    // Every replica sees the drift at the same record; the lease holder alone trains on it.
    if (this.o.mayTrain && !this.o.mayTrain()) return;
    this.start('drift', false, Math.min(since, this.o.replay.size));
  }

  /** Aborts a run still training (its worker is terminated) and fails it with `why`; the runs go on. */
  abortRunning(why: string): void {
    this.abort?.abort(new Error(why));
  }

  /** No more scheduled runs; a run still training is aborted (its worker terminated) and fails. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    this.abort?.abort(new Error('the engine is shutting down'));
  }

  /** Resolves when the current run, if any, has ended. */
  async idle(): Promise<void> {
    if (this.running) await this.running;
  }
}
