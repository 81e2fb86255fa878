/**
 * The Prometheus text reader (src/telemetry/prometheus-text.ts), on hand-written lines of the
 * exposition format and on the engine's own scrape (its Telemetry and OTel serializer), with a
 * model name that needs escaping, NaN gauges and +Inf buckets.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Telemetry } from '../src/telemetry/metrics';
import {
  findSample,
  histogramBuckets,
  parsePrometheusText,
  parseSampleValue,
  PrometheusTextError,
  sumSamples,
} from '../src/telemetry/prometheus-text';

describe('parsePrometheusText', () => {
  it('reads samples, labels, TYPE and HELP, and skips other comments and blank lines', () => {
    const text = [
      '# HELP api_requests_total Requests, by \\\\ route\\nand status',
      '# TYPE api_requests_total counter',
      '# a free comment',
      '',
      'api_requests_total{endpoint="/predict",method="POST",status="200"} 20',
      'api_requests_total{endpoint="other",method="GET",status="404",} 1 1700000000000',
      'ml_uptime_seconds 5.9',
      'ml_cache_hit_ratio\t0.25\r',
    ].join('\n');
    const { samples, types, help } = parsePrometheusText(text);
    expect(types.get('api_requests_total')).toBe('counter');
    expect(help.get('api_requests_total')).toBe('Requests, by \\ route\nand status');
    expect(samples).toEqual([
      { name: 'api_requests_total', labels: { endpoint: '/predict', method: 'POST', status: '200' }, value: 20 },
      { name: 'api_requests_total', labels: { endpoint: 'other', method: 'GET', status: '404' }, value: 1, timestampMs: 1700000000000 },
      { name: 'ml_uptime_seconds', labels: {}, value: 5.9 },
      { name: 'ml_cache_hit_ratio', labels: {}, value: 0.25 },
    ]);
  });

  it('unescapes label values: backslash, double quote and newline; braces and commas inside are data', () => {
    const { samples } = parsePrometheusText('m{a="x\\"y",b="c:\\\\d\\\\",c="1\\n2",d="{},= "} 1\n');
    expect(samples[0]!.labels).toEqual({ a: 'x"y', b: 'c:\\d\\', c: '1\n2', d: '{},= ' });
  });

  it('reads the special values in Go\'s spellings', () => {
    expect(parseSampleValue('+Inf')).toBe(Infinity);
    expect(parseSampleValue('-Inf')).toBe(-Infinity);
    expect(parseSampleValue('Inf')).toBe(Infinity);
    expect(parseSampleValue('NaN')).toBeNaN();
    expect(parseSampleValue('1.5e-7')).toBe(1.5e-7);
    for (const bad of ['', '0x10', 'one', '1,5', 'Infinity ']) expect(() => parseSampleValue(bad), bad).toThrow(/bad value/);
  });

  it('names the line of anything that is not the format', () => {
    const cases: Array<[string, RegExp]> = [
      ['ok 1\nm{a="1" 2', /^line 2: expected "," or "}" after label a/],
      ['m{a="1} 2', /^line 1: unterminated value of label a/],
      ['m{a=1} 2', /^line 1: expected a quoted value for label a/],
      ['m{a="1",a="2"} 2', /^line 1: label a given twice/],
      ['m', /^line 1: no value/],
      ['m 1 2 3', /^line 1: unexpected text after the timestamp/],
      ['m 1 soon', /^line 1: bad timestamp "soon"/],
      ['m abc', /^line 1: bad value "abc"/],
      ['1m 2', /^line 1: expected a metric name/],
      ['# TYPE m countr', /^line 1: unknown metric type "countr"/],
    ];
    for (const [text, message] of cases) {
      expect(() => parsePrometheusText(text), text).toThrow(PrometheusTextError);
      expect(() => parsePrometheusText(text), text).toThrow(message);
    }
  });
});

describe('sums and buckets', () => {
  const { samples } = parsePrometheusText(
    [
      'c{endpoint="/predict",status="200"} 3',
      'c{endpoint="/predict",status="503"} 2',
      'c{endpoint="/learn",status="202"} 7',
      'h_bucket{m="a",le="0.1"} 1',
      'h_bucket{m="a",le="+Inf"} 4',
      'h_bucket{m="a",le="1"} 3',
      'h_bucket{m="b",le="0.1"} 10',
      'h_bucket{m="b",le="1"} 10',
      'h_bucket{m="b",le="+Inf"} 10',
    ].join('\n'),
  );

  it('sums a counter over the series whose labels include the selector', () => {
    expect(sumSamples(samples, 'c', { endpoint: '/predict' })).toBe(5);
    expect(sumSamples(samples, 'c')).toBe(12);
    expect(sumSamples(samples, 'c', { endpoint: '/none' })).toBe(0);
  });

  it('finds a sample by its exact label set only', () => {
    expect(findSample(samples, 'c', { endpoint: '/learn', status: '202' })?.value).toBe(7);
    expect(findSample(samples, 'c', { endpoint: '/learn' })).toBeUndefined();
  });

  it('reads cumulative buckets in increasing le, +Inf last, summed by le over matching series', () => {
    expect(histogramBuckets(samples, 'h', { m: 'a' })).toEqual([
      { le: 0.1, count: 1 },
      { le: 1, count: 3 },
      { le: Infinity, count: 4 },
    ]);
    expect(histogramBuckets(samples, 'h').map((b) => b.count)).toEqual([11, 13, 14]);
    expect(histogramBuckets(samples, 'missing')).toEqual([]);
  });
});

describe('the engine\'s own scrape', () => {
  // Model names come from operators (model admin): every character the format escapes.
  const MODEL = 'champion "v2"\\eu\nwest';
  const telemetry = new Telemetry({
    quality: () => [{ model: MODEL, accuracy: NaN, precision: 0.5, recall: 0.25, f1: NaN }],
    driftScores: () => [{ detector: 'ddm', score: Infinity }],
  });

  afterAll(() => telemetry.close());

  it('reads back every label exactly, NaN and infinite gauges, and histograms whose +Inf bucket is the count', async () => {
    const mm = telemetry.model(MODEL);
    const rows = 5;
    const probabilities = Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.3, 0.7, 0.45, 0.55]);
    const labels = Int32Array.from([0, 1, 0, 1, 1]);
    telemetry.recordBatch(mm, rows, 0.0003, probabilities, labels);
    telemetry.recordPredictionLatency(mm, 0.002);
    telemetry.recordPredictionLatency(mm, 20);
    telemetry.recordResponse('/predict', 'POST', 200, 0.002);

    const text = await telemetry.scrape();
    expect(text).toContain('model_name="champion \\"v2\\"\\\\eu\\nwest"');
    const { samples, types } = parsePrometheusText(text);

    expect(types.get('ml_prediction_latency_seconds')).toBe('histogram');
    expect(types.get('ml_model_accuracy')).toBe('gauge');
    expect(findSample(samples, 'ml_model_accuracy', { model_name: MODEL })?.value).toBeNaN();
    expect(findSample(samples, 'ml_model_recall', { model_name: MODEL })?.value).toBe(0.25);
    expect(findSample(samples, 'ml_drift_score', { detector_type: 'ddm' })?.value).toBe(Infinity);
    expect(sumSamples(samples, 'ml_predictions_total', { model_name: MODEL })).toBe(rows);
    expect(findSample(samples, 'ml_predictions_total', { model_name: MODEL, predicted_class: '1' })?.value).toBe(3);

    const latency = histogramBuckets(samples, 'ml_prediction_latency_seconds', { model_name: MODEL });
    expect(latency.at(-1)).toEqual({ le: Infinity, count: 2 });
    expect(latency.find((b) => b.le === 0.0025)?.count).toBe(1);
    expect(latency.find((b) => b.le === 10)?.count).toBe(1);
    for (let i = 1; i < latency.length; i++) expect(latency[i]!.count).toBeGreaterThanOrEqual(latency[i - 1]!.count);
    expect(findSample(samples, 'ml_prediction_latency_seconds_count', { model_name: MODEL })?.value).toBe(2);

    const requests = histogramBuckets(samples, 'api_request_duration_seconds', { endpoint: '/predict' });
    expect(requests.at(-1)).toEqual({ le: Infinity, count: 1 });
    expect(sumSamples(samples, 'api_requests_total', { endpoint: '/predict', status: '200' })).toBe(1);
  });
});
