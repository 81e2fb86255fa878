/**
 * Grafana dashboards read as data: every panel (rows' nested panels included), and a panel's or
 * template variable's query turned into the PromQL Grafana would send, its variables substituted.
 */

export interface GrafanaSubstitutions {
  /** `$__rate_interval`; default 1m. */
  rateInterval?: string;
  /** `$__interval`; default 15s. */
  interval?: string;
  /** `$__range`; default 1h. */
  range?: string;
  /** Values of custom variables; default `.*` (Grafana's "All" with allValue `.*`). */
  variables?: Record<string, string>;
}

function durationSeconds(d: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  let m: RegExpExecArray | null;
  let consumed = '';
  while ((m = re.exec(d))) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed += m[0];
  }
  if (consumed !== d || consumed === '') throw new Error(`not a duration: ${d}`);
  return total;
}

/**
 * Substitutes Grafana's variables in a panel query: `$var`, `${var}` and `[[var]]`; a custom
 * variable used with `=` becomes a regex match (`model_name=~".*"`), as Grafana does for multi-value
 * and "All". Throws when a `$` variable is left.
 */
export function substituteGrafanaVariables(expr: string, subs: GrafanaSubstitutions = {}): string {
  const rateInterval = subs.rateInterval ?? '1m';
  const interval = subs.interval ?? '15s';
  const range = subs.range ?? '1h';
  const builtins: Record<string, string> = {
    __rate_interval: rateInterval,
    __interval: interval,
    __interval_ms: String(Math.round(durationSeconds(interval) * 1000)),
    __range: range,
    __range_s: String(Math.round(durationSeconds(range))),
    __range_ms: String(Math.round(durationSeconds(range) * 1000)),
  };
  const valueOf = (name: string): string => {
    if (name in builtins) return builtins[name]!;
    if (name.startsWith('__')) throw new Error(`unknown Grafana built-in variable $${name} in: ${expr}`);
    return subs.variables?.[name] ?? '.*';
  };
  let out = expr.replace(/\[\[(\w+)\]\]/g, (_m, name: string) => `$${name}`).replace(/\$\{(\w+)(?::\w+)?\}/g, (_m, name: string) => `$${name}`);
  // A custom variable in an equality matcher: Grafana's multi-value/All needs a regex match.
  out = out.replace(/(\w+)\s*(=~|!~|!=|=)\s*"\$(\w+)"/g, (_m, label: string, op: string, name: string) => {
    if (name in builtins) return `${label}${op}"${builtins[name]}"`;
    const regexOp = op === '=' || op === '=~' ? '=~' : '!~';
    return `${label}${regexOp}"${valueOf(name)}"`;
  });
  // `\w+` is greedy: $__interval_ms is read whole, never as $__interval followed by "_ms".
  out = out.replace(/\$(\w+)/g, (_m, name: string) => valueOf(name));
  if (/\$\w/.test(out)) throw new Error(`unsubstituted Grafana variable in: ${out}`);
  return out;
}

export interface GrafanaPanel {
  id?: number;
  type?: string;
  title?: string;
  panels?: GrafanaPanel[];
  targets?: Array<{ expr?: string; refId?: string; hide?: boolean }>;
}

/** Every panel of a dashboard, rows' nested (collapsed) panels included, rows themselves too. */
export function allPanels(dashboard: { panels?: GrafanaPanel[] }): GrafanaPanel[] {
  const out: GrafanaPanel[] = [];
  const walk = (ps: GrafanaPanel[] | undefined) => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** PromQL of a Grafana Prometheus variable query; null for the ones that are not PromQL. */
export function variableQueryToPromQL(query: string): string | null {
  const q = query.trim();
  let m = /^label_values\(\s*(.+)\s*,\s*(\w+)\s*\)$/s.exec(q);
  if (m) return `count by (${m[2]}) (${m[1]})`;
  m = /^query_result\(\s*(.+)\s*\)$/s.exec(q);
  if (m) return m[1]!;
  return null; // label_values(label), label_names(), metrics(regex): no PromQL
}
