/**
 * The engine's own view of the same window: its `api_request_duration_seconds` histogram and
 * `api_requests_total` counter for the load's endpoint, read before and after the run (from GET
 * /monitoring/metrics, or from Prometheus through prometheus-api.ts), subtracted, and the P95
 * computed as Prometheus' histogram_quantile does (linear inside the bucket that holds it), with
 * the bucket bounds that bracket it. Then whether the client's P95 agrees within that bucket.
 */
import { histogramBuckets, parsePrometheusText, sumSamples, type Bucket } from '../telemetry/prometheus-text';

export const DURATION_METRIC = 'api_request_duration_seconds';
export const REQUESTS_METRIC = 'api_requests_total';

export interface ServerSnapshot {
  /** Cumulative buckets of the duration histogram, seconds, increasing `le`. */
  buckets: Bucket[];
  /** api_requests_total of the endpoint by status. */
  byStatus: Record<string, number>;
  /** ml_cache_requests_total{result="hit"} (engine snapshots only). */
  cacheHits?: number;
}

export interface ServerQuantile {
  /** Seconds; NaN when the window has no observation. */
  value: number;
  /** The bucket that holds it: (lower, upper] seconds; upper is Infinity in the +Inf bucket. */
  lower: number;
  upper: number;
  /** Observations in the window. */
  count: number;
}

/** The endpoint's series in a scrape of GET /monitoring/metrics. */
export function snapshotFromText(text: string, endpoint: string): ServerSnapshot {
  const { samples } = parsePrometheusText(text);
  const selector = { endpoint, method: 'POST' };
  const byStatus: Record<string, number> = {};
  for (const s of samples) {
    if (s.name === REQUESTS_METRIC && s.labels.endpoint === endpoint && s.labels.status !== undefined) {
      byStatus[s.labels.status] = (byStatus[s.labels.status] ?? 0) + s.value;
    }
  }
  return { buckets: histogramBuckets(samples, DURATION_METRIC, selector), byStatus, cacheHits: sumSamples(samples, 'ml_cache_requests_total', { result: 'hit' }) };
}

/** GET /monitoring/metrics of the engine at `baseUrl`; throws when it is not there. */
export async function engineSnapshot(baseUrl: string, endpoint: string): Promise<ServerSnapshot> {
  const res = await fetch(`${baseUrl}/monitoring/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /monitoring/metrics answered ${res.status}`);
  const snap = snapshotFromText(text, endpoint);
  if (snap.buckets.length === 0 && !text.includes(DURATION_METRIC)) throw new Error(`GET /monitoring/metrics has no ${DURATION_METRIC}`);
  return snap;
}

/** after − before, bucket by bucket and status by status (a counter reset shows as the after value). */
export function windowOf(before: ServerSnapshot, after: ServerSnapshot): ServerSnapshot {
  const was = new Map(before.buckets.map((b) => [b.le, b.count]));
  const reset = after.buckets.some((b) => b.count < (was.get(b.le) ?? 0));
  const buckets = after.buckets.map((b) => ({ le: b.le, count: reset ? b.count : b.count - (was.get(b.le) ?? 0) }));
  const byStatus: Record<string, number> = {};
  for (const [status, n] of Object.entries(after.byStatus)) byStatus[status] = reset ? n : n - (before.byStatus[status] ?? 0);
  const out: ServerSnapshot = { buckets, byStatus };
  if (after.cacheHits !== undefined && before.cacheHits !== undefined) out.cacheHits = after.cacheHits - before.cacheHits;
  return out;
}

/** histogram_quantile(q, ...) over cumulative buckets, with the bucket that holds the answer. */
export function quantileOf(buckets: readonly Bucket[], q: number): ServerQuantile {
  const total = buckets.length === 0 ? 0 : buckets[buckets.length - 1]!.count;
  if (total <= 0) return { value: NaN, lower: NaN, upper: NaN, count: 0 };
  const rank = q * total;
  let i = buckets.findIndex((b) => b.count >= rank);
  if (i < 0) i = buckets.length - 1;
  const lower = i === 0 ? 0 : buckets[i - 1]!.le;
  const upper = buckets[i]!.le;
  // As Prometheus: in the +Inf bucket the answer is the highest finite bound.
  if (upper === Infinity) return { value: lower, lower, upper, count: total };
  const below = i === 0 ? 0 : buckets[i - 1]!.count;
  const inBucket = buckets[i]!.count - below;
  const value = inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
  return { value, lower, upper, count: total };
}

export interface Agreement {
  agree: boolean;
  /** The bracketing bucket's width, seconds (Infinity in the +Inf bucket). */
  widthS: number;
  /** Empty when they agree; else what the disagreement can mean, from what the run saw. */
  explanation: string;
}

export interface ClientEvidence {
  p95Ms: number;
  /** Requests that waited in the client for a free connection. */
  waited: number;
  /** Requests the load generator issued late (its own lag). */
  late: number;
}

/**
 * Client and server P95 agree when they are within the width of the bucket holding the server's
 * (the histogram cannot say more). The engine times a request from routing to its last byte, so
 * it sees at most what the client sees of each request, and its P95 is at most the bucket's upper
 * bound: a client P95 beyond that is time before the engine's clock starts (waiting for a
 * connection, the socket backlog, the event loop before routing, the load generator itself). A
 * client P95 below the bucket means the engine's window held slower requests than this client's.
 * In the +Inf bucket the histogram only says "above the highest bound": it does not resolve them.
 */
export function compareP95(client: ClientEvidence, server: ServerQuantile): Agreement {
  const widthS = server.upper - server.lower;
  const clientS = client.p95Ms / 1000;
  if (!Number.isFinite(server.value)) return { agree: true, widthS, explanation: '' };
  const slower = "the engine's window held slower requests than this client's (other clients, or warm-up requests answered in it)";
  if (server.upper === Infinity) {
    const unresolved = `the histogram's buckets do not resolve these latencies: its P95 is past its highest bound, ${server.lower} s`;
    return clientS >= server.lower ? { agree: true, widthS, explanation: unresolved } : { agree: false, widthS, explanation: `${slower}; and ${unresolved}` };
  }
  if (Math.abs(clientS - server.value) <= widthS) return { agree: true, widthS, explanation: '' };
  if (clientS < server.value) return { agree: false, widthS, explanation: slower };
  const seen: string[] = [];
  if (client.waited > 0) seen.push(`${client.waited} requests waited for a free connection`);
  if (client.late > 0) seen.push(`${client.late} were issued more than 1 ms late by the load generator`);
  const evidence = seen.length ? `; here ${seen.join(' and ')}` : '';
  return {
    agree: false,
    widthS,
    explanation: `the client measured time the engine does not see (the engine's own P95 is at most ${server.upper} s): queueing before the socket, in its backlog or before the engine routes the request${evidence}`,
  };
}
