/**
 * The real Prometheus tool chain for the monitoring tests: locating promtool, amtool, prometheus
 * and alertmanager (Debian's names), loading the YAML we ship, extracting every PromQL expression
 * of the alert rules and of the Grafana dashboard (variables substituted), and starting real
 * Prometheus / Alertmanager daemons on ports from the OS with temporary storage.
 *
 * Missing binaries: under CI (`process.env.CI` set) `locateTool` throws, so a CI machine without
 * them fails instead of skipping; on a developer's machine it warns loudly and returns null so
 * the test can skip.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (the folder holding package.json), found from this file. */
export const REPO_ROOT = (() => {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
})();

export const MONITORING_DIR = path.join(REPO_ROOT, 'monitoring');
export const PROMETHEUS_CONFIG = path.join(MONITORING_DIR, 'prometheus', 'prometheus.yml');
export const ALERT_RULES = path.join(MONITORING_DIR, 'prometheus', 'alert_rules.yml');
export const RULE_TESTS_DIR = path.join(MONITORING_DIR, 'prometheus', 'tests');
export const ALERTMANAGER_CONFIG = path.join(MONITORING_DIR, 'alertmanager', 'config.yml');
export const DASHBOARDS_DIR = path.join(MONITORING_DIR, 'grafana', 'dashboards');
export const DASHBOARD = path.join(DASHBOARDS_DIR, 'ml_monitoring.json');
export const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.monitoring.yml');

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

export type Tool = 'promtool' | 'amtool' | 'prometheus' | 'alertmanager';

/** Where each tool may be: Debian installs the Alertmanager daemon as prometheus-alertmanager. */
const CANDIDATES: Record<Tool, { names: string[]; debianPackage: string }> = {
  promtool: { names: ['promtool'], debianPackage: 'prometheus' },
  prometheus: { names: ['prometheus'], debianPackage: 'prometheus' },
  amtool: { names: ['amtool'], debianPackage: 'prometheus-alertmanager' },
  alertmanager: { names: ['prometheus-alertmanager', 'alertmanager'], debianPackage: 'prometheus-alertmanager' },
};

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `tool`, or null: /usr/bin first (Debian), then every PATH entry. */
export function findTool(tool: Tool): string | null {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const name of CANDIDATES[tool].names) {
    for (const dir of dirs) {
      const file = path.join(dir, name);
      if (isExecutable(file)) return file;
    }
  }
  return null;
}

/**
 * The path of `tool`. Missing under CI: throws (CI must have it). Missing elsewhere: warns loudly
 * and returns null, for `describe.skipIf(!path)`.
 */
export function locateTool(tool: Tool): string | null {
  const found = findTool(tool);
  if (found) return found;
  const { names, debianPackage } = CANDIDATES[tool];
  const message = `${names.join(' / ')} not found (Debian package ${debianPackage}: apt-get install -y ${debianPackage})`;
  if (process.env.CI) throw new Error(`CI is set and ${message}: the monitoring checks cannot run`);
  console.warn(`\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n!!! SKIPPING monitoring checks: ${message}\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n`);
  return null;
}

/** The first line a tool prints for --version, e.g. "promtool, version 2.42.0+ds (...)". */
export function toolVersion(file: string): string {
  const out = execFileSync(file, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n')[0]!.trim();
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion (bounded by `timeoutMs`) without throwing on a non-zero exit. */
export function runTool(file: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): RunResult {
  try {
    const stdout = execFileSync(file, args, {
      cwd: options.cwd ?? REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: e.status ?? -1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + (e.status == null ? e.message : '') };
  }
}

// ---------------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------------

/**
 * Parses a YAML file. Uses the npm package `yaml` when the project has it; until then Debian's
 * python3-yaml (`/usr/bin/python3 -c 'import yaml'`), which must then be installed.
 */
export function loadYaml(file: string): any {
  const text = readFileSync(file, 'utf8');
  try {
    const req = createRequire(__filename);
    const yaml = req('yaml') as { parse(text: string): unknown };
    return yaml.parse(text);
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
  }
  const script = 'import json, sys, yaml\njson.dump(yaml.safe_load(sys.stdin), sys.stdout)';
  let out: string;
  try {
    out = execFileSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`cannot parse ${file} as YAML: neither the npm package "yaml" nor /usr/bin/python3 with python3-yaml works (${(e.stderr || e.message).trim()})`);
  }
  return JSON.parse(out);
}

// ---------------------------------------------------------------------------------------------
// PromQL expressions of the rules and the dashboard
// ---------------------------------------------------------------------------------------------

export interface PromQLExpression {
  /** 'rule' (alert_rules.yml), 'panel' (a dashboard panel target) or 'variable' (a template variable query). */
  source: 'rule' | 'panel' | 'variable';
  /** The alert name, `panel title [refId]`, or the variable name. */
  name: string;
  /** Panels: the panel's type (timeseries, stat, gauge, heatmap). */
  panelType?: string;
  /** Ready to send to Prometheus (Grafana variables substituted). */
  expr: string;
  /** As written in the file. */
  raw: string;
}

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

interface GrafanaPanel {
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
function variableQueryToPromQL(query: string): string | null {
  const q = query.trim();
  let m = /^label_values\(\s*(.+)\s*,\s*(\w+)\s*\)$/s.exec(q);
  if (m) return `count by (${m[2]}) (${m[1]})`;
  m = /^query_result\(\s*(.+)\s*\)$/s.exec(q);
  if (m) return m[1]!;
  return null; // label_values(label), label_names(), metrics(regex): no PromQL
}

/**
 * Every PromQL expression the monitoring stack runs: each alert (and recording) rule of
 * alert_rules.yml, each target of each panel of every dashboard in monitoring/grafana/dashboards
 * (or the given files), and each Prometheus template variable query, with Grafana variables
 * substituted.
 */
export function extractPromQL(options: GrafanaSubstitutions & { rulesFile?: string; dashboards?: string[] } = {}): PromQLExpression[] {
  const out: PromQLExpression[] = [];
  const rules = loadYaml(options.rulesFile ?? ALERT_RULES) as { groups?: Array<{ rules?: Array<{ alert?: string; record?: string; expr?: string | number }> }> };
  for (const group of rules.groups ?? []) {
    for (const rule of group.rules ?? []) {
      if (rule.expr === undefined) continue;
      const expr = String(rule.expr).trim();
      out.push({ source: 'rule', name: rule.alert ?? rule.record ?? '?', expr, raw: expr });
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

// ---------------------------------------------------------------------------------------------
// Real daemons
// ---------------------------------------------------------------------------------------------

/** A port the OS just handed out on 127.0.0.1 (closed again for the daemon to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Daemon {
  url: string;
  port: number;
  /** Working directory (configs, storage); removed by stop(). */
  dir: string;
  child: ChildProcess;
  /** Everything the daemon printed so far (it logs to stderr). */
  logs(): string;
  stop(): Promise<void>;
}

async function waitUntilReady(url: string, child: ChildProcess, logs: () => string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${child.spawnfile} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${logs()}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${child.spawnfile} not ready at ${url} within ${timeoutMs} ms:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopChild(child: ChildProcess, dir: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      resolve();
      return;
    }
    child.once('exit', done);
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.kill('SIGTERM');
  });
}

async function startDaemon(binary: string, makeArgs: (port: number, dir: string) => string[], dir: string, timeoutMs: number): Promise<Daemon> {
  let lastError: unknown;
  // The port is free when the OS hands it out; another process may take it before the daemon
  // binds it, so a daemon that exits at start is retried on a new port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let output = '';
    const child = spawn(binary, makeArgs(port, dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const logs = () => output;
    try {
      await waitUntilReady(url, child, logs, timeoutMs);
      return { url, port, dir, child, logs, stop: () => stopChild(child, dir) };
    } catch (err) {
      lastError = err;
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
      if (!/address already in use/i.test(output)) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

export interface PrometheusOptions {
  /** prometheus.yml text. Relative paths in it (rule_files) are relative to `files`' folder. */
  config: string;
  /** Further files written next to the config (name → content), e.g. a test copy of the rules. */
  files?: Record<string, string>;
  extraArgs?: string[];
  timeoutMs?: number;
}

/** Starts a real Prometheus on a port from the OS with storage in a temporary folder. */
export async function startPrometheus(options: PrometheusOptions): Promise<Daemon> {
  const binary = locateTool('prometheus');
  if (!binary) throw new Error('prometheus binary not found');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tradeflow-prometheus-'));
  writeFileSync(path.join(dir, 'prometheus.yml'), options.config);
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(path.join(dir, name), content);
  return startDaemon(
    binary,
    (port) => [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      '--log.level=warn',
      ...(options.extraArgs ?? []),
    ],
    dir,
    options.timeoutMs ?? 30_000,
  );
}

export interface AlertmanagerOptions {
  /** Alertmanager config.yml text. */
  config: string;
  extraArgs?: string[];
  timeoutMs?: number;
}

/** Starts a real Alertmanager (clustering off) on a port from the OS with temporary storage. */
export async function startAlertmanager(options: AlertmanagerOptions): Promise<Daemon> {
  const binary = locateTool('alertmanager');
  if (!binary) throw new Error('alertmanager binary not found');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tradeflow-alertmanager-'));
  writeFileSync(path.join(dir, 'config.yml'), options.config);
  return startDaemon(
    binary,
    (port) => [
      `--config.file=${path.join(dir, 'config.yml')}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
      ...(options.extraArgs ?? []),
    ],
    dir,
    options.timeoutMs ?? 30_000,
  );
}

export interface QueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }> };
  warnings?: string[];
}

/** An instant query through Prometheus' HTTP API (POST, so long expressions are fine). */
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
