/**
 * Hot-path metric families: histograms and counters whose series are resolved once (per label
 * combination) and then cost a few increments per observation, exported through the same
 * OpenTelemetry reader as every other metric via its MetricProducer interface.
 *
 * Why: an OTel `record`/`add` hashes its attribute set on every call. Measured here, recording a
 * request's metrics through OTel cost ~4.4 µs of main-thread CPU per request (0.79x throughput at
 * one row per request), and a per-row confidence record would cost ~24 µs per 64-row batch.
 */
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type CollectionResult, type MetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';
import { emptyResource } from '@opentelemetry/resources';

type HrTime = [number, number];

function hrNow(): HrTime {
  const now = Date.now();
  return [Math.floor(now / 1000), (now % 1000) * 1e6];
}

export interface HistogramSeries {
  readonly attributes: Record<string, string>;
  readonly counts: Float64Array;
  sum: number;
  count: number;
  min: number;
  max: number;
}

export interface CounterSeries {
  readonly attributes: Record<string, string>;
  value: number;
}

interface Family {
  toMetricData(startTime: HrTime, endTime: HrTime): MetricData;
}

/** A series recorded by another thread into shared cells (./shared-series.ts), added in at scrape time. */
interface RemoteSeries {
  readonly attributes: Record<string, string>;
  readonly cells: Float64Array;
}

export class FastHistogram implements Family {
  private readonly series = new Map<string, HistogramSeries>();
  private readonly remote: RemoteSeries[] = [];

  constructor(
    readonly name: string,
    readonly description: string,
    readonly unit: string,
    readonly boundaries: readonly number[],
  ) {}

  /** The series for a label set, created once; keep it and record into it on the hot path. */
  seriesFor(attributes: Record<string, string>): HistogramSeries {
    const key = JSON.stringify(attributes);
    let s = this.series.get(key);
    if (!s) {
      s = { attributes, counts: new Float64Array(this.boundaries.length + 1), sum: 0, count: 0, min: Infinity, max: -Infinity };
      this.series.set(key, s);
    }
    return s;
  }

  record(s: HistogramSeries, v: number): void {
    const b = this.boundaries;
    let i = 0;
    // Few buckets: a linear scan beats a binary search and allocates nothing.
    while (i < b.length && v > b[i]!) i++;
    s.counts[i]!++;
    s.sum += v;
    s.count++;
    if (v < s.min) s.min = v;
    if (v > s.max) s.max = v;
  }

  /** Adds a front-end thread's series (same labels: one series in the exposition). */
  addRemote(attributes: Record<string, string>, cells: Float64Array): void {
    this.seriesFor(attributes);
    this.remote.push({ attributes, cells });
  }

  /** Local series with every thread's cells of the same labels added in. */
  private merged(): HistogramSeries[] {
    if (this.remote.length === 0) return [...this.series.values()];
    const out = new Map<string, HistogramSeries>();
    for (const [k, s] of this.series) out.set(k, { ...s, counts: Float64Array.from(s.counts) });
    const b = this.boundaries.length;
    for (const r of this.remote) {
      const s = out.get(JSON.stringify(r.attributes))!;
      const c = r.cells;
      for (let i = 0; i <= b; i++) s.counts[i]! += c[i]!;
      s.sum += c[b + 1]!;
      s.count += c[b + 2]!;
      s.min = Math.min(s.min, c[b + 3]!);
      s.max = Math.max(s.max, c[b + 4]!);
    }
    return [...out.values()];
  }

  toMetricData(startTime: HrTime, endTime: HrTime): MetricData {
    return {
      descriptor: { name: this.name, description: this.description, unit: this.unit, valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: this.merged().map((s) => ({
        startTime,
        endTime,
        attributes: s.attributes,
        value: {
          buckets: { boundaries: [...this.boundaries], counts: Array.from(s.counts) },
          sum: s.sum,
          count: s.count,
          ...(s.count > 0 ? { min: s.min, max: s.max } : {}),
        },
      })),
    };
  }
}

export class FastCounter implements Family {
  private readonly series = new Map<string, CounterSeries>();
  private readonly remote: RemoteSeries[] = [];

  constructor(
    readonly name: string,
    readonly description: string,
  ) {}

  seriesFor(attributes: Record<string, string>): CounterSeries {
    const key = JSON.stringify(attributes);
    let s = this.series.get(key);
    if (!s) {
      s = { attributes, value: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  addRemote(attributes: Record<string, string>, cells: Float64Array): void {
    this.seriesFor(attributes);
    this.remote.push({ attributes, cells });
  }

  private merged(): CounterSeries[] {
    if (this.remote.length === 0) return [...this.series.values()];
    const out = new Map<string, CounterSeries>();
    for (const [k, s] of this.series) out.set(k, { attributes: s.attributes, value: s.value });
    for (const r of this.remote) out.get(JSON.stringify(r.attributes))!.value += r.cells[0]!;
    return [...out.values()];
  }

  toMetricData(startTime: HrTime, endTime: HrTime): MetricData {
    return {
      descriptor: { name: this.name, description: this.description, unit: '', valueType: ValueType.INT },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints: this.merged().map((s) => ({ startTime, endTime, attributes: s.attributes, value: s.value })),
    };
  }
}

/** Feeds the fast families to the OTel exporter alongside the SDK's own instruments. */
export class FastMetricsProducer implements MetricProducer {
  private readonly startTime = hrNow();

  constructor(private readonly families: Family[]) {}

  async collect(): Promise<CollectionResult> {
    const endTime = hrNow();
    return {
      resourceMetrics: {
        resource: emptyResource(),
        scopeMetrics: [{ scope: { name: 'tradeflow.hot-path' }, metrics: this.families.map((f) => f.toMetricData(this.startTime, endTime)) }],
      },
      errors: [],
    };
  }
}
