/**
 * The PromQL the monitoring stack runs: every expression of the alert rules and of the Grafana
 * dashboards (variables substituted), and the metric names an expression selects.
 */
import { readFileSync } from 'node:fs';
import { allPanels, substituteGrafanaVariables, variableQueryToPromQL, type GrafanaSubstitutions } from './grafana';
import { ALERT_RULES, DASHBOARD, RECORDING_RULES } from './monitoring-files';
import { loadYaml } from './yaml';

export interface PromQLExpression {
  /** 'rule' (an alert of alert_rules.yml), 'recording' (recording_rules.yml), 'panel' (a dashboard panel target) or 'variable' (a template variable query). */
  source: 'rule' | 'recording' | 'panel' | 'variable';
  /** The alert name, `panel title [refId]`, or the variable name. */
  name: string;
  /** Panels: the panel's type (timeseries, stat, gauge, heatmap). */
  panelType?: string;
  /** Ready to send to Prometheus (Grafana variables substituted). */
  expr: string;
  /** As written in the file. */
  raw: string;
}

/**
 * Every PromQL expression the monitoring stack runs: each alert rule of alert_rules.yml and
 * each recording rule of recording_rules.yml (or the given rule files), each target of each panel
 * of every dashboard in monitoring/grafana/dashboards (or the given files), and each Prometheus
 * template variable query, with Grafana variables substituted.
 */
export function extractPromQL(options: GrafanaSubstitutions & { rulesFiles?: string[]; dashboards?: string[] } = {}): PromQLExpression[] {
  const out: PromQLExpression[] = [];
  for (const file of options.rulesFiles ?? [ALERT_RULES, RECORDING_RULES]) {
    const rules = loadYaml(file) as { groups?: Array<{ rules?: Array<{ alert?: string; record?: string; expr?: string | number }> }> };
    for (const group of rules.groups ?? []) {
      for (const rule of group.rules ?? []) {
        if (rule.expr === undefined) continue;
        const expr = String(rule.expr).trim();
        out.push({ source: rule.alert !== undefined ? 'rule' : 'recording', name: rule.alert ?? rule.record ?? '?', expr, raw: expr });
      }
    }
  }
  const dashboards = options.dashboards ?? [DASHBOARD];
  for (const file of dashboards) {
    const dashboard = JSON.parse(readFileSync(file, 'utf8'));
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type !== 'query') continue;
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      const promql = typeof q === 'string' ? variableQueryToPromQL(q) : null;
      if (promql) out.push({ source: 'variable', name: `$${v.name}`, expr: substituteGrafanaVariables(promql, options), raw: q });
    }
    for (const panel of allPanels(dashboard)) {
      for (const t of panel.targets ?? []) {
        if (typeof t.expr !== 'string' || t.expr.trim() === '') continue;
        out.push({
          source: 'panel',
          name: `${panel.title ?? `panel ${panel.id}`} [${t.refId ?? '?'}]`,
          panelType: panel.type,
          expr: substituteGrafanaVariables(t.expr, options),
          raw: t.expr,
        });
      }
    }
  }
  return out;
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects (a lexical scan, enough for the expressions we
 * write): strings, label matchers, ranges, grouping label lists and offsets are removed; what is
 * left that is an identifier and not a function, aggregation or keyword is a metric name.
 * `{__name__="x"}` selectors are included too.
 */
export function metricNamesIn(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/__name__\s*=\s*"([^"]+)"/g)) names.add(m[1]!);
  const s = expr
    .replace(/#.*$/gm, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?[0-9a-z]+/g, ' ')
    .replace(/@\s*(start\(\)|end\(\)|[0-9.]+)/g, ' ');
  for (const m of s.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?/g)) {
    const [, ident, call] = m;
    if (call) continue; // function or aggregation
    if (PROMQL_KEYWORDS.has(ident!.toLowerCase())) continue;
    names.add(ident!);
  }
  return [...names].sort();
}
