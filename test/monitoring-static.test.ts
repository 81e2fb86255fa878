/**
 * The monitoring stack as shipped (SPEC §5), checked without Docker: promtool and amtool on the
 * Prometheus and Alertmanager configs, the alert rules and their unit tests; the compose file,
 * the Grafana provisioning and dashboard read as data; every metric name against SPEC §4; and
 * every PromQL expression of the rules and the dashboard parsed and evaluated by a real
 * Prometheus (empty storage: this proves they parse and run, not that they return data).
 *
 * Missing promtool/amtool/prometheus/alertmanager: the tests that need one fail under CI and are
 * skipped elsewhere (test/helpers/requirements.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { allPanels, substituteGrafanaVariables } from './helpers/grafana';
import {
  ALERT_RULES,
  ALERTMANAGER_CONFIG,
  COMPOSE_FILE,
  DASHBOARD,
  MONITORING_DIR,
  PROMETHEUS_CONFIG,
  PROMETHEUS_K8S_CONFIG,
  RECORDING_RULES,
  REPO_ROOT,
  RULE_TESTS_DIR,
} from './helpers/monitoring-files';
import { startAlertmanager, startPrometheus, type Daemon } from './helpers/prom-daemons';
import { queryPrometheus } from './helpers/prom-query';
import { extractPromQL, metricNamesIn } from './helpers/promql';
import { runTool, toolVersion } from './helpers/run-tool';
import { loadYaml } from './helpers/yaml';
import { requireData, requireTool } from './helpers/requirements';

const promtool = requireTool('promtool');
const amtool = requireTool('amtool');
const prometheusBin = requireTool('prometheus');
const alertmanagerBin = requireTool('alertmanager');

const rel = (file: string) => path.relative(REPO_ROOT, file);

// ---------------------------------------------------------------------------------------------
// SPEC §4: the only metric names the engine exports (the OTel Prometheus serializer's names).
// ---------------------------------------------------------------------------------------------
const SPEC_GAUGES = [
  'ml_model_accuracy', 'ml_model_f1_score', 'ml_model_precision', 'ml_model_recall', 'ml_last_training_timestamp',
  'ml_drift_score', 'ml_online_buffer_size', 'ml_cache_hit_ratio', 'ml_component_health', 'ml_uptime_seconds', 'ml_queue_depth',
];
const SPEC_COUNTERS = [
  'ml_predictions_total', 'ml_training_runs_total', 'ml_drift_detected_total', 'ml_online_updates_total',
  'api_requests_total', 'api_errors_total', 'ml_cache_requests_total',
];
const SPEC_HISTOGRAMS = [
  'ml_prediction_latency_seconds', 'ml_prediction_confidence', 'ml_training_duration_seconds',
  'api_request_duration_seconds', 'ml_batch_size', 'ml_queue_wait_seconds',
];
// Metrics the issues after SPEC §4 add, with the names their issues fix: a replica's lag on the
// shared feedback stream (issue 13) and champion routing (issue 16). An engine without those
// capabilities does not export them; the rules and the panel query over them are then empty.
const LATER_GAUGES = ['ml_feedback_lag_records', 'ml_model_champion'];
const LATER_COUNTERS = ['ml_champion_switches_total'];
const EXPORTED_NAMES = new Set([
  ...SPEC_GAUGES,
  ...SPEC_COUNTERS,
  ...LATER_GAUGES,
  ...LATER_COUNTERS,
  ...SPEC_HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
]);

// SPEC §5: the nine alerts and their severities.
const SPEC_ALERTS: Record<string, 'critical' | 'warning'> = {
  ConceptDriftDetected: 'critical',
  HighErrorRate: 'critical',
  ComponentUnhealthy: 'critical',
  LowModelAccuracy: 'warning',
  LowF1Score: 'warning',
  HighDriftWarningRate: 'warning',
  HighAPILatency: 'warning',
  NoRecentTraining: 'warning',
  LowCacheHitRatio: 'warning',
};
// The alerts of the issues after SPEC §5: a replica behind on the feedback stream (issue 13),
// the default route switching models too often (issue 16).
const LATER_ALERTS: Record<string, 'critical' | 'warning'> = {
  FeedbackStreamLag: 'warning',
  ChampionFlapping: 'warning',
};
const ALL_ALERTS = { ...SPEC_ALERTS, ...LATER_ALERTS };
const ALERT_COUNT = Object.keys(ALL_ALERTS).length;

// SPEC §5: the dashboard's rows and the panels of each, in order.
const DASHBOARD_LAYOUT: Array<[string, string[]]> = [
  ['Model Performance', ['Model accuracy', 'Model F1 score', 'Predictions per minute']],
  ['Prediction Distribution', ['Prediction confidence', 'Prediction latency percentiles']],
  ['Drift Detection', ['Drift events', 'Drift scores']],
  ['Training & Updates', ['Training runs', 'Training duration', 'Online updates']],
  ['API Performance', ['Request rate', 'API latency percentiles']],
  ['System Health', ['Component health', 'Cache hit ratio', 'Uptime']],
];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = (loadYaml(ALERT_RULES).groups as Array<{ rules: Rule[] }>).flatMap((g) => g.rules);
const recordingRules: Rule[] = (loadYaml(RECORDING_RULES).groups as Array<{ rules: Rule[] }>).flatMap((g) => g.rules);
const alertRule = (name: string): Rule => {
  const r = rules.find((x) => x.alert === name);
  if (!r) throw new Error(`no alert ${name}`);
  return r;
};
const ruleTestFiles = readdirSync(RULE_TESTS_DIR).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(RULE_TESTS_DIR, f)).sort();

describe('tool versions', () => {
  const versionOf = (tool: typeof promtool, name: string): string => {
    const file = tool.get();
    const line = toolVersion(file);
    console.log(`monitoring: ${line} (${file})`);
    const m = new RegExp(`^${name}, version (\\d+\\.\\d+\\.\\d+)`).exec(line);
    expect(m, `${file} --version says "${line}"`).not.toBeNull();
    return m![1]!;
  };

  // promtool checks the rules for the Prometheus that runs them, amtool the config for the
  // Alertmanager that loads it: each pair must be one release (Debian ships each pair in one package).
  it.skipIf(promtool.skip || prometheusBin.skip)('promtool and prometheus run and are the same release', () => {
    expect(versionOf(promtool, 'promtool')).toBe(versionOf(prometheusBin, 'prometheus'));
  });

  it.skipIf(amtool.skip || alertmanagerBin.skip)('amtool and alertmanager run and are the same release', () => {
    expect(versionOf(amtool, 'amtool')).toBe(versionOf(alertmanagerBin, 'alertmanager'));
  });
});

describe.skipIf(promtool.skip)('Prometheus config, alert rules and their unit tests (promtool)', () => {
  it('promtool check config accepts prometheus.yml and finds its rule files', () => {
    const r = runTool(promtool.get(), ['check', 'config', rel(PROMETHEUS_CONFIG)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS: 2 rule files found');
  });

  it(`promtool check rules accepts alert_rules.yml with ${ALERT_COUNT} rules and recording_rules.yml`, () => {
    const r = runTool(promtool.get(), ['check', 'rules', rel(ALERT_RULES)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${ALERT_COUNT} rules found`);
    const rec = runTool(promtool.get(), ['check', 'rules', rel(RECORDING_RULES)]);
    expect(rec.code, rec.stdout + rec.stderr).toBe(0);
    expect(rec.stdout).toContain(`SUCCESS: ${recordingRules.length} rules found`);
  });

  it('promtool test rules passes every unit test file', () => {
    expect(ruleTestFiles.length).toBeGreaterThan(0);
    const r = runTool(promtool.get(), ['test', 'rules', ...ruleTestFiles.map(rel)], { timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((r.stdout.match(/SUCCESS/g) ?? []).length).toBe(ruleTestFiles.length);
  });
});

describe('alert rules', () => {
  it('are exactly the nine alerts of SPEC §5 and the two of issues 13 and 16, with their severities', () => {
    expect(rules.every((r) => r.alert !== undefined)).toBe(true);
    expect(Object.fromEntries(rules.map((r) => [r.alert, r.labels?.severity]))).toEqual(ALL_ALERTS);
  });

  it('name the instance in the summary and the description (their unit tests check the labels keep it)', () => {
    for (const r of rules) {
      expect(r.annotations?.summary, r.alert).toContain('{{ $labels.instance }}');
      expect(r.annotations?.description, r.alert).toContain('{{ $labels.instance }}');
    }
  });

  it('each has a for: duration and summary/description annotations that include the value', () => {
    for (const r of rules) {
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, `${r.alert} description shows the value`).toMatch(/\{\{\s*\$value\b/);
    }
  });

  it('use the thresholds and metrics SPEC §5 names', () => {
    expect(alertRule('LowModelAccuracy').expr).toMatch(/ml_model_accuracy\s*<\s*0\.65\b/);
    expect(alertRule('LowF1Score').expr).toMatch(/ml_model_f1_score\s*<\s*0\.70?\b/);
    expect(alertRule('LowCacheHitRatio').expr).toMatch(/ml_cache_requests_total\{result="hit"\}[\s\S]*\/[\s\S]*ml_cache_requests_total\[10m\][\s\S]*\)\s*<\s*0\.5\b/);
    expect(alertRule('LowCacheHitRatio').expr).toMatch(/and on \(job, instance\)\s*sum by \(job, instance\) \(rate\(ml_cache_requests_total\[10m\]\)\) > 0\.1/);
    expect(alertRule('HighErrorRate').expr).toMatch(/api_errors_total[\s\S]*\/[\s\S]*api_requests_total[\s\S]*>\s*0\.05\b/);
    expect(alertRule('HighAPILatency').expr).toMatch(/histogram_quantile\(0\.95,[\s\S]*api_request_duration_seconds_bucket[\s\S]*\)\s*>\s*1\s*$/);
    expect(alertRule('NoRecentTraining').expr).toMatch(/time\(\) - ml_last_training_timestamp > 86400/);
    expect(alertRule('ComponentUnhealthy').expr).toContain('ml_component_health');
    expect(alertRule('ConceptDriftDetected').expr).toContain('ml_drift_detected_total{severity="drift"}');
    expect(alertRule('HighDriftWarningRate').expr).toContain('ml_drift_detected_total{severity="warning"}');
    expect(alertRule('FeedbackStreamLag').expr).toMatch(/^ml_feedback_lag_records > 1000$/);
    expect(alertRule('ChampionFlapping').expr).toMatch(/increase\(ml_champion_switches_total\[1h\]\)\) > 4\s*$/);
  });

  it('every alert has a unit test that fires it (labels and annotations) and one where it stays silent', () => {
    const fires = new Map<string, number>();
    const silent = new Map<string, number>();
    for (const file of ruleTestFiles) {
      const doc = loadYaml(file);
      expect([['../alert_rules.yml'], ['../recording_rules.yml']], rel(file)).toContainEqual(doc.rule_files);
      for (const test of doc.tests ?? []) {
        for (const t of test.alert_rule_test ?? []) {
          const exp = t.exp_alerts ?? [];
          if (exp.length === 0) silent.set(t.alertname, (silent.get(t.alertname) ?? 0) + 1);
          for (const a of exp) {
            fires.set(t.alertname, (fires.get(t.alertname) ?? 0) + 1);
            expect(a.exp_labels?.severity, `${t.alertname} in ${test.name}`).toBe(ALL_ALERTS[t.alertname]);
            expect(a.exp_labels?.instance, `${t.alertname} in ${test.name} names the instance`).toBeTruthy();
            expect(a.exp_annotations?.description, `${t.alertname} in ${test.name}`).toContain(a.exp_labels.instance);
            expect(Object.keys(a.exp_annotations ?? {}).sort(), `${t.alertname} in ${test.name}`).toEqual(['description', 'summary']);
          }
        }
      }
    }
    for (const name of Object.keys(ALL_ALERTS)) {
      expect(fires.get(name) ?? 0, `${name} has a firing test`).toBeGreaterThan(0);
      expect(silent.get(name) ?? 0, `${name} has a silent test`).toBeGreaterThan(0);
    }
  });
});

describe('recording rules', () => {
  it('aggregate across instances: each keeps job and drops instance', () => {
    expect(recordingRules.length).toBeGreaterThan(0);
    for (const r of recordingRules) {
      expect(r.record, r.expr).toMatch(/^[a-z_]+:[a-z_]+:[a-z0-9_]+$/);
      const bys = [...r.expr.matchAll(/\b(sum|max|min|avg|count) by \(([^)]*)\)/g)].map((m) => m[2]!.split(/,\s*/));
      expect(bys.length, `${r.record} aggregates`).toBeGreaterThan(0);
      for (const labels of bys) {
        expect(labels, r.record).toContain('job');
        expect(labels, r.record).not.toContain('instance');
      }
      // The level names the labels kept (job_model_name: keeps job and model_name).
      const kept = bys[0]!.filter((l) => l !== 'le');
      expect(r.record!.split(':')[0], r.record).toBe(kept.join('_'));
    }
  });

  it('each has a promtool unit test of its value', () => {
    const tested = new Set<string>();
    for (const file of ruleTestFiles) {
      for (const test of loadYaml(file).tests ?? []) for (const t of test.promql_expr_test ?? []) for (const m of String(t.expr).matchAll(/[a-z_]+:[a-z_]+:[a-z0-9_]+/g)) tested.add(m[0]);
    }
    expect(recordingRules.map((r) => r.record).filter((n) => !tested.has(n!))).toEqual([]);
  });
});

describe.skipIf(amtool.skip)('Alertmanager config (amtool)', () => {
  it('amtool check-config accepts config.yml', () => {
    const r = runTool(amtool.get(), ['check-config', rel(ALERTMANAGER_CONFIG)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });

  it.each([
    ['critical', 'critical'],
    ['warning', 'warning'],
  ])('routes severity=%s to the receiver %s', (severity, receiver) => {
    const r = runTool(amtool.get(), ['config', 'routes', 'test', `--config.file=${rel(ALERTMANAGER_CONFIG)}`, `--verify.receivers=${receiver}`, `severity=${severity}`, 'alertname=X', 'instance=i']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(receiver);
  });

  it('groups, repeats, uses webhooks and lets criticals inhibit warnings of the same engine', () => {
    const cfg = loadYaml(ALERTMANAGER_CONFIG);
    expect(cfg.route.group_by).toEqual(expect.arrayContaining(['alertname', 'instance']));
    for (const key of ['group_wait', 'group_interval', 'repeat_interval']) expect(cfg.route[key], key).toMatch(/^\d+[smh]$/);
    for (const name of ['critical', 'warning']) {
      const receiver = cfg.receivers.find((r: { name: string }) => r.name === name);
      expect(receiver?.webhook_configs?.[0]?.url, name).toMatch(/^https?:\/\//);
      expect(cfg.route.routes.find((r: { receiver: string }) => r.receiver === name)?.repeat_interval, name).toMatch(/^\d+[smh]$/);
    }
    const text = readFileSync(ALERTMANAGER_CONFIG, 'utf8');
    expect(text).toMatch(/#\s*slack_configs:/);
    expect(text).toMatch(/#\s*pagerduty_configs:/);
    expect(cfg.inhibit_rules).toEqual([
      { source_matchers: ['severity="critical"'], target_matchers: ['severity="warning"'], equal: ['job', 'instance'] },
    ]);
  });
});

describe.skipIf(alertmanagerBin.skip)('Alertmanager daemon', () => {
  let am: Daemon | undefined;
  afterAll(async () => {
    await am?.stop();
  });

  it('a real Alertmanager starts with config.yml and serves both receivers', async () => {
    am = await startAlertmanager({ config: readFileSync(ALERTMANAGER_CONFIG, 'utf8') });
    const status = (await (await fetch(`${am.url}/api/v2/status`)).json()) as { config: { original: string } };
    expect(status.config.original).toContain('name: critical');
    expect(status.config.original).toContain('name: warning');
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.monitoring.yml
// ---------------------------------------------------------------------------------------------

interface Mount {
  kind: 'bind' | 'volume';
  source: string;
  target: string;
}
const compose = loadYaml(COMPOSE_FILE);
const COMPOSE_DIR = path.dirname(COMPOSE_FILE);

function mountsOf(service: string): Mount[] {
  return (compose.services[service].volumes ?? []).map((v: string | { type: string; source: string; target: string }) => {
    if (typeof v !== 'string') return { kind: v.type === 'bind' ? 'bind' : 'volume', source: v.source, target: v.target };
    const [source, target] = v.split(':') as [string, string];
    return { kind: /^[./~]/.test(source) ? 'bind' : 'volume', source, target };
  });
}

/** The repository file a path inside a service's container comes from (a bind mount), or null. */
function repoPathFor(service: string, containerPath: string): string | null {
  for (const m of mountsOf(service)) {
    if (m.kind !== 'bind' || !m.source.startsWith('.')) continue;
    if (containerPath === m.target || containerPath.startsWith(m.target.replace(/\/$/, '') + '/')) {
      return path.join(path.resolve(COMPOSE_DIR, m.source), path.relative(m.target, containerPath));
    }
  }
  return null;
}

function flag(service: string, name: string): string {
  const command: string[] = compose.services[service].command;
  const f = command.find((c) => c.startsWith(`--${name}=`));
  if (!f) throw new Error(`${service} has no --${name}`);
  return f.slice(name.length + 3);
}

describe('docker-compose.monitoring.yml (static: no Docker here)', () => {
  const services = ['prometheus', 'grafana', 'alertmanager', 'node-exporter'];
  const ports: Record<string, string> = { prometheus: '9090:9090', grafana: '3000:3000', alertmanager: '9093:9093', 'node-exporter': '9100:9100' };

  it('has the four services on their ports, pinned images, restart policies and health checks', () => {
    expect(Object.keys(compose.services).sort()).toEqual([...services].sort());
    for (const s of services) {
      const svc = compose.services[s];
      expect(svc.ports, s).toContain(ports[s]);
      expect(svc.image, `${s} image is pinned to a version`).toMatch(/^[\w.\/-]+:v?\d+\.\d+\.\d+$/);
      expect(svc.restart, s).toMatch(/^(always|unless-stopped|on-failure(:\d+)?)$/);
      expect(Array.isArray(svc.healthcheck?.test) && svc.healthcheck.test.length > 1, `${s} health check`).toBe(true);
      expect(svc.healthcheck.test.join(' '), `${s} health check probes its own port`).toContain(`localhost:${ports[s]!.split(':')[1]}`);
    }
  });

  it('keeps Prometheus and Grafana data in named volumes', () => {
    const declared = Object.keys(compose.volumes ?? {});
    for (const s of services) for (const m of mountsOf(s)) if (m.kind === 'volume') expect(declared, `${s}: ${m.source}`).toContain(m.source);
    const dataOf = (s: string, target: string) => mountsOf(s).find((m) => m.target === target);
    expect(dataOf('prometheus', flag('prometheus', 'storage.tsdb.path'))?.kind).toBe('volume');
    expect(dataOf('grafana', '/var/lib/grafana')?.kind).toBe('volume');
  });

  it('mounts only paths that exist in the repository (and, for Node Exporter, the host system)', () => {
    for (const s of services) {
      for (const m of mountsOf(s)) {
        if (m.kind !== 'bind') continue;
        if (m.source.startsWith('.')) {
          expect(existsSync(path.resolve(COMPOSE_DIR, m.source)), `${s} mounts ${m.source}`).toBe(true);
        } else {
          expect(s, `only node-exporter mounts host paths (${m.source})`).toBe('node-exporter');
          expect(['/proc', '/sys', '/']).toContain(m.source);
        }
      }
    }
  });

  it('lets Prometheus (and Alertmanager) reach the host as host.docker.internal', () => {
    expect(compose.services.prometheus.extra_hosts).toContain('host.docker.internal:host-gateway');
    expect(compose.services.alertmanager.extra_hosts).toContain('host.docker.internal:host-gateway');
  });

  it('points each daemon at the shipped configs through its mounts', () => {
    const promConfig = repoPathFor('prometheus', flag('prometheus', 'config.file'));
    expect(promConfig).toBe(PROMETHEUS_CONFIG);
    // rule_files are relative to the config inside the container.
    const cfg = loadYaml(PROMETHEUS_CONFIG);
    for (const rf of cfg.rule_files) {
      const inContainer = path.posix.resolve(path.posix.dirname(flag('prometheus', 'config.file')), rf);
      const file = repoPathFor('prometheus', inContainer);
      expect(file && existsSync(file), `${rf} is mounted at ${inContainer}`).toBe(true);
    }
    expect(repoPathFor('alertmanager', flag('alertmanager', 'config.file'))).toBe(ALERTMANAGER_CONFIG);
    expect(repoPathFor('grafana', '/etc/grafana/provisioning')).toBe(path.join(MONITORING_DIR, 'grafana', 'provisioning'));
  });

  it('sets Grafana admin / admin123 and its home dashboard', () => {
    const env = compose.services.grafana.environment;
    expect(env.GF_SECURITY_ADMIN_USER).toBe('admin');
    expect(env.GF_SECURITY_ADMIN_PASSWORD).toBe('admin123');
    expect(repoPathFor('grafana', env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH)).toBe(DASHBOARD);
  });
});

describe('prometheus.yml', () => {
  const cfg = loadYaml(PROMETHEUS_CONFIG);
  const job = (name: string) => cfg.scrape_configs.find((j: { job_name: string }) => j.job_name === name);

  it('scrapes the engine as job ml-api at /monitoring/metrics every 10s through the host gateway', () => {
    expect(job('ml-api')).toMatchObject({ metrics_path: '/monitoring/metrics', scrape_interval: '10s' });
    expect(job('ml-api').static_configs[0].targets).toEqual(['host.docker.internal:8000']);
  });

  it('scrapes Node Exporter and sends alerts to Alertmanager by their compose service names', () => {
    expect(job('node').static_configs[0].targets).toEqual(['node-exporter:9100']);
    expect(cfg.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['alertmanager:9093']);
    expect(compose.services['node-exporter']).toBeDefined();
    expect(compose.services.alertmanager).toBeDefined();
    expect(cfg.rule_files).toEqual(['alert_rules.yml', 'recording_rules.yml']);
  });

  // A temporary copy of a config with `edit` applied and the rule files given by absolute path,
  // run through promtool check config.
  const checkEdited = (source: string, edit: (c: any) => void) => {
    const copy = loadYaml(source);
    copy.rule_files = copy.rule_files.map((f: string) => path.join(path.dirname(source), f));
    edit(copy);
    const dir = mkdtempSync(path.join(tmpdir(), 'tf-promcfg-'));
    try {
      const file = path.join(dir, 'prometheus.yml');
      writeFileSync(file, JSON.stringify(copy));
      return runTool(promtool.get(), ['check', 'config', file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it.skipIf(promtool.skip)('shows how to scrape several replicas: its commented static list is valid', () => {
    const text = readFileSync(PROMETHEUS_CONFIG, 'utf8');
    const example = text.split('\n').map((l) => /^\s*#\s+(- targets: \[.*\])\s*$/.exec(l)?.[1]).filter((l): l is string => l !== undefined);
    expect(example).toHaveLength(1);
    const staticConfigs = parse(example[0]!);
    expect(staticConfigs[0].targets.length).toBeGreaterThanOrEqual(2);
    for (const t of staticConfigs[0].targets) expect(t).toMatch(/^[\w.-]+:\d+$/);
    const r = checkEdited(PROMETHEUS_CONFIG, (c) => {
      c.scrape_configs.find((j: { job_name: string }) => j.job_name === 'ml-api').static_configs = staticConfigs;
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  describe('prometheus.kubernetes.yml (pods found by Kubernetes discovery)', () => {
    const k8s = loadYaml(PROMETHEUS_K8S_CONFIG);
    const k8sJob = k8s.scrape_configs.find((j: { job_name: string }) => j.job_name === 'ml-api');
    const deployment = loadYaml(path.join(REPO_ROOT, 'deploy', 'kubernetes', 'engine', 'deployment.yaml'));
    // Prometheus' documented meta labels of the pod role (kubernetes_sd_config).
    const POD_META = /^__meta_kubernetes_(namespace|pod_(name|ip|uid|phase|ready|node_name|host_ip|controller_kind|controller_name|container_(name|id|image|init|port_name|port_number|port_protocol)|label_\w+|labelpresent_\w+|annotation_\w+|annotationpresent_\w+))$/;
    const metaName = (label: string) => `__meta_kubernetes_pod_label_${label.replace(/[^A-Za-z0-9_]/g, '_')}`;

    it('keeps job ml-api, its path and interval, and the same rule files', () => {
      expect(k8sJob).toMatchObject({ metrics_path: '/monitoring/metrics', scrape_interval: '10s' });
      expect(k8s.rule_files).toEqual(cfg.rule_files);
      expect(k8sJob.kubernetes_sd_configs).toEqual([{ role: 'pod', namespaces: { names: ['tradeflow'] } }]);
    });

    it('keeps the engine pods of deploy/kubernetes by their labels and port, with documented meta labels only', () => {
      const used = new Set<string>();
      for (const rc of k8sJob.relabel_configs) for (const l of rc.source_labels ?? []) used.add(l);
      expect([...used].filter((l) => l.startsWith('__meta_') && !POD_META.test(l))).toEqual([]);
      const keepLabels = k8sJob.relabel_configs.find((rc: any) => rc.action === 'keep' && rc.source_labels.every((l: string) => l.startsWith('__meta_kubernetes_pod_label_')));
      const podLabels = deployment.spec.template.metadata.labels;
      const values = keepLabels.source_labels.map((l: string) => {
        const label = Object.keys(podLabels).find((k) => metaName(k) === l);
        expect(label, `${l} is a label of the engine pods`).toBeDefined();
        return podLabels[label!];
      });
      expect(new RegExp(`^(?:${keepLabels.regex})$`).test(values.join(';'))).toBe(true);
      const portKeep = k8sJob.relabel_configs.find((rc: any) => rc.source_labels?.[0] === '__meta_kubernetes_pod_container_port_name');
      expect(deployment.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name)).toContain(portKeep.regex);
      // namespace and pod, which prometheus-adapter maps to the pods the HPA scales.
      const targets = k8sJob.relabel_configs.map((rc: any) => rc.target_label);
      expect(targets).toEqual(expect.arrayContaining(['namespace', 'pod', 'instance']));
    });

    it.skipIf(promtool.skip)('passes promtool check config with the discovery swapped for a static target (Debian\'s promtool has no Kubernetes discovery)', () => {
      const r = checkEdited(PROMETHEUS_K8S_CONFIG, (c) => {
        const j = c.scrape_configs.find((x: { job_name: string }) => x.job_name === 'ml-api');
        delete j.kubernetes_sd_configs;
        j.static_configs = [{ targets: ['127.0.0.1:8000'] }];
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('SUCCESS: 2 rule files found');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------------------------

const datasources = loadYaml(path.join(MONITORING_DIR, 'grafana', 'provisioning', 'datasources', 'prometheus.yml')).datasources;
const DS_UID: string = datasources[0].uid;
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
const panels = allPanels(dashboard) as any[];
const rows = panels.filter((p) => p.type === 'row');
const visuals = panels.filter((p) => p.type !== 'row');
const panelByTitle = (title: string) => {
  const p = visuals.find((x) => x.title === title);
  if (!p) throw new Error(`no panel ${title}`);
  return p;
};
const exprsOf = (p: any): string[] => (p.targets ?? []).map((t: { expr: string }) => t.expr);
const thresholdValues = (p: any): number[] => p.fieldConfig.defaults.thresholds.steps.map((s: { value: number | null }) => s.value).filter((v: number | null) => v !== null);
const alertThreshold = (name: string, re: RegExp): number => Number(re.exec(alertRule(name).expr)![1]);

describe('Grafana provisioning', () => {
  it('provisions one Prometheus datasource with a fixed uid at http://prometheus:9090', () => {
    expect(datasources).toHaveLength(1);
    expect(datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090', access: 'proxy' });
    expect(DS_UID).toMatch(/^[\w-]+$/);
  });

  it('provisions the dashboards folder that compose mounts', () => {
    const providers = loadYaml(path.join(MONITORING_DIR, 'grafana', 'provisioning', 'dashboards', 'tradeflow.yml')).providers;
    expect(providers).toHaveLength(1);
    expect(providers[0].type).toBe('file');
    const dir = repoPathFor('grafana', providers[0].options.path);
    expect(dir).toBe(path.dirname(DASHBOARD));
    expect(statSync(dir!).isDirectory()).toBe(true);
  });
});

describe('Grafana dashboard ml_monitoring.json', () => {
  it('is "ML Trading Predictor Monitoring", schemaVersion ~39, with a uid', () => {
    expect(dashboard.title).toBe('ML Trading Predictor Monitoring');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
  });

  it('has exactly 6 rows and 15 panels, in the rows SPEC §5 lists', () => {
    expect(rows).toHaveLength(6);
    expect(visuals).toHaveLength(15);
    // Rows are expanded: each row's panels follow it in the list.
    const layout: Array<[string, string[]]> = [];
    for (const p of dashboard.panels) {
      if (p.type === 'row') layout.push([p.title, []]);
      else layout[layout.length - 1]![1].push(p.title);
    }
    expect(layout).toEqual(DASHBOARD_LAYOUT);
  });

  it('has unique panel ids and a grid without overlaps, each panel below its row', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      const g = p.gridPos;
      expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${p.title} gridPos`).toBe(true);
    }
    for (let i = 0; i < panels.length; i++) {
      for (let j = i + 1; j < panels.length; j++) {
        const a = panels[i].gridPos;
        const b = panels[j].gridPos;
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${panels[i].title} overlaps ${panels[j].title}`).toBe(false);
      }
    }
    let rowY = -1;
    for (const p of dashboard.panels) {
      if (p.type === 'row') {
        expect(p.gridPos.y).toBeGreaterThan(rowY);
        rowY = p.gridPos.y;
      } else expect(p.gridPos.y, p.title).toBeGreaterThan(rowY);
    }
  });

  it('has the model_name variable from label_values(ml_predictions_total, model_name)', () => {
    const v = dashboard.templating.list.find((x: { name: string }) => x.name === 'model_name');
    expect(v).toBeDefined();
    expect(v.type).toBe('query');
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    expect(q).toBe('label_values(ml_predictions_total, model_name)');
    expect(v.datasource.uid).toBe(DS_UID);
    expect(v.includeAll).toBe(true);
    expect(v.allValue).toBe('.*');
    // Panels over per-model metrics follow the variable.
    for (const p of visuals) {
      for (const e of exprsOf(p)) {
        if (/ml_(predictions_total|model_accuracy|model_f1_score|prediction_latency_seconds|prediction_confidence)/.test(e)) expect(e, p.title).toContain('model_name=~"$model_name"');
      }
    }
  });

  it('references the provisioned datasource uid in every panel and target', () => {
    for (const p of visuals) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: DS_UID });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource, `${p.title} [${t.refId}]`).toEqual({ type: 'prometheus', uid: DS_UID });
    }
  });

  it('uses stat/gauge, time series and a heatmap of the confidence buckets; percentiles with histogram_quantile', () => {
    // Accuracy over time: each model's and the champion's (issue 16).
    expect(panelByTitle('Model accuracy').type).toBe('timeseries');
    expect(['gauge', 'stat']).toContain(panelByTitle('Model F1 score').type);
    expect(['gauge', 'stat']).toContain(panelByTitle('Component health').type);
    expect(['gauge', 'stat']).toContain(panelByTitle('Cache hit ratio').type);
    expect(['gauge', 'stat']).toContain(panelByTitle('Uptime').type);
    const heatmap = panelByTitle('Prediction confidence');
    expect(heatmap.type).toBe('heatmap');
    expect(heatmap.targets[0].format).toBe('heatmap');
    expect(heatmap.targets[0].expr).toContain('ml_prediction_confidence_bucket');
    for (const title of ['Prediction latency percentiles', 'API latency percentiles']) {
      const p = panelByTitle(title);
      expect(p.type).toBe('timeseries');
      expect(p.targets).toHaveLength(3);
      for (const e of exprsOf(p)) expect(e, title).toMatch(/^histogram_quantile\(0\.(5|95|99), sum by \([^)]*\ble\b[^)]*\) \(rate\(\w+_bucket/);
    }
  });

  it('shows each model\'s rolling accuracy and, over it, the champion that serves the default route', () => {
    const p = panelByTitle('Model accuracy');
    const [perModel, champion] = p.targets;
    expect(perModel.expr).toBe('avg by (model_name) (ml_model_accuracy{model_name=~"$model_name"})');
    expect(perModel.legendFormat).toBe('{{model_name}}');
    expect(champion.expr).toBe(`${perModel.expr} and on (model_name) (max by (model_name) (ml_model_champion) == 1)`);
    expect(champion.legendFormat).toMatch(/^champion: \{\{model_name\}\}$/);
    const emphasis = p.fieldConfig.overrides.find((o: any) => o.matcher.id === 'byFrameRefID' && o.matcher.options === champion.refId);
    expect(emphasis.properties.find((x: any) => x.id === 'custom.lineWidth').value).toBeGreaterThan(p.fieldConfig.defaults.custom.lineWidth);
    expect(p.fieldConfig.defaults.custom.thresholdsStyle.mode).toMatch(/^(line|dashed|line\+area|dashed\+area)$/);
  });

  it('aggregates across instances in every panel but Uptime (one tile per replica)', () => {
    for (const p of visuals) {
      for (const e of exprsOf(p)) {
        if (p.title === 'Uptime') {
          expect(e).toBe('ml_uptime_seconds');
          continue;
        }
        expect(e, p.title).toMatch(/^(sum|max|min|avg|histogram_quantile)\b/);
        for (const m of e.matchAll(/\bby \(([^)]*)\)/g)) expect(m[1], `${p.title}: ${e}`).not.toMatch(/\binstance\b/);
        // Each side of a ratio is a sum.
        if (/\)\s*\/\s*/.test(e)) for (const side of e.split(/\s\/\s/)) expect(side.trim(), `${p.title}: ${e}`).toMatch(/^(sum|max|min|avg)\b/);
      }
    }
  });

  it('uses sensible units and the alerts\' thresholds', () => {
    expect(panelByTitle('Model accuracy').fieldConfig.defaults.unit).toBe('percentunit');
    expect(panelByTitle('Cache hit ratio').fieldConfig.defaults.unit).toBe('percentunit');
    expect(panelByTitle('Request rate').fieldConfig.defaults.unit).toBe('reqps');
    for (const t of ['Prediction latency percentiles', 'API latency percentiles', 'Training duration', 'Uptime']) expect(panelByTitle(t).fieldConfig.defaults.unit, t).toBe('s');
    expect(thresholdValues(panelByTitle('Model accuracy'))).toEqual([alertThreshold('LowModelAccuracy', /<\s*([\d.]+)/)]);
    expect(thresholdValues(panelByTitle('Model F1 score'))).toEqual([alertThreshold('LowF1Score', /<\s*([\d.]+)/)]);
    expect(thresholdValues(panelByTitle('Cache hit ratio'))).toEqual([alertThreshold('LowCacheHitRatio', /\)\s*<\s*([\d.]+)/)]);
    expect(thresholdValues(panelByTitle('API latency percentiles'))).toEqual([alertThreshold('HighAPILatency', /\)\s*>\s*([\d.]+)\s*$/)]);
    expect(thresholdValues(panelByTitle('Component health'))).toEqual([0.5, 1]);
  });
});

describe('monitoring/README.md matches the files', () => {
  const readme = readFileSync(path.join(MONITORING_DIR, 'README.md'), 'utf8');

  it('lists every alert with its severity and for: duration', () => {
    for (const r of rules) {
      const line = readme.split('\n').find((l) => l.startsWith(`| \`${r.alert}\` |`));
      expect(line, `README alert table row for ${r.alert}`).toBeDefined();
      const cells = line!.split('|').map((c) => c.trim());
      expect(cells[2], r.alert).toBe(r.labels!.severity);
      expect(cells[cells.length - 2]!.startsWith(r.for!), `${r.alert} for: ${r.for}`).toBe(true);
    }
  });

  it('names the pinned images, the datasource uid, the ports and the dashboard rows', () => {
    for (const s of Object.values(compose.services) as Array<{ image: string }>) expect(readme).toContain(s.image);
    expect(readme).toContain(DS_UID);
    for (const port of ['3000', '9090', '9093', '9100', '8000']) expect(readme).toContain(`localhost:${port}`);
    for (const [row] of DASHBOARD_LAYOUT) expect(readme).toContain(`| ${row} |`);
    expect(readme).toContain('/monitoring/health/liveness');
    expect(readme).toContain('/monitoring/health/readiness');
  });
});

// ---------------------------------------------------------------------------------------------
// Metric names and PromQL
// ---------------------------------------------------------------------------------------------

describe('PromQL helpers', () => {
  it('substitute Grafana variables as Grafana would', () => {
    expect(substituteGrafanaVariables('sum(rate(ml_predictions_total{model_name=~"$model_name"}[$__rate_interval]))')).toBe('sum(rate(ml_predictions_total{model_name=~".*"}[1m]))');
    expect(substituteGrafanaVariables('x{model_name="${model_name}"}[$__interval] offset $__range', { interval: '5s', range: '6h' })).toBe('x{model_name=~".*"}[5s] offset 6h');
    expect(substituteGrafanaVariables('x{a!="$v"} * $__range_s + $__interval_ms', { variables: { v: 'sgd' } })).toBe('x{a!~"sgd"} * 3600 + 15000');
  });

  it('find the metric names of an expression', () => {
    expect(metricNamesIn('histogram_quantile(0.95, sum by (job, le) (rate(api_request_duration_seconds_bucket{endpoint!="/train"}[5m]))) > 1')).toEqual(['api_request_duration_seconds_bucket']);
    expect(metricNamesIn('(time() - a > 86400) and a > 0 or on (job, instance) (b unless on (job) c offset 10m)')).toEqual(['a', 'b', 'c']);
    expect(metricNamesIn('sum without (severity) (increase(x_total{s="drift"}[1e3s])) / 1e3')).toEqual(['x_total']);
  });
});

describe('metric names', () => {
  // The product specification lives next to the repository (../shared/SPEC.md), not in it.
  const specFile = requireData(path.join(REPO_ROOT, '..', 'shared', 'SPEC.md'), 'check out the shared folder (SPEC.md) next to the repository', 'the product specification');
  it.skipIf(specFile.skip)('the list above is SPEC §4\'s table', () => {
    const spec = readFileSync(specFile.get(), 'utf8');
    const table = spec.slice(spec.indexOf('## 4.'), spec.indexOf('## 5.'));
    const names = new Set<string>();
    for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
      const first = line.split('|')[1]!;
      for (const m of first.matchAll(/`(\w+)`/g)) names.add(m[1]!);
    }
    expect([...names].sort()).toEqual([...SPEC_GAUGES, ...SPEC_COUNTERS, ...SPEC_HISTOGRAMS].sort());
  });

  it('every rule and dashboard expression selects only metrics the engine exports (SPEC §4)', () => {
    const exprs = extractPromQL();
    expect(exprs.filter((e) => e.source === 'rule')).toHaveLength(ALERT_COUNT);
    expect(exprs.filter((e) => e.source === 'recording')).toHaveLength(recordingRules.length);
    expect(exprs.filter((e) => e.source === 'panel').length).toBeGreaterThanOrEqual(15);
    const unknown: string[] = [];
    for (const e of exprs) {
      const names = metricNamesIn(e.expr);
      expect(names.length, `${e.name} selects a metric`).toBeGreaterThan(0);
      for (const n of names) if (!EXPORTED_NAMES.has(n)) unknown.push(`${e.source} ${e.name}: ${n}`);
    }
    expect(unknown).toEqual([]);
  });
});

describe.skipIf(prometheusBin.skip)('every expression parses and runs in a real Prometheus', () => {
  let prom: Daemon | undefined;

  beforeAll(async () => {
    // Only the shipped rules (absolute path), evaluated every second; no scrape targets.
    prom = await startPrometheus({
      config: ['global:', '  evaluation_interval: 1s', 'rule_files:', `  - ${JSON.stringify(ALERT_RULES)}`, `  - ${JSON.stringify(RECORDING_RULES)}`, ''].join('\n'),
    });
  });

  afterAll(async () => {
    await prom?.stop();
  });

  it(`loads the ${ALERT_COUNT} alert rules and the recording rules and evaluates each without error`, async () => {
    const until = Date.now() + 30_000;
    let loaded: Array<{ name: string; type: string; health: string; lastError?: string }> = [];
    const want = ALERT_COUNT + recordingRules.length;
    for (;;) {
      const res = (await (await fetch(`${prom!.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: typeof loaded }> } };
      loaded = res.data.groups.flatMap((g) => g.rules);
      if (loaded.length === want && loaded.every((r) => r.health !== 'unknown')) break;
      if (Date.now() > until) throw new Error(`rules not evaluated within 30 s: ${JSON.stringify(loaded)}\n${prom!.logs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(loaded.filter((r) => r.type === 'alerting').map((r) => r.name).sort()).toEqual(Object.keys(ALL_ALERTS).sort());
    expect(loaded.filter((r) => r.type === 'recording').map((r) => r.name).sort()).toEqual(recordingRules.map((r) => r.record).sort());
    expect(loaded.filter((r) => r.health !== 'ok')).toEqual([]);
  });

  it('answers every rule, panel and variable expression with status success', async () => {
    const exprs = extractPromQL();
    const failures: string[] = [];
    for (const e of exprs) {
      const r = await queryPrometheus(prom!.url, e.expr);
      if (r.status !== 'success') failures.push(`${e.source} ${e.name}: ${r.errorType}: ${r.error}\n  ${e.expr}`);
    }
    console.log(`monitoring: ${exprs.length} PromQL expressions parsed and evaluated by Prometheus`);
    expect(failures).toEqual([]);
  });

  it('would catch a broken expression (control)', async () => {
    const r = await queryPrometheus(prom!.url, 'sum(rate(api_requests_total[5m])');
    expect(r.status).toBe('error');
    expect(r.errorType).toBe('bad_data');
  });
});
