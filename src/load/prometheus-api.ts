/**
 * The parts of Prometheus' HTTP API the load tool reads: instant queries (the engine's histogram
 * as Prometheus scraped it), the scrape targets (has it scraped past the end of the run yet?),
 * the alerting rules (an alert's `for:` and its group's evaluation interval) and the alerts.
 */
import type { Bucket } from '../telemetry/prometheus-text';
import { parseSampleValue } from '../telemetry/prometheus-text';
import { DURATION_METRIC, REQUESTS_METRIC, type ServerSnapshot } from './server-side';

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface AlertRule {
  name: string;
  /** `for:`, seconds. */
  forS: number;
  /** The evaluation interval of its group, seconds. */
  intervalS: number;
  state: 'inactive' | 'pending' | 'firing';
}

export interface ActiveAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export class PrometheusApi {
  constructor(readonly url: string) {}

  private async get<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const qs = new URLSearchParams(params).toString();
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}${qs ? `?${qs}` : ''}`, { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new Error(`Prometheus at ${this.url} is not reachable: ${(err as Error).message}`);
    }
    const body = (await res.json().catch(() => null)) as { status?: string; data?: T; error?: string } | null;
    if (res.status !== 200 || body?.status !== 'success') throw new Error(`Prometheus ${path} answered ${res.status}: ${body?.error ?? 'not the Prometheus API'}`);
    return body.data as T;
  }

  /** An instant query's vector (at `timeS`, Unix seconds, or now). */
  async vector(expr: string, timeS?: number): Promise<VectorSample[]> {
    const data = await this.get<{ resultType: string; result: VectorSample[] }>('/api/v1/query', { query: expr, ...(timeS === undefined ? {} : { time: timeS.toFixed(3) }) });
    if (data.resultType !== 'vector') throw new Error(`Prometheus: ${expr} is not a vector`);
    return data.result;
  }

  /** The `instance` labels that have the duration histogram of `endpoint`. */
  async instances(endpoint: string): Promise<string[]> {
    const v = await this.vector(`count by (instance) (${DURATION_METRIC}_count{endpoint=${JSON.stringify(endpoint)}})`);
    return v.map((s) => s.metric.instance ?? '').sort();
  }

  /** The engine's histogram and request counter for `endpoint` as Prometheus had them at `timeS`. */
  async snapshot(endpoint: string, instance: string, timeS: number): Promise<ServerSnapshot> {
    const sel = `endpoint=${JSON.stringify(endpoint)},instance=${JSON.stringify(instance)}`;
    const [buckets, statuses] = await Promise.all([
      this.vector(`sum by (le) (${DURATION_METRIC}_bucket{${sel},method="POST"})`, timeS),
      this.vector(`sum by (status) (${REQUESTS_METRIC}{${sel}})`, timeS),
    ]);
    const out: Bucket[] = buckets.map((s) => ({ le: parseSampleValue(s.metric.le ?? 'NaN'), count: Number(s.value[1]) }));
    const byStatus: Record<string, number> = {};
    for (const s of statuses) byStatus[s.metric.status ?? ''] = Number(s.value[1]);
    return { buckets: out.sort((a, b) => a.le - b.le), byStatus };
  }

  /** The `instance` labels of the active scrape targets. */
  async targetInstances(): Promise<string[]> {
    const data = await this.get<{ activeTargets: Array<{ labels: Record<string, string> }> }>('/api/v1/targets', { state: 'active' });
    return data.activeTargets.map((t) => t.labels.instance ?? '');
  }

  /** The last scrape of `instance` (ms since the epoch) and its scrape interval (ms), if Prometheus scrapes it. */
  async lastScrape(instance: string): Promise<{ atMs: number; intervalMs: number } | null> {
    const data = await this.get<{ activeTargets: Array<{ labels: Record<string, string>; lastScrape: string; scrapeInterval?: string }> }>('/api/v1/targets', { state: 'active' });
    const t = data.activeTargets.find((x) => x.labels.instance === instance);
    if (!t) return null;
    return { atMs: Date.parse(t.lastScrape), intervalMs: durationMs(t.scrapeInterval ?? '') || 15_000 };
  }

  async alertRule(name: string): Promise<AlertRule | null> {
    const data = await this.get<{ groups: Array<{ interval: number; rules: Array<{ name: string; duration?: number; state?: AlertRule['state'] }> }> }>('/api/v1/rules', { type: 'alert' });
    for (const g of data.groups) {
      const r = g.rules.find((x) => x.name === name);
      if (r) return { name, forS: r.duration ?? 0, intervalS: g.interval, state: r.state ?? 'inactive' };
    }
    return null;
  }

  async alertRuleNames(): Promise<string[]> {
    const data = await this.get<{ groups: Array<{ rules: Array<{ name: string }> }> }>('/api/v1/rules', { type: 'alert' });
    return data.groups.flatMap((g) => g.rules.map((r) => r.name));
  }

  async alerts(): Promise<ActiveAlert[]> {
    return (await this.get<{ alerts: ActiveAlert[] }>('/api/v1/alerts')).alerts;
  }
}

/** Prometheus' duration strings ("15s", "1m30s", "500ms") in milliseconds; 0 for anything else. */
export function durationMs(s: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  const re = /(\d+)(ms|s|m|h|d)/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  return at === s.length ? total : 0;
}
