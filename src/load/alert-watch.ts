/**
 * --expect-alert NAME[=firing|inactive]: watches an alert in Prometheus during the run and after
 * it, for the rule's `for:` plus two evaluation intervals past the end (time for a condition that
 * held at the end to become pending, last its `for:`, and be evaluated firing), and says whether
 * it reached the expected state, and when it went pending, firing and resolved.
 *
 *  - firing: passes as soon as the alert fires (during the run or in the window after it).
 *  - inactive: fails as soon as the alert starts firing; otherwise passes when, at the end of the
 *    window, it is neither pending nor firing (an alert still firing from before the run must
 *    have resolved by then).
 *
 * Only alerts whose `instance` is the engine's are looked at, when the engine's instance is known.
 */
import type { ActiveAlert, PrometheusApi } from './prometheus-api';

export type AlertState = 'inactive' | 'pending' | 'firing';

export interface AlertExpectation {
  name: string;
  state: 'firing' | 'inactive';
}

export interface AlertTransition {
  state: AlertState;
  /** Date.now() when the tool saw it. */
  seenAt: number;
  /** Prometheus' activeAt for pending and firing (when the condition began holding). */
  activeAt?: string;
}

export interface AlertVerdict {
  expected: AlertExpectation;
  ok: boolean;
  /** The state when the watch ended. */
  state: AlertState;
  forS: number;
  intervalS: number;
  /** Date.now() after which the watch would have given up. */
  deadline: number;
  transitions: AlertTransition[];
  labels: Record<string, string> | null;
  reason: string;
}

export function parseExpectation(raw: string): AlertExpectation {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:=(firing|inactive))?$/.exec(raw);
  if (!m) throw new Error(`--expect-alert must be NAME, NAME=firing or NAME=inactive, got "${raw}"`);
  return { name: m[1]!, state: (m[2] as AlertExpectation['state'] | undefined) ?? 'firing' };
}

export class AlertWatch {
  private timer: NodeJS.Timeout | null = null;
  private state: AlertState = 'inactive';
  private labels: Record<string, string> | null = null;
  private readonly transitions: AlertTransition[] = [];
  private decided: { ok: boolean; reason: string } | null = null;
  private forS = 0;
  private intervalS = 1;
  private polling: Promise<void> = Promise.resolve();
  private lastError = '';
  private stopped = false;

  constructor(
    private readonly api: PrometheusApi,
    readonly expected: AlertExpectation,
    private readonly instance: string | null,
  ) {}

  /** Reads the rule (refusing an alert Prometheus has no rule for) and starts polling. */
  async start(): Promise<void> {
    const rule = await this.api.alertRule(this.expected.name);
    if (!rule) {
      const names = (await this.api.alertRuleNames()).join(', ') || 'none';
      throw new Error(`Prometheus at ${this.api.url} has no alerting rule named ${this.expected.name} (its alerting rules: ${names})`);
    }
    this.forS = rule.forS;
    this.intervalS = rule.intervalS;
    await this.poll();
    this.schedule();
  }

  private get pollMs(): number {
    return Math.max(100, Math.min(1000, (this.intervalS * 1000) / 2));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => this.decided === null && this.schedule());
    }, this.pollMs);
  }

  private async poll(): Promise<void> {
    let alerts: ActiveAlert[];
    try {
      alerts = (await this.api.alerts()).filter((a) => a.labels.alertname === this.expected.name && (this.instance === null || a.labels.instance === undefined || a.labels.instance === this.instance));
    } catch (err) {
      this.lastError = (err as Error).message; // a missed poll is retried; the verdict names it if it lasts
      return;
    }
    this.lastError = '';
    const firing = alerts.find((a) => a.state === 'firing');
    const shown = firing ?? alerts[0];
    const state: AlertState = firing ? 'firing' : shown ? 'pending' : 'inactive';
    if (shown) this.labels = shown.labels;
    if (state !== this.state || this.transitions.length === 0) {
      this.transitions.push({ state, seenAt: Date.now(), ...(shown ? { activeAt: shown.activeAt } : {}) });
      this.state = state;
      this.decide(state);
    }
  }

  /** Called on each change of state; the first observation is not a change (firing then came from before). */
  private decide(state: AlertState): void {
    if (this.decided) return;
    if (this.expected.state === 'firing' && state === 'firing') this.decided = { ok: true, reason: 'firing' };
    if (this.expected.state === 'inactive' && state === 'firing' && this.transitions.length > 1) {
      this.decided = { ok: false, reason: 'it started firing' };
    }
  }

  /** After the run (ended at `runEnd`, Date.now()): polls until decided or the window closes. */
  async finish(runEnd: number): Promise<AlertVerdict> {
    const deadline = runEnd + (this.forS + 2 * this.intervalS) * 1000;
    while (this.decided === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, this.pollMs));
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    const decided = this.decided ?? this.atDeadline();
    return {
      expected: this.expected,
      ok: decided.ok,
      state: this.state,
      forS: this.forS,
      intervalS: this.intervalS,
      deadline,
      transitions: this.transitions,
      labels: this.labels,
      reason: decided.reason,
    };
  }

  private atDeadline(): { ok: boolean; reason: string } {
    const window = `within for: ${this.forS} s + 2 × ${this.intervalS} s after the run`;
    const err = this.lastError ? ` (last poll failed: ${this.lastError})` : '';
    if (this.expected.state === 'firing') return { ok: false, reason: `not firing ${window}: ${this.state}${err}` };
    if (this.state === 'inactive') return { ok: true, reason: `inactive at the end of the window${err}` };
    return { ok: false, reason: `still ${this.state} ${window}${err}` };
  }
}
