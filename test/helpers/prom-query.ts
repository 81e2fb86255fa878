/** Prometheus' HTTP query API, as the monitoring tests ask a running Prometheus. */

export interface QueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }> };
  warnings?: string[];
}

/** An instant query (POST, so long expressions are fine). */
export async function queryPrometheus(url: string, expr: string, time?: number): Promise<QueryResult> {
  const body = new URLSearchParams({ query: expr });
  if (time !== undefined) body.set('time', String(time));
  const res = await fetch(`${url}/api/v1/query`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    signal: AbortSignal.timeout(10_000),
  });
  return (await res.json()) as QueryResult;
}
