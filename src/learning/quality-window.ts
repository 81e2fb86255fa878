/**
 * Accuracy, precision, recall and F1 of class UP over a sliding window of the latest labelled
 * outcomes, per model. Counts are kept incrementally, so an update is O(1). The metrics are not
 * reported until the window holds `minOutcomes`: a gauge at a fake 0 on a fresh start would fire
 * LowModelAccuracy.
 */
export interface QualityMetrics {
  outcomes: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

export class QualityWindow {
  private readonly predicted: Uint8Array;
  private readonly actual: Uint8Array;
  private next = 0;
  private size = 0;
  private tp = 0;
  private fp = 0;
  private fn = 0;
  private tn = 0;

  constructor(
    readonly capacity: number,
    readonly minOutcomes: number,
  ) {
    this.predicted = new Uint8Array(capacity);
    this.actual = new Uint8Array(capacity);
  }

  private count(p: number, a: number, d: number): void {
    if (p === 1 && a === 1) this.tp += d;
    else if (p === 1) this.fp += d;
    else if (a === 1) this.fn += d;
    else this.tn += d;
  }

  add(predicted: number, actual: number): void {
    if (this.size === this.capacity) this.count(this.predicted[this.next]!, this.actual[this.next]!, -1);
    else this.size++;
    this.predicted[this.next] = predicted;
    this.actual[this.next] = actual;
    this.count(predicted, actual, 1);
    this.next = (this.next + 1) % this.capacity;
  }

  get outcomes(): number {
    return this.size;
  }

  /** Accuracy over the outcomes held (0 when empty), reached minOutcomes or not; allocates nothing. */
  get accuracy(): number {
    return this.size === 0 ? 0 : (this.tp + this.tn) / this.size;
  }

  /** Null until the window holds enough outcomes. Precision/recall of an empty class are 0. */
  metrics(): QualityMetrics | null {
    if (this.size < this.minOutcomes || this.size === 0) return null;
    const { tp, fp, fn, tn } = this;
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    return { outcomes: this.size, accuracy: (tp + tn) / this.size, precision, recall, f1 };
  }

  /** The outcomes oldest first, as a string of digits "pa" pairs: compact and JSON-safe. */
  snapshot(): { capacity: number; outcomes: string } {
    let out = '';
    const start = this.size < this.capacity ? 0 : this.next;
    for (let i = 0; i < this.size; i++) {
      const j = (start + i) % this.capacity;
      out += String(this.predicted[j]) + String(this.actual[j]);
    }
    return { capacity: this.capacity, outcomes: out };
  }

  /** Replays a snapshot's outcomes into this window (whatever its capacity). */
  restore(s: { outcomes: string }): void {
    this.reset();
    for (let i = 0; i + 1 < s.outcomes.length; i += 2) this.add(s.outcomes.charCodeAt(i) - 48, s.outcomes.charCodeAt(i + 1) - 48);
  }

  reset(): void {
    this.next = this.size = this.tp = this.fp = this.fn = this.tn = 0;
  }
}
