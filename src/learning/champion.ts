/**
 * Which model answers a request that names none (SERVE_POLICY).
 *
 * `fixed`: always the configured default (the ensemble, or `sgd` on a cold start). `champion`:
 * the candidate with the best rolling accuracy over its quality window (the last QUALITY_WINDOW
 * labelled outcomes), once every candidate's window holds QUALITY_MIN_OUTCOMES; until then the
 * configured default. The champion changes only when a challenger's accuracy is ahead of the
 * champion's by at least CHAMPION_MARGIN (hysteresis: two models within noise of each other do not
 * take turns), and a tie never changes it.
 *
 * Re-evaluated on the main thread after each applied feedback record (a few comparisons); the
 * request path reads `current`, one field. Every candidate keeps being scored on every outcome
 * (the quality windows are fed whoever served), so a challenger that falls behind can win back.
 *
 * The champion is not part of the learning checkpoint: after a restart it is chosen again from
 * the recovered windows (the best one, no incumbent to defend), then follows the outcomes.
 */
import type { QualityWindow } from './quality-window';

export type ServePolicy = 'fixed' | 'champion';

export const SERVE_POLICIES: readonly ServePolicy[] = ['fixed', 'champion'];

export interface ChampionOptions {
  policy: ServePolicy;
  /** Lead a challenger needs over the champion, in accuracy (0..1). */
  margin: number;
  /** Outcomes every candidate's window needs before the champion is chosen by accuracy. */
  minOutcomes: number;
  /** The model a request without a name goes to under `fixed`, and until candidates qualify. */
  fallback: string;
  /** Models in the running, in order (an exact tie between challengers goes to the first). */
  candidates: readonly string[];
  now?: () => number;
}

export interface CandidateStatus {
  name: string;
  /** Accuracy over the window; null while it holds no outcome. */
  accuracy: number | null;
  outcomes: number;
  /** Whether the window holds `minOutcomes`. */
  qualified: boolean;
}

/** What GET /models says about the default route. */
export interface ChampionStatus {
  policy: ServePolicy;
  /** The model a request without "model" goes to now. */
  model: string;
  since: string;
  reason: string;
  margin: number;
  window: number;
  min_outcomes: number;
  switches: number;
  candidates: CandidateStatus[];
}

/** Lead comparisons are made on accuracies that are ratios of counts: ignore float dust. */
const EPSILON = 1e-9;

export class ChampionSelector {
  private champion: string;
  private sinceMs: number;
  private why: string;
  private switchCount = 0;
  private readonly now: () => number;
  private readonly listeners: Array<(from: string, to: string) => void> = [];

  constructor(
    private readonly quality: ReadonlyMap<string, QualityWindow>,
    readonly options: ChampionOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.champion = options.fallback;
    this.sinceMs = this.now();
    this.why = options.policy === 'fixed' ? 'SERVE_POLICY=fixed: the configured default model' : this.waitingReason() ?? '';
    if (options.policy === 'champion') this.start();
  }

  /** The model a request without a name goes to. Read on the request path. */
  get current(): string {
    return this.champion;
  }

  get switches(): number {
    return this.switchCount;
  }

  /** Called with every change of champion (not at start). */
  onSwitch(listener: (from: string, to: string) => void): void {
    this.listeners.push(listener);
  }

  /** After a restart the windows are recovered but the incumbent is not: the best one starts. */
  private start(): void {
    if (this.waitingReason() !== null) return;
    const best = this.best();
    this.champion = best.name;
    this.why = `best rolling accuracy when the engine started (${fmt(best.accuracy)} over ${best.outcomes} outcomes)`;
  }

  /** Re-evaluates after an outcome; true when the champion changed. */
  evaluate(): boolean {
    if (this.options.policy !== 'champion') return false;
    const waiting = this.waitingReason();
    if (waiting !== null) {
      // The fallback keeps serving; once chosen by accuracy, a champion is not dropped because a
      // window is reset or short (it cannot become short again without a restart or a new model).
      if (this.champion === this.options.fallback && this.switchCount === 0) this.why = waiting;
      return false;
    }
    const best = this.best();
    if (best.name === this.champion) return false;
    const incumbent = this.accuracyOf(this.champion);
    const lead = best.accuracy - incumbent;
    if (lead <= EPSILON || lead < this.options.margin - EPSILON) return false;
    const from = this.champion;
    this.champion = best.name;
    this.sinceMs = this.now();
    this.switchCount++;
    this.why =
      `${best.name} led ${from} by ${fmt(lead)} in rolling accuracy (${fmt(best.accuracy)} against ${fmt(incumbent)}), ` +
      `at least the margin ${fmt(this.options.margin)}`;
    for (const l of this.listeners) l(from, best.name);
    return true;
  }

  status(): ChampionStatus {
    const o = this.options;
    return {
      policy: o.policy,
      model: this.champion,
      since: new Date(this.sinceMs).toISOString(),
      reason: this.why,
      margin: o.margin,
      window: this.windowSize(),
      min_outcomes: o.minOutcomes,
      switches: this.switchCount,
      candidates: o.candidates.map((name) => {
        const w = this.quality.get(name);
        const outcomes = w?.outcomes ?? 0;
        return { name, accuracy: outcomes > 0 ? this.accuracyOf(name) : null, outcomes, qualified: outcomes >= o.minOutcomes };
      }),
    };
  }

  /** Why the champion cannot be chosen by accuracy yet, or null when it can. */
  private waitingReason(): string | null {
    const { candidates, minOutcomes, fallback } = this.options;
    if (candidates.length < 2) return `only ${candidates.join('') || 'no model'} is a candidate: ${fallback} serves`;
    for (const name of candidates) {
      const n = this.quality.get(name)?.outcomes ?? 0;
      if (n < minOutcomes) return `${name} has ${n} of the ${minOutcomes} outcomes (QUALITY_MIN_OUTCOMES) every candidate needs; ${fallback} serves until then`;
    }
    return null;
  }

  /** The most accurate candidate; an exact tie goes to the champion, then to the earlier candidate. */
  private best(): { name: string; accuracy: number; outcomes: number } {
    let name = this.champion;
    let accuracy = this.options.candidates.includes(name) ? this.accuracyOf(name) : -1;
    for (const c of this.options.candidates) {
      const a = this.accuracyOf(c);
      if (a > accuracy + EPSILON) {
        name = c;
        accuracy = a;
      }
    }
    return { name, accuracy, outcomes: this.quality.get(name)?.outcomes ?? 0 };
  }

  private accuracyOf(name: string): number {
    return this.quality.get(name)?.accuracy ?? 0;
  }

  private windowSize(): number {
    for (const name of this.options.candidates) {
      const w = this.quality.get(name);
      if (w) return w.capacity;
    }
    return 0;
  }
}

function fmt(v: number): string {
  return v.toFixed(4);
}
