/**
 * A histogram for values recorded once per row (prediction confidence), exported through the
 * same OpenTelemetry reader as every other metric. An OTel `histogram.record` costs ~370 ns here;
 * a 64-row batch would spend ~24 µs on it. Here a row costs one bucket increment, and the
 * OTel exporter reads the counts at scrape time through the MetricProducer interface.
 */
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type CollectionResult, type MetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';
import { emptyResource } from '@opentelemetry/resources';

interface Series {
  attributes: Record<string, string>;
  counts: Float64Array;
  sum: number;
  count: number;
  min: number;
  max: number;
}

export class RowHistogram {
  private readonly series = new Map<string, Series>();
  private readonly startTime: [number, number];

  constructor(
    readonly name: string,
    readonly description: string,
    readonly boundaries: readonly number[],
  ) {
    const now = Date.now();
    this.startTime = [Math.floor(now / 1000), (now % 1000) * 1e6];
  }

  /** The series for one label value, created once and then reused on the hot path. */
  seriesFor(label: string, value: string): Series {
    const key = `${label}=${value}`;
    let s = this.series.get(key);
    if (!s) {
      s = { attributes: { [label]: value }, counts: new Float64Array(this.boundaries.length + 1), sum: 0, count: 0, min: Infinity, max: -Infinity };
      this.series.set(key, s);
    }
    return s;
  }

  record(s: Series, v: number): void {
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

  toMetricData(): MetricData {
    const now = Date.now();
    const endTime: [number, number] = [Math.floor(now / 1000), (now % 1000) * 1e6];
    return {
      descriptor: { name: this.name, description: this.description, unit: '', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.series.values()].map((s) => ({
        startTime: this.startTime,
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

/** Feeds row histograms to the OTel exporter alongside the SDK's own instruments. */
export class RowHistogramProducer implements MetricProducer {
  constructor(private readonly histograms: RowHistogram[]) {}

  async collect(): Promise<CollectionResult> {
    return {
      resourceMetrics: {
        resource: emptyResource(),
        scopeMetrics: [{ scope: { name: 'tradeflow.rows' }, metrics: this.histograms.map((h) => h.toMetricData()) }],
      },
      errors: [],
    };
  }
}
