/**
 * The load test's report: a few aligned lines for a person, a sweep table, one JSON object for
 * --json, and HdrHistogram's own percentile distribution text for --hgrm (the .hgrm format its
 * plotter reads, values in milliseconds).
 */
import type { AlertVerdict } from './alert-watch';
import type { ServerView, StepResult } from './session';
import type { ClientStats } from './stats';
import type { SweepResult } from './sweep';
import { formatMs, formatRate } from './units';

export interface RunDescription {
  url: string;
  path: string;
  shape: string;
  rows: number;
  model: string | null;
  features: number;
  source: string;
}

const count = (n: number): string => n.toLocaleString('en-US');
const LATE_SHARE_WARNING = 0.01;

export function modeLine(c: ClientStats): string {
  const warm = c.warmupS > 0 ? ` after a ${c.warmupS} s warm-up` : '';
  if (c.mode === 'open') return `open loop at ${formatRate(c.askedRate!)} over ${c.connections} connections for ${c.durationS} s${warm}`;
  return (
    `closed loop over ${c.connections} connections for ${c.durationS} s${warm} (each connection sends its next request when the previous one ` +
    'is answered: a stall holds back requests that are then never sent, so these percentiles hide it; the open loop counts them)'
  );
}

export function latencyLine(c: ClientStats): string {
  const l = c.latencyMs;
  return `p50 ${formatMs(l.p50)}  p90 ${formatMs(l.p90)}  p95 ${formatMs(l.p95)}  p99 ${formatMs(l.p99)}  p99.9 ${formatMs(l.p999)}  max ${formatMs(l.max)}`;
}

function answersLine(c: ClientStats): string {
  const statuses = Object.entries(c.byStatus).map(([s, n]) => `${s} ×${count(n)}`);
  const codes = Object.entries(c.errorCodes).map(([k, n]) => `${k} ×${count(n)}`);
  const failures = Object.entries(c.failures).map(([k, n]) => `${k} ×${count(n)}`);
  return [
    `${count(c.answered)} answered of ${count(c.sent)} sent: ${statuses.join(', ') || 'none'}`,
    codes.length ? `errors by code: ${codes.join(', ')}` : '',
    failures.length ? `no answer: ${failures.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
}

function scheduleLines(c: ClientStats): string[] {
  if (c.mode === 'closed') return [];
  const s = c.schedule;
  const share = c.sent ? s.late / c.sent : 0;
  const late =
    share > LATE_SHARE_WARNING
      ? `the tool fell behind its schedule: ${count(s.late)} of ${count(c.sent)} requests (${(100 * share).toFixed(1)} %) were issued more than ${s.lateThresholdMs} ms late (max ${formatMs(s.maxLateMs)}): at this rate the load generator (or what else runs on this machine), not the target, may be the limit`
      : `${count(s.late)} of ${count(c.sent)} requests issued more than ${s.lateThresholdMs} ms after their time (max ${formatMs(s.maxLateMs)})`;
  const wait = s.waitedForConnection ? `${count(s.waitedForConnection)} waited for a free connection (max ${formatMs(s.maxWaitMs)}), counted in their latency` : 'none waited for a free connection';
  return [late, wait];
}

export function bucketText(lowerS: number, upperS: number): string {
  return `(${formatMs(lowerS * 1000)}, ${Number.isFinite(upperS) ? formatMs(upperS * 1000) : '+Inf'}]`;
}

function serverLine(v: ServerView, c: ClientStats): string {
  const where = `${v.source === 'engine' ? 'engine' : 'Prometheus'} ${v.from}`;
  if (!v.window || !v.p95) return `${where}: not read (${v.error})`;
  if (!Number.isFinite(v.p95.value)) return `${where}: no request in the window`;
  const head = `${where}: ${count(v.requests)} answers, api_request_duration_seconds P95 ${formatMs(v.p95.value * 1000)} in the bucket ${bucketText(v.p95.lower, v.p95.upper)}`;
  const a = v.agreement!;
  if (a.agree && a.explanation) return `${head}; the client's ${formatMs(c.latencyMs.p95)} is in it, but ${a.explanation}`;
  if (a.agree) return `${head}; agrees with the client's ${formatMs(c.latencyMs.p95)} (within the bucket's width)`;
  return `${head}; DISAGREES with the client's ${formatMs(c.latencyMs.p95)} by more than the bucket's width: ${a.explanation}`;
}

export function alertLines(v: AlertVerdict, runStart: number): string[] {
  const at = (t: number): string => (t < runStart ? 'the start' : `+${((t - runStart) / 1000).toFixed(1)} s`);
  const seen = v.transitions.map((t, i) => {
    const what = i > 0 && t.state === 'inactive' && v.transitions[i - 1]!.state === 'firing' ? 'resolved' : t.state;
    return `${what} at ${at(t.seenAt)}${t.activeAt ? ` (active since ${t.activeAt})` : ''}`;
  });
  return [
    `${v.expected.name} expected ${v.expected.state}: ${v.ok ? 'OK' : 'FAILED'} (${v.reason}); for: ${v.forS} s, evaluated every ${v.intervalS} s`,
    `seen: ${seen.join(', ') || 'nothing'}${v.labels ? `; labels ${JSON.stringify(v.labels)}` : ''}`,
  ];
}

/** The report of a single run. */
export function formatStep(d: RunDescription, r: StepResult, alert: AlertVerdict | null, notes: string[]): string {
  const c = r.client;
  const rows: Array<[string, string]> = [
    ['target', `POST ${d.url}${d.path}: ${d.shape} ${d.rows} row${d.rows === 1 ? '' : 's'} per request, model ${d.model ?? 'default'} (F ${d.features}), rows ${d.source}`],
    ['answers', answersLine(c)],
    ['rate', `${formatRate(c.achievedRate)} answered${c.askedRate !== null ? ` (${formatRate(c.askedRate)} asked)` : ''}`],
    ['latency', latencyLine(c)],
    ['', `HdrHistogram of every answer, from ${c.mode === 'open' ? 'the time each request was due to be sent' : 'each send'}`],
    ...scheduleLines(c).map((l, i): [string, string] => [i === 0 ? 'schedule' : '', l]),
    ...r.server.map((v): [string, string] => ['server', serverLine(v, c)]),
    ...(alert ? alertLines(alert, r.outcome.wallStart).map((l, i): [string, string] => [i === 0 ? 'alert' : '', l]) : []),
    ...notes.map((n): [string, string] => ['note', n]),
  ];
  return [`tradeflow load: ${modeLine(c)}`, ...rows.map(([k, v]) => `  ${k.padEnd(9)}${v}`)].join('\n');
}

/** The sweep as a table, then its knee. */
export function formatSweep(d: RunDescription, s: SweepResult, alert: AlertVerdict | null, notes: string[]): string {
  const first = s.steps[0]!.result.client;
  const head = s.plan.by === 'rate' ? 'rate' : 'conns';
  const lines = [
    `tradeflow load --sweep: ${first.mode} loop, ${d.shape} ${d.rows} row${d.rows === 1 ? '' : 's'} per request to POST ${d.url}${d.path}, ${first.durationS} s per step; knee: the highest ${s.plan.by === 'rate' ? 'rate' : 'connection count'} whose p95 stays under ${formatMs(s.p95UnderMs)}`,
    ['  ' + head.padEnd(10), 'achieved'.padEnd(11), 'p50'.padEnd(10), 'p95'.padEnd(10), 'p99'.padEnd(10), 'max'.padEnd(10), 'errors'.padEnd(8), 'late'.padEnd(7), 'server p95'.padEnd(28), 'sustained'].join(''),
  ];
  for (const st of s.steps) {
    const c = st.result.client;
    const v = st.result.server.find((x) => x.p95 && Number.isFinite(x.p95.value));
    const srv = v ? `${formatMs(v.p95!.value * 1000)} ${bucketText(v.p95!.lower, v.p95!.upper)}` : '-';
    const value = s.plan.by === 'rate' ? formatRate(st.value) : String(st.value);
    lines.push(['  ' + value.padEnd(10), formatRate(c.achievedRate).padEnd(11), formatMs(c.latencyMs.p50).padEnd(10), formatMs(c.latencyMs.p95).padEnd(10), formatMs(c.latencyMs.p99).padEnd(10), formatMs(c.latencyMs.max).padEnd(10), count(c.errors).padEnd(8), count(c.schedule.late).padEnd(7), srv.padEnd(28), st.ok ? 'yes' : `no: ${st.why}`].join(''));
  }
  const knee = s.knee ? `${s.plan.by === 'rate' ? formatRate(s.knee.value) : `${s.knee.value} connections`} (p95 ${formatMs(s.knee.result.client.latencyMs.p95)})` : `none: the first step did not pass`;
  lines.push(`knee: ${knee}`);
  if (alert) lines.push(...alertLines(alert, s.steps[0]!.result.outcome.wallStart).map((l, i) => `${i === 0 ? 'alert: ' : '       '}${l}`));
  for (const n of notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

function stepJson(r: StepResult): Record<string, unknown> {
  return {
    ...r.client,
    server: r.server.map((v) => ({
      source: v.source,
      from: v.from,
      error: v.error ?? null,
      requests: v.requests,
      byStatus: v.window?.byStatus ?? null,
      cacheHits: v.window?.cacheHits ?? null,
      p95S: v.p95 ? nullIfNaN(v.p95.value) : null,
      bucketS: v.p95 ? [nullIfNaN(v.p95.lower), Number.isFinite(v.p95.upper) ? v.p95.upper : null] : null,
      agree: v.agreement?.agree ?? null,
      disagreement: v.agreement && !v.agreement.agree ? v.agreement.explanation : null,
    })),
    wallStart: new Date(r.outcome.wallStart).toISOString(),
    wallEnd: new Date(r.outcome.wallEnd).toISOString(),
  };
}

const nullIfNaN = (v: number): number | null => (Number.isNaN(v) ? null : v);

/** One JSON object (NaN and Infinity, which JSON lacks, become null). */
export function toJson(d: RunDescription, body: { step?: StepResult; sweep?: SweepResult }, alert: AlertVerdict | null, checks: Record<string, unknown>): string {
  const out: Record<string, unknown> = { target: d };
  if (body.step) Object.assign(out, stepJson(body.step));
  if (body.sweep) {
    const s = body.sweep;
    out.sweep = { by: s.plan.by, values: s.plan.values, p95UnderMs: s.p95UnderMs, knee: s.knee?.value ?? null, steps: s.steps.map((st) => ({ value: st.value, ok: st.ok, why: st.why, ...stepJson(st.result) })) };
  }
  out.alert = alert;
  out.checks = checks;
  return JSON.stringify(out, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}

/** HdrHistogram's percentile distribution of a run, in milliseconds (5 ticks per half distance, as its tools print). */
export function hgrm(r: StepResult): string {
  return r.outcome.measured.latencyUs.outputPercentileDistribution(5, 1000);
}
